#!/usr/bin/env python3
"""Robustness to a style shift: held-out worlds in the training style and in unseen styles.

    python bench/style_shift.py [--models A.safetensors B.safetensors ...] [--worlds 0,1,2,3,4]
        [--frames 120] [--styles classic,randomized,shifted] [--out build/bench]

Every model maps the same held-out synthetic worlds (seeds below 1000, never trained on)
rendered in each style of the generator (``data/synthetic/style.py``): ``classic`` (the
look of the first shipped model's training worlds), ``randomized`` (the domain-randomized
training style) and ``shifted`` (material, texture, light and sensor families that no
training style uses). The drop from a model's own training style to ``shifted`` is what
a new look costs it -- the synthetic stand-in for a real room, whose look no synthetic
style matches. Scored like ``alster eval`` (expert labels of the map, ScanNet rules, all
worlds together).

Prints a table of expert mIoU per model and style with the drop from the model's training
style, and writes ``style_shift.json`` into --out (resumable: models and styles already in
it are skipped unless --fresh).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from alster_mapping.core.atomic_file import write_text_atomic
from alster_mapping.core.config import apply_overrides
from alster_mapping.data.sequences import open_sequence
from alster_mapping.eval.evaluate import evaluate
from alster_mapping.nets.checkpoint import read_card, update_card
from alster_mapping.pipeline.mapping_config import MappingConfig

ROOT = Path(__file__).resolve().parents[1]
STYLES = ("classic", "randomized", "shifted")


def training_style(card: dict) -> str:
    """The style a checkpoint was trained in (cards from before styles existed: classic)."""
    train = (card.get("provenance") or {}).get("train_config") or {}
    return (train.get("data") or {}).get("style", "classic")


def score(model: Path, style: str, worlds: list[int], frames: int) -> dict:
    """Expert metrics of ``model`` on ``worlds`` rendered in ``style``."""
    config = apply_overrides(MappingConfig(), {"alster.checkpoint": str(model)})
    suffix = "" if style == "classic" else f"@{style}"
    sequences = [open_sequence(f"synthetic:{seed}:{frames}{suffix}") for seed in worlds]
    start = time.perf_counter()
    results = evaluate(sequences, config, stages=False, progress=False, plots=False)
    expert = results["methods"]["expert"]
    return {
        "miou": expert["miou"],
        "oacc": expert["oacc"],
        "class_iou": {name: c["iou"] for name, c in expert["per_class"].items()},
        "coverage": expert["coverage"],
        "step_ms_median": results["step_ms"]["median"],
        "seconds": round(time.perf_counter() - start, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, nargs="+", default=[ROOT / "models" / "alster_scannet20_synthetic.safetensors"])
    parser.add_argument("--worlds", default="0,1,2,3,4", help="held-out synthetic seeds (below 1000)")
    parser.add_argument("--frames", type=int, default=120)
    parser.add_argument("--styles", default=",".join(STYLES))
    parser.add_argument("--out", type=Path, default=Path("build/bench"))
    parser.add_argument("--fresh", action="store_true", help="ignore results already in the JSON")
    parser.add_argument("--record", action="store_true", help="write each model's scores into its card (metrics.style_shift)")
    args = parser.parse_args(argv)
    worlds = [int(w) for w in args.worlds.split(",")]
    if any(w >= 1000 for w in worlds):
        parser.error("--worlds must be held-out seeds (below 1000)")
    styles = [s for s in args.styles.split(",") if s]
    unknown = sorted(set(styles) - set(STYLES))
    if unknown:
        parser.error(f"unknown styles {unknown}; known: {', '.join(STYLES)}")
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "style_shift.json"
    results = {} if args.fresh or not path.is_file() else json.loads(path.read_text())
    setup = {"worlds": worlds, "frames": args.frames}
    if results.get("setup", setup) != setup:
        print(f"{path} holds another setup {results['setup']}; use --fresh or another --out", file=sys.stderr)
        return 2
    results["setup"] = setup
    models = results.setdefault("models", {})
    for model in args.models:
        card = read_card(model)
        entry = models.setdefault(model.name, {"path": str(model), "trained_style": training_style(card), "styles": {}})
        for style in styles:
            if style in entry["styles"]:
                continue
            print(f"{model.name} on {style} worlds {worlds} ...", flush=True)
            entry["styles"][style] = score(model, style, worlds, args.frames)
            write_text_atomic(path, json.dumps(results, indent=2))
    print_table(models, styles)
    print(f"wrote {path}")
    if args.record:
        command = "python bench/style_shift.py " + " ".join(sys.argv[1:] if argv is None else argv)
        for model in args.models:
            update_card(model, metrics={"style_shift": card_record(models[model.name], setup, command)})
            print(f"recorded under metrics.style_shift in the card of {model}")
    return 0


def card_record(entry: dict, setup: dict, command: str) -> dict:
    """What a card keeps: mIoU in the model's training style ("in_style"), in the unseen
    styles ("shifted") and in every style measured, with the worlds and the command."""
    styles = entry["styles"]
    own = styles.get(entry["trained_style"], {}).get("miou")
    shifted = styles.get("shifted", {}).get("miou")
    return {
        "trained_style": entry["trained_style"],
        "in_style": own,
        "shifted": shifted,
        "miou": {style: scores["miou"] for style, scores in styles.items()},
        **setup,
        "command": command,
    }


def print_table(models: dict, styles: list[str]) -> None:
    """Expert mIoU per model and style, and the drop from the model's training style to shifted."""
    header = f"{'model':44s} {'trained':>10s} " + " ".join(f"{s:>10s}" for s in styles) + f" {'drop':>7s}"
    print("\n" + header)
    for name, entry in models.items():
        row = entry["styles"]
        cells = " ".join(f"{row[s]['miou']:10.3f}" if s in row else f"{'-':>10s}" for s in styles)
        own, shifted = row.get(entry["trained_style"]), row.get("shifted")
        drop = f"{(own['miou'] - shifted['miou']) * 100:7.1f}" if own and shifted else f"{'-':>7s}"
        print(f"{name:44s} {entry['trained_style']:>10s} {cells} {drop}")
    print("drop: mIoU points lost from the model's training style to the shifted style (goal <= 5)")


if __name__ == "__main__":
    sys.exit(main())
