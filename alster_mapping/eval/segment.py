"""``alster segment``: instances of a saved map with an instance model, written for people and tools.

Reads a map file, runs an ``instance_segmentation`` checkpoint (ASIS or BAN) over its
voxels (``pipeline.instance_segmentation``) and writes into the output folder:

* ``instances.ply``: the voxel centres coloured by instance (unassigned voxels grey), with
  the vertex properties ``label`` (class index) and ``instance``;
* ``objects.json``: the object list (id, class, score, centroid, extent, voxel count);
* ``metrics.json`` (with ground truth): semantic and instance scores of the voxels'
  predictions transferred to the ground-truth points within one voxel (mIoU as ScanNet;
  mCov, mWCov, mPrec, mRec; AP, AP50, AP25), and the stage times.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree

from ..core.atomic_file import write_text_atomic
from ..core.labels import LabelSpace
from ..core.samples import PointBlock
from ..data.map_samples import voxel_points
from ..map.export import write_point_ply
from ..map.map_file import load_map
from ..nets.checkpoint import load_checkpoint
from ..pipeline.instance_segmentation import InstanceSegmentationConfig, SceneInstances, instance_objects, segment_instances
from .instance_metrics import Prediction, average_precision, score_instances
from .metrics import SemanticScores, map_raw_labels

INSTANCE_TASK = "instance_segmentation"


def instance_colors(instance: np.ndarray) -> np.ndarray:
    """(N, 3) uint8: a fixed pseudo-random colour per instance id, grey for -1."""
    rng = np.random.default_rng(12345)
    palette = rng.integers(40, 256, (int(instance.max(initial=-1)) + 2, 3)).astype(np.uint8)
    colors = palette[np.clip(instance, 0, None)]
    colors[instance < 0] = 128
    return colors


def write_instances_ply(path: Path, xyz: np.ndarray, result: SceneInstances) -> None:
    """Binary PLY of the points coloured by instance, with ``label`` and ``instance`` properties."""
    labels, instances = result.semantic.astype(np.int32), result.instance.astype(np.int32)
    write_point_ply(path, xyz.astype(np.float32), instance_colors(result.instance), label=labels, instance=instances)


def score_against(truth: PointBlock, voxels: PointBlock, result: SceneInstances, label_space: LabelSpace) -> dict:
    """Semantic and instance scores on ``truth`` with each point given its nearest voxel's prediction."""
    _, nearest = cKDTree(voxels.xyz).query(truth.xyz)
    gt_semantic = map_raw_labels(truth.labels, label_space)
    gt_instance = np.where(truth.instances > 0, truth.instances, -1)
    pred_semantic = result.semantic[nearest]
    pred_instance = result.instance[nearest]
    semantic = SemanticScores.from_labels(gt_semantic, pred_semantic, label_space.num_classes).to_dict(label_space.names)
    instances = score_instances([(gt_semantic, gt_instance, pred_semantic, pred_instance)]).to_dict(list(label_space.names))
    confidence = result.confidence[nearest]
    predictions = []
    for obj in np.unique(pred_instance[pred_instance >= 0]):
        mask = pred_instance == obj
        predictions.append(Prediction(mask, int(np.bincount(pred_semantic[mask]).argmax()), float(confidence[mask].mean())))
    ap = average_precision([(gt_semantic, gt_instance, predictions)], label_space.num_classes)
    return {
        "semantic": {k: semantic[k] for k in ("miou", "miou_present", "macc", "oacc")},
        "instance": {k: instances[k] for k in ("mcov", "mwcov", "mprec", "mrec")},
        "ap": {k: ap[k] for k in ("ap", "ap50", "ap25")},
    }


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
    voxels = voxel_points(voxel_map, str(map_path))
    if len(voxels) == 0:
        raise ValueError(f"{map_path}: the map is empty, nothing to segment")
    result = segment_instances(model, voxels, config)
    objects = instance_objects(voxels.xyz, result, list(voxel_map.label_space.names))
    write_instances_ply(out / "instances.ply", voxels.xyz, result)
    write_text_atomic(out / "objects.json", json.dumps(objects, indent=2))
    summary = {
        "map": str(map_path),
        "checkpoint": str(checkpoint),
        "model": card["model"],
        "voxels": len(voxels),
        "objects": len(objects),
        "seconds": round(time.perf_counter() - start, 2),
        "stage_seconds": {k: round(v, 3) for k, v in result.timings.items()},
        "outputs": ["instances.ply", "objects.json"],
    }
    if truth is not None:
        summary["metrics"] = score_against(truth, voxels, result, voxel_map.label_space)
        summary["outputs"].append("metrics.json")
        write_text_atomic(out / "metrics.json", json.dumps(summary, indent=2))
    return summary
