"""``alster eval``: replay sequences through the OnlineMapper and score the map, ScanNet style.

For every sequence the frames run through ``OnlineMapper.step`` in order. The map's voxel
labels go to the labelled ground-truth points by nearest neighbour within ``radius``
(points without a voxel in reach are reported as uncovered), and the points of all
sequences are scored together with the ScanNet benchmark's rules (``eval/metrics.py``).

The stage ablation of ALSTER's Table 2 runs alongside: the 2D head's per-pixel labels and
the 3D head's per-voxel labels of every frame are fused into two more maps by voting
(``LabelFusion.fuse``), and those maps are scored the same way as the expert's.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..core.atomic_file import write_text_atomic
from ..core.config import MapConfig
from ..core.frame import RGBDFrame
from ..core.samples import PointBlock
from ..data.sequences import Sequence, describe_frames, frame_counts
from ..map.export import export_ply
from ..map.map_file import save_map
from ..map.voxel_map import SemanticVoxelMap
from ..nets.alster import AlsterModel
from ..pipeline.label_fusion import LabelFusion
from ..pipeline.mapping_config import MappingConfig
from ..pipeline.online_mapper import OnlineMapper
from .metrics import evaluate_points, map_raw_labels, transfer_labels
from .plots import plot_class_iou, plot_confusion, render_labelled_map

# Method names in results and plots: the expert (the map itself) and the voted heads.
EXPERT, HEAD_2D, HEAD_3D = "expert", "2d_voting", "3d_voting"


@dataclass
class SequenceReplay:
    """One replayed sequence: its maps (per method), frames mapped, frames skipped by
    reason (with the first message of each in ``problems``), the poses projected onto SO(3)
    (``RGBDFrame.pose_correction``: how many, the largest error corrected) and step timings [s]."""

    name: str
    maps: dict[str, SemanticVoxelMap]
    frames: int
    skipped: dict[str, int] = field(default_factory=dict)
    step_seconds: list[float] = field(default_factory=list)
    problems: dict[str, str] = field(default_factory=dict)
    poses_projected: int = 0
    max_pose_correction: float = 0.0

    @property
    def frames_read(self) -> int:
        """Frames mapped plus frames skipped (by the reader or the mapper)."""
        return self.frames + sum(self.skipped.values())

    def counts(self) -> dict:
        """The frame counts for a JSON summary (``frame_counts``)."""
        return frame_counts(self.frames, self.skipped, self.poses_projected, self.max_pose_correction)

    def describe(self) -> str:
        """One line of the frame counts (``describe_frames``)."""
        return describe_frames(self.counts())

    def require_voxels(self) -> None:
        """ValueError when the main map is empty, saying how many frames were read and
        skipped and why (with the first message of each reason), instead of the bare
        "nothing to export" a later export would give."""
        if len(next(iter(self.maps.values()))):
            return
        examples = "".join(f"\n  {reason}: {message}" for reason, message in self.problems.items())
        raise ValueError(
            f"{self.name}: the map is empty: {self.frames_read} frames read, {self.describe()}"
            + (f"; first problem of each kind:{examples}" if examples else "")
        )


def replay(
    sequence: Sequence,
    mapper: OnlineMapper,
    stages: bool = True,
    progress: bool = False,
    on_mapped: Callable[[RGBDFrame], object] | None = None,
) -> SequenceReplay:
    """Run ``sequence`` through ``mapper`` (into its map as it is); with ``stages`` (ALSTER mode)
    also vote the 2D and 3D heads' labels into maps of their own. on_mapped: called with
    each frame the mapper took (e.g. ``KeyframeStore.consider``, as the node does).

    Frames the mapper rejects (ValueError: no valid depth, bad pose...) are counted in
    ``skipped`` by reason and leave the maps unchanged; the sequence's own skips (frames
    it could not read) are added after the last frame. Frames whose pose was projected
    onto SO(3) are counted in ``poses_projected``.
    """
    stages = stages and mapper.model is not None
    space = mapper.map.label_space
    voters: dict[str, LabelFusion] = {}
    if stages:
        vote_config = MapConfig(voxel_size=mapper.map.voxel_size, feature_dim=space.num_classes, device=str(mapper.device))
        for name in (HEAD_2D, HEAD_3D):
            voters[name] = LabelFusion(SemanticVoxelMap(vote_config, space), mapper.config.label_fusion)
    skipped: dict[str, int] = {}
    problems: dict[str, str] = {}
    seconds = []
    frames = projected = 0
    max_correction = 0.0
    for frame in tqdm(sequence, desc=sequence.name, disable=not progress, dynamic_ncols=True, leave=False):
        if frame.pose_correction > 0.0:
            projected += 1
            max_correction = max(max_correction, frame.pose_correction)
        try:
            result = mapper.step(frame, stages=stages)
        except ValueError as exc:
            reason = str(exc).split(":")[-1].strip()[:80]
            skipped[reason] = skipped.get(reason, 0) + 1
            problems.setdefault(reason, f"frame at {frame.stamp_ns / 1e9:.3f} s: {exc}")
            continue
        frames += 1
        seconds.append(result.timings["total"])
        if on_mapped is not None:
            on_mapped(frame)
        if result.stages is not None:
            heads = result.stages
            lifted = heads.inputs.lifted
            C = space.num_classes
            voters[HEAD_2D].fuse(lifted, lifted.voxel_histogram(heads.pixel_labels_2d, C), heads.inputs.color)
            voters[HEAD_3D].fuse(lifted, F.one_hot(heads.labels_3d, C).float(), heads.inputs.color)
    for reason, count in sequence.skipped.items():
        skipped[reason] = skipped.get(reason, 0) + count
    for reason, message in sequence.problems.items():
        problems.setdefault(reason, message)
    maps = {(EXPERT if mapper.model is not None else "label_fusion"): mapper.map}
    maps.update({name: voter.map for name, voter in voters.items()})
    return SequenceReplay(sequence.name, maps, frames, skipped, seconds, problems, projected, max_correction)


def score_maps(
    replays: list[SequenceReplay], ground_truth: list[PointBlock], radius: float
) -> tuple[dict[str, dict], dict[str, list[np.ndarray]]]:
    """Transfer every map's labels to its sequence's ground-truth points and score all
    sequences' points together per method. Returns ({method: metrics dict},
    {method: per-sequence (N,) predicted class indices, -1 uncovered})."""
    space = next(iter(replays[0].maps.values())).label_space
    metrics: dict[str, dict] = {}
    predictions: dict[str, list[np.ndarray]] = {}
    for method in replays[0].maps:
        preds, covers, gts = [], [], []
        for rep, truth in zip(replays, ground_truth):
            points, labels = truth.xyz, truth.labels
            arrays = rep.maps[method].to_arrays()
            pred, covered = transfer_labels(arrays.xyz, arrays.label_index.astype(np.int64), points, radius)
            preds.append(pred)
            covers.append(covered)
            gts.append(np.asarray(labels))
        metrics[method] = evaluate_points(np.concatenate(gts), np.concatenate(preds), np.concatenate(covers), space)
        predictions[method] = preds
    return metrics, predictions


def evaluate(
    sequences: list[Sequence],
    config: MappingConfig | None = None,
    model: AlsterModel | None = None,
    out_dir: str | os.PathLike | None = None,
    radius: float | None = None,
    stages: bool = True,
    progress: bool = True,
    plots: bool = True,
    provenance: dict | None = None,
) -> dict:
    """Replay and score ``sequences`` (each must have ground truth); returns the results dict.

    config/model: as for ``OnlineMapper`` (``config.alster.checkpoint`` names the weights).
    radius: label transfer reach [m] (default: one voxel edge, which always reaches the
    voxel a surface point lies in). With ``out_dir``: see ``write_outputs``.
    """
    mapper = OnlineMapper(config, model=model)
    radius = float(radius if radius is not None else mapper.map.voxel_size)
    space = mapper.map.label_space
    replays, ground_truth = [], []
    start = time.perf_counter()
    for i, sequence in enumerate(sequences):
        gt = sequence.ground_truth()
        if gt is None:
            raise ValueError(f"{sequence.name}: no labelled ground-truth points to evaluate against")
        if i:  # a map of its own per sequence, the same (already loaded) model
            mapper = OnlineMapper(mapper.config, model=mapper.model)
        replays.append(replay(sequence, mapper, stages, progress))
        replays[-1].require_voxels()
        ground_truth.append(gt)
    metrics, predictions = score_maps(replays, ground_truth, radius)
    step = np.concatenate([r.step_seconds for r in replays]) if any(r.step_seconds for r in replays) else np.zeros(0)
    results = {
        "label_space": space.name,
        "mode": mapper.mode,
        "radius_m": radius,
        "voxel_size_m": mapper.map.voxel_size,
        "sequences": [
            {"name": r.name, **r.counts(), "voxels": len(next(iter(r.maps.values())))} for r in replays
        ],
        "step_ms": {
            "median": float(np.median(step) * 1e3) if step.size else None,
            "p90": float(np.percentile(step, 90) * 1e3) if step.size else None,
        },
        "wall_seconds": round(time.perf_counter() - start, 1),
        "threads": torch.get_num_threads(),
        "provenance": provenance or {},
        "methods": metrics,
        "summary": {m: {k: v[k] for k in ("miou", "miou_present", "wiou", "macc", "oacc", "coverage", "miou_all")} for m, v in metrics.items()},
    }
    if out_dir is not None:
        write_outputs(Path(out_dir), results, replays, ground_truth, predictions, plots)
    return results


def write_outputs(out: Path, results: dict, replays, ground_truth, predictions, plots: bool = True) -> None:
    """metrics.json, the plots and renders, the maps' PLYs and the main map's file under ``out``
    (all of the first sequence where there are several)."""
    out.mkdir(parents=True, exist_ok=True)
    first = replays[0]
    space = next(iter(first.maps.values())).label_space
    main = EXPERT if EXPERT in first.maps else next(iter(first.maps))
    files = {"metrics": "metrics.json"}
    if plots:
        ious = {m: [r["per_class"][n]["iou"] for n in space.names] for m, r in results["methods"].items()}
        plot_class_iou(ious, space.names, np.asarray(space.colors), out / "class_iou.png", title="per-class IoU")
        plot_confusion(np.asarray(results["methods"][main]["confusion"]), space.names, out / "confusion.png", title=f"{main}: confusion")
        # The first sequence's ground-truth points, coloured by the map's labels and by the
        # truth: only points of valid classes that the map covers (no ceiling hiding the room).
        points, raw = ground_truth[0].xyz, ground_truth[0].labels
        pred = predictions[main][0]
        truth = map_raw_labels(raw, space)
        shown = (pred >= 0) & (truth >= 0)
        if shown.any():
            try:
                for name, labels in (("render_prediction.png", pred), ("render_ground_truth.png", truth)):
                    render_labelled_map(points[shown], space.colorize(labels[shown]), out / name, voxel_size=0.03)
                    files[name[: -len(".png")]] = name
            except RuntimeError as exc:  # no EGL here: the numbers still stand
                results["render_error"] = str(exc)
        files.update({"class_iou": "class_iou.png", "confusion": "confusion.png"})
    for name, m in first.maps.items():
        export_ply(m, out / f"map_{name}.ply", color_by="label")
        files[f"map_{name}"] = f"map_{name}.ply"
    save_map(first.maps[main], out / "map.safetensors")
    files["map"] = "map.safetensors"
    results["files"] = files
    write_text_atomic(out / "metrics.json", json.dumps(results, indent=2))

