#!/usr/bin/env python3
"""TF in the node (issue 14): the pure-Python buffer's cost, and TF against a pose topic end to end.

    python bench/bench_tf.py [--out build/bench] [--lookups 2000] [--frames 40] [--skip-node]

1. Lookup cost: ``PoseSource`` (the node's buffer without tf2_ros) holding a robot's tree
   of 100 frames: map -> odom (static), odom -> base_link (dynamic, 50 Hz for the 10 s
   cache), 97 static links below base_link (arms, sensors; the camera optical frame 4
   links down). Median and p90 of ``lookup(map <- camera_optical)`` at random stamps
   inside the history, and of storing one /tf message of 20 dynamic transforms (a
   robot_state_publisher update). A 10,000-link chain shows the depth limit's effect.
2. End to end: the mapping node (``config/mapping.yaml``: mode alster, untrained default
   model) in a subprocess, fed ``ProceduralRoom`` frames at 320x240 one at a time (each
   waits for its ``~/semantic_cloud_update``), once with the pose on a topic
   (``pose_source: pose``) and once by TF (``pose_source: tf``: /tf and /tf_static as
   above), in the same run. Latency = update receipt minus the frame's stamp; the node's
   own ``pose`` stage (waiting for and looking up the pose) from ``~/get_stats``.

Prints a table and writes ``bench_tf.json`` into --out.
"""

from __future__ import annotations

import os
import random
import sys

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("ROS_DOMAIN_ID", str(random.SystemRandom().randint(1, 101)))
if not os.environ.get("AMENT_PREFIX_PATH"):
    os.environ["AMENT_PREFIX_PATH"] = sys.prefix

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from live_node import Camera, NodeProcess  # noqa: E402

from alster_mapping.core.atomic_file import write_text_atomic  # noqa: E402
from alster_mapping.core.geometry import pose_from_quaternion  # noqa: E402
from alster_mapping.core.tf_buffer import TransformBuffer, TransformError  # noqa: E402

START_TIMEOUT = 120.0
CACHE_S, TF_HZ = 10.0, 50


def ms(values: list[float], q: float) -> float:
    return round(1e3 * float(np.percentile(values, q)), 4)


def robot_tree() -> tuple[object, list[int]]:
    """A ``PoseSource`` with a 100-frame robot tree; returns it and the odom -> base_link stamps [ns]."""
    from alster_mapping.ros.inputs import PoseSource

    source = PoseSource(int(CACHE_S * 1e9), tolerance_ns=0)
    rng = np.random.default_rng(0)

    def rigid() -> np.ndarray:
        q = rng.normal(size=4)
        return pose_from_quaternion(rng.normal(size=3) * 0.2, q / np.linalg.norm(q))

    source.set_transform("map", "odom", rigid(), 0, static=True)
    stamps = [int(1e9 + i * 1e9 / TF_HZ) for i in range(int(CACHE_S * TF_HZ))]
    for ns in stamps:
        source.set_transform("odom", "base_link", rigid(), ns)
    chain = ["base_link", "torso", "head", "camera_link", "camera_optical"]
    for parent, child in zip(chain, chain[1:]):
        source.set_transform(parent, child, rigid(), 0, static=True)
    for i in range(100 - 2 - (len(chain) - 1) - 1):  # the other links hang off the torso
        source.set_transform("torso", f"link_{i}", rigid(), 0, static=True)
    assert len(source.buffer.frames) == 100, len(source.buffer.frames)
    return source, stamps


def bench_buffer(lookups: int) -> dict:
    source, stamps = robot_tree()
    rng = np.random.default_rng(1)
    times = []
    for ns in rng.integers(stamps[0], stamps[-1], lookups):
        start = time.perf_counter()
        source.lookup("map", "camera_optical", int(ns), 0.0)
        times.append(time.perf_counter() - start)
    # One /tf message of 20 dynamic joints (robot_state_publisher), stored as the node does.
    joints = [f"link_{i}" for i in range(20)]
    T = np.eye(4)
    store = []
    for k in range(200):
        ns = stamps[-1] + (k + 1) * int(1e9 / TF_HZ)
        start = time.perf_counter()
        for child in joints:
            source.set_transform("torso", child, T, ns)
        store.append(time.perf_counter() - start)
    # A hostile 10,000-link chain: refused beyond the depth limit, link by link.
    deep = TransformBuffer()
    start = time.perf_counter()
    refused = 0
    for i in range(10_000):
        try:
            deep.set_transform(f"g{i}", f"g{i + 1}", T, 0, static=True)
        except TransformError:
            refused += 1
    chain_s = time.perf_counter() - start
    return {
        "frames": 100,
        "lookup_ms_median": ms(times, 50),
        "lookup_ms_p90": ms(times, 90),
        "store_20_transforms_ms_median": ms(store, 50),
        "chain_10000_links_s": round(chain_s, 3),
        "chain_10000_links_refused": refused,
    }


def bench_node(frames_n: int, workdir: Path) -> dict:
    from alster_mapping.data.procedural_room import ProceduralRoom

    room = ProceduralRoom(320, 240)
    frames = [room.render(room.pose(i, frames_n)) for i in range(frames_n)]
    out = {}
    for poses in ("pose", "tf"):
        node = NodeProcess(workdir, [f"pose_source:={poses}"], name=f"mapping_node_{poses}")
        peer = None
        try:
            peer = Camera(frames, room.intrinsics, f"bench_tf_{poses}", poses=poses)
            peer.wait_connected(node, START_TIMEOUT)
            latencies = []
            for i in range(frames_n):
                stamp = peer.publish(i)
                latency = peer.wait_update(stamp, timeout=60.0)
                node.check_alive()
                if latency is not None and i > 0:  # the first frame includes lazy initialisation
                    latencies.append(latency)
            stats = peer.stats()
            pose_stage = stats["pipeline"]["latency"].get("pose", {})
            out[poses] = {
                "mapped": stats["pipeline"]["mapped"],
                "skipped": stats["pipeline"]["skipped_total"],
                "latency_ms_median": round(1e3 * statistics.median(latencies), 2) if latencies else None,
                "latency_ms_p90": ms(latencies, 90) if latencies else None,
                "pose_stage_ms_mean": round(pose_stage.get("mean_ms", float("nan")), 3),
                "backend": stats.get("pipeline", {}).get("backends", {}).get("poses") or poses,
            }
        finally:
            if peer is not None:
                peer.close()
            node.stop()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("build/bench"))
    parser.add_argument("--lookups", type=int, default=2000)
    parser.add_argument("--frames", type=int, default=40, help="frames per node run")
    parser.add_argument("--skip-node", action="store_true", help="only the buffer (no ROS node)")
    args = parser.parse_args(argv)
    buffer = bench_buffer(args.lookups)
    print(
        f"TF buffer, {buffer['frames']} frames: lookup map <- camera_optical median {buffer['lookup_ms_median']:.3f} ms "
        f"(p90 {buffer['lookup_ms_p90']:.3f}); storing a /tf message of 20 transforms {buffer['store_20_transforms_ms_median']:.3f} ms; "
        f"a 10,000-link chain: {buffer['chain_10000_links_refused']} links refused in {buffer['chain_10000_links_s']:.2f} s"
    )
    report = {"command": "python " + " ".join(sys.argv), "machine": platform.processor() or platform.machine(), "buffer": buffer}
    if not args.skip_node:
        with tempfile.TemporaryDirectory() as tmp:
            report["node"] = bench_node(args.frames, Path(tmp))
        print("| poses from | frames mapped | latency median [ms] | p90 [ms] | pose stage mean [ms] |")
        print("|---|---|---|---|---|")
        for poses, r in report["node"].items():
            print(f"| {poses} | {r['mapped']} | {r['latency_ms_median']} | {r['latency_ms_p90']} | {r['pose_stage_ms_mean']} |")
    args.out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out / "bench_tf.json", json.dumps(report, indent=2))
    print(f"wrote {args.out / 'bench_tf.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
