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

import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..core.config import param, section
from ..core.geometry import voxel_centers
from ..map.voxel_map import SemanticVoxelMap, storable_instance_ids
from ..nets.checkpoint import load_checkpoint
from ..nets.shipped import shipped_instance_checkpoint
from .instance_segmentation import InstanceSegmentationConfig, SceneInstances, instance_objects, map_voxels, segment_instances

INSTANCE_MODELS = ("asis", "ban")
INSTANCE_TASK = "instance_segmentation"
STATES = ("idle", "running", "done", "failed", "dropped")


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


class JobBusy(RuntimeError):
    """A job is already running."""


class JobCancelled(Exception):
    """The job was stopped (the node shuts down)."""


@dataclass
class JobStatus:
    """What a job is doing. state: idle, running, done, failed or dropped. progress: 0..1.
    voxels: voxels segmented. objects: the object list (done only). seconds: wall time so
    far. stage_seconds: per stage (model, blocks, network, clustering, merging)."""

    job: int = 0
    state: str = "idle"
    progress: float = 0.0
    message: str = "no job has run"
    voxels: int = 0
    objects: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    stage_seconds: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class JobResult:
    """A finished job's output. xyz: (N, 3) float32 voxel centres [m]. instances: per voxel
    class, instance id (-1 none) and confidence."""

    job: int
    xyz: np.ndarray
    instances: SceneInstances
    objects: list[dict]


@dataclass
class _Snapshot:
    keys: torch.Tensor
    xyz: np.ndarray
    color: np.ndarray
    label: np.ndarray  # (N,) the map's class index, -1 unknown
    confidence: np.ndarray
    generation: int


def snapshot_region(voxel_map: SemanticVoxelMap, center: np.ndarray | None, radius: float, min_voxels: int) -> _Snapshot:
    """The map's voxels (all, or within ``radius`` m of ``center`` (3,) on the floor plan).
    Raises ValueError when fewer than ``min_voxels`` remain or none has a colour."""
    with voxel_map.lock:
        keys, rows = voxel_map.items()
        data = voxel_map.read(rows)
        generation = voxel_map.generation
    color, label = data.color.cpu().numpy(), data.label.to(torch.int64).cpu().numpy()
    confidence = data.confidence.float().cpu().numpy()
    xyz = voxel_centers(keys, voxel_map.voxel_size).cpu().numpy()
    where = "the map"
    if radius > 0:
        if center is None:
            raise ValueError("instances.region_radius is set but no camera pose has been received yet")
        center = np.asarray(center, float)
        if center.shape != (3,) or not np.isfinite(center).all():
            raise ValueError(f"the region's centre must be 3 finite coordinates, got {center!r}")
        inside = np.linalg.norm(xyz[:, :2] - center[:2], axis=1) <= radius
        keys, xyz, color = keys[torch.from_numpy(inside)], xyz[inside], color[inside]
        label, confidence = label[inside], confidence[inside]
        where = f"the region within {radius:g} m of ({center[0]:.2f}, {center[1]:.2f})"
    if len(xyz) < min_voxels:
        raise ValueError(f"{where} has {len(xyz)} voxels; at least {min_voxels} are needed (instances.min_voxels)")
    if not color.any():
        raise ValueError(f"the {len(xyz)} voxels of {where} carry no colour (all black): instance models need colour")
    return _Snapshot(keys, xyz, color, label, confidence, generation)


class InstanceJobs:
    """Runs instance segmentation jobs on a map, one at a time, in a worker thread (see the
    module docstring). log: called with a line for each job's end (never raises)."""

    def __init__(self, log: Callable[[str], None] | None = None):
        self._log = log or (lambda line: None)
        self._lock = threading.Lock()
        self._status = JobStatus()
        self._result: JobResult | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._model: tuple[tuple, torch.nn.Module] | None = None  # (key, model) of the last request
        self._next_job = 1

    # -- requests ---------------------------------------------------------------------------

    def start(self, voxel_map: SemanticVoxelMap, config: InstanceJobConfig, center: np.ndarray | None = None) -> JobStatus:
        """Snapshot ``voxel_map`` and start a job; returns its status (state running).
        center: (3,) the latest camera position [m] (needed when ``region_radius`` > 0).
        Raises JobBusy while a job runs and ValueError for bad input (nothing started)."""
        with self._lock:
            if self._status.state == "running":
                raise JobBusy(f"busy: job {self._status.job} is running ({100 * self._status.progress:.0f} % done)")
            snapshot = snapshot_region(voxel_map, center, config.region_radius, config.min_voxels)
            job = self._next_job
            self._next_job += 1
            self._status = JobStatus(job, "running", 0.0, f"segmenting {len(snapshot.xyz)} voxels with {config.model}", len(snapshot.xyz))
            status = JobStatus(**self._status.to_dict())
        self._thread = threading.Thread(target=self._run, args=(job, voxel_map, config, snapshot), name=f"instance_job_{job}", daemon=True)
        self._thread.start()
        return status

    def status(self) -> JobStatus:
        """A copy of the current (or last) job's status."""
        with self._lock:
            return JobStatus(**self._status.to_dict())

    def take_result(self) -> JobResult | None:
        """The last finished job's result, once (None when there is no new one)."""
        with self._lock:
            result, self._result = self._result, None
            return result

    def wait(self, timeout: float | None = None) -> JobStatus:
        """Wait for the running job (if any) to end; returns the status."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return self.status()

    def stop(self, timeout: float = 10.0) -> None:
        """Cancel the running job (at its next batch) and wait up to ``timeout`` seconds."""
        self._stopping.set()
        self.wait(timeout)

    # -- the worker -------------------------------------------------------------------------

    def _update(self, **changes) -> None:
        with self._lock:
            for key, value in changes.items():
                setattr(self._status, key, value)

    def _progress(self, share: float) -> None:
        if self._stopping.is_set():
            raise JobCancelled
        self._update(progress=round(float(share), 3))

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

    def _run(self, job: int, voxel_map: SemanticVoxelMap, config: InstanceJobConfig, snapshot: _Snapshot) -> None:
        start = time.perf_counter()
        stages: dict[str, float] = {}
        try:
            model = self.model(config, voxel_map)
            stages["model"] = time.perf_counter() - start
            points, map_labels = map_voxels(snapshot.xyz, snapshot.color, snapshot.label, snapshot.confidence, f"job {job}")
            instances = segment_instances(model, points, config.segmentation, self._progress, map_labels)
            stages.update(instances.timings)
            objects = instance_objects(snapshot.xyz, instances, list(voxel_map.label_space.names))
            with voxel_map.lock:
                if voxel_map.generation != snapshot.generation:
                    self._finish("dropped", "the map was cleared or replaced while the job ran; the result was dropped", start, stages)
                    return
                voxel_map.assign_instances(snapshot.keys, storable_instance_ids(instances.instance))
            result = JobResult(job, snapshot.xyz, instances, objects)
            with self._lock:
                self._result = result
                self._status.objects = objects
            self._finish("done", f"{len(objects)} objects in {len(snapshot.xyz)} voxels", start, stages, progress=1.0)
        except JobCancelled:
            self._finish("failed", "cancelled: the node is shutting down", start, stages)
        except Exception as exc:  # noqa: BLE001 - a bad checkpoint, out of memory, ...: reported, the node goes on
            self._finish("failed", f"{type(exc).__name__}: {exc}", start, stages)

    def _finish(self, state: str, message: str, start: float, stages: dict, progress: float | None = None) -> None:
        changes = {"state": state, "message": message, "seconds": round(time.perf_counter() - start, 3)}
        changes["stage_seconds"] = {k: round(v, 3) for k, v in stages.items()}
        if progress is not None:
            changes["progress"] = progress
        self._update(**changes)
        self._log(f"instance job {self._status.job}: {state}: {message}")
