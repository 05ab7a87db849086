#!/usr/bin/env python3
"""Ablations of ASIS and BAN (issue 11): each paper's table reproduced in direction.

    python bench/instance_ablation.py --out build/instance_ablation [--seeds 0 1 2] [--steps 250]
        [--variants asis_vanilla,asis,...] [--set KEY=VALUE ...] [--eval-worlds 0,1,2,3,4]

Trains every variant with its recipe (``alster train --model asis|ban`` with the variant's
switches and ``steps``, everything else the defaults of ``config/train/*.yaml``) for each
training seed, then segments the held-out synthetic worlds (seeds below 1000, never
trained on; fused into maps exactly like the training worlds) and scores them all
together (``eval.segment.score_scenes``). Next to each model it scores the trivial
baseline: connected components of the same model's semantic labels
(``pipeline.connected_components``), which shows what the instance embedding adds.

Runs go seed-major (all variants of seed 0 first) and each one writes
``OUT/VARIANT_seedS/result.json``; a rerun skips finished runs and resumes an interrupted
training. Prints a table (mean and standard deviation over seeds) and writes
``OUT/instance_ablation.json``.
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
from ablation_runs import mean_std, run_seed_major, write_report

from alster_mapping.core.atomic_file import write_text_atomic
from alster_mapping.core.config import apply_overrides
from alster_mapping.core.labels import LabelSpace
from alster_mapping.data.sequences import SyntheticSequence
from alster_mapping.eval.segment import score_scenes, transfer_to_truth
from alster_mapping.pipeline.connected_components import semantic_components
from alster_mapping.pipeline.instance_segmentation import SceneInstances, map_voxels, segment_instances
from alster_mapping.train.loop import TrainingLoop
from alster_mapping.train.recipe import RECIPES
from alster_mapping.train.recipes.instance_blocks import fused_world

# variant -> (recipe, switches). ASIS Table 1: vanilla, +SA, +IF, both. BAN's ablation:
# vanilla, STOI only, ITOS only, both. The two vanillas differ in their heads (BAN's have
# one more point-wise layer), so each paper is compared with its own.
VARIANTS = {
    "asis_vanilla": ("asis", ["model.semantic_aware=false", "model.instance_fusion=false"]),
    "asis_sa": ("asis", ["model.instance_fusion=false"]),
    "asis_if": ("asis", ["model.semantic_aware=false"]),
    "asis": ("asis", []),
    "ban_vanilla": ("ban", ["model.semantic_to_instance=false", "model.instance_to_semantic=false"]),
    "ban_stoi": ("ban", ["model.instance_to_semantic=false"]),
    "ban_itos": ("ban", ["model.semantic_to_instance=false"]),
    "ban": ("ban", []),
}
COLUMNS = (("semantic", "miou"), ("instance", "mcov"), ("instance", "mwcov"), ("instance", "mprec"), ("instance", "mrec"), ("ap", "ap50"))


def check_held_out(worlds: list[int]) -> None:
    for seed in worlds:
        if seed >= 1000:
            raise ValueError(f"world {seed} is a training world (held-out worlds are below 1000)")


def held_out_scenes(worlds: list[int], data) -> list[tuple]:
    """(voxels, ground truth, None) of each held-out world, fused like the training worlds."""
    check_held_out(worlds)
    scenes = []
    for seed in worlds:
        truth = SyntheticSequence(seed, data.frames, data.width, data.height).ground_truth()
        scenes.append((fused_world(seed, data.frames, data.width, data.height, data.voxel_size), truth, None))
    return scenes


def alster_scenes(worlds: list[int], frames: int, width: int, height: int, cache: Path | None = None) -> list[tuple]:
    """(voxels, ground truth, the map's (class index, confidence)) of each held-out world
    mapped by the shipped ALSTER model, as the node maps it (what ``~/segment_instances``
    sees). cache: a folder where the maps are kept (and read again when present)."""
    from alster_mapping.cli import shipped_model
    from alster_mapping.core.config import apply_overrides as overrides
    from alster_mapping.map.map_file import load_map, save_map
    from alster_mapping.pipeline.mapping_config import MappingConfig
    from alster_mapping.pipeline.online_mapper import OnlineMapper

    check_held_out(worlds)
    config = overrides(MappingConfig(), {"alster.checkpoint": str(shipped_model())})
    scenes = []
    for seed in worlds:
        sequence = SyntheticSequence(seed, frames, width, height)
        path = cache / f"alster_world{seed}_{frames}_{width}x{height}.safetensors" if cache is not None else None
        if path is not None and path.exists():
            voxel_map = load_map(path)
        else:
            mapper = OnlineMapper(config)
            for frame in sequence:
                mapper.step(frame)
            voxel_map = mapper.map
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                save_map(voxel_map, path)
        arrays = voxel_map.to_arrays()
        voxels, map_labels = map_voxels(arrays.xyz, arrays.color, arrays.label_index, arrays.confidence, f"ALSTER map of {sequence.name}")
        scenes.append((voxels, sequence.ground_truth(), map_labels))
    return scenes


def evaluate(model, scenes: list[tuple], label_space: LabelSpace, voxel_size: float, config=None) -> dict:
    """Scores of the model and of the connected-components baseline on the same classes
    (the map's where a scene brings them, else the model's). config: an
    ``InstanceSegmentationConfig`` (default: the defaults)."""
    model.eval()
    learned, baseline, seconds = [], [], 0.0
    for voxels, truth, map_labels in scenes:
        start = time.perf_counter()
        result = segment_instances(model, voxels, config, map_labels=map_labels)
        seconds += time.perf_counter() - start
        learned.append(transfer_to_truth(truth, voxels, result, label_space, voxel_size))
        components = semantic_components(voxels.xyz, result.semantic, voxel_size, min_points=30)
        baseline.append(transfer_to_truth(truth, voxels, SceneInstances(result.semantic, components, result.confidence), label_space, voxel_size))
    return {"model": score_scenes(learned, label_space), "components": score_scenes(baseline, label_space), "segment_seconds": seconds}


def run_one(out: Path, variant: str, seed: int, steps: int, scenes_for, command: str, overrides: list[str]) -> dict:
    path = out / f"{variant}_seed{seed}"
    if (path / "result.json").exists():
        return json.loads((path / "result.json").read_text())
    recipe_name, switches = VARIANTS[variant]
    recipe = RECIPES.get(recipe_name)
    config = apply_overrides(recipe.config_class(), [*overrides, *switches, f"seed={seed}", f"steps={steps}"])
    loop = TrainingLoop(recipe, config, path, provenance={"command": command, "variant": variant}, progress=False, log=lambda _: None)
    card = loop.run()
    scores = evaluate(loop.model, scenes_for(config.data), loop.recipe.label_space, config.data.voxel_size)
    result = {"variant": variant, "seed": seed, "steps": steps, "train_seconds": card["provenance"]["train_seconds"], **scores}
    write_text_atomic(path / "result.json", json.dumps(result, indent=2))
    return result


def summarise(results: list[dict]) -> dict:
    table = {}
    for variant in VARIANTS:
        runs = [r for r in results if r["variant"] == variant]
        if not runs:
            continue
        row = {"seeds": [r["seed"] for r in runs]}
        for part, key in COLUMNS:
            row[key] = mean_std(r["model"][part][key] for r in runs)
        row["components_mcov"] = mean_std(r["components"]["instance"]["mcov"] for r in runs)
        row["train_minutes"] = float(np.mean([r["train_seconds"] for r in runs]) / 60)
        table[variant] = row
    return table


def print_table(table: dict) -> None:
    keys = [key for _, key in COLUMNS]
    print("| variant | seeds | " + " | ".join(keys) + " | components mCov | train min |")
    print("|---" * (len(keys) + 4) + "|")
    for variant, row in table.items():
        cells = [f"{100 * row[k]['mean']:.1f} ± {100 * row[k]['std']:.1f}" for k in (*keys, "components_mcov")]
        print(f"| {variant} | {len(row['seeds'])} | " + " | ".join(cells) + f" | {row['train_minutes']:.1f} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("build/instance_ablation"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds")
    parser.add_argument("--steps", type=int, default=250, help="optimizer steps per training")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated subset of " + ", ".join(VARIANTS))
    parser.add_argument("--set", action="append", metavar="KEY=VALUE", help="override of every run's training config, e.g. max_lr=0.003")
    parser.add_argument("--eval-worlds", default="0,1,2,3,4", help="held-out synthetic worlds (seeds < 1000)")
    args = parser.parse_args(argv)
    variants = args.variants.split(",")
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        parser.error(f"unknown variants: {sorted(unknown)}")
    worlds = [int(w) for w in args.eval_worlds.split(",")]
    command = "python " + " ".join(sys.argv)
    cache: dict = {}

    def scenes_for(data):
        key = (data.frames, data.width, data.height, data.voxel_size)
        if key not in cache:
            cache[key] = held_out_scenes(worlds, data)
        return cache[key]

    def describe(result: dict) -> str:
        m = result["model"]
        return (
            f"mIoU {m['semantic']['miou']:.3f} mCov {m['instance']['mcov']:.3f} "
            f"mWCov {m['instance']['mwcov']:.3f} (components {result['components']['instance']['mcov']:.3f})"
        )

    results = run_seed_major(
        args.seeds, variants, lambda variant, seed: run_one(args.out, variant, seed, args.steps, scenes_for, command, args.set or []), describe
    )
    table = summarise(results)
    print_table(table)
    report = {"command": command, "steps": args.steps, "eval_worlds": worlds, "table": table, "runs": results}
    write_report(args.out, "instance_ablation.json", report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
