#!/usr/bin/env python3
"""Segmenting a 100k-voxel map end to end on this CPU (issue 11: at most 15 s), by stage.

    python bench/bench_segment.py [--models asis,ban] [--voxels 100000] [--repeats 3] [--set KEY=VALUE] [--out build/bench]

The map: held-out synthetic worlds (seeds 5, 6, 7, ...; never trained on) fused at the
mapper's 4 cm voxels (label images only drive the fusion), placed side by side like
the rooms of a flat until the map holds at least ``--voxels`` voxels, and saved. Each
run times what ``alster segment`` and the node's job do: load the map file, load the
checkpoint, cut the chunks, run the network, mean-shift, BlockMerging (with the class
size thresholds), build the object list. Prints a table (median of the runs, per
stage) and writes ``bench_segment.json``. The network and mean-shift run on
``workers`` threads at once (``InstanceSegmentationConfig``): their times are summed over
the threads, so the stages add up to more than the total, which is the wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import torch

from alster_mapping.core.atomic_file import write_text_atomic
from alster_mapping.core.config import MapConfig, apply_overrides
from alster_mapping.core.labels import scannet20
from alster_mapping.data.map_samples import voxel_points
from alster_mapping.data.sequences import SyntheticSequence
from alster_mapping.map.map_file import load_map, save_map
from alster_mapping.map.voxel_map import SemanticVoxelMap
from alster_mapping.nets.checkpoint import load_checkpoint
from alster_mapping.nets.shipped import shipped_instance_checkpoint
from alster_mapping.pipeline.instance_segmentation import InstanceSegmentationConfig, instance_objects, segment_instances
from alster_mapping.pipeline.label_fusion import LabelFusion

STAGES = ("load_map", "load_model", "blocks", "network", "clustering", "merging", "objects", "total")


def build_flat(path: Path, voxels: int, frames: int = 120) -> int:
    """Fuse held-out worlds side by side (8 m apart) into one map of at least ``voxels`` voxels."""
    voxel_map = SemanticVoxelMap(MapConfig(voxel_size=0.04, feature_dim=20), scannet20())
    fusion = LabelFusion(voxel_map)
    seed = 5
    while len(voxel_map) < voxels:
        if seed >= 1000:
            raise RuntimeError("ran out of held-out worlds")
        offset = np.eye(4)
        offset[0, 3] = 8.0 * (seed - 5)
        for frame in SyntheticSequence(seed, frames):
            frame.T_world_camera = offset @ frame.T_world_camera
            fusion.integrate(frame)
        seed += 1
    save_map(voxel_map, path)
    return len(voxel_map)


def run_once(map_path: Path, checkpoint: Path, config: InstanceSegmentationConfig) -> tuple[dict, int]:
    times = {}
    start = time.perf_counter()
    voxel_map = load_map(map_path)
    times["load_map"] = time.perf_counter() - start
    clock = time.perf_counter()
    model, _ = load_checkpoint(checkpoint, voxel_map.label_space, task="instance_segmentation")
    model.eval()
    times["load_model"] = time.perf_counter() - clock
    points = voxel_points(voxel_map)
    result = segment_instances(model, points, config)
    times.update(result.timings)
    clock = time.perf_counter()
    objects = instance_objects(points.xyz, result, list(voxel_map.label_space.names))
    times["objects"] = time.perf_counter() - clock
    times["total"] = time.perf_counter() - start
    return times, len(objects)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="asis,ban", help="shipped models (asis, ban) or checkpoint paths, comma-separated")
    parser.add_argument("--voxels", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--frames", type=int, default=120, help="frames walked per world (320x240)")
    parser.add_argument("--set", action="append", metavar="KEY=VALUE", help="override InstanceSegmentationConfig, e.g. chunk_overlap=0")
    parser.add_argument("--out", type=Path, default=Path("build/bench"))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    map_path = args.out / f"flat_{args.voxels}_{args.frames}.safetensors"
    n = len(load_map(map_path)) if map_path.exists() else build_flat(map_path, args.voxels, args.frames)
    print(f"map: {n} voxels ({map_path}); {torch.get_num_threads()} torch threads")
    config = apply_overrides(InstanceSegmentationConfig(), args.set or [])
    report = {"command": "python " + " ".join(sys.argv), "voxels": n, "threads": torch.get_num_threads(), "set": args.set or [], "models": {}}
    print("| model | " + " | ".join(STAGES) + " | objects |")
    print("|---" * (len(STAGES) + 2) + "|")
    for name in args.models.split(","):
        checkpoint = shipped_instance_checkpoint(name) if name in ("asis", "ban") else Path(name)
        runs = [run_once(map_path, checkpoint, config) for _ in range(args.repeats)]
        median = {stage: float(np.median([r[0].get(stage, 0.0) for r in runs])) for stage in STAGES}
        report["models"][name] = {"checkpoint": str(checkpoint), "median_seconds": median, "runs": [r[0] for r in runs], "objects": runs[-1][1]}
        print(f"| {name} | " + " | ".join(f"{median[s]:.2f}" for s in STAGES) + f" | {runs[-1][1]} |")
    name = "bench_segment.json" if not args.set else "bench_segment_" + "_".join(x.replace("=", "-") for x in args.set) + ".json"
    write_text_atomic(args.out / name, json.dumps(report, indent=2))
    print(f"wrote {args.out / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
