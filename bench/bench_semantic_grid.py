#!/usr/bin/env python3
"""The floor grid (``~/semantic_grid``, issue 14) for a 1M-voxel map: time per update.

    python bench/bench_semantic_grid.py [--out build/bench] [--seed 7] [--frames 60] [--voxels 1000000] [--repeats 5]

Builds a real map first: the label-fusion mapper maps ``--frames`` frames (320x240) of a
held-out synthetic world at 4 cm; copies of that map side by side, 1 m apart (a
building of rooms), make it ``--voxels`` large. Then, like the node, it replays the
world's frames once more (each frame's voxels observed again) and updates the grid after
every frame, and after every 10 frames (the default period at 10 Hz), with ``FloorGrid`` (the columns of the blocks observed since the last update),
next to a full build (``semantic_grid`` over every voxel, as the first update or any
update after a removal does). The incremental grids are checked equal to full builds.
Prints a table (median and p90 of ``--repeats`` x frames updates) and writes
``bench_semantic_grid.json`` into --out.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from alster_mapping.core.atomic_file import write_text_atomic  # noqa: E402
from alster_mapping.core.config import apply_overrides  # noqa: E402
from alster_mapping.core.grid_config import SemanticGridConfig  # noqa: E402
from alster_mapping.data.sequences import SyntheticSequence  # noqa: E402
from alster_mapping.map.semantic_grid import FloorGrid, class_mask, class_names, semantic_grid  # noqa: E402
from alster_mapping.map.voxel_map import SemanticVoxelMap  # noqa: E402
from alster_mapping.pipeline.mapping_config import MappingConfig  # noqa: E402
from alster_mapping.pipeline.online_mapper import OnlineMapper  # noqa: E402

FRAMES_PER_UPDATE = (1, 10)
"""Frames mapped between two grid updates: every frame, and the default period at a 10 Hz camera."""
COPY_SPACING = 1.0  # metres between the copies of the room


def build_map(seed: int, frames: int, voxels: int) -> tuple[SemanticVoxelMap, list[torch.Tensor]]:
    """A map of about ``voxels`` voxels and the voxel keys each frame of the world observed."""
    cfg = apply_overrides(MappingConfig(), {"mode": "label_fusion", "map.voxel_size": 0.04})
    mapper = OnlineMapper(cfg)
    frame_keys = []
    for frame in SyntheticSequence(seed, frames, 320, 240):
        frame_keys.append(mapper.step(frame).keys.clone())
    room = mapper.map
    keys, rows = room.items()
    labels, confidence = room.read_column("label", rows), room.read_column("confidence", rows)
    copies = max(1, int(np.ceil(voxels / len(room))))
    per_row = int(np.ceil(np.sqrt(copies)))
    big = SemanticVoxelMap(cfg.map, room.label_space)
    extent = (keys.max(0).values - keys.min(0).values).numpy()
    step = extent[:2] + int(round(COPY_SPACING / room.voxel_size))
    for c in range(copies):
        shifted = keys.clone()
        shifted[:, 0] += int(c % per_row * step[0])
        shifted[:, 1] += int(c // per_row * step[1])
        big.write(shifted, label=labels, confidence=confidence)
    print(f"room: {len(room)} voxels, {extent[0] * room.voxel_size:.1f} x {extent[1] * room.voxel_size:.1f} m; {copies} copies")
    return big, frame_keys


def time_full(voxel_map: SemanticVoxelMap, blocks: np.ndarray, grid_cfg: SemanticGridConfig, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        keys, rows = voxel_map.items()
        semantic_grid(keys.numpy(), voxel_map.read_column("label", rows).numpy(), voxel_map.voxel_size, blocks, grid_cfg)
        times.append(time.perf_counter() - start)
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("build/bench"))
    parser.add_argument("--seed", type=int, default=7, help="held-out synthetic world")
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--voxels", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))

    voxel_map, frame_keys = build_map(args.seed, args.frames, args.voxels)
    grid_cfg = SemanticGridConfig()
    blocks = class_mask(voxel_map.label_space, class_names(grid_cfg.free_classes), invert=True)
    full = time_full(voxel_map, blocks, grid_cfg, args.repeats)

    floor = FloorGrid()
    floor.update(voxel_map, blocks, grid_cfg)
    incremental: dict[int, list[float]] = {n: [] for n in FRAMES_PER_UPDATE}
    observed = []
    for _ in range(args.repeats):
        for n in FRAMES_PER_UPDATE:
            for first in range(0, len(frame_keys) - n + 1, n):
                tick = voxel_map.tick
                for keys in frame_keys[first : first + n]:
                    voxel_map.insert(keys)  # the frame's voxels observed again, as a mapped frame does
                observed.append(int(voxel_map.blocks_observed_after(tick).shape[0]))
                start = time.perf_counter()
                grid = floor.update(voxel_map, blocks, grid_cfg)
                incremental[n].append(time.perf_counter() - start)
    keys, rows = voxel_map.items()
    reference = semantic_grid(keys.numpy(), voxel_map.read_column("label", rows).numpy(), voxel_map.voxel_size, blocks, grid_cfg)
    if grid.shape != reference.shape or grid.corner != reference.corner or not np.array_equal(grid.cells, reference.cells):
        print("error: the incrementally kept grid differs from a full build", file=sys.stderr)
        return 1

    def ms(values: list[float], q: float) -> float:
        return round(1e3 * float(np.percentile(values, q)), 2)

    rows_out = [
        {"update": "full build (first update, after removals)", "median_ms": ms(full, 50), "p90_ms": ms(full, 90), "runs": len(full)},
    ]
    for n, times in incremental.items():
        what = "one mapped frame" if n == 1 else f"{n} mapped frames (1 s at 10 Hz: the default period)"
        rows_out.append({"update": f"after {what}, incremental", "median_ms": ms(times, 50), "p90_ms": ms(times, 90), "runs": len(times)})
    height, width = reference.shape
    print(
        f"map: {len(voxel_map)} voxels at {voxel_map.voxel_size} m; grid {width} x {height} cells; "
        f"blocks observed per update: median {int(np.median(observed))}; goal: at most 20 ms per update"
    )
    print("| update | median [ms] | p90 [ms] | runs |")
    print("|---|---|---|---|")
    for r in rows_out:
        print(f"| {r['update']} | {r['median_ms']:.2f} | {r['p90_ms']:.2f} | {r['runs']} |")
    args.out.mkdir(parents=True, exist_ok=True)
    report = {
        "command": "python " + " ".join(sys.argv),
        "machine": platform.processor() or platform.machine(),
        "voxels": len(voxel_map),
        "grid_cells": [width, height],
        "blocks_observed_per_update_median": int(np.median(observed)),
        "rows": rows_out,
    }
    write_text_atomic(args.out / "bench_semantic_grid.json", json.dumps(report, indent=2))
    print(f"wrote {args.out / 'bench_semantic_grid.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
