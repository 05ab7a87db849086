#!/usr/bin/env python3
"""Benchmark of the ROS layer: cloud packing, the live node's latency and its memory over time.

    python bench/bench_ros.py [--out build/bench] [--minutes 10] [--rate auto] [--quick]

1. PointCloud2 packing: ``ros.cloud.arrays_to_cloud`` of 300k random voxels (the 24-byte
   points of the semantic cloud), median of --repeats runs. Goal: <= 10 ms.
2. Latency of the live node (``mapping_node`` in a subprocess, real DDS on this host) at
   the default configuration (config/mapping.yaml: mode alster, 4 cm voxels, the
   untrained default model; only ``pose_source`` is ``pose``, because TF is not
   available from pip): 320x240 frames of ``ProceduralRoom(320, 240)`` (an arc of
   --views poses, walked back and forth, so the camera keeps revisiting the room) with
   colour rgb8, depth 16UC1, CameraInfo and a PoseStamped, stamped with the wall clock
   when published. Latency = receipt of ``~/semantic_cloud_update`` carrying that stamp
   in this process minus the stamp (so it includes DDS transfer both ways, the queue and
   the worker). First a probe: frames one at a time (each waits for its update) give the
   node's processing time; ``--rate auto`` then publishes at half that rate (at most
   10 Hz, below saturation also on a loaded machine), at a steady rate. Median and p95 after the warm-up.
3. Memory: RSS of the node process (psutil) sampled every second while the frames are
   replayed for --minutes (default 10; --quick 0.5); RSS after the warm-up (the first
   20 % of the replay, at most 60 s) and at the end, and the growth in percent.
   Goal: <= 5 %.

Discovery stays on this host (ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST) in a random
ROS_DOMAIN_ID unless one is set. Prints a table and writes ``bench_ros.json`` into --out.
"""

from __future__ import annotations

import os
import random
import sys

# Thread pools and rcl read these at start-up: before torch / rclpy load (the node inherits them).
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
from live_node import Camera, NodeProcess  # noqa: E402

GOAL_PACK_MS = 10.0
GOAL_GROWTH_PERCENT = 5.0
PACK_POINTS = 300_000
WIDTH, HEIGHT = 320, 240
START_TIMEOUT = 120.0  # the node imports torch and builds the network
MAX_RATE_HZ = 10.0
AUTO_RATE_FRACTION = 0.5  # --rate auto: this fraction of the node's processing rate


# ---------------------------------------------------------------------------
# 1. cloud packing
# ---------------------------------------------------------------------------


def bench_packing(n: int, repeats: int) -> dict:
    from alster_mapping.map.voxel_map import MapArrays
    from alster_mapping.ros.cloud import arrays_to_cloud

    rng = np.random.default_rng(0)
    arrays = MapArrays(
        xyz=(rng.random((n, 3), dtype=np.float32) * 20.0).astype(np.float32),
        color=rng.integers(0, 256, (n, 3), dtype=np.uint8),
        label_color=rng.integers(0, 256, (n, 3), dtype=np.uint8),
        label=rng.integers(0, 41, n).astype(np.uint16),
        label_index=rng.integers(-1, 20, n).astype(np.int16),
        confidence=rng.random(n, dtype=np.float32),
        count=np.ones(n, np.int32),
        instance=np.full(n, -1, np.int16),
    )
    arrays_to_cloud(arrays)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        msg = arrays_to_cloud(arrays, "map")
        times.append(time.perf_counter() - start)
        assert len(msg.data) == n * msg.point_step
        del msg
    return {
        "points": n,
        "bytes": n * 24,
        "runs_ms": [t * 1e3 for t in times],
        "median_ms": statistics.median(times) * 1e3,
        "min_ms": min(times) * 1e3,
        "goal_ms_max": GOAL_PACK_MS,
    }


# ---------------------------------------------------------------------------
# 2 + 3. the live node
# ---------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def bench_node(args, workdir: Path) -> dict:
    from alster_mapping.data.procedural_room import ProceduralRoom

    room = ProceduralRoom(WIDTH, HEIGHT)
    frames = [room.render(room.pose(i, args.views)) for i in range(args.views)]
    node = NodeProcess(workdir, ["pose_source:=pose"])
    peer = None
    try:
        peer = Camera(frames, room.intrinsics, "bench_ros_peer")
        startup_s = peer.wait_connected(node, START_TIMEOUT)

        # Probe: one frame at a time; the first ones include lazy initialisation.
        probe, i = [], 0
        for _ in range(args.probe):
            stamp = peer.publish(i)
            i += 1
            latency = peer.wait_update(stamp, timeout=60.0)
            node.check_alive()
            if latency is not None:
                probe.append(latency)
        if len(probe) < 2:
            raise RuntimeError(f"the node mapped {len(probe)} of {args.probe} probe frames:\n{node.output()}")
        processing_s = statistics.median(probe[1:])
        rate = min(MAX_RATE_HZ, AUTO_RATE_FRACTION / processing_s) if args.rate == "auto" else float(args.rate)
        period = 1.0 / rate

        # Steady replay: frames at `rate`, RSS every second.
        duration = args.minutes * 60.0
        warmup = min(60.0, 0.2 * duration)
        rss: list[tuple[float, int]] = [(0.0, node.rss())]
        sent: list[tuple[float, int]] = []
        t0 = time.monotonic()
        next_frame, next_rss = t0, t0 + 1.0
        while True:
            now = time.monotonic()
            if now - t0 >= duration:
                break
            if now >= next_frame:
                sent.append((now - t0, peer.publish(i)))
                i += 1
                next_frame += period
                if next_frame < now:  # the publisher itself fell behind: keep the rate, do not burst
                    next_frame = now + period
            if now >= next_rss:
                node.check_alive()
                rss.append((now - t0, node.rss()))
                next_rss += 1.0
            time.sleep(max(0.0, min(next_frame, next_rss) - time.monotonic()))
        time.sleep(min(5.0, 3 * processing_s + 1.0))  # the last frames' updates
        rss.append((time.monotonic() - t0, node.rss()))
        stats = peer.stats()
        with peer.lock:
            latency = dict(peer.latency)
        timed = [latency[s] for t, s in sent if t >= warmup and s in latency]
        rss_warm = next(r for t, r in rss if t >= warmup) if any(t >= warmup for t, _ in rss) else rss[-1][1]
        rss_end = rss[-1][1]
        pipeline = stats.get("pipeline", {})
        result = {
            "config": "config/mapping.yaml (mode alster, untrained default model) with pose_source pose",
            "frame": {"width": WIDTH, "height": HEIGHT, "views": args.views},
            "startup_s": startup_s,
            "processing_ms_median": processing_s * 1e3,
            "probe_ms": [p * 1e3 for p in probe],
            "rate_hz": rate,
            "duration_s": duration,
            "warmup_s": warmup,
            "frames_sent": len(sent),
            "frames_sent_with_probe": len(sent) + args.probe,
            "frames_sent_after_warmup": sum(1 for t, _ in sent if t >= warmup),
            "updates_received_after_warmup": len(timed),
            "node_mapped": pipeline.get("mapped"),
            "node_superseded": pipeline.get("queue", {}).get("superseded"),
            "node_skipped": pipeline.get("skipped", {}),
            "latency_ms": {
                "median": statistics.median(timed) * 1e3 if timed else None,
                "p95": percentile(timed, 95) * 1e3 if timed else None,
                "max": max(timed) * 1e3 if timed else None,
            },
            "memory": {
                "rss_start_bytes": rss[0][1],
                "rss_after_warmup_bytes": rss_warm,
                "rss_end_bytes": rss_end,
                "rss_max_bytes": max(r for _, r in rss),
                "growth_percent": 100.0 * (rss_end - rss_warm) / rss_warm,
                "goal_growth_percent_max": GOAL_GROWTH_PERCENT,
                "samples": [[round(t, 2), r] for t, r in rss],
            },
            "map_voxels_end": stats.get("voxels"),
        }
        code = node.stop()
        if code != 0:
            raise RuntimeError(f"the node exited with {code}:\n{node.output()}")
        return result
    finally:
        if peer is not None:
            peer.close()
        node.stop()


# ---------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("build/bench"))
    parser.add_argument("--minutes", type=float, default=10.0, help="replay length for the memory measurement")
    parser.add_argument("--rate", default="auto", help="frames per second, or auto (half the node's processing rate)")
    parser.add_argument("--views", type=int, default=60, help="poses on the arc (walked back and forth)")
    parser.add_argument("--probe", type=int, default=6, help="frames sent one at a time to measure processing")
    parser.add_argument("--repeats", type=int, default=15, help="runs of the packing benchmark")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 30 s replay, fewer views and repeats")
    args = parser.parse_args(argv)
    if args.quick:
        args.minutes, args.views, args.probe, args.repeats = 0.5, 8, 3, 5
    if args.rate != "auto" and not float(args.rate) > 0:
        parser.error("--rate must be positive or auto")

    import torch

    torch.set_num_threads(min(2, os.cpu_count() or 1))
    packing = bench_packing(PACK_POINTS, args.repeats)
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench_ros_") as tmp:
        live = bench_node(args, Path(tmp))

    result = {
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "load_avg_1min": os.getloadavg()[0]},
        "packing": packing,
        "node": live,
        "command": "python bench/bench_ros.py " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    (args.out / "bench_ros.json").write_text(json.dumps(result, indent=2))

    lat, mem = live["latency_ms"], live["memory"]

    def ms(v):
        return "n/a" if v is None else f"{v:.1f} ms"

    rows = [
        (f"PointCloud2 packing, {PACK_POINTS:,} points (median / min; goal <= 10 ms)", f"{packing['median_ms']:.2f} / {packing['min_ms']:.2f} ms"),
        ("node start-up (to subscribed)", f"{live['startup_s']:.1f} s"),
        ("node processing, one frame at a time (median)", f"{live['processing_ms_median']:.0f} ms"),
        ("publish rate", f"{live['rate_hz']:.2f} Hz for {live['duration_s']:.0f} s (warm-up {live['warmup_s']:.0f} s)"),
        (
            "frames sent (incl. probe) / mapped / superseded in the queue",
            f"{live['frames_sent_with_probe']} / {live['node_mapped']} / {live['node_superseded']}",
        ),
        ("stamp -> ~/semantic_cloud_update latency (median / p95)", f"{ms(lat['median'])} / {ms(lat['p95'])}"),
        ("node RSS after warm-up / at the end", f"{mem['rss_after_warmup_bytes'] / 2**20:.0f} / {mem['rss_end_bytes'] / 2**20:.0f} MiB"),
        ("node RSS growth (goal <= 5 %)", f"{mem['growth_percent']:+.2f} %"),
        ("map voxels at the end", f"{live['map_voxels_end']}"),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"{'ROS layer benchmark':<{width}}  result")
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    print(f"wrote {args.out / 'bench_ros.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
