#!/usr/bin/env python3
"""SAFNet's ablation (issue 12, the paper's section IV-D) on held-out synthetic worlds.

    python bench/safnet_ablation.py --out build/safnet_ablation [--seeds 0 1 2]
        [--variants points,concat,gsm,full] [--steps 600] [--eval-worlds 0,1,2]
        [--eval-style classic] [--conditions clean,misregistered] [--set KEY=VALUE ...]

Every variant is SAFNet's recipe (``alster train --model safnet``) at the same budget,
switching parts off (``SafnetConfig.variant``):

    points   3D only: PointNet++ on the chunk's voxels (xyz + colour), no image features
    concat   + the views' image features concatenated (late fusion, eq. 1)
    gsm      + geometric similarity weighting them (eq. 3-5)
    full     + contextual similarity (eq. 6-8, 10): the paper's model

All train on the same chunks (misregistered views included: ``data.misregistration``).
Each trained model labels the held-out worlds' maps (seeds below 1000, fused as in
training, with their keyframes) by sliding chunks, once at clean poses and once with a
share of the views misregistered as in training, scored against the worlds' ground truth
(mIoU over the map's labelled voxels, all worlds pooled). Two harder conditions test why
a wrong view costs so little here (``--conditions``): every view misregistered
(``all_misregistered``), and the share of training misregistered with each voxel labelled
by one chunk instead of the votes of the ~9 overlapping ones (``one_chunk``: stride = chunk
size), where a wrong view cannot be outvoted by the other chunks' view sets.

Runs go seed-major and write ``OUT/VARIANT_seedS/result.json``; a rerun skips finished runs
and resumes an interrupted training; a finished run that lacks a requested condition is
scored from its saved model, without training again. Prints a table (mean and standard
deviation over seeds) and writes ``OUT/safnet_ablation.json``.

    python bench/safnet_ablation.py --checkpoint models/safnet_scannet20_synthetic.safetensors [--record]

scores a trained checkpoint the same way instead (its card's data and chunk settings),
next to the online ALSTER map's own labels when the model takes them as its prior, and
with ``--record`` writes the scores into the card (``metrics.held_out_synthetic``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
from ablation_runs import mean_std, run_seed_major, write_report

from alster_mapping.core.atomic_file import write_text_atomic
from alster_mapping.core.config import apply_overrides, from_dict
from alster_mapping.eval.refinement import label_scores, refinement_scores
from alster_mapping.nets.checkpoint import load_checkpoint, update_card
from alster_mapping.nets.safnet import VARIANT_SWITCHES, VARIANTS
from alster_mapping.train.loop import TrainingLoop
from alster_mapping.train.recipe import RECIPES
from alster_mapping.train.recipes.fusion_worlds import synthetic_world
from alster_mapping.train.recipes.safnet import SafnetTrainConfig, image_checkpoint

CONDITIONS = ("clean", "misregistered", "all_misregistered", "one_chunk")
DEFAULT_CONDITIONS = ("clean", "misregistered")


def held_out_worlds(config, worlds: list[int], style: str) -> list:
    """The evaluation worlds, prepared as the training worlds are (same encoder, frames, size)."""
    data = config.data
    checkpoint = image_checkpoint(data.image_checkpoint)
    shape = (data.frames, data.width, data.height, style, data.voxel_size, checkpoint, config.label_space, config.model.map_prior)
    return [synthetic_world(seed, *shape) for seed in worlds]


def condition_settings(config, condition: str) -> tuple:
    """(misregistration or None for clean poses, chunk settings) of an evaluation condition."""
    misregistration, chunks = config.data.misregistration, config.chunks
    if condition == "clean":
        return None, chunks
    if condition == "all_misregistered":
        return dataclasses.replace(misregistration, misregistered=1.0), chunks
    if condition == "one_chunk":
        return misregistration, dataclasses.replace(chunks, stride=chunks.size)
    return misregistration, chunks  # misregistered: the share of views training saw


def pooled_scores(model, worlds: list, config, condition: str, seed: int) -> dict:
    """mIoU over every world's voxels together, the chunks run and the time per world."""
    wrong, chunks = condition_settings(config, condition)
    truth, predicted, seconds, count = [], [], [], 0
    for world in worlds:
        result = refinement_scores(model, world, chunks, wrong, seed)
        truth.append(world.labels)
        predicted.append(np.asarray(result.pop("labels")))
        seconds.append(result["seconds"])
        count += result["chunks"]
    scores = label_scores(np.concatenate(truth), np.concatenate(predicted), model.num_classes)
    return {"miou": scores["miou"], "iou": scores["iou"], "chunks": count, "seconds_per_world": float(np.mean(seconds))}


def run_one(out: Path, variant: str, seed: int, args: argparse.Namespace, command: str) -> dict:
    path = out / f"{variant}_seed{seed}"
    if (path / "result.json").exists():
        result = json.loads((path / "result.json").read_text())
        missing = [c for c in args.conditions if c not in result["miou"]]
        return add_conditions(path, result, missing, args) if missing else result
    recipe = RECIPES.get("safnet")
    switches = [f"model.{key}={str(value).lower()}" for key, value in VARIANT_SWITCHES[variant].items()]
    overrides = [f"steps={args.steps}", f"seed={seed}", *switches, *(args.set or [])]
    config = apply_overrides(recipe.config_class(), overrides)
    loop = TrainingLoop(recipe, config, path, provenance={"command": command, "variant": variant}, progress=False, log=lambda _: None)
    card = loop.run()
    model = loop.model.eval()
    worlds = held_out_worlds(config, args.worlds, args.eval_style)
    scores = {condition: pooled_scores(model, worlds, config, condition, seed) for condition in args.conditions}
    result = {
        "variant": variant,
        "seed": seed,
        "overrides": overrides,
        "train_seconds": card["provenance"]["train_seconds"],
        "eval_worlds": args.worlds,
        "eval_style": args.eval_style,
        "miou": {condition: scores[condition]["miou"] for condition in args.conditions},
        "scores": scores,
    }
    write_text_atomic(path / "result.json", json.dumps(result, indent=2))
    return result


def trained_model(checkpoint: Path) -> tuple:
    """(the SAFNet model of ``checkpoint`` in eval mode, the training config its card records)."""
    model, card = load_checkpoint(checkpoint, task="point_semantics")
    return model.eval(), from_dict(SafnetTrainConfig, card["provenance"]["train_config"])


def add_conditions(path: Path, result: dict, conditions: list[str], args: argparse.Namespace) -> dict:
    """Score a finished run's saved model under more ``conditions``; updates its result.json."""
    if result["eval_worlds"] != args.worlds or result["eval_style"] != args.eval_style:
        raise SystemExit(f"{path}: scored on worlds {result['eval_worlds']} ({result['eval_style']}); rerun with the same --eval-worlds/--eval-style")
    model, config = trained_model(path / "model.safetensors")
    worlds = held_out_worlds(config, args.worlds, args.eval_style)
    for condition in conditions:
        result["scores"][condition] = pooled_scores(model, worlds, config, condition, result["seed"])
        result["miou"][condition] = result["scores"][condition]["miou"]
    write_text_atomic(path / "result.json", json.dumps(result, indent=2))
    return result


def score_checkpoint(args: argparse.Namespace, command: str) -> int:
    """Score a trained SAFNet checkpoint on the held-out worlds (see the module docstring)."""
    model, config = trained_model(args.checkpoint)
    worlds = held_out_worlds(config, args.worlds, args.eval_style)
    rows = {condition: pooled_scores(model, worlds, config, condition, 0) for condition in args.conditions}
    print("| labels | " + " | ".join(f"mIoU {c}" for c in args.conditions) + " | s per world |")
    print("|---" * (len(args.conditions) + 2) + "|")
    if config.model.map_prior:
        truth = np.concatenate([w.labels for w in worlds])
        online = label_scores(truth, np.concatenate([w.prior.label for w in worlds]), model.num_classes)["miou"]
        rows["online_map"] = {"miou": online}
        print("| online ALSTER map (the prior) | " + " | ".join(f"{100 * online:.1f}" for _ in args.conditions) + " | - |")
    refined = " | ".join(f"{100 * rows[c]['miou']:.1f}" for c in args.conditions)
    first = rows[args.conditions[0]]["seconds_per_world"]
    print(f"| SAFNet ({config.model.variant_name}{', map prior' if config.model.map_prior else ''}) | {refined} | {first:.1f} |")
    report = {"command": command, "checkpoint": str(args.checkpoint), "worlds": args.worlds, "style": args.eval_style, **rows}
    write_report(args.out, "safnet_checkpoint.json", report)
    if args.record:
        summary = {key: (value["miou"] if isinstance(value, dict) else value) for key, value in rows.items()}
        update_card(args.checkpoint, metrics={"held_out_synthetic": {"command": command, "worlds": args.worlds, "style": args.eval_style, **summary}})
        print(f"recorded under metrics.held_out_synthetic in the card of {args.checkpoint}")
    return 0


def summarise(results: list[dict], conditions: list[str]) -> dict:
    table = {}
    for variant in VARIANTS:
        runs = [r for r in results if r["variant"] == variant]
        if runs:
            row = {"seeds": [r["seed"] for r in runs], "train_minutes": float(np.mean([r["train_seconds"] for r in runs]) / 60)}
            table[variant] = {**row, **{c: mean_std(r["miou"][c] for r in runs) for c in conditions}}
    return table


def print_table(table: dict, conditions: list[str]) -> None:
    print("| variant | seeds | " + " | ".join(f"mIoU {c}" for c in conditions) + " | train min |")
    print("|---" * (len(conditions) + 3) + "|")
    for variant, row in table.items():
        cells = [f"{100 * row[c]['mean']:.1f} ± {100 * row[c]['std']:.1f}" for c in conditions]
        print(f"| {variant} | {len(row['seeds'])} | " + " | ".join(cells) + f" | {row['train_minutes']:.1f} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("build/safnet_ablation"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated subset of " + ", ".join(VARIANTS))
    parser.add_argument("--steps", type=int, default=600, help="optimizer steps of every run")
    parser.add_argument("--eval-worlds", default="0,1,2", help="held-out synthetic worlds (seeds < 1000)")
    parser.add_argument("--eval-style", default="classic", choices=("classic", "randomized"))
    parser.add_argument("--conditions", default=",".join(DEFAULT_CONDITIONS), help="comma-separated subset of " + ", ".join(CONDITIONS))
    parser.add_argument("--set", action="append", metavar="KEY=VALUE", help="override of every run's training config")
    parser.add_argument("--checkpoint", type=Path, help="score this trained checkpoint instead of training the variants")
    parser.add_argument("--record", action="store_true", help="with --checkpoint: write the scores into its card")
    args = parser.parse_args(argv)
    variants = args.variants.split(",")
    if set(variants) - set(VARIANTS):
        parser.error(f"unknown variants: {sorted(set(variants) - set(VARIANTS))}")
    args.worlds = [int(w) for w in args.eval_worlds.split(",")]
    if any(w >= 1000 for w in args.worlds):
        parser.error("--eval-worlds must be held-out seeds (below 1000)")
    args.conditions = [c for c in args.conditions.split(",") if c]
    if not args.conditions or set(args.conditions) - set(CONDITIONS):
        parser.error(f"--conditions: a subset of {', '.join(CONDITIONS)}")
    command = "python " + " ".join(sys.argv)
    if args.checkpoint:
        return score_checkpoint(args, command)
    results = run_seed_major(
        args.seeds,
        variants,
        lambda variant, seed: run_one(args.out, variant, seed, args, command),
        lambda result: "mIoU " + ", ".join(f"{c} {v:.3f}" for c, v in result["miou"].items()),
    )
    table = summarise(results, args.conditions)
    print_table(table, args.conditions)
    write_report(args.out, "safnet_ablation.json", {"command": command, "table": table, "runs": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
