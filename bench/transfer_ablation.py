#!/usr/bin/env python3
"""Ablation of what issue 16 changed, on the style-shift benchmark: inputs, randomization, augmentation.

    python bench/transfer_ablation.py --out build/transfer_ablation [--seeds 0 1 2]
        [--pretrain-steps 400] [--joint-steps 300] [--train-worlds 1000,1031] [--frames 40]
        [--variants paper,randomized,gravity,full] [--eval-worlds 0,1,2] [--eval-frames 60]
        [--styles classic,randomized,shifted] [--set KEY=VALUE ...]

Every variant is ALSTER's recipe (``alster train``) at the same short budget, changing one
thing at a time:

    paper       classic worlds, the paper's RGB-D-N inputs, no augmentation (the first shipped model's recipe)
    randomized  + domain-randomized worlds (``data.style = randomized``)
    gravity     + height above the floor and normal . up (``model.inputs = gravity``)
    full        + colour jitter, grayscale, colour and gravity dropout (``augment.*``: the shipped recipe)

Each trained model maps the held-out worlds (seeds below 1000) in every style and is
scored like ``alster eval`` (expert labels, ScanNet rules). The style shift a variant
suffers is its drop from its training style to ``shifted`` (styles its training never
drew); ``classic`` shows what the first model's look costs or gains.

Runs go seed-major and write ``OUT/VARIANT_seedS/result.json``; a rerun skips finished runs
and resumes an interrupted training. Prints a table (mean and standard deviation over
seeds) and writes ``OUT/transfer_ablation.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
from ablation_runs import mean_std, run_seed_major, write_report

from alster_mapping.core.atomic_file import write_text_atomic
from alster_mapping.core.config import apply_overrides
from alster_mapping.data.sequences import open_sequence
from alster_mapping.eval.evaluate import evaluate
from alster_mapping.pipeline.mapping_config import MappingConfig
from alster_mapping.train.loop import TrainingLoop
from alster_mapping.train.recipe import RECIPES

NO_AUGMENTATION = ["augment.color_jitter=0", "augment.grayscale=0", "augment.color_dropout=0", "augment.gravity_dropout=0"]
VARIANTS = {
    "paper": ["data.style=classic", "mapping.model.inputs=camera", *NO_AUGMENTATION],
    "randomized": ["data.style=randomized", "mapping.model.inputs=camera", *NO_AUGMENTATION],
    "gravity": ["data.style=randomized", "mapping.model.inputs=gravity", *NO_AUGMENTATION],
    "full": ["data.style=randomized", "mapping.model.inputs=gravity"],
}
STYLES = ("classic", "randomized", "shifted")


def score(model, style: str, worlds: list[int], frames: int) -> float:
    """Expert mIoU of ``model`` mapping ``worlds`` rendered in ``style``."""
    suffix = "" if style == "classic" else f"@{style}"
    sequences = [open_sequence(f"synthetic:{seed}:{frames}{suffix}") for seed in worlds]
    results = evaluate(sequences, MappingConfig(), model=model, stages=False, progress=False, plots=False)
    return float(results["methods"]["expert"]["miou"])


def run_one(out: Path, variant: str, seed: int, args: argparse.Namespace, command: str) -> dict:
    path = out / f"{variant}_seed{seed}"
    if (path / "result.json").exists():
        return json.loads((path / "result.json").read_text())
    recipe = RECIPES.get("alster")
    first, last = args.train_worlds.split(",")
    overrides = [
        f"data.seeds=[{first}, {last}]",
        f"data.frames={args.frames}",
        f"pretrain_2d.steps={args.pretrain_steps}",
        f"joint.steps={args.joint_steps}",
        f"seed={seed}",
        *VARIANTS[variant],
        *(args.set or []),
    ]
    config = apply_overrides(recipe.config_class(), overrides)
    loop = TrainingLoop(recipe, config, path, provenance={"command": command, "variant": variant}, progress=False, log=lambda _: None)
    card = loop.run()
    model = loop.model.eval()
    miou = {style: score(model, style, args.worlds, args.eval_frames) for style in args.styles}
    trained_style = config.data.style
    result = {
        "variant": variant,
        "seed": seed,
        "overrides": overrides,
        "train_seconds": card["provenance"]["train_seconds"],
        "trained_style": trained_style,
        "miou": miou,
        "drop_to_shifted": miou[trained_style] - miou["shifted"] if {trained_style, "shifted"} <= set(miou) else None,
    }
    write_text_atomic(path / "result.json", json.dumps(result, indent=2))
    return result


def summarise(results: list[dict], styles: list[str]) -> dict:
    table = {}
    for variant in VARIANTS:
        runs = [r for r in results if r["variant"] == variant]
        if not runs:
            continue
        row = {"seeds": [r["seed"] for r in runs], "train_minutes": float(np.mean([r["train_seconds"] for r in runs]) / 60)}
        for style in styles:
            row[style] = mean_std(r["miou"][style] for r in runs)
        drops = [r["drop_to_shifted"] for r in runs if r["drop_to_shifted"] is not None]
        row["drop_to_shifted"] = mean_std(drops) if drops else None
        table[variant] = row
    return table


def print_table(table: dict, styles: list[str]) -> None:
    print("| variant | seeds | " + " | ".join(f"mIoU {s}" for s in styles) + " | drop to shifted | train min |")
    print("|---" * (len(styles) + 4) + "|")
    for variant, row in table.items():
        cells = [f"{100 * row[s]['mean']:.1f} ± {100 * row[s]['std']:.1f}" for s in styles]
        drop = row["drop_to_shifted"]
        drop_text = f"{100 * drop['mean']:.1f} ± {100 * drop['std']:.1f}" if drop else "-"
        print(f"| {variant} | {len(row['seeds'])} | " + " | ".join(cells) + f" | {drop_text} | {row['train_minutes']:.1f} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("build/transfer_ablation"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds")
    parser.add_argument("--pretrain-steps", type=int, default=400)
    parser.add_argument("--joint-steps", type=int, default=300)
    parser.add_argument("--train-worlds", default="1000,1031", help="first,last training world seed (>= 1000)")
    parser.add_argument("--frames", type=int, default=40, help="frames per training world")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated subset of " + ", ".join(VARIANTS))
    parser.add_argument("--eval-worlds", default="0,1,2", help="held-out synthetic worlds (seeds < 1000)")
    parser.add_argument("--eval-frames", type=int, default=60)
    parser.add_argument("--styles", default=",".join(STYLES))
    parser.add_argument("--set", action="append", metavar="KEY=VALUE", help="override of every run's training config")
    args = parser.parse_args(argv)
    variants = args.variants.split(",")
    if set(variants) - set(VARIANTS):
        parser.error(f"unknown variants: {sorted(set(variants) - set(VARIANTS))}")
    args.worlds = [int(w) for w in args.eval_worlds.split(",")]
    if any(w >= 1000 for w in args.worlds):
        parser.error("--eval-worlds must be held-out seeds (below 1000)")
    args.styles = [s for s in args.styles.split(",") if s]
    if set(args.styles) - set(STYLES) or "shifted" not in args.styles:
        parser.error(f"--styles: a subset of {', '.join(STYLES)} that includes shifted")
    command = "python " + " ".join(sys.argv)
    results = run_seed_major(
        args.seeds,
        variants,
        lambda variant, seed: run_one(args.out, variant, seed, args, command),
        lambda result: "mIoU " + ", ".join(f"{style} {value:.3f}" for style, value in result["miou"].items()),
    )
    table = summarise(results, args.styles)
    print_table(table, args.styles)
    write_report(args.out, "transfer_ablation.json", {"command": command, "table": table, "runs": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
