#!/usr/bin/env python3
"""Label consistency of models on real RGB-D frames without labels (``eval/consistency.py``).

    python bench/label_consistency.py [--models A.safetensors ...] [--sequences SPEC ...]
        [--label-fusion DIR] [--seven-scenes [DIR]] [--frames N] [--set KEY=VALUE ...] [--out build/bench]

Each model maps each real sequence (ScanNet-layout directories, bags, and the real
tabletop frames of ``../shared/data/label-fusion`` when present) with ``alster.label_update
= latest``, so each step's labels are that frame's own, and reports how often a voxel's
per-frame labels agree and how plausible its floor and wall labels are given height above
the floor and the normal (module docstring of ``eval/consistency.py``). ``--set`` overrides
the mapping configuration (e.g. ``gravity.floor=given``: the label-fusion robot never
looks at its floor, so its floor estimate would be the shelf).

``--seven-scenes`` adds Microsoft 7-Scenes frames (``data/seven_scenes.py``) as the sequence
``7scenes-NAME``: a scene or seq-XX directory, or, given without DIR, the 12 "stairs" frames
(4 sequences x 3) that ship in kapture 1.1.12's source archive on PyPI, downloaded (SHA-256 checked) into
``build/cache/7scenes/stairs`` on first use. That data is Microsoft Research's, for
non-commercial use only: it stays in the cache and is never committed. The 7-Scenes world
frame is not z-up: its y axis points down (up is -y within 4 degrees for stairs, from the
stair treads' normals), and the cameras look 23-37 degrees down the stairs, so
``gravity.up=first_camera`` would be 31 degrees off and ``gravity.up=z`` is horizontal.
The frames are therefore read with the world rotated z-up (``seven_scenes.T_ZUP_WORLD``),
and the default ``gravity.up=z`` is the right one.

Prints a table and writes ``label_consistency.json`` into --out.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from alster_mapping.core.atomic_file import write_text_atomic
from alster_mapping.core.config import apply_overrides
from alster_mapping.data.label_fusion_frames import read_label_fusion_frames
from alster_mapping.data.sequences import FrameList, open_sequence
from alster_mapping.data.seven_scenes import fetch_kapture_seven_scenes, read_seven_scenes_frames
from alster_mapping.eval.consistency import measure_consistency
from alster_mapping.nets.checkpoint import update_card
from alster_mapping.pipeline.mapping_config import MappingConfig
from alster_mapping.pipeline.online_mapper import OnlineMapper

ROOT = Path(__file__).resolve().parents[1]
LABEL_FUSION = ROOT.parent / "shared" / "data" / "label-fusion" / "frames"
CACHE = ROOT / "build" / "cache"
COLUMNS = (
    ("agreement", "agree"),
    ("floor_labels_on_low_flat_surfaces", "floor->flat"),
    ("low_flat_surfaces_labelled_floor", "flat->floor"),
    ("wall_labels_on_vertical_surfaces", "wall->vert"),
    ("high_vertical_surfaces_labelled_wall", "high->wall"),
)


def sequences(args: argparse.Namespace) -> list:
    """The real sequences to measure: --sequences, the label-fusion frames if found, then
    the 7-Scenes frames if asked for (fetched when no directory is given; RuntimeError or
    ValueError when that fails)."""
    found = [open_sequence(spec) for spec in args.sequences]
    if args.label_fusion and Path(args.label_fusion).is_dir():
        found.append(FrameList(read_label_fusion_frames(args.label_fusion), name="label-fusion"))
    elif args.label_fusion:
        print(f"no label-fusion frames at {args.label_fusion}: skipped", file=sys.stderr)
    if args.seven_scenes is not None:
        scene = Path(args.seven_scenes) if args.seven_scenes else fetch_kapture_seven_scenes(CACHE)
        found.append(FrameList(read_seven_scenes_frames(scene, z_up=True), name=f"7scenes-{scene.resolve().name}"))
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, nargs="+", default=[ROOT / "models" / "alster_scannet20_synthetic.safetensors"])
    parser.add_argument("--sequences", nargs="*", default=[], help="real sequence specs (ScanNet-layout dirs, bags)")
    parser.add_argument("--label-fusion", default=str(LABEL_FUSION), help="label-fusion frame directory ('' = none)")
    parser.add_argument(
        "--seven-scenes",
        nargs="?",
        const="",
        default=None,
        metavar="DIR",
        help=f"add 7-Scenes frames (scene or seq-XX dir; without DIR: the kapture sample, fetched into {CACHE})",
    )
    parser.add_argument("--frames", type=int, default=None, help="at most this many frames per sequence")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="mapping configuration override")
    parser.add_argument("--out", type=Path, default=Path("build/bench"))
    parser.add_argument("--record", action="store_true", help="write each model's measures into its card (metrics.label_consistency)")
    args = parser.parse_args(argv)
    try:
        real = sequences(args)
    except (RuntimeError, ValueError) as exc:
        print(f"cannot read the real sequences: {exc}", file=sys.stderr)
        return 2
    if not real:
        print("no real sequences to measure", file=sys.stderr)
        return 2
    results: dict = {"overrides": args.set, "models": {}}
    for model in args.models:
        config = apply_overrides(MappingConfig(), [*args.set, f"alster.checkpoint={model}", "alster.label_update=latest"])
        per_sequence = results["models"].setdefault(model.name, {})
        loaded = None
        for sequence in real:
            mapper = OnlineMapper(config, model=loaded)
            loaded = mapper.model
            per_sequence[sequence.name] = measure_consistency(sequence, mapper, args.frames)
            skipped = per_sequence[sequence.name]["skipped"]
            if skipped:
                print(f"{model.name} {sequence.name}: skipped {sum(skipped.values())} frames: {skipped}", file=sys.stderr)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "label_consistency.json"
    write_text_atomic(path, json.dumps(results, indent=2))
    print_table(results["models"])
    print(f"wrote {path}")
    if args.record:
        command = "python bench/label_consistency.py " + " ".join(sys.argv[1:] if argv is None else argv)
        for model in args.models:
            record = {"sequences": results["models"][model.name], "overrides": args.set, "command": command}
            update_card(model, metrics={"label_consistency": record})
            print(f"recorded under metrics.label_consistency in the card of {model}")
    return 0


def print_table(models: dict) -> None:
    print("\n" + f"{'model':40s} {'sequence':16s} {'frames':>6s} " + " ".join(f"{title:>11s}" for _, title in COLUMNS))
    for name, per_sequence in models.items():
        for sequence, summary in per_sequence.items():
            cells = " ".join(f"{summary[key]:11.3f}" if summary[key] is not None else f"{'-':>11s}" for key, _ in COLUMNS)
            print(f"{name:40s} {sequence:16s} {summary['frames']:6d} {cells}")


if __name__ == "__main__":
    sys.exit(main())
