"""The ``alster`` command line: one entry point, subcommands.

    alster demo   [--seed S] [--out DIR]        map a synthetic world with the shipped model; map, PLY, PNGs, metrics
    alster train  --out DIR [--model NAME]      train a model with its recipe (ALSTER: 2D pre-training, then joint training)
    alster eval   SEQ [SEQ ...] [--out DIR]     replay sequences through the mapper and score the map, ScanNet style
    alster replay BAG [--out DIR]               map a bag offline (no DDS), write the map, PLYs and a summary
    alster play   BAG [--rate R]                publish a bag on ROS topics with its timing and /clock (needs rclpy)
    alster label-fusion-demo [--data DIR]       fuse the real label-fusion frames, write map, PLY, PNGs, JSON
    alster segment MAP|SEQ [--model asis|ban]   instances with ASIS / BAN: PLY, object list, PNG, metrics
    alster refine MAP|SEQ [--frames SEQ]        relabel a map with SAFNet from keyframes: map, PLY, PNGs, scores
    alster info   MAP                           print a map file's contents
    alster export MAP [--ply P] [--png P]       convert a map file to PLY / PNG

A sequence SEQ is ``synthetic:SEED[:FRAMES]``, an exported ScanNet scene directory or a
ROS 2 bag. Commands that build maps take ``--config YAML`` and ``--set key=value``
overrides of the one configuration schema (``MappingConfig``; for train the recipe's config,
e.g. ``AlsterTrainConfig``, with defaults in ``config/train/NAME.yaml``).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .core.atomic_file import write_text_atomic
from .core.config import apply_overrides, load_yaml, to_dict
from .core.grid_config import SemanticGridConfig
from .core.labels import LabelSpace
from .map.export import export_ply, project_labels, render_png, save_png
from .map.grid_files import grid_image, write_nav2_map
from .map.map_file import load_map, save_map
from .map.semantic_grid import FREE, OCCUPIED, FloorGrid, grid_masks
from .map.voxel_map import SemanticVoxelMap
from .nets.shipped import shipped_alster_checkpoint
from .pipeline.keyframes import KeyframeStore, keyframe_file
from .pipeline.label_fusion import LabelFusion
from .pipeline.mapping_config import MappingConfig

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DEMO_DATA = REPO_ROOT.parent / "shared" / "data" / "label-fusion" / "frames"
# The demo's world: a seed below 1000, never used for training (TrainDataConfig.seeds).
DEMO_SEED = 7
DEMO_FRAMES = 120


def shipped_model() -> Path:
    """The ALSTER model trained on synthetic worlds that ships with the package."""
    return shipped_alster_checkpoint()


DEFAULT_MODEL = shipped_model()


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


def cmd_label_fusion_demo(args: argparse.Namespace) -> int:
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
    save_map(voxel_map, out / "map.safetensors")
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
    projected = [f.pose_correction for f in frames if f.pose_correction > 0.0]
    summary = {
        "data": str(args.data),
        "frames": len(frames),
        "poses_projected": len(projected),
        "max_pose_correction": max(projected, default=0.0),
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
        f"fused {len(frames)} frames ({len(projected)} poses projected onto SO(3)) into {len(voxel_map)} voxels of "
        f"{cfg.map.voxel_size * 100:g} cm; "
        f"labels reprojected into each frame agree on {min(accuracies):.1%} (worst frame) / "
        f"{np.mean(accuracies):.1%} (mean) of labelled pixels; median {summary['frame_time_s']['total'] * 1000:.0f} ms/frame"
    )
    print(f"outputs in {out}/: {', '.join(summary['outputs'])}, summary.json")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    """Train the model ``--model`` names with its recipe into ``--out`` (resuming a previous run there)."""
    from .data.sequences import describe_frames
    from .train.loop import MODEL_FILE, TrainingLoop
    from .train.recipe import RECIPES

    recipe = RECIPES.get(args.model)
    config_class = recipe.config_class
    cfg = load_yaml(config_class, args.config) if args.config else config_class()
    cfg = apply_overrides(cfg, args.set or [])
    provenance = {"command": args.command_line, "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    card = TrainingLoop(recipe, cfg, args.out, provenance=provenance, progress=not args.no_progress).run()
    if card:
        print(f"trained in {card['provenance']['train_seconds'] / 60:.1f} min; model: {args.out / MODEL_FILE} (+ .json card)")
        # Recipes that read recorded sequences count their frames (e.g. ALSTER's training_frames).
        for name, counts in card["provenance"].get("training_frames", {}).items():
            print(f"  {name}: {describe_frames(counts, used='trained on')}")
        print(json.dumps(card["metrics"], indent=2))
    return 0


def _add_sequence_args(parser: argparse.ArgumentParser, frames_option: str = "--frames") -> None:
    """Options of how sequences are read (synthetic size, ScanNet stride, bag topics).
    frames_option: the name of the synthetic frame count's option (``args.frames`` either way)."""
    from .data.rosbag_io import COLOR_TOPIC, DEPTH_TOPIC, INFO_TOPIC

    parser.add_argument(frames_option, dest="frames", type=int, default=DEMO_FRAMES, help="frames of synthetic trajectories")
    parser.add_argument("--width", type=int, default=320, help="synthetic image width [px]")
    parser.add_argument("--height", type=int, default=240, help="synthetic image height [px]")
    parser.add_argument("--stride", type=int, default=1, help="use every n-th frame of ScanNet scenes")
    bag = parser.add_argument_group("bags")
    bag.add_argument("--color-topic", default=COLOR_TOPIC)
    bag.add_argument("--depth-topic", default=DEPTH_TOPIC)
    bag.add_argument("--info-topic", default=INFO_TOPIC)
    bag.add_argument("--labels-topic", help="label images (raw ids) for label_fusion mode")
    bag.add_argument("--map-frame", default="map", help="the frame the map is built in")
    bag.add_argument("--camera-frame", help="camera optical frame to look up (default: the images' frame_id)")


def _sequences(args: argparse.Namespace, specs: list[str], ground_truth_ply: Path | None = None):
    from .data.sequences import open_sequence

    bag_options = dict(
        color_topic=args.color_topic, depth_topic=args.depth_topic, info_topic=args.info_topic,
        labels_topic=args.labels_topic, map_frame=args.map_frame, camera_frame=args.camera_frame,
    )  # fmt: skip
    return [
        open_sequence(
            s, frames=args.frames, width=args.width, height=args.height, stride=args.stride,
            ground_truth_ply=ground_truth_ply, **bag_options,
        )  # fmt: skip
        for s in specs
    ]


def _with_model(cfg: MappingConfig, model: Path | None) -> MappingConfig:
    """The config with ``--model`` (or, in ALSTER mode without a checkpoint, the shipped model)."""
    if model is not None:
        return apply_overrides(cfg, {"alster.checkpoint": str(model)})
    if cfg.mode == "alster" and not cfg.alster.checkpoint:
        return apply_overrides(cfg, {"alster.checkpoint": str(DEFAULT_MODEL)})
    return cfg


def cmd_replay(args: argparse.Namespace) -> int:
    """Run one sequence through the engine offline (no DDS) and write the map and a summary."""
    from .eval.evaluate import replay
    from .pipeline.online_mapper import OnlineMapper

    cfg = _with_model(_load_config(args), args.model)
    (sequence,) = _sequences(args, [args.sequence])
    mapper = OnlineMapper(cfg)
    keyframes = KeyframeStore(cfg.keyframes) if cfg.keyframes.enabled else None
    result = replay(sequence, mapper, stages=False, progress=True, on_mapped=keyframes.consider if keyframes else None)
    print(f"{sequence.name}: {result.describe()}")
    result.require_voxels()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    save_map(mapper.map, out / "map.safetensors")
    outputs = ["map.safetensors", "map_labels.ply", "map_rgb.ply"]
    if keyframes is not None and cfg.keyframes.save_with_map:  # as the node's ~/save_map: for alster refine
        keyframes.save(keyframe_file(out / "map.safetensors"))
        outputs.insert(1, "map.keyframes.safetensors")
    export_ply(mapper.map, out / "map_labels.ply", color_by="label")
    export_ply(mapper.map, out / "map_rgb.ply", color_by="rgb")
    try:
        render_png(mapper.map, out / "render_label.png", "label")
        outputs.append("render_label.png")
    except (RuntimeError, ValueError) as exc:  # no EGL, or nothing mapped
        print(f"render skipped: {exc}", file=sys.stderr)
    steps = np.asarray(result.step_seconds) * 1e3
    summary = {
        "sequence": sequence.name,
        "command": args.command_line,
        "mode": cfg.mode,
        "checkpoint": cfg.alster.checkpoint if cfg.mode == "alster" else None,
        **result.counts(),
        "voxels": len(mapper.map),
        "labels": dict(zip(mapper.map.label_space.names, mapper.map.label_counts()[0].tolist())),
        "step_ms": {"median": float(np.median(steps)) if steps.size else None, "p90": float(np.percentile(steps, 90)) if steps.size else None},
        "outputs": outputs,
    }
    write_text_atomic(out / "summary.json", json.dumps(summary, indent=2))
    median = f"{summary['step_ms']['median']:.0f} ms" if steps.size else "n/a"
    print(f"{len(mapper.map)} voxels; median {median} per frame")
    print(f"outputs in {out}/: {', '.join(outputs)}, summary.json")
    return 0


def _print_summary(results: dict) -> None:
    for method, m in results["summary"].items():
        cov = f"{m['coverage']:.1%}" if m["coverage"] is not None else "n/a"
        print(
            f"  {method:12s} mIoU {m['miou']:.3f} (classes present: {m['miou_present']:.3f})  "
            f"wIoU {m['wiou']:.3f}  mAcc {m['macc']:.3f}  coverage {cov}"
        )


def cmd_eval(args: argparse.Namespace) -> int:
    """Replay sequences and score the maps (metrics.json + plots in ``--out``)."""
    from .data.sequences import describe_frames
    from .eval.evaluate import evaluate

    cfg = _with_model(_load_config(args), args.model)
    results = evaluate(
        _sequences(args, args.sequences, args.gt), cfg, out_dir=args.out, radius=args.radius, stages=not args.no_stages,
        plots=not args.no_plots, provenance={"command": args.command_line},
    )
    print(f"evaluated {', '.join(s['name'] for s in results['sequences'])}: median step {results['step_ms']['median']:.0f} ms")
    for counts in results["sequences"]:
        print(f"  {counts['name']}: {describe_frames(counts)}")
    _print_summary(results)
    if args.record:
        from .nets.checkpoint import update_card

        record = {"sequences": [s["name"] for s in results["sequences"]], "command": args.command_line, **results["summary"]}
        update_card(cfg.alster.checkpoint, metrics={args.record: record})
        print(f"recorded under metrics.{args.record} in the card of {cfg.alster.checkpoint}")
    print(f"outputs in {args.out}/")
    return 0


def _instance_checkpoint(model: str) -> Path:
    """``--model`` of segment: asis / ban (the shipped checkpoints) or a checkpoint path."""
    from .nets.shipped import shipped_instance_checkpoint
    from .pipeline.instance_job import INSTANCE_MODELS

    return shipped_instance_checkpoint(model) if model in INSTANCE_MODELS else Path(model)


def _map_first(args: argparse.Namespace, mapping: MappingConfig, path: Path, on_mapped=None) -> tuple:
    """Map the sequence ``args.source`` as the node would and save the map to ``path``;
    returns (the sequence, the map's path). on_mapped: as ``eval.evaluate.replay``."""
    from .eval.evaluate import replay
    from .pipeline.online_mapper import OnlineMapper

    (sequence,) = _sequences(args, [args.source])
    mapper = OnlineMapper(mapping)
    result = replay(sequence, mapper, stages=False, progress=True, on_mapped=on_mapped)
    print(f"{sequence.name}: {result.describe()}")
    result.require_voxels()
    path.parent.mkdir(parents=True, exist_ok=True)
    return sequence, save_map(mapper.map, path)


def _ground_truth(args: argparse.Namespace, sequence):
    """The ground truth to score against: ``--gt``'s sequence, else that of the mapped
    ``sequence`` (None when it has none, or when there is neither)."""
    if not args.gt and sequence is None:
        return None
    if args.gt:
        (sequence,) = _sequences(args, [args.gt])
    truth = sequence.ground_truth()
    if truth is None and args.gt:
        raise ValueError(f"{args.gt}: no ground-truth points to score against")
    return truth


def cmd_segment(args: argparse.Namespace) -> int:
    """Instances of a map file, or of a sequence mapped first, with ASIS / BAN: PLY, objects, PNG, metrics."""
    from .eval.segment import segment_map
    from .pipeline.instance_segmentation import InstanceSegmentationConfig

    config = apply_overrides(InstanceSegmentationConfig(), args.set or [])
    map_path, sequence = Path(args.source), None
    if map_path.suffix == ".safetensors" and not map_path.is_file():
        raise ValueError(f"map file not found: {map_path}")
    if not map_path.is_file():
        # A sequence: map it first as the node would (the shipped ALSTER model by default).
        mapping = _with_model(load_yaml(MappingConfig, args.config) if args.config else MappingConfig(), None)
        sequence, map_path = _map_first(args, mapping, args.out / "map.safetensors")
    truth = _ground_truth(args, sequence)
    summary = segment_map(map_path, _instance_checkpoint(args.model), args.out, truth, config)
    print(f"{summary['objects']} objects in {summary['voxels']} voxels ({summary['model']}, {summary['seconds']:.1f} s)")
    if "metrics" in summary:
        m = summary["metrics"]
        print(f"  mIoU {m['semantic']['miou']:.3f}  mCov {m['instance']['mcov']:.3f}  mWCov {m['instance']['mwcov']:.3f}  AP50 {m['ap']['ap50']:.3f}")
    if "render_skipped" in summary:
        print(f"  no instances.png: {summary['render_skipped']}", file=sys.stderr)
    print(f"outputs in {args.out}/: {', '.join(summary['outputs'])}")
    return 0


def cmd_refine(args: argparse.Namespace) -> int:
    """A map relabelled by SAFNet from keyframes: refined map, PLY, before/after PNGs, summary (and scores)."""
    from .eval.refine import map_keyframes, refine_map, sequence_keyframes

    mapping = _with_model(load_yaml(MappingConfig, args.config) if args.config else MappingConfig(), None)
    config = apply_overrides(mapping.refine, args.set or [])
    if args.model:
        config.checkpoint = str(args.model)
    map_path, sequence, keyframes = Path(args.source), None, None
    if map_path.suffix == ".safetensors" and not map_path.is_file():
        raise ValueError(f"map file not found: {map_path}")
    args.out.mkdir(parents=True, exist_ok=True)
    if not map_path.is_file():
        # A sequence: map it first as the node would, keeping its keyframes.
        store = KeyframeStore(mapping.keyframes)
        sequence, map_path = _map_first(args, mapping, args.out / "online_map.safetensors", store.consider)
        keyframes = store.keyframes()
        print(f"{len(keyframes)} keyframes")
    if args.keyframe_sequence:
        (frames,) = _sequences(args, [args.keyframe_sequence])
        keyframes = sequence_keyframes(frames, mapping.keyframes)
        print(f"{frames.name}: {len(keyframes)} keyframes of {len(frames)} frames" + (f"; skipped {frames.skipped}" if frames.skipped else ""))
    elif keyframes is None:
        keyframes, skipped = map_keyframes(map_path)
        if skipped:
            print(f"skipped {sum(skipped.values())} invalid keyframes: {skipped}", file=sys.stderr)
    truth = _ground_truth(args, sequence)
    summary = refine_map(map_path, keyframes, args.out, config, truth)
    print(summary["message"] + f" in {summary['seconds']:.1f} s")
    if "after" in summary:
        before, after = summary["before"], summary["after"]
        print(f"  mIoU {before['miou']:.3f} -> {after['miou']:.3f}  (classes present: {before['miou_present']:.3f} -> {after['miou_present']:.3f})")
    for problem in summary["problems"]:
        print(f"  {problem}", file=sys.stderr)
    print(f"outputs in {args.out}/: {', '.join(summary['outputs'])}, summary.json")
    return 0


def cmd_complete(args: argparse.Namespace) -> int:
    """The scene behind one frame of a sequence completed by IMENet: PLY, PNGs, summary (and scores on synthetic worlds)."""
    from .data.completion_volumes import completion_volume, nyu40_to_ssc, ssc_label_space
    from .data.sequences import SyntheticSequence
    from .eval.complete import complete_to_files
    from .nets.shipped import shipped_imenet_checkpoint
    from .pipeline.scene_completion import estimate_floor, load_completion_model

    (sequence,) = _sequences(args, [args.source])
    if not 0 <= args.frame < len(sequence):
        raise ValueError(f"--frame {args.frame} is outside the sequence's {len(sequence)} frames")
    checkpoint = args.model or shipped_imenet_checkpoint()
    model, _ = load_completion_model(checkpoint)
    frame = sequence.frame(args.frame)
    synthetic = isinstance(sequence, SyntheticSequence)
    floor_z = args.floor_z if args.floor_z is not None else (0.0 if synthetic else estimate_floor(frame))
    truth = None
    if synthetic:  # its ground truth scores the completion
        volume = completion_volume(frame, sequence.ground_truth(), floor_z, sequence.world.solid_labels)
        truth = (volume, nyu40_to_ssc()[np.asarray(frame.labels, dtype=np.int64)] if frame.labels is not None else None)
    summary = complete_to_files(model, ssc_label_space(), frame, floor_z, args.out, args.iterations, truth, str(checkpoint))
    v = summary["voxels"]
    print(f"{v['observed']} observed and {v['predicted']} predicted voxels ({summary['seconds']:.2f} s, floor at {floor_z:.2f} m)")
    if "scores" in summary:
        s = summary["scores"]
        line = f"  SC IoU {s['sc']['iou']:.3f}  SSC mIoU {s['ssc']['miou']:.3f}"
        print(line + (f"  SS mIoU {s['ss']['miou']:.3f}" if "ss" in s else ""))
    print(f"outputs in {args.out}/: {', '.join(summary['outputs'])}, summary.json")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """The main job: a synthetic world mapped live with the shipped model, then scored."""
    from .data.sequences import SyntheticSequence
    from .eval.evaluate import evaluate

    if not args.model.exists():
        print(f"model not found: {args.model} (train one with `alster train`, or pass --model)", file=sys.stderr)
        return 2
    cfg = apply_overrides(_load_config(args), {"alster.checkpoint": str(args.model)})
    print(f"rendering synthetic world {args.seed} ({args.frames} frames at 320x240) and mapping it with {args.model.name} ...")
    sequence = SyntheticSequence(args.seed, args.frames)
    results = evaluate([sequence], cfg, out_dir=args.out, provenance={"command": args.command_line, "model": str(args.model)})
    print(f"{results['sequences'][0]['voxels']} voxels of {cfg.map.voxel_size * 100:g} cm; median {results['step_ms']['median']:.0f} ms per frame")
    _print_summary(results)
    print(f"outputs in {args.out}/: {', '.join(results['files'].values())}")
    _print_recorded_robustness(args.model)
    return 0


def _print_recorded_robustness(model: Path) -> None:
    """What the model's card records beyond this one world: the style-shift benchmark and
    label consistency on real frames (``bench/style_shift.py``, ``bench/label_consistency.py``)."""
    from .nets.checkpoint import read_card

    metrics = read_card(model).get("metrics") or {}
    shift, real = metrics.get("style_shift"), metrics.get("label_consistency")
    if shift:
        print(
            f"recorded style shift (held-out worlds): mIoU {shift['in_style']:.3f} in its training style, "
            f"{shift['shifted']:.3f} in unseen styles (drop {100 * (shift['in_style'] - shift['shifted']):.1f} points)"
        )
    for name, summary in ((real or {}).get("sequences") or {}).items():
        print(f"recorded on real frames ({name}, no labels): per-frame labels agree on {summary['agreement']:.1%} of observations")


def cmd_info(args: argparse.Namespace) -> int:
    """Print a map file's geometry, label space, label histogram and instance layer."""
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
        "instances": int(np.unique(arrays.instance[arrays.instance >= 0]).size),
        "voxels_in_instances": int((arrays.instance >= 0).sum()),
    }
    print(json.dumps(info, indent=2))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """Convert a map file to PLY, PNG and / or the floor grid's Nav2 map files."""
    voxel_map = load_map(args.map)
    if not (args.ply or args.png or args.grid):
        print("nothing to do: pass --ply, --png and / or --grid", file=sys.stderr)
        return 2
    if args.ply:
        print(export_ply(voxel_map, args.ply, args.color_by))
    if args.png:
        print(render_png(voxel_map, args.png, args.color_by))
    if args.grid:
        cfg = apply_overrides(SemanticGridConfig(), args.grid_set)
        for name, mask in grid_masks(cfg, voxel_map.label_space).items():
            grid = FloorGrid().update(voxel_map, mask, cfg)
            stem = "semantic_grid" + (f"_{name}" if name else "")
            pgm, yaml_path = write_nav2_map(grid, args.grid, stem)
            png = save_png(args.grid / f"{stem}.png", np.repeat(grid_image(grid, scale=4)[..., None], 3, axis=2))
            occupied, free = int((grid.cells == OCCUPIED).sum()), int((grid.cells == FREE).sum())
            size = f"{grid.shape[1]} x {grid.shape[0]} cells of {grid.resolution} m"
            print(f"{yaml_path} ({pgm.name}, {png.name}): {size}, {occupied} occupied, {free} free")
    return 0


def cmd_play(args: argparse.Namespace) -> int:
    """Publish a bag on its ROS topics with its timing (needs rclpy; the ROS layer loads only here)."""
    from .ros.bag_player import play_main

    return play_main(args)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``alster`` command."""
    parser = argparse.ArgumentParser(prog="alster", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="map a held-out synthetic world with the shipped model; map, PLY, PNGs, metrics")
    demo.add_argument("--seed", type=int, default=DEMO_SEED, help="synthetic world (seeds below 1000 are never trained on)")
    demo.add_argument("--frames", type=int, default=DEMO_FRAMES, help="frames of the trajectory (10 Hz)")
    demo.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="checkpoint (.safetensors with its card)")
    demo.add_argument("--out", type=Path, default=Path("build/demo"), help="output folder")
    _add_config_args(demo)
    demo.set_defaults(func=cmd_demo)

    train = sub.add_parser("train", help="train a model with its recipe (ALSTER: 2D pre-training, then joint training; resumable)")
    train.add_argument("--model", default="alster", help="registered model whose recipe runs (default: alster)")
    train.add_argument("--out", type=Path, required=True, help="folder for the training state, log and model.safetensors")
    train.add_argument("--config", type=Path, help="YAML file of the recipe's config (config/train/NAME.yaml holds the defaults)")
    train.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config value, e.g. joint.steps=500")
    train.add_argument("--no-progress", action="store_true", help="no progress bars (logs only)")
    train.set_defaults(func=cmd_train)

    ev = sub.add_parser("eval", help="replay sequences through the mapper and score the map against labelled points")
    ev.add_argument("sequences", nargs="+", help="synthetic:SEED[:FRAMES], a ScanNet scene directory or a ROS 2 bag")
    ev.add_argument("--model", type=Path, help="checkpoint (default: alster.checkpoint of the config, else the shipped model)")
    ev.add_argument("--out", type=Path, default=Path("build/eval"), help="output folder (metrics.json, plots, PLYs)")
    ev.add_argument("--radius", type=float, help="label transfer reach [m] (default: one voxel edge)")
    ev.add_argument("--gt", type=Path, help="labelled points (ScanNet *.labels.ply layout) for a bag")
    ev.add_argument("--no-stages", action="store_true", help="skip the 2D/3D voting ablation")
    ev.add_argument("--no-plots", action="store_true", help="metrics.json only")
    ev.add_argument("--record", metavar="NAME", help="also store the summary in the model's card under metrics.NAME")
    _add_sequence_args(ev)
    _add_config_args(ev)
    ev.set_defaults(func=cmd_eval)

    rp = sub.add_parser("replay", help="map a bag (or any sequence) offline with the engine, deterministically; no DDS")
    rp.add_argument("sequence", help="a ROS 2 bag, a ScanNet scene directory or synthetic:SEED[:FRAMES]")
    rp.add_argument("--model", type=Path, help="checkpoint (default: alster.checkpoint of the config, else the shipped model)")
    rp.add_argument("--out", type=Path, default=Path("build/replay"), help="output folder (map, PLYs, render, summary.json)")
    _add_sequence_args(rp)
    _add_config_args(rp)
    rp.set_defaults(func=cmd_replay)

    pl = sub.add_parser("play", help="publish a ROS 2 bag on its topics with its timing and /clock (for the live node)")
    pl.add_argument("bag", type=Path, help="ROS 2 bag directory (sqlite3 or mcap)")
    pl.add_argument("--rate", type=float, default=1.0, help="playback speed factor (2 = twice as fast)")
    pl.add_argument("--loop", action="store_true", help="start over at the end until Ctrl-C")
    pl.add_argument("--start-offset", type=float, default=0.0, metavar="SEC", help="start this many seconds into the bag")
    pl.add_argument("--no-clock", action="store_true", help="do not publish /clock")
    pl.add_argument("--topics", nargs="+", metavar="TOPIC", help="play only these bag topics")
    pl.add_argument("--remap", action="append", metavar="FROM:=TO", help="publish bag topic FROM on TO (repeatable)")
    pl.add_argument("--pose-topic", metavar="NAME", help="also publish each image's camera pose from the bag's TF as PoseStamped")
    pl.add_argument("--pose-image-topic", default="/camera/color/image_raw", help="bag image topic whose stamps get poses")
    pl.add_argument("--map-frame", default="map", help="frame of the published poses")
    pl.add_argument("--camera-frame", help="camera frame looked up in TF (default: the image's frame_id)")
    pl.add_argument("--wait-for-subscribers", type=float, default=0.0, metavar="SEC", help="wait up to SEC for subscribers first")
    pl.add_argument("--delay", type=float, default=0.0, metavar="SEC", help="wait SEC before the first message")
    pl.set_defaults(func=cmd_play)

    lf = sub.add_parser("label-fusion-demo", help="fuse the real label-fusion frames and write map, PLY, PNG and JSON")
    lf.add_argument("--data", type=Path, default=DEFAULT_DEMO_DATA, help="label-fusion frames folder")
    lf.add_argument("--out", type=Path, default=Path("build/label_fusion_demo"), help="output folder")
    _add_config_args(lf)
    lf.set_defaults(func=cmd_label_fusion_demo)

    segment = sub.add_parser("segment", help="instances of a map file (or of a sequence, mapped first) with ASIS / BAN")
    segment.add_argument("source", help="map file (.safetensors), or a sequence (synthetic:SEED, ScanNet folder, bag) to map first")
    segment.add_argument("--model", default="asis", help="asis or ban (the shipped checkpoints) or an instance_segmentation checkpoint")
    segment.add_argument("--config", type=Path, help="YAML of MappingConfig for mapping a sequence (default: the shipped ALSTER model)")
    segment.add_argument("--out", type=Path, default=Path("build/segment"), help="output folder")
    segment.add_argument("--gt", metavar="SEQ", help="a sequence whose ground truth scores the result (e.g. synthetic:7)")
    segment.add_argument("--set", action="append", metavar="KEY=VALUE", help="override InstanceSegmentationConfig, e.g. bandwidth=0.6")
    _add_sequence_args(segment)
    segment.set_defaults(func=cmd_segment)

    refine = sub.add_parser("refine", help="relabel a map file (or a sequence, mapped first) with SAFNet from its keyframes")
    refine.add_argument("source", help="map file (.safetensors, with its keyframes beside it), or a sequence to map first")
    refine.add_argument("--frames", dest="keyframe_sequence", metavar="SEQ", help="keyframes from this sequence (default: those beside the map)")
    refine.add_argument("--model", type=Path, help="SAFNet checkpoint (default: refine.checkpoint, else the shipped one)")
    refine.add_argument("--config", type=Path, help="YAML of MappingConfig (mapping a sequence, keyframes.*, refine.*)")
    refine.add_argument("--out", type=Path, default=Path("build/refine"), help="output folder")
    refine.add_argument("--gt", metavar="SEQ", help="a sequence whose ground truth scores the map before and after (e.g. synthetic:7)")
    refine.add_argument("--set", action="append", metavar="KEY=VALUE", help="override RefineJobConfig, e.g. chunks.views=5")
    _add_sequence_args(refine, frames_option="--synthetic-frames")
    refine.set_defaults(func=cmd_refine)

    complete = sub.add_parser("complete", help="complete the scene behind one frame of a sequence with IMENet (PLY, PNGs, summary)")
    complete.add_argument("source", help="a sequence: synthetic:SEED, ScanNet folder, bag")
    complete.add_argument("--frame", type=int, default=0, help="index of the frame in the sequence")
    complete.add_argument("--model", type=Path, help="scene-completion checkpoint (default: the shipped IMENet)")
    complete.add_argument("--floor-z", type=float, help="world height of the floor [m] (default: 0 in synthetic worlds, else from the frame)")
    complete.add_argument("--iterations", type=int, help="rounds of mutual refinement (default: the model's)")
    complete.add_argument("--out", type=Path, default=Path("build/complete"), help="output folder")
    _add_sequence_args(complete, frames_option="--synthetic-frames")
    complete.set_defaults(func=cmd_complete)

    info = sub.add_parser("info", help="print a map file's contents")
    info.add_argument("map", type=Path)
    info.set_defaults(func=cmd_info)

    export = sub.add_parser("export", help="convert a map file to PLY / PNG / a Nav2 floor grid")
    export.add_argument("map", type=Path)
    export.add_argument("--ply", type=Path)
    export.add_argument("--png", type=Path)
    export.add_argument("--grid", type=Path, metavar="DIR", help="write the floor grid as nav2_map_server's PGM + YAML and a PNG into DIR")
    export.add_argument(
        "--grid-set", nargs="*", default=[], metavar="KEY=VALUE", help="grid settings as the node's grid.* (e.g. max_height=1.2)"
    )
    export.add_argument("--color-by", choices=("label", "rgb"), default="label")
    export.set_defaults(func=cmd_export)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``alster`` console script."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args.command_line = shlex.join(["alster", *argv])  # provenance for model cards and metrics
    try:
        return int(args.func(args))
    except (ValueError, OSError, RuntimeError) as exc:  # MapFileError is a ValueError
        print(f"alster {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
