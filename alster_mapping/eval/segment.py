"""``alster segment``: instances of a saved map with an instance model, written for people and tools.

Reads a map file, runs an ``instance_segmentation`` checkpoint (ASIS or BAN) over its
voxels (``pipeline.instance_segmentation``; the voxels keep the map's own classes where
it has one unless ``semantics = model``) and writes into the output folder:

* ``map.safetensors``: the map with its instance layer filled (per-voxel instance ids);
* ``instances.ply``: the voxel centres coloured by instance (unassigned voxels grey), with
  the vertex properties ``label`` (class index) and ``instance``;
* ``objects.json``: the object list (id, class, score, centroid, box center and extent,
  voxel count);
* ``instances.png``: an oblique render of the voxels coloured by instance;
* ``metrics.json`` (with ground truth): semantic and instance scores of the voxels'
  predictions transferred to the ground-truth points within one voxel, the share of
  ground truth the map covers (uncovered points are not scored) (mIoU as ScanNet;
  mCov, mWCov, mPrec, mRec; AP, AP50, AP25), and the stage times.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.spatial import cKDTree

from ..core.atomic_file import write_text_atomic
from ..core.geometry import voxel_keys
from ..core.labels import LabelSpace
from ..core.samples import PointBlock
from ..map.export import render_points_png, write_point_ply
from ..map.map_file import load_map, save_map
from ..map.voxel_map import storable_instance_ids
from ..nets.checkpoint import load_checkpoint
from ..pipeline.instance_job import INSTANCE_TASK
from ..pipeline.instance_segmentation import (
    InstanceSegmentationConfig,
    SceneInstances,
    instance_colors,
    instance_objects,
    map_voxels,
    segment_instances,
)
from .instance_metrics import Prediction, average_precision, scannet_instance_classes, score_instances
from .metrics import SemanticScores, map_raw_labels


def write_instances_ply(path: Path, xyz: np.ndarray, result: SceneInstances) -> None:
    """Binary PLY of the points coloured by instance, with ``label`` and ``instance`` properties."""
    labels, instances = result.semantic.astype(np.int32), result.instance.astype(np.int32)
    write_point_ply(path, xyz.astype(np.float32), instance_colors(result.instance), label=labels, instance=instances)


def render_instances(path: Path, xyz: np.ndarray, result: SceneInstances, voxel_size: float) -> str | None:
    """An oblique headless render of the voxels coloured by instance (grey: none) to ``path``.
    The top 0.3 m of a room taller than 2 m (the ceiling, which hides the room from above)
    is left out. Returns None, or why nothing was rendered (no rendering context)."""
    keep = np.ones(len(xyz), bool)
    if np.ptp(xyz[:, 2]) > 2.0:
        keep = xyz[:, 2] < xyz[:, 2].max() - 0.3
    try:
        render_points_png(xyz[keep], instance_colors(result.instance[keep]), path, voxel_size)
    except RuntimeError as exc:
        return str(exc)
    return None


@dataclass
class ScoredScene:
    """One scene's covered ground truth and the prediction transferred to it: (M,) class
    indices (-1 = ignored) and instance ids (-1 = none), the scored instances, and how many
    ground-truth points there are in all (covered or not)."""

    gt_semantic: np.ndarray
    gt_instance: np.ndarray
    pred_semantic: np.ndarray
    pred_instance: np.ndarray
    predictions: list[Prediction]
    truth_points: int


def transfer_to_truth(truth: PointBlock, voxels: PointBlock, result: SceneInstances, label_space: LabelSpace, reach: float) -> ScoredScene:
    """Each ground-truth point within ``reach`` [m] (one voxel edge) of a voxel takes its
    nearest voxel's prediction; points the map did not cover are left out, as ``alster
    eval`` does. An instance's score is its points' mean confidence."""
    distance, nearest = cKDTree(voxels.xyz).query(truth.xyz, distance_upper_bound=reach)
    covered = np.isfinite(distance)
    nearest = nearest[covered]
    pred_semantic = result.semantic[nearest]
    pred_instance = result.instance[nearest]
    confidence = result.confidence[nearest]
    predictions = []
    for obj in np.unique(pred_instance[pred_instance >= 0]):
        mask = pred_instance == obj
        predictions.append(Prediction(mask, int(np.bincount(pred_semantic[mask]).argmax()), float(confidence[mask].mean())))
    gt_instance = np.where(truth.instances[covered] > 0, truth.instances[covered], -1)
    gt_semantic = map_raw_labels(truth.labels[covered], label_space)
    return ScoredScene(gt_semantic, gt_instance, pred_semantic, pred_instance, predictions, len(truth))


def score_scenes(scenes: list[ScoredScene], label_space: LabelSpace) -> dict:
    """Semantic (pooled confusion), instance (ASIS eq. 7-9, pooled over scenes) and ScanNet AP
    (its 18 object classes) scores, and the share of ground-truth points covered."""
    gt = np.concatenate([scene.gt_semantic for scene in scenes])
    pred = np.concatenate([scene.pred_semantic for scene in scenes])
    semantic = SemanticScores.from_labels(gt, pred, label_space.num_classes).to_dict(label_space.names)
    cases = [(sc.gt_semantic, sc.gt_instance, sc.pred_semantic, sc.pred_instance) for sc in scenes]
    instances = score_instances(cases).to_dict(list(label_space.names))
    ap_cases = [(sc.gt_semantic, sc.gt_instance, sc.predictions) for sc in scenes]
    ap = average_precision(ap_cases, label_space.num_classes, classes=scannet_instance_classes(list(label_space.names)))
    return {
        "coverage": len(gt) / max(sum(sc.truth_points for sc in scenes), 1),
        "semantic": {k: semantic[k] for k in ("miou", "miou_present", "macc", "oacc")},
        "instance": {k: instances[k] for k in ("mcov", "mwcov", "mprec", "mrec")},
        "ap": {k: ap[k] for k in ("ap", "ap50", "ap25")},
        "instance_per_class": instances["per_class"],
    }


def score_against(truth: PointBlock, voxels: PointBlock, result: SceneInstances, label_space: LabelSpace, reach: float) -> dict:
    """Semantic and instance scores on the points of ``truth`` the voxels cover (``transfer_to_truth``)."""
    return score_scenes([transfer_to_truth(truth, voxels, result, label_space, reach)], label_space)


def segment_map(
    map_path: str | Path,
    checkpoint: str | Path,
    out: str | Path,
    truth: PointBlock | None = None,
    config: InstanceSegmentationConfig | None = None,
) -> dict:
    """Segment the map file ``map_path`` with ``checkpoint`` into ``out`` (see the module
    docstring); ``truth``: ground-truth points for ``metrics.json``. Returns the summary.
    Raises ValueError (``CheckpointError``, ``MapFileError``) on unusable inputs."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    voxel_map = load_map(map_path)
    model, card = load_checkpoint(checkpoint, voxel_map.label_space, task=INSTANCE_TASK)
    arrays = voxel_map.to_arrays()
    if len(arrays) == 0:
        raise ValueError(f"{map_path}: the map is empty, nothing to segment")
    voxels, map_labels = map_voxels(arrays.xyz, arrays.color, arrays.label_index, arrays.confidence, str(map_path))
    result = segment_instances(model, voxels, config, map_labels=map_labels)
    objects = instance_objects(voxels.xyz, result, list(voxel_map.label_space.names))
    write_instances_ply(out / "instances.ply", voxels.xyz, result)
    write_text_atomic(out / "objects.json", json.dumps(objects, indent=2))
    # The map with its instance layer filled (a sequence's map is replaced by it).
    keys = voxel_keys(torch.from_numpy(voxels.xyz), voxel_map.voxel_size)
    voxel_map.assign_instances(keys, storable_instance_ids(result.instance))
    save_map(voxel_map, out / "map.safetensors")
    rendered = render_instances(out / "instances.png", voxels.xyz, result, voxel_map.voxel_size)
    summary = {
        "map": str(map_path),
        "checkpoint": str(checkpoint),
        "model": card["model"],
        "voxels": len(voxels),
        "objects": len(objects),
        "seconds": round(time.perf_counter() - start, 2),
        "stage_seconds": {k: round(v, 3) for k, v in result.timings.items()},
        "outputs": ["map.safetensors", "instances.ply", "objects.json"] + (["instances.png"] if rendered is None else []),
    }
    if rendered is not None:
        summary["render_skipped"] = rendered
    if truth is not None:
        summary["metrics"] = score_against(truth, voxels, result, voxel_map.label_space, voxel_map.voxel_size)
        summary["outputs"].append("metrics.json")
        write_text_atomic(out / "metrics.json", json.dumps(summary, indent=2))
    return summary
