#!/usr/bin/env python3
"""Benchmark of the synthetic world generator: frames per second of SyntheticWorld.render.

    python bench/bench_synthetic.py [--out build/bench] [--worlds 3] [--frames 40] [--runs 5] [--style classic] [--quick]

For each of --worlds seeded worlds: the time to build the world (layout + ray-casting
scene), to sample its ground-truth points and to plan a trajectory, then --runs timed runs
of rendering --frames trajectory frames at 320x240 (RGB, noisy depth, labels, instances).
Frames per second (wall clock) are reported per run and as the median over all runs of
all worlds; the issue asks for at least 20 frames/s at 320x240, in every --style (classic,
randomized: the domain-randomized training look, shifted: the held-out look), and for
randomized within about 1.5x the per-frame time of classic. The CPU time per frame
(all threads) and the load average are reported too, since the wall-clock rate on a shared
machine depends on what else runs.

Threads: Open3D ray casting uses its own thread pool (the machine's cores); torch is set
to min(2, cores) threads and OMP_WAIT_POLICY=PASSIVE as in the other benchmarks.
Prints a table and writes ``bench_synthetic.json`` into --out.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "2")

import numpy as np
import torch

from alster_mapping.core.labels import NYU40_NAMES, SCANNET20_IDS
from alster_mapping.data.synthetic import STYLES, SyntheticWorld


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("build/bench"))
    parser.add_argument("--worlds", type=int, default=3, help="number of worlds (seeds 0..N-1)")
    parser.add_argument("--frames", type=int, default=40, help="frames rendered per timed run")
    parser.add_argument("--runs", type=int, default=5, help="timed runs per world")
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--style", choices=STYLES, default="classic", help="render style of the worlds (SyntheticConfig.style)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a smoke run for tests)")
    args = parser.parse_args(argv)
    if args.quick:
        args.worlds, args.frames, args.runs, args.width, args.height = 1, 4, 2, 96, 72
    torch.set_num_threads(min(2, os.cpu_count() or 1))

    worlds = []
    run_fps, run_cpu_fps = [], []
    for seed in range(args.worlds):
        t0 = time.perf_counter()
        world = SyntheticWorld(seed, args.width, args.height, style=args.style)
        build_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        points, labels, _ = world.ground_truth_points()
        gt_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        poses = world.trajectory(args.frames)
        trajectory_s = time.perf_counter() - t0
        world.render(poses[0])  # warm-up (first-call allocations)
        fps, cpu_fps = [], []
        for _ in range(args.runs):
            start, cpu_start = time.perf_counter(), time.process_time()
            for i, T in enumerate(poses):
                world.render(T, stamp_ns=i * world.config.frame_period_ns, index=i)
            fps.append(len(poses) / (time.perf_counter() - start))
            cpu_fps.append(len(poses) / (time.process_time() - cpu_start))
        run_fps += fps
        run_cpu_fps += cpu_fps
        classes = sorted(set(np.unique(labels).tolist()) & set(SCANNET20_IDS))
        worlds.append(
            {
                "seed": seed,
                "room_size_m": [round(float(x), 3) for x in world.size],
                "objects": len(world.objects),
                "triangles": int(len(world._tri_part)),
                "build_s": build_s,
                "ground_truth_s": gt_s,
                "ground_truth_points": int(len(points)),
                "trajectory_s": trajectory_s,
                "fps_runs": fps,
                "fps_median": statistics.median(fps),
                "cpu_fps_runs": cpu_fps,
                "scannet20_classes": len(classes),
                "missing_classes": [NYU40_NAMES[i - 1] for i in SCANNET20_IDS if i not in classes],
            }
        )

    result = {
        "image": {"width": args.width, "height": args.height},
        "style": args.style,
        "frames_per_run": args.frames,
        "runs_per_world": args.runs,
        "fps_median": statistics.median(run_fps),
        "fps_min": min(run_fps),
        "ms_per_frame_median": 1000.0 / statistics.median(run_fps),
        "cpu_fps_median": statistics.median(run_cpu_fps),
        "cpu_ms_per_frame_median": 1000.0 / statistics.median(run_cpu_fps),
        "worlds": worlds,
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "python": sys.version.split()[0],
            "torch_threads": torch.get_num_threads(),
            "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY"),
            "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        },
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_synthetic.json").write_text(json.dumps(result, indent=2))

    rows = [
        (
            f"render {args.width}x{args.height} ({args.style}), median over {len(run_fps)} runs",
            f"{result['fps_median']:.1f} frames/s ({result['ms_per_frame_median']:.1f} ms)",
        )
    ]
    rows.append(("slowest run", f"{result['fps_min']:.1f} frames/s"))
    cpu = f"{result['cpu_ms_per_frame_median']:.1f} ms ({result['cpu_fps_median']:.1f} frames per CPU-second)"
    rows.append(("CPU time per frame (all threads), median", cpu))
    rows.append(("load average (1, 5, 15 min) at the end", " ".join(f"{x:.2f}" for x in result["machine"]["load_average"] or [])))
    for w in worlds:
        rows.append(
            (
                f"world {w['seed']} ({w['objects']} objects, {w['triangles']} triangles)",
                f"build {w['build_s']:.2f} s, GT {w['ground_truth_points']} pts in {w['ground_truth_s']:.2f} s, "
                f"{w['scannet20_classes']}/20 classes, {w['fps_median']:.1f} frames/s",
            )
        )
    width = max(len(r[0]) for r in rows)
    print(f"{'SyntheticWorld benchmark':<{width}}  result")
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    print(f"wrote {args.out / 'bench_synthetic.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
