"""The ``alster`` command line: one entry point, subcommands.

    alster demo   [--data DIR] [--out DIR]      fuse the real label-fusion frames, write map, PLY, PNGs, JSON
    alster info   MAP                           print a map file's contents
    alster export MAP [--ply P] [--png P]       convert a map file to PLY / PNG

Commands that build maps take ``--config YAML`` and ``--set key=value`` overrides of the
one configuration schema (``alster_mapping.core.config.MappingConfig``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .core.atomic_file import write_text_atomic
from .core.config import MappingConfig, apply_overrides, load_yaml, to_dict
from .core.labels import LabelSpace
from .map.export import export_ply, project_labels, render_png, save_png
from .map.map_file import load_map
from .map.voxel_map import SemanticVoxelMap
from .pipeline.label_fusion import LabelFusion

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DEMO_DATA = REPO_ROOT.parent / "shared" / "data" / "label-fusion" / "frames"


def _load_config(args: argparse.Namespace, defaults: dict[str, object] | None = None) -> MappingConfig:
    cfg = load_yaml(MappingConfig, args.config) if args.config else MappingConfig()
    if defaults:
        cfg = apply_overrides(cfg, defaults)
    return apply_overrides(cfg, args.set or [])


def _add_config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="YAML file of MappingConfig (e.g. config/mapping.yaml)")
    parser.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config value, e.g. map.voxel_size=0.02")


def frame_accuracy(voxel_map: SemanticVoxelMap, frame, max_range: float, min_range: float) -> dict:
    """Agreement of the map's labels, projected into ``frame``, with the frame's own labels.

    Counts every pixel with valid depth in range and a label in the label space;
    returns {"accuracy", "pixels", "per_class": {name: recall}}.
    """
    space = voxel_map.label_space
    projected = project_labels(voxel_map, frame, max_range, min_range)
    truth = space.encode(frame.labels).numpy()
    valid = projected.observed & (truth >= 0)
    correct = (projected.label == truth) & valid
    per_class = {}
    for index, name in enumerate(space.names):
        n = int((valid & (truth == index)).sum())
        if n:
            per_class[name] = float((correct & (truth == index)).sum() / n)
    return {"accuracy": float(correct.sum() / max(valid.sum(), 1)), "pixels": int(valid.sum()), "per_class": per_class}


def cmd_demo(args: argparse.Namespace) -> int:
    """Fuse the real label-fusion frames into a map and write the map, renders and a summary."""
    from .data.label_fusion_frames import read_label_fusion_frames

    if not args.data.is_dir():
        print(f"demo data not found at {args.data}; pass --data DIR (the label-fusion frames folder)", file=sys.stderr)
        return 2
    # A tabletop seen from 0.3-0.8 m: 1 cm voxels resolve the objects (4 cm is the room-scale default).
    cfg = _load_config(args, {"label_space": "label_fusion", "map.voxel_size": 0.01})
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    frames = read_label_fusion_frames(args.data)
    voxel_map = SemanticVoxelMap(cfg.map, LabelSpace.load(cfg.label_space))
    fusion = LabelFusion(voxel_map, cfg.label_fusion)
    timings = []
    for frame in tqdm(frames, desc="fusing frames", unit="frame"):
        start = time.perf_counter()
        result = fusion.integrate(frame)
        timings.append({"total": time.perf_counter() - start, **result.timings})

    lf = cfg.label_fusion
    per_frame = [frame_accuracy(voxel_map, f, lf.max_range, lf.min_range) for f in frames]
    voxel_map.save(out / "map.safetensors")
    export_ply(voxel_map, out / "map_labels.ply", color_by="label")
    export_ply(voxel_map, out / "map_rgb.ply", color_by="rgb")
    # View the scene roughly from where the camera was, looking the way it looked.
    poses = np.stack([f.T_world_camera for f in frames])
    up = -poses[:, :3, 1].mean(0)
    front = -poses[:, :3, 2].mean(0) + 0.5 * up
    rendered = []
    for color_by in ("label", "rgb"):
        try:
            rendered.append(str(render_png(voxel_map, out / f"render_{color_by}.png", color_by, up=up, front=front)))
        except RuntimeError as exc:  # no EGL: still a useful demo
            print(f"render skipped: {exc}", file=sys.stderr)
    middle = frames[len(frames) // 2]
    projected = project_labels(voxel_map, middle, lf.max_range, lf.min_range)
    truth = voxel_map.label_space.encode(middle.labels).numpy()
    panel = np.concatenate(
        [middle.color, voxel_map.label_space.colorize(np.where(projected.observed, truth, -1)), voxel_map.label_space.colorize(projected.label)], 1
    )
    save_png(out / "projection.png", panel)

    accuracies = [p["accuracy"] for p in per_frame]
    summary = {
        "data": str(args.data),
        "frames": len(frames),
        "config": to_dict(cfg),
        "voxels": len(voxel_map),
        "blocks": voxel_map.num_blocks,
        "map_bytes_estimate": voxel_map.nbytes(),
        "label_counts": dict(zip(voxel_map.label_space.names, voxel_map.label_counts()[0].tolist())),
        "reprojection_accuracy": {"min": min(accuracies), "mean": float(np.mean(accuracies)), "per_frame": per_frame},
        "frame_time_s": {k: float(np.median([t[k] for t in timings])) for k in timings[0]},
        "outputs": ["map.safetensors", "map_labels.ply", "map_rgb.ply", "projection.png", *[Path(p).name for p in rendered]],
    }
    write_text_atomic(out / "summary.json", json.dumps(summary, indent=2))
    print(
        f"fused {len(frames)} frames into {len(voxel_map)} voxels of {cfg.map.voxel_size * 100:g} cm; "
        f"labels reprojected into each frame agree on {min(accuracies):.1%} (worst frame) / "
        f"{np.mean(accuracies):.1%} (mean) of labelled pixels; median {summary['frame_time_s']['total'] * 1000:.0f} ms/frame"
    )
    print(f"outputs in {out}/: {', '.join(summary['outputs'])}, summary.json")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    """Print a map file's geometry, label space and label histogram."""
    voxel_map = load_map(args.map)
    arrays = voxel_map.to_arrays()
    counts, unlabelled = voxel_map.label_counts()
    info = {
        "file": str(args.map),
        "voxels": len(voxel_map),
        "blocks": voxel_map.num_blocks,
        "voxel_size_m": voxel_map.voxel_size,
        "feature_dim": voxel_map.feature_dim,
        "feature_kind": voxel_map.feature_kind,
        "label_space": voxel_map.label_space.name,
        "bounds_m": [arrays.xyz.min(0).tolist(), arrays.xyz.max(0).tolist()] if len(arrays) else None,
        "labels": dict(zip(voxel_map.label_space.names, counts.tolist())),
        "unlabelled": unlabelled,
    }
    print(json.dumps(info, indent=2))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """Convert a map file to PLY and/or PNG."""
    voxel_map = load_map(args.map)
    if not (args.ply or args.png):
        print("nothing to do: pass --ply and/or --png", file=sys.stderr)
        return 2
    if args.ply:
        print(export_ply(voxel_map, args.ply, args.color_by))
    if args.png:
        print(render_png(voxel_map, args.png, args.color_by))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``alster`` command."""
    parser = argparse.ArgumentParser(prog="alster", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="fuse the real label-fusion frames and write map, PLY, PNG and JSON")
    demo.add_argument("--data", type=Path, default=DEFAULT_DEMO_DATA, help="label-fusion frames folder")
    demo.add_argument("--out", type=Path, default=Path("build/demo"), help="output folder")
    _add_config_args(demo)
    demo.set_defaults(func=cmd_demo)

    info = sub.add_parser("info", help="print a map file's contents")
    info.add_argument("map", type=Path)
    info.set_defaults(func=cmd_info)

    export = sub.add_parser("export", help="convert a map file to PLY / PNG")
    export.add_argument("map", type=Path)
    export.add_argument("--ply", type=Path)
    export.add_argument("--png", type=Path)
    export.add_argument("--color-by", choices=("label", "rgb"), default="label")
    export.set_defaults(func=cmd_export)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``alster`` console script."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (ValueError, OSError, RuntimeError) as exc:  # MapFileError is a ValueError
        print(f"alster {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
