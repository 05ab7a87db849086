#!/usr/bin/env python3
"""IMENet's ablation (issue 13, the paper's Table 3) on held-out synthetic worlds.

    python bench/imenet_ablation.py --out build/imenet_ablation [--seeds 0 1 2]
        [--variants A,B,C,D,E] [--steps 300] [--eval-worlds 0,1,2] [--eval-frames 60]
        [--iterations 1 2 3 4] [--set KEY=VALUE ...]

Every variant is IMENet's recipe (``alster train --model imenet``) at the same budget,
switching parts off (``ImenetConfig.variant``):

    A   separate branches, no iterative learning (each trains on its own coarse prediction)
    B   + iterative learning (alternate phases, the other branch frozen), no interaction
    C   + DCP: the reprojected 3D prediction refines the 2D one (eq. 1)
    D   + DDA: the projected 2D prediction refines the 3D one (eq. 2)
    E   + both: the paper's model

Each trained model completes whole volumes (60 x 60 x 36) of the held-out worlds' frames
(seeds below 1000, every 6th frame), scored with SSCNet's protocol: SS mIoU (2D), SSC mIoU,
SC IoU; next to the geometry-only baseline (``eval/completion.py``). The full variant E is
also scored with 1..4 iterations at inference (the paper finds 3-4 best).

Runs go seed-major and write ``OUT/VARIANT_seedS/result.json``; a rerun skips finished runs
and resumes an interrupted training. Prints a table (mean and standard deviation over
seeds) and writes ``OUT/imenet_ablation.json``.

    python bench/imenet_ablation.py --checkpoint models/imenet_ssc11_synthetic.safetensors [--record]

scores a trained checkpoint the same way instead (with each number of iterations and the
baseline); ``--record`` writes the scores into its card (``metrics.held_out_synthetic``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from ablation_runs import mean_std, run_seed_major, write_report  # noqa: E402

from alster_mapping.core.atomic_file import write_text_atomic  # noqa: E402
from alster_mapping.core.config import apply_overrides  # noqa: E402
from alster_mapping.data.sequences import SyntheticSequence  # noqa: E402
from alster_mapping.eval.completion import evaluate_completion, geometry_baseline, most_frequent_class, score_predictions  # noqa: E402
from alster_mapping.nets.imenet import VARIANT_SWITCHES, VARIANTS  # noqa: E402
from alster_mapping.train.loop import TrainingLoop  # noqa: E402
from alster_mapping.train.recipes.imenet import ImenetTrainConfig, training_samples, world_samples  # noqa: E402

METRICS = (("SS mIoU", ("ss", "miou")), ("SSC mIoU", ("ssc", "miou")), ("SC IoU", ("sc", "iou")))


def held_out(config: ImenetTrainConfig, worlds: list[int], frames: int) -> list:
    """Whole volumes (no crops) of the held-out worlds' frames, as the recipe builds them."""
    data = config.data
    samples = []
    for seed in worlds:
        sequence = SyntheticSequence(seed, frames, data.width, data.height, style="classic")
        found, skipped = world_samples(sequence, data, config.model.image_width)
        samples += found
        if skipped:
            print(f"held-out world {seed}: frames skipped {skipped}")
    return samples


def training_volumes(config: ImenetTrainConfig) -> list:
    """The training worlds' volumes, built once for all runs (they depend on the data
    settings only, not on the variant or the seed; building them takes minutes)."""
    samples, skipped, _ = training_samples(config.data, config.model.image_width)
    print(f"training volumes: {len(samples)} of worlds {config.data.seeds}; frames skipped {skipped or 'none'}", flush=True)
    return samples


def metric(result: dict, path: tuple[str, str]) -> float:
    value = result[path[0]][path[1]]
    return float("nan") if value is None else float(value)


def score_checkpoint(args, samples: list) -> int:
    """``--checkpoint``: a trained model's held-out scores with each number of iterations, and the baseline."""
    from alster_mapping.nets.checkpoint import update_card
    from alster_mapping.pipeline.scene_completion import load_completion_model

    model, card = load_completion_model(args.checkpoint)
    common = most_frequent_class(samples)
    baseline = score_predictions(samples, [geometry_baseline(s, common) for s in samples])
    rows = {"geometry-only baseline": baseline}
    for t in args.iterations:
        rows[f"{card['model']}, {t} iteration(s)"] = evaluate_completion(model, samples, iterations=t)
    print(f"held-out: {len(samples)} volumes of worlds {args.eval_worlds}")
    print("| model | " + " | ".join(name for name, _ in METRICS) + " |")
    print("|---|" + "---|" * len(METRICS))
    for name, result in rows.items():
        print(f"| {name} | " + " | ".join(f"{metric(result, path):.3f}" for _, path in METRICS) + " |")
    command = "python " + " ".join(sys.argv)
    report = {"command": command, "checkpoint": str(args.checkpoint), "worlds": args.eval_worlds, "volumes": len(samples), "rows": rows}
    write_report(args.out, "imenet_checkpoint.json", report)
    if args.record:
        summary = {name: {label: metric(result, path) for label, path in METRICS} for name, result in rows.items()}
        recorded = {"command": command, "worlds": args.eval_worlds, "volumes": len(samples), **summary}
        update_card(args.checkpoint, metrics={"held_out_synthetic": recorded})
        print(f"recorded under metrics.held_out_synthetic in the card of {args.checkpoint}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("build/imenet_ablation"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--steps", type=int, default=300, help="optimizer steps of every variant")
    parser.add_argument("--eval-worlds", default="0,1,2")
    parser.add_argument("--eval-frames", type=int, default=60)
    parser.add_argument("--iterations", type=int, nargs="+", default=[1, 2, 3, 4], help="inference rounds tried with variant E")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="more recipe overrides (e.g. data.seeds=[1400,1403])")
    parser.add_argument("--checkpoint", type=Path, help="score this trained checkpoint instead of training the variants")
    parser.add_argument("--record", action="store_true", help="with --checkpoint: write the scores into its card")
    args = parser.parse_args(argv)
    variants = [v for v in args.variants.split(",") if v]
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown variants {unknown}; choose from {list(VARIANTS)}")
    base = apply_overrides(ImenetTrainConfig(), [f"steps={args.steps}", *args.set])
    samples = held_out(base, [int(s) for s in args.eval_worlds.split(",")], args.eval_frames)
    if args.checkpoint:
        return score_checkpoint(args, samples)
    training: list = []

    def run(variant: str, seed: int) -> dict:
        folder = args.out / f"{variant}_seed{seed}"
        done = folder / "result.json"
        if done.exists():
            return json.loads(done.read_text())
        switches = [f"model.{k}={str(v).lower()}" for k, v in VARIANT_SWITCHES[variant].items()]
        config = apply_overrides(base, [f"seed={seed}", *switches])
        if not training:
            training.extend(training_volumes(base))
        provenance = {"command": "python " + " ".join(sys.argv)}
        loop = TrainingLoop("imenet", config, folder, sequences=[training], provenance=provenance, progress=False, log=lambda _: None)
        card = loop.run()
        result = {"variant": variant, "seed": seed, **evaluate_completion(loop.model, samples)}
        if variant == "E":
            result["by_iterations"] = {str(t): evaluate_completion(loop.model, samples, iterations=t) for t in args.iterations}
        result["final_losses"] = card["metrics"]["final_losses"]
        write_text_atomic(done, json.dumps(result, indent=2))
        return result

    def describe(result: dict) -> str:
        return ", ".join(f"{name} {metric(result, path):.3f}" for name, path in METRICS)

    results = run_seed_major(args.seeds, variants, run, describe)
    common = most_frequent_class(samples)  # as --checkpoint scores it: the held-out frames' own most frequent class
    baseline = score_predictions(samples, [geometry_baseline(s, common) for s in samples])
    table = {
        variant: {name: mean_std(metric(r, path) for r in results if r["variant"] == variant) for name, path in METRICS}
        for variant in variants
    }
    print(f"held-out: {len(samples)} volumes of worlds {args.eval_worlds}; {len(args.seeds)} seeds x {args.steps} steps per variant")
    print("| variant | " + " | ".join(name for name, _ in METRICS) + " |")
    print("|---|" + "---|" * len(METRICS))
    print("| geometry-only baseline | " + " | ".join(f"{metric(baseline, path):.3f}" for _, path in METRICS) + " |")
    for variant, row in table.items():
        print(f"| {variant} | " + " | ".join(f"{row[name]['mean']:.3f} +- {row[name]['std']:.3f}" for name, _ in METRICS) + " |")
    by_iterations = {}
    for r in results:
        for t, scores in r.get("by_iterations", {}).items():
            by_iterations.setdefault(t, []).append(scores)
    for t, runs in sorted(by_iterations.items()):
        print(f"E with {t} iteration(s): " + ", ".join(f"{name} {mean_std(metric(s, path) for s in runs)['mean']:.3f}" for name, path in METRICS))
    report = {
        "command": "python " + " ".join(sys.argv),
        "held_out_volumes": len(samples),
        "baseline": baseline,
        "table": table,
        "by_iterations": {t: {name: mean_std(metric(s, path) for s in runs) for name, path in METRICS} for t, runs in by_iterations.items()},
        "runs": results,
    }
    write_report(args.out, "imenet_ablation.json", report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
