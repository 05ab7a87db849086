#!/usr/bin/env python3
"""Load benchmark: the live node under a camera's 30 Hz against the engine alone, same frames, same run.

    python bench/bench_load.py [--out build/bench] [--seconds 60] [--sizes 320x240,640x480] [--quick]

For each image size:

1. Engine alone: ``OnlineMapper.step`` in this process on the frames the node will get
   (``ProceduralRoom``, an arc of --views poses walked back and forth, depth in whole
   millimetres as 16UC1 carries it; every k-th frame, k = the input rate times the step
   time, as the node skips the frames it cannot map), the node's configuration
   (``config/mapping.yaml``, mode alster, the shipped model). Measured before and after
   the node, averaged: median step time and frames per second.
2. The node (``mapping_node`` in a subprocess, real DDS on this host, pose_source pose):
   this process publishes colour (rgb8), depth (16UC1), CameraInfo and a PoseStamped at
   --rate Hz (default 30), stamped with the wall clock, from pre-serialized messages (only
   the stamp bytes change), and subscribes to ``~/semantic_cloud_update`` to time each
   mapped frame. After --warmup seconds it counts for --seconds: frames mapped per second
   (from the node's counters), the latency from image stamp to the update's arrival
   (median, p95), and what the node received of what was sent (best-effort images).

Goals (issue 10): mapped rate >= 90 % of the engine's rate, latency p95 <= 2 x the engine's
median step. Prints a table and writes ``bench_load.json`` into --out. Discovery stays on
this host in a random ROS_DOMAIN_ID unless one is set. ``--node-root DIR`` runs the node
from another checkout (e.g. an older commit, for a before/after comparison).
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
from live_node import ROOT, Camera, NodeProcess, depth_mm, walk  # noqa: E402

SHIPPED_MODEL = ROOT / "models" / "alster_scannet20_synthetic.safetensors"
GOAL_RATE_FRACTION = 0.9
GOAL_LATENCY_STEPS = 2.0
START_TIMEOUT = 120.0


def frames_of(width: int, height: int, views: int):
    """The frames of both measurements: ProceduralRoom views with depth rounded to millimetres."""
    from alster_mapping.core.frame import RGBDFrame
    from alster_mapping.data.procedural_room import ProceduralRoom

    room = ProceduralRoom(width, height)
    frames = []
    for i in range(views):
        f = room.render(room.pose(i, views))
        frames.append(RGBDFrame(f.color, depth_mm(f.depth).astype(np.float32) / 1000, room.intrinsics, f.T_world_camera, f.stamp_ns, labels=f.labels))
    return frames, room.intrinsics


def node_config(args):
    from alster_mapping.core.config import apply_overrides, load_yaml
    from alster_mapping.pipeline.mapping_config import MappingConfig

    cfg = load_yaml(MappingConfig, ROOT / "config" / "mapping.yaml", node_name="mapping_node")
    return apply_overrides(cfg, {"alster.checkpoint": str(args.model)}) if args.model else cfg


def bench_engine(args, frames, stride: int | None = None) -> dict:
    """OnlineMapper.step alone on every ``stride``-th frame of the walk (the node skips the frames it cannot map).

    stride None: the input rate times a warm-up estimate of the step time, i.e. about the
    frames the node maps at that rate.
    """
    from alster_mapping.pipeline.online_mapper import OnlineMapper

    mapper = OnlineMapper(node_config(args))
    warm = []
    for f in frames[:3]:
        t = time.perf_counter()
        mapper.step(f)  # lazy initialisation, and an estimate of the step
        warm.append(time.perf_counter() - t)
    mapper.map.clear()
    if stride is None:
        stride = max(1, round(args.rate * statistics.median(warm[1:])))
    times = []
    start = time.perf_counter()
    for i in range(args.engine_frames):
        t = time.perf_counter()
        mapper.step(frames[walk(i * stride, len(frames))])
        times.append(time.perf_counter() - t)
    wall = time.perf_counter() - start
    median = statistics.median(times)
    return {
        "frames": len(times),
        "stride": stride,
        "step_ms_median": median * 1e3,
        "step_ms_p95": float(np.percentile(times, 95)) * 1e3,
        "rate_hz": len(times) / wall,
        "rate_hz_from_median": 1.0 / median,
    }


def bench_node(args, frames, intrinsics, workdir: Path, size: str) -> dict:
    params = ["pose_source:=pose"] + ([f"alster.checkpoint:={args.model}"] if args.model else [])
    node = NodeProcess(workdir, params, args.node_root, f"node_{size}")
    camera = None
    try:
        camera = Camera(frames, intrinsics, "bench_load_camera")
        camera.wait_connected(node, START_TIMEOUT)
        period = 1.0 / args.rate
        sent: list[tuple[float, int]] = []
        t0 = time.monotonic()
        marks = {}
        i = 0
        next_frame = t0
        while True:
            now = time.monotonic()
            if now - t0 >= args.warmup and "start" not in marks:
                marks["start"] = (now, camera.stats()["pipeline"])
            if now - t0 >= args.warmup + args.seconds:
                marks["end"] = (time.monotonic(), camera.stats()["pipeline"])
                break
            if now >= next_frame:
                sent.append((now - t0, camera.publish(i)))
                i += 1
                next_frame += period
                if next_frame < now - period:  # this process fell behind: keep the rate, no bursts
                    next_frame = now + period
            node.check_alive()
            time.sleep(max(0.0, next_frame - time.monotonic()))
        time.sleep(3.0)  # the last updates
        (t_start, p_start), (t_end, p_end) = marks["start"], marks["end"]
        with camera.lock:
            latency = dict(camera.latency)
        window = [(t, s) for t, s in sent if args.warmup <= t < args.warmup + args.seconds]
        timed = [latency[s] for _, s in window if s in latency]
        mapped = p_end["mapped"] - p_start["mapped"]
        received = p_end["received"].get("color", 0) - p_start["received"].get("color", 0)
        stats_end = camera.stats()
        result = {
            "seconds": t_end - t_start,
            "rate_sent_hz": len(window) / args.seconds,
            "frames_sent": len(window),
            "colour_images_received": received,
            "lost_before_the_node_percent": 100.0 * (1.0 - received / len(window)) if window else None,
            "mapped": mapped,
            "mapped_hz": mapped / (t_end - t_start),
            "superseded": p_end["queue"].get("superseded", p_end["queue"].get("dropped", 0))
            - p_start["queue"].get("superseded", p_start["queue"].get("dropped", 0)),
            "skipped": {k: v - p_start["skipped"].get(k, 0) for k, v in p_end["skipped"].items() if v - p_start["skipped"].get(k, 0)},
            "latency_ms": {
                "n": len(timed),
                "median": statistics.median(timed) * 1e3 if timed else None,
                "p95": float(np.percentile(timed, 95)) * 1e3 if timed else None,
                "max": max(timed) * 1e3 if timed else None,
            },
            "node_latency_ms": {k: v.get("mean_ms") for k, v in stats_end["pipeline"]["latency"].items()},
            "map_voxels_end": stats_end.get("voxels"),
        }
        code = node.stop()
        if code != 0:
            raise RuntimeError(f"the node exited with {code}:\n{node.output()}")
        return result
    finally:
        if camera is not None:
            camera.close()
        node.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("build/bench"))
    parser.add_argument("--sizes", default="320x240,640x480", help="comma-separated WIDTHxHEIGHT")
    parser.add_argument("--rate", type=float, default=30.0, help="input rate [Hz]")
    parser.add_argument("--seconds", type=float, default=60.0, help="measured time per size after the warm-up")
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds of input before measuring")
    parser.add_argument("--views", type=int, default=30, help="poses on the arc (walked back and forth)")
    parser.add_argument("--engine-frames", type=int, default=40, help="frames of each engine-alone measurement")
    parser.add_argument("--model", type=Path, default=SHIPPED_MODEL if SHIPPED_MODEL.is_file() else None)
    parser.add_argument("--node-root", type=Path, default=ROOT, help="checkout the node runs from")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 320x240, 8 s, fewer frames")
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.seconds, args.warmup, args.views, args.engine_frames = "320x240", 8.0, 4.0, 6, 6
    sizes = [tuple(int(v) for v in s.lower().split("x")) for s in args.sizes.split(",")]

    import torch

    torch.set_num_threads(min(2, os.cpu_count() or 1))
    args.out.mkdir(parents=True, exist_ok=True)
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench_load_") as tmp:
        for width, height in sizes:
            key = f"{width}x{height}"
            frames, intrinsics = frames_of(width, height, args.views)
            # The engine alone before and after the node, on the same frames: this machine's speed
            # drifts by several percent over minutes, and the ratio must not depend on that.
            before = bench_engine(args, frames)
            node = bench_node(args, frames, intrinsics, Path(tmp), key)
            after = bench_engine(args, frames, before["stride"])
            engine = {
                "before_node": before,
                "after_node": after,
                "step_ms_median": (before["step_ms_median"] + after["step_ms_median"]) / 2,
                "rate_hz": (before["rate_hz"] + after["rate_hz"]) / 2,
            }
            results[key] = {
                "engine": engine,
                "node": node,
                "mapped_fraction_of_engine_rate": node["mapped_hz"] / engine["rate_hz"],
                "latency_p95_in_engine_steps": (node["latency_ms"]["p95"] or float("nan")) / engine["step_ms_median"],
            }
    result = {
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "load_avg_1min": os.getloadavg()[0]},
        "goals": {"mapped_fraction_of_engine_rate_min": GOAL_RATE_FRACTION, "latency_p95_in_engine_steps_max": GOAL_LATENCY_STEPS},
        "node_root": str(args.node_root),
        "sizes": results,
        "command": "python bench/bench_load.py " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    (args.out / "bench_load.json").write_text(json.dumps(result, indent=2))

    header = ("size", "engine step (median)", "engine rate (before / after)", f"node at {args.rate:g} Hz: mapped", "of engine (>= 90 %)",
              "latency median / p95", "p95 in steps (<= 2)", "lost by DDS")
    rows = []
    for key, r in results.items():
        e, n = r["engine"], r["node"]
        lat = n["latency_ms"]
        rows.append((
            key,
            f"{e['step_ms_median']:.0f} ms",
            f"{e['rate_hz']:.2f} Hz ({e['before_node']['rate_hz']:.2f} / {e['after_node']['rate_hz']:.2f})",
            f"{n['mapped_hz']:.2f} Hz",
            f"{100 * r['mapped_fraction_of_engine_rate']:.0f} %",
            f"{lat['median']:.0f} / {lat['p95']:.0f} ms" if lat["median"] is not None else "n/a",
            f"{r['latency_p95_in_engine_steps']:.2f}",
            f"{n['lost_before_the_node_percent']:.0f} %",
        ))
    widths = [max(len(str(row[i])) for row in rows + [header]) for i in range(len(header))]
    for row in [header] + rows:
        print("  ".join(str(v).ljust(w) for v, w in zip(row, widths)))
    print(f"wrote {args.out / 'bench_load.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
