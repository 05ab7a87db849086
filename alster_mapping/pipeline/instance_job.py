"""Instance segmentation of a live map in the background: the engine side of the node's
``~/segment_instances`` (ROS-free; ``ros/instance_service.py`` serves it).

``InstanceJobs.start`` snapshots the map (or the voxels whose floor-plan distance to a
point, the latest camera position, is within ``region_radius``) under the map's lock in
the caller's thread, so bad input is refused at once with a clear ``ValueError`` and the
map is never touched. One worker thread then runs the job:

1. load the instance model (ASIS or BAN; kept between jobs while the model, checkpoint
   and device stay the same), refusing a checkpoint of another model, task or label space;
2. segment the snapshot (``pipeline.instance_segmentation``), reporting progress; the
   voxels keep the map's own classes where it has one (``segmentation.semantics``);
3. build the object list (id, class, score, centroid, extent, voxels);
4. if the map's contents were replaced meanwhile (``~/clear_map``, ``~/load_map``:
   ``SemanticVoxelMap.generation``) the result is dropped and the status says why;
   otherwise the map's instance layer takes it (``assign_instances``: voxels evicted
   since are skipped, voxels added since have no instance).

One job runs at a time: a second ``start`` raises ``JobBusy`` naming the running job.
Mapping goes on meanwhile (the job holds the map's lock only to snapshot and to write the
ids); on a CPU the job's network competes with the mapper's for the cores.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..core.config import param, section
from ..map.voxel_map import SemanticVoxelMap, storable_instance_ids
from ..nets.checkpoint import load_checkpoint
from ..nets.shipped import shipped_instance_checkpoint
from .background_job import BackgroundJobs, JobStatus
from .instance_segmentation import InstanceSegmentationConfig, SceneInstances, instance_objects, map_voxels, segment_instances
from .map_region import MapSnapshot, snapshot_region

INSTANCE_MODELS = ("asis", "ban")
INSTANCE_TASK = "instance_segmentation"


@dataclass
class InstanceJobConfig:
    """``instances.*``: how ``~/segment_instances`` segments the map (read at each request)."""

    model: str = param("asis", "instance model: asis or ban", choices=INSTANCE_MODELS)
    checkpoint: str = param("", "its checkpoint ('' = the shipped models/MODEL_scannet20_synthetic.safetensors)")
    device: str = param("cpu", "torch device of the instance model (cpu, cuda, cuda:1, ...)")
    region_radius: float = param(
        0.0, "segment the voxels within this floor-plan distance of the latest camera position [m]; 0 = the whole map", min=0.0, max=1e4
    )
    min_voxels: int = param(200, "a map or region with fewer voxels is refused", min=1)
    segmentation: InstanceSegmentationConfig = section(InstanceSegmentationConfig)


@dataclass
class InstanceJobStatus(JobStatus):
    """``JobStatus`` plus objects: the object list (done only). stage_seconds: model,
    blocks, network, clustering, merging."""

    objects: list[dict] = field(default_factory=list)


@dataclass
class JobResult:
    """A finished job's output. xyz: (N, 3) float32 voxel centres [m]. instances: per voxel
    class, instance id (-1 none) and confidence."""

    job: int
    xyz: np.ndarray
    instances: SceneInstances
    objects: list[dict]


class InstanceJobs(BackgroundJobs):
    """Runs instance segmentation jobs on a map, one at a time, in a worker thread (see the
    module docstring). log: called with a line for each job's end (never raises)."""

    def __init__(self, log: Callable[[str], None] | None = None):
        super().__init__(InstanceJobStatus, "instance job", log)
        self._model: tuple[tuple, torch.nn.Module] | None = None  # (key, model) of the last request

    def start(self, voxel_map: SemanticVoxelMap, config: InstanceJobConfig, center: np.ndarray | None = None) -> InstanceJobStatus:
        """Snapshot ``voxel_map`` and start a job; returns its status (state running).
        center: (3,) the latest camera position [m] (needed when ``region_radius`` > 0).
        Raises JobBusy while a job runs and ValueError for bad input (nothing started)."""
        with self._lock:
            self.check_idle()
            snapshot = snapshot_region(voxel_map, center, config.region_radius, config.min_voxels)
            message = f"segmenting {len(snapshot.xyz)} voxels with {config.model}"
            return self.launch(message, len(snapshot.xyz), self._run_job, voxel_map, config, snapshot)

    def model(self, config: InstanceJobConfig, voxel_map: SemanticVoxelMap) -> torch.nn.Module:
        """The instance model ``config`` names, loaded once per (model, checkpoint, device).
        Raises ValueError (``CheckpointError``) for a missing file or a checkpoint of another
        model, task or label space."""
        path = Path(config.checkpoint).expanduser() if config.checkpoint else shipped_instance_checkpoint(config.model)
        key = (config.model, str(path), config.device, voxel_map.label_space.name)
        if self._model is None or self._model[0] != key:
            model, card = load_checkpoint(path, voxel_map.label_space, task=INSTANCE_TASK, device=config.device)
            if card["model"] != config.model:
                raise ValueError(f"{path} holds a {card['model']!r} model, but instances.model is {config.model!r}")
            self._model = (key, model.eval())  # one model: a changed parameter frees the old one
        return self._model[1]

    def _run_job(self, job: int, start: float, stages: dict, voxel_map: SemanticVoxelMap, config: InstanceJobConfig, snapshot: MapSnapshot) -> None:
        model = self.model(config, voxel_map)
        stages["model"] = time.perf_counter() - start
        points, map_labels = map_voxels(snapshot.xyz, snapshot.color, snapshot.label, snapshot.confidence, f"job {job}")
        instances = segment_instances(model, points, config.segmentation, self.progress, map_labels)
        stages.update(instances.timings)
        objects = instance_objects(snapshot.xyz, instances, list(voxel_map.label_space.names))
        with voxel_map.lock:
            if voxel_map.generation != snapshot.generation:
                self.finish("dropped", "the map was cleared or replaced while the job ran; the result was dropped", start, stages)
                return
            voxel_map.assign_instances(snapshot.keys, storable_instance_ids(instances.instance))
        self.publish_result(JobResult(job, snapshot.xyz, instances, objects), objects=objects)
        self.finish("done", f"{len(objects)} objects in {len(snapshot.xyz)} voxels", start, stages, progress=1.0)
