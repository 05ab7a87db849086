#!/usr/bin/env python3
"""Benchmark of the label-fusion step against Open3D's VoxelBlockGrid on the same frames.

    python bench/bench_label_fusion.py [--out build/bench/bench_label_fusion.json]
        [--sizes 320x240 640x480] [--passes 4] [--synthetic-frames 60] [--threads 2] [--quick]

Frames: the 15 real posed RGB-D frames of ``../shared/data/label-fusion`` (640x480,
downscaled as the node's ``image_downscale`` does; replayed --passes times, so later
passes revisit mapped voxels) when that folder exists, and a synthetic world
(``synthetic:0`` in the randomized style, with its sensor artefacts) rendered at each
size. Label images: the synthetic frames' ScanNet-20 ids; the real frames' object ids
through the NYU40 space (ids above 40 folded in; the cost does not depend on the ids).

Per frame set and size, interleaved frame by frame so all see the same machine load:

    torch    LabelFusion.integrate with ``kernel = torch`` (tensor ops; the GPU path)
    numba    the same with ``kernel = numba`` (fused CPU loops; the default on the CPU)
    open3d   Open3D ``t.geometry.VoxelBlockGrid`` TSDF + colour integration (C++, 8^3
             blocks, the same voxel size and range): a reference, not the same work

Prints median / p90 per stage (lift, vote, map, total) and the maps' agreement: the torch
and numba maps must be bitwise equal voxel by voxel (keys, evidence, count, label,
confidence, colour). Goal (issue 17): numba total <= 4 ms median at 320x240. JSON to
--out (a .json path, or a directory to hold bench_label_fusion.json). --quick: one pass at
80x60 on a few frames (a smoke run).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from dataclasses import replace  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from label_fusion_digest import map_digest  # noqa: E402  (bench/, beside this script)

from alster_mapping.core import jit  # noqa: E402
from alster_mapping.core.atomic_file import write_text_atomic  # noqa: E402
from alster_mapping.core.config import LabelFusionConfig, MapConfig  # noqa: E402
from alster_mapping.core.downscale import downscale_frame  # noqa: E402
from alster_mapping.core.labels import nyu40, scannet20  # noqa: E402
from alster_mapping.core.timing_stats import parse_size, summarize  # noqa: E402
from alster_mapping.data.sequences import SyntheticSequence  # noqa: E402
from alster_mapping.map.voxel_map import SemanticVoxelMap  # noqa: E402
from alster_mapping.pipeline.label_fusion import LabelFusion  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
REAL_FRAMES = ROOT.parent / "shared" / "data" / "label-fusion" / "frames"
STAGES = ("lift", "vote", "map", "total")
GOAL_TOTAL_MS = 4.0
GOAL_SIZE = (320, 240)
VOXEL_SIZE = 0.04
MAX_RANGE = 3.0


def real_frames(size: tuple[int, int], limit: int | None) -> list:
    """The label-fusion frames at ``size`` (an integer downscale of 640x480), NYU40 labels."""
    from alster_mapping.data.label_fusion_frames import read_label_fusion_frames

    frames = read_label_fusion_frames(REAL_FRAMES, limit)
    factor = frames[0].shape[1] // size[0]
    if factor < 1 or frames[0].shape[1] != size[0] * factor or frames[0].shape[0] != size[1] * factor:
        raise ValueError(f"{size[0]}x{size[1]} is not an integer downscale of the real frames' 640x480")
    out = []
    for frame in frames:
        small = downscale_frame(frame, factor)
        out.append(replace(small, labels=np.where(small.labels > 40, small.labels % 40 + 1, small.labels).astype(np.uint16)))
    return out


def synthetic_frames(size: tuple[int, int], count: int) -> list:
    sequence = SyntheticSequence(0, count, size[0], size[1], style="randomized")
    return list(sequence)


class FusionRun:
    """One LabelFusion kernel over a frame set: timings and the final map."""

    def __init__(self, kernel: str, label_space):
        self.kernel = kernel
        self.map = SemanticVoxelMap(MapConfig(voxel_size=VOXEL_SIZE), label_space)
        self.fusion = LabelFusion(self.map, LabelFusionConfig(max_range=MAX_RANGE, kernel=kernel))
        self.ms: dict[str, list[float]] = {s: [] for s in STAGES}

    def step(self, frame) -> None:
        t0 = time.perf_counter()
        result = self.fusion.integrate(frame)
        total = time.perf_counter() - t0
        for stage, seconds in result.timings.items():
            self.ms[stage].append(seconds * 1e3)
        self.ms["total"].append(total * 1e3)


class Open3DRun:
    """Open3D's VoxelBlockGrid TSDF + colour integration of the same frames."""

    def __init__(self):
        import open3d as o3d
        import open3d.core as o3c

        self.o3d, self.o3c = o3d, o3c
        self.grid = o3d.t.geometry.VoxelBlockGrid(
            attr_names=("tsdf", "weight", "color"),
            attr_dtypes=(o3c.float32, o3c.float32, o3c.float32),
            attr_channels=((1), (1), (3)),
            voxel_size=VOXEL_SIZE,
            block_resolution=8,
            block_count=20000,
            device=o3c.Device("CPU:0"),
        )
        self.ms: dict[str, list[float]] = {"total": []}

    def step(self, frame) -> None:
        o3d, o3c = self.o3d, self.o3c
        depth = o3d.t.geometry.Image(o3c.Tensor(np.ascontiguousarray(frame.depth, dtype=np.float32)))
        color = o3d.t.geometry.Image(o3c.Tensor(np.ascontiguousarray(frame.color, dtype=np.float32) / 255.0))
        intrinsic = o3c.Tensor(frame.intrinsics.K, o3c.float64)
        extrinsic = o3c.Tensor(np.linalg.inv(frame.T_world_camera), o3c.float64)
        t0 = time.perf_counter()
        blocks = self.grid.compute_unique_block_coordinates(depth, intrinsic, extrinsic, 1.0, MAX_RANGE)
        self.grid.integrate(blocks, depth, color, intrinsic, intrinsic, extrinsic, 1.0, MAX_RANGE)
        self.ms["total"].append((time.perf_counter() - t0) * 1e3)


def run_set(frames: list, passes: int, label_space) -> dict:
    """All runs over ``passes`` replays of ``frames``, interleaved frame by frame (order alternating)."""
    runs = {"torch": FusionRun("torch", label_space)}
    if jit.available():
        runs["numba"] = FusionRun("numba", label_space)
    skipped = {}
    if not jit.available():
        skipped["numba"] = "numba is not installed"
    try:
        runs["open3d"] = Open3DRun()
    except ImportError as exc:
        skipped["open3d"] = f"open3d does not import ({exc})"
    for name, why in skipped.items():
        print(f"{name} run skipped: {why}", flush=True)
    # Untimed warm-up on a throw-away map: numba compiles (or loads its cache) on first use.
    for kernel in [k for k in runs if k != "open3d"]:
        FusionRun(kernel, label_space).step(frames[0])
    names = list(runs)
    for i, frame in enumerate(frames * passes):
        for name in names if i % 2 == 0 else reversed(names):
            runs[name].step(frame)
    entry = {name: {stage: summarize(v) for stage, v in run.ms.items()} for name, run in runs.items()}
    entry["frames"] = len(frames) * passes
    entry["map_voxels"] = len(runs["torch"].map)
    if skipped:
        entry["skipped"] = skipped
    if "numba" in runs:
        # keys and every column, sorted by key (the digest that also compares revisions)
        same = map_digest(runs["torch"].map) == map_digest(runs["numba"].map)
        entry["maps_equal_torch_vs_numba"] = {"map_sha256": same}
    return entry


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (arguments as on the command line); returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "bench" / "bench_label_fusion.json")
    parser.add_argument("--sizes", type=parse_size, nargs="+", default=[(320, 240), (640, 480)])
    parser.add_argument("--passes", type=int, default=4, help="replays of the 15 real frames")
    parser.add_argument("--synthetic-frames", type=int, default=60)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="80x60, one pass, 6 synthetic frames (a smoke run)")
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.passes, args.synthetic_frames = [(80, 60)], 1, 6
    torch.set_num_threads(args.threads)

    results = {}
    for size in args.sizes:
        name = f"{size[0]}x{size[1]}"
        sets = {"synthetic": (synthetic_frames(size, args.synthetic_frames), 1, scannet20())}
        if REAL_FRAMES.is_dir():
            sets["real"] = (real_frames(size, 6 if args.quick else None), args.passes, nyu40())
        else:
            print(f"real frames skipped: {REAL_FRAMES} is absent", file=sys.stderr)
        for set_name, (frames, passes, space) in sets.items():
            results[f"{set_name} {name}"] = run_set(frames, passes, space)

    report = {
        "benchmark": "label fusion step",
        "command": "python bench/bench_label_fusion.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": {"cpu": platform.processor() or platform.machine(), "torch_threads": torch.get_num_threads()},
        "voxel_size_m": VOXEL_SIZE,
        "max_range_m": MAX_RANGE,
        "goal": {"size": list(GOAL_SIZE), "numba_total_ms_median_at_most": GOAL_TOTAL_MS},
        "results": results,
    }
    out = args.out if args.out.suffix == ".json" else args.out / "bench_label_fusion.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out, json.dumps(report, indent=2))

    print(f"{'frames':<18} {'run':<7} " + " ".join(f"{s + ' ms':>14}" for s in STAGES))
    for key, entry in results.items():
        for run in ("torch", "numba", "open3d"):
            if run not in entry:
                continue
            cells = [
                f"{entry[run][s]['median']:6.2f} ({entry[run][s]['p90']:5.2f})" if s in entry[run] else f"{'-':>14}"
                for s in STAGES
            ]
            print(f"{key:<18} {run:<7} " + " ".join(cells))
        if "maps_equal_torch_vs_numba" in entry:
            equal = all(entry["maps_equal_torch_vs_numba"].values())
            print(f"{'':<18} maps torch vs numba: {'bitwise equal' if equal else 'DIFFER'} ({entry['map_voxels']} voxels)")
    print("median (p90) per frame; open3d = VoxelBlockGrid TSDF + colour, for reference")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
