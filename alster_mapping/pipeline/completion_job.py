"""Scene completion of the latest keyframe with IMENet, in the background: the engine side of the
node's ``~/complete_scene`` (ROS-free; ``ros/completion_service.py`` serves it).

``CompletionJobs.start`` takes the newest keyframe of the store in the caller's thread (no
keyframe yet: refused at once with a ValueError), then one worker thread loads IMENet
(refusing a checkpoint of another kind of model; kept between jobs while the checkpoint and
device stay the same) and completes the volume in front of that keyframe's camera
(``pipeline.scene_completion``). A frame that gives no volume (the camera looks at the sky
or the floor straight down, its depth misses the volume, a non-finite pose) ends the job
``failed`` with the reason. Predicted voxels are a separate result: they never enter the map.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from ..core.config import param
from ..nets.shipped import shipped_imenet_checkpoint
from .background_job import BackgroundJobs, JobStatus
from .keyframes import Keyframe
from .scene_completion import SceneCompletion, complete_frame, completion_points, estimate_floor, load_completion_model


@dataclass
class CompletionJobConfig:
    """``completion.*``: how ``~/complete_scene`` completes the latest keyframe (read at each request)."""

    checkpoint: str = param("", "IMENet checkpoint ('' = the shipped models/imenet_ssc11_synthetic.safetensors)")
    device: str = param("cpu", "torch device of the model (cpu, cuda, cuda:1, ...)")
    iterations: int = param(0, "rounds of mutual refinement; 0 = the model's own (3)", min=0, max=10)


@dataclass
class CompletionJobStatus(JobStatus):
    """``JobStatus`` plus observed / predicted: occupied voxels on the measured surface and
    completed ones; floor_z: the floor height used [m]; keyframe_stamp_ns: the frame completed."""

    observed: int = 0
    predicted: int = 0
    floor_z: float = 0.0
    keyframe_stamp_ns: int = 0


@dataclass
class CompletionResult:
    """A finished job's output (``pipeline.scene_completion.SceneCompletion``) and its frame id."""

    job: int
    completion: SceneCompletion
    frame_id: str


class CompletionJobs(BackgroundJobs):
    """Runs completion jobs, one at a time, in a worker thread (see the module docstring).
    log: called with a line for each job's end (never raises)."""

    def __init__(self, log: Callable[[str], None] | None = None):
        super().__init__(CompletionJobStatus, "completion job", log)
        self._model: tuple[tuple, torch.nn.Module] | None = None

    def start(self, keyframes: list[Keyframe], config: CompletionJobConfig, floor_z: float | None = None) -> CompletionJobStatus:
        """Start completing the newest of ``keyframes``; floor_z: the map's floor height [m]
        (None: estimated from the keyframe). Raises JobBusy while a job runs and ValueError
        when there is no keyframe (nothing started)."""
        with self._lock:
            self.check_idle()
            if not keyframes:
                raise ValueError("no keyframe yet to complete (keyframes.enabled is off, or nothing was mapped since the map was cleared)")
            keyframe = keyframes[-1]
            message = f"completing the scene of the keyframe at {keyframe.stamp_ns / 1e9:.3f} s"
            return self.launch(message, 0, self._run_job, keyframe, config, floor_z)

    def model(self, config: CompletionJobConfig) -> torch.nn.Module:
        """IMENet as ``config`` names it, loaded once per (checkpoint, device). Raises ValueError
        (``CheckpointError``) for a missing file or a checkpoint of another kind of model."""
        path = Path(config.checkpoint).expanduser() if config.checkpoint else shipped_imenet_checkpoint()
        key = (str(path), config.device)
        if self._model is None or self._model[0] != key:
            model, _ = load_completion_model(path)
            self._model = (key, model.to(config.device).eval())
        return self._model[1]

    def _run_job(self, job: int, start: float, stages: dict, keyframe: Keyframe, config: CompletionJobConfig, floor_z: float | None) -> None:
        model = self.model(config)
        frame = keyframe.frame()
        if floor_z is None or not math.isfinite(floor_z):
            floor_z = estimate_floor(frame)
        result = complete_frame(model, frame, floor_z, iterations=config.iterations or None)
        stages["network"] = result.seconds
        _, _, _, observed = completion_points(result)
        counts = dict(observed=int(observed.sum()), predicted=int((~observed).sum()), floor_z=float(floor_z), keyframe_stamp_ns=int(frame.stamp_ns))
        self.publish_result(CompletionResult(job, result, frame.frame_id), voxels=int(result.labels.size), **counts)
        message = f"{counts['observed']} observed and {counts['predicted']} predicted voxels in front of the keyframe (floor at {floor_z:.2f} m)"
        self.finish("done", message, start, stages, progress=1.0)
