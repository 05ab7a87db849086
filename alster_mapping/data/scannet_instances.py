"""Instance ids of a ScanNet scene's labelled mesh, from ScanNet's own annotation files.

ScanNet annotates instances on the over-segmented low-resolution mesh (the one whose
vertices ``<scene>_vh_clean_2.labels.ply`` holds, in the same order):

* ``<scene>_vh_clean_2.0.010000.segs.json``: ``{"segIndices": [segment of each vertex]}``;
* ``<scene>.aggregation.json``: ``{"segGroups": [{"objectId": k, "label": name,
  "segments": [segment, ...]}, ...]}``, one group per annotated object.

A vertex's instance id here is its group's ``objectId + 1``; 0 = in no group.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ..core.atomic_file import write_text_atomic

SEGS_SUFFIX = "_vh_clean_2.0.010000.segs.json"
AGGREGATION_SUFFIX = ".aggregation.json"


class ScanNetInstanceError(ValueError):
    """The instance annotation files are unreadable or do not fit the mesh."""


def instance_files(scene_dir: str | os.PathLike, scene: str) -> tuple[Path, Path]:
    """(segments file, aggregation file) of ``scene`` inside ``scene_dir``."""
    root = Path(scene_dir)
    return root / f"{scene}{SEGS_SUFFIX}", root / f"{scene}{AGGREGATION_SUFFIX}"


def read_instances(segs_path: str | os.PathLike, aggregation_path: str | os.PathLike, num_vertices: int) -> np.ndarray:
    """(num_vertices,) int64 instance ids (objectId + 1; 0 = none) of the labelled mesh.

    Raises ScanNetInstanceError naming the file when it is unreadable, malformed, or its
    segment list does not have one entry per mesh vertex.
    """
    try:
        segments = np.asarray(json.loads(Path(segs_path).read_text())["segIndices"], dtype=np.int64)
        groups = json.loads(Path(aggregation_path).read_text())["segGroups"]
        pairs = [(int(group["objectId"]), [int(s) for s in group["segments"]]) for group in groups]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ScanNetInstanceError(f"cannot read instances from {segs_path} / {aggregation_path}: {exc}") from exc
    if segments.shape != (num_vertices,):
        raise ScanNetInstanceError(f"{segs_path}: {segments.size} segment indices for a mesh of {num_vertices} vertices")
    instance_of_segment: dict[int, int] = {}
    for object_id, group_segments in pairs:
        if object_id < 0:
            raise ScanNetInstanceError(f"{aggregation_path}: negative objectId {object_id}")
        for segment in group_segments:
            instance_of_segment[segment] = object_id + 1
    if not instance_of_segment:
        return np.zeros(num_vertices, np.int64)
    keys = np.fromiter(instance_of_segment.keys(), np.int64)
    values = np.fromiter(instance_of_segment.values(), np.int64)
    order = np.argsort(keys)
    keys, values = keys[order], values[order]
    position = np.clip(np.searchsorted(keys, segments), 0, len(keys) - 1)
    return np.where(keys[position] == segments, values[position], 0)


def write_instances(scene_dir: str | os.PathLike, scene: str, instances: np.ndarray, labels: np.ndarray) -> None:
    """Write ``instances`` (N,) ids (0 = none) as ScanNet's segment and aggregation files,
    one segment per instance; each group's label is the raw label id of its first vertex."""
    instances = np.asarray(instances, dtype=np.int64)
    segs_path, aggregation_path = instance_files(scene_dir, scene)
    groups = []
    for instance in np.unique(instances[instances > 0]):
        first = int(np.flatnonzero(instances == instance)[0])
        groups.append({"id": int(instance) - 1, "objectId": int(instance) - 1, "label": str(int(labels[first])), "segments": [int(instance)]})
    write_text_atomic(segs_path, json.dumps({"sceneId": scene, "segIndices": instances.tolist()}))
    write_text_atomic(aggregation_path, json.dumps({"sceneId": scene, "segGroups": groups}))
