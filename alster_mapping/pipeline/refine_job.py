"""Semantic refinement of a live map from its keyframes with SAFNet, in the background: the
engine side of the node's ``~/refine_semantics`` (ROS-free; ``ros/refine_service.py``
serves it).

``RefineJobs.start`` snapshots the map (or the voxels within ``region_radius`` of the
latest camera position on the floor plan) and the keyframes under the map's lock in the
caller's thread, so bad input (no keyframes, too few voxels) is refused at once with a
``ValueError`` and the map is never touched. One worker thread then runs the job:

1. load SAFNet and its frozen 2D branch (the image encoder of an ALSTER checkpoint),
   refusing a checkpoint of another model, task or label space; both are kept between jobs
   while the checkpoints and device stay the same;
2. plan the chunks (``map_chunks.plan_chunks``: columns and their keyframes by coverage);
   columns no keyframe observes are skipped and counted, and when no keyframe observes any
   of them the job fails saying so;
3. back-project the planned keyframes' image features (``view_features``), then label
   every planned voxel by the majority of its chunks' votes (``map_chunks.label_map``);
4. if the map's contents were replaced meanwhile (``~/clear_map``, ``~/load_map``) the
   result is dropped and the status says why; otherwise the voted voxels take their new
   class, with the share of votes as confidence (``assign_labels``: voxels evicted since
   are skipped; the others keep their labels). Mapping continues to vote on them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..core.config import param, section
from ..map.voxel_map import SemanticVoxelMap
from ..nets.checkpoint import load_checkpoint
from ..nets.shipped import shipped_alster_checkpoint, shipped_safnet_checkpoint
from .background_job import BackgroundJobs, JobStatus
from .keyframes import Keyframe
from .map_chunks import ChunkConfig, MapPrior, label_map, map_floor, plan_chunks
from .map_region import MapSnapshot, snapshot_region
from .view_features import ViewFeatures, image_encoder_digest

REFINE_TASK = "point_semantics"


@dataclass
class RefineJobConfig:
    """``refine.*``: how ``~/refine_semantics`` relabels the map (read at each request)."""

    checkpoint: str = param("", "SAFNet checkpoint ('' = the shipped models/safnet_scannet20_synthetic.safetensors)")
    image_checkpoint: str = param(
        "", "ALSTER checkpoint whose 2D encoder gives SAFNet's image features ('' = the one SAFNet's card names, else the shipped model)"
    )
    device: str = param("cpu", "torch device of the models (cpu, cuda, cuda:1, ...)")
    region_radius: float = param(
        0.0, "relabel the voxels within this floor-plan distance of the latest camera position [m]; 0 = the whole map", min=0.0, max=1e4
    )
    min_voxels: int = param(200, "a map or region with fewer voxels is refused", min=1)
    chunks: ChunkConfig = section(ChunkConfig)


@dataclass
class RefineJobStatus(JobStatus):
    """``JobStatus`` plus relabelled: voxels written; changed: of those, how many changed
    class; chunks: chunks labelled; keyframes: keyframes used of those kept; unseen_voxels:
    voxels in columns no keyframe observes (left as they were). stage_seconds: model,
    plan, views, network, write."""

    relabelled: int = 0
    changed: int = 0
    chunks: int = 0
    keyframes: int = 0
    unseen_voxels: int = 0


@dataclass
class RefineResult:
    """A finished job's output. keys: (N, 3) int32 voxel keys written; labels: (N,) int64;
    confidence: (N,) float32 share of votes."""

    job: int
    keys: torch.Tensor
    labels: np.ndarray
    confidence: np.ndarray


class RefineJobs(BackgroundJobs):
    """Runs refinement jobs on a map, one at a time, in a worker thread (see the module
    docstring). log: called with a line for each job's end (never raises)."""

    def __init__(self, log: Callable[[str], None] | None = None):
        super().__init__(RefineJobStatus, "refine job", log)
        self._models: tuple[tuple, torch.nn.Module, ViewFeatures] | None = None

    def start(
        self, voxel_map: SemanticVoxelMap, keyframes: list[Keyframe], config: RefineJobConfig, center: np.ndarray | None = None
    ) -> RefineJobStatus:
        """Snapshot ``voxel_map`` and start a job relabelling it from ``keyframes`` (a snapshot
        of the store); returns its status (state running). center: (3,) the latest camera
        position [m] (needed when ``region_radius`` > 0). Raises JobBusy while a job runs and
        ValueError for bad input (nothing started)."""
        with self._lock:
            self.check_idle()
            if not keyframes:
                raise ValueError("no keyframes to refine from (keyframes.enabled is off, or nothing was mapped since the map was cleared)")
            snapshot = snapshot_region(voxel_map, center, config.region_radius, config.min_voxels, settings="refine")
            message = f"refining {len(snapshot.xyz)} voxels from {len(keyframes)} keyframes"
            return self.launch(message, len(snapshot.xyz), self._run_job, voxel_map, list(keyframes), config, snapshot)

    def models(self, config: RefineJobConfig, voxel_map: SemanticVoxelMap) -> tuple[torch.nn.Module, ViewFeatures]:
        """SAFNet and its image encoder as ``config`` names them, loaded once per
        (checkpoints, device). Raises ValueError (``CheckpointError``) for a missing file or
        a checkpoint of another model, task or label space."""
        path = Path(config.checkpoint).expanduser() if config.checkpoint else shipped_safnet_checkpoint()
        key = (str(path), config.image_checkpoint, config.device, voxel_map.label_space.name)
        if self._models is None or self._models[0] != key:
            model, card = load_checkpoint(path, voxel_map.label_space, task=REFINE_TASK, device=config.device)
            if card["model"] != "safnet":
                raise ValueError(f"{path} holds a {card['model']!r} model; ~/refine_semantics runs safnet")
            provenance = card.get("provenance", {})
            encoder_path = config.image_checkpoint or provenance.get("image_encoder", "")
            if not encoder_path or not Path(encoder_path).is_file():
                encoder_path = str(shipped_alster_checkpoint())  # the card's path is another machine's
            alster, _ = load_checkpoint(encoder_path, voxel_map.label_space, task="semantic_mapping", device=config.device)
            trained_on, digest = provenance.get("image_encoder_digest"), image_encoder_digest(encoder_path)
            if trained_on and trained_on != digest:
                raise ValueError(
                    f"{path} learnt on the image features of another 2D encoder (digest {trained_on}) than {encoder_path}'s "
                    f"({digest}); set refine.image_checkpoint to the ALSTER checkpoint it was trained with"
                )
            if alster.encoder2d.feature_dim != model.config.image_features:
                width = alster.encoder2d.feature_dim
                raise ValueError(f"{encoder_path}'s image features are {width} wide; SAFNet takes {model.config.image_features}")
            features = ViewFeatures(alster.encoder2d.fused(), alster.config.inputs, max_range=config.chunks.max_range)
            self._models = (key, model.eval(), features)  # one pair: a changed parameter frees the old one
        return self._models[1], self._models[2]

    def _run_job(
        self,
        job: int,
        start: float,
        stages: dict,
        voxel_map: SemanticVoxelMap,
        keyframes: list[Keyframe],
        config: RefineJobConfig,
        snapshot: MapSnapshot,
    ) -> None:
        clock = start

        def lap(name: str) -> None:
            nonlocal clock
            now = time.perf_counter()
            stages[name] = now - clock
            clock = now

        model, features = self.models(config, voxel_map)
        lap("model")
        plan = plan_chunks(snapshot.xyz, keyframes, config.chunks)
        unseen = int(sum(len(rows) for rows in plan.unseen))
        lap("plan")
        if not plan.columns:
            message = f"none of the {len(keyframes)} keyframes observes the {len(snapshot.xyz)} voxels; the map was left as it was"
            self.finish("failed", message, start, stages)
            return
        used = plan.keyframes
        self.update(keyframes=len(used), unseen_voxels=unseen)
        features.reset()  # the floor and up of this map's views, in the order they were kept
        views = {}
        for n, index in enumerate(used, 1):
            views[index] = features(keyframes[index].frame())
            self.progress(0.3 * n / len(used))
        lap("views")
        votes = label_map(
            model, snapshot.xyz, snapshot.color, plan, views, config.chunks, map_floor(snapshot.xyz),
            progress=lambda share: self.progress(0.3 + 0.7 * share), prior=MapPrior(snapshot.label, snapshot.confidence),
        )
        lap("network")
        voted = votes.votes.sum(1) > 0
        labels = votes.labels[voted]
        confidence = (votes.votes[voted].max(1) / votes.votes[voted].sum(1)).astype(np.float32)
        keys = snapshot.keys[torch.from_numpy(voted)]
        with voxel_map.lock:
            if voxel_map.generation != snapshot.generation:
                self.finish("dropped", "the map was cleared or replaced while the job ran; the result was dropped", start, stages)
                return
            written = voxel_map.assign_labels(keys, labels, confidence)
        lap("write")
        changed = int((labels != snapshot.label[voted]).sum())
        self.publish_result(RefineResult(job, keys, labels, confidence), relabelled=written, changed=changed, chunks=votes.chunks)
        skipped = f"; {unseen} voxels no keyframe observes kept their labels" if unseen else ""
        message = f"relabelled {written} voxels ({changed} changed class) from {len(used)} keyframes{skipped}"
        self.finish("done", message, start, stages, progress=1.0)
