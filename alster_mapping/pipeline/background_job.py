"""One offline model's jobs on a live map, one at a time, in a worker thread: what
``~/segment_instances`` (``instance_job``) and ``~/refine_semantics`` (``refine_job``)
share (ROS-free; the ``ros/`` services publish the status).

A family's job class snapshots what it needs under the map's lock in the caller's thread
(so bad input is refused at once with a ValueError and nothing starts), then calls
``launch`` with its worker function. The worker reports progress through ``progress``
(which raises ``JobCancelled`` once ``stop`` was called), stores its result with
``publish_result`` and ends with ``finish``; an exception it raises ends the job
``failed`` with its message, and the node goes on.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

STATES = ("idle", "running", "done", "failed", "dropped")


class JobBusy(RuntimeError):
    """A job is already running."""


class JobCancelled(Exception):
    """The job was stopped (the node shuts down)."""


@dataclass
class JobStatus:
    """What a job is doing. state: one of ``STATES``. progress: 0..1. voxels: voxels the
    job works on. seconds: wall time so far. stage_seconds: per stage. A family's status
    adds its own result fields."""

    job: int = 0
    state: str = "idle"
    progress: float = 0.0
    message: str = "no job has run"
    voxels: int = 0
    seconds: float = 0.0
    stage_seconds: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


class BackgroundJobs:
    """Runs one job at a time in a worker thread (see the module docstring).

    status_class: the family's ``JobStatus`` subclass. name: what the log lines call a job
    ("instance job"). log: called with a line for each job's end (never raises).
    """

    def __init__(self, status_class: type[JobStatus] = JobStatus, name: str = "job", log: Callable[[str], None] | None = None):
        self._status_class = status_class
        self._name = name
        self._log = log or (lambda line: None)
        self._lock = threading.Lock()
        self._status = status_class()
        self._result: Any = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._next_job = 1

    def status(self) -> JobStatus:
        """A copy of the current (or last) job's status."""
        with self._lock:
            return copy.deepcopy(self._status)

    def take_result(self) -> Any:
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
        """Cancel the running job (at its next progress report) and wait up to ``timeout`` seconds."""
        self._stopping.set()
        self.wait(timeout)

    # -- for the family's job class -----------------------------------------------------------

    def check_idle(self) -> None:
        """Raise ``JobBusy`` naming the running job (call with ``self._lock`` held)."""
        if self._status.state == "running":
            raise JobBusy(f"busy: job {self._status.job} is running ({100 * self._status.progress:.0f} % done)")

    def launch(self, message: str, voxels: int, work: Callable[..., None], *args: Any) -> JobStatus:
        """Start ``work(job, *args)`` in the worker thread as a new job; returns its status
        (state running). Call with ``self._lock`` held, after ``check_idle``."""
        job = self._next_job
        self._next_job += 1
        self._status = self._status_class(job, "running", 0.0, message, voxels)
        status = copy.deepcopy(self._status)
        self._thread = threading.Thread(target=self._run, args=(work, job, args), name=f"{self._name.replace(' ', '_')}_{job}", daemon=True)
        self._thread.start()
        return status

    def progress(self, share: float) -> None:
        """Report progress (0..1); raises ``JobCancelled`` once ``stop`` was called."""
        if self._stopping.is_set():
            raise JobCancelled
        self.update(progress=round(float(share), 3))

    def update(self, **changes: Any) -> None:
        """Set fields of the running job's status."""
        with self._lock:
            for key, value in changes.items():
                setattr(self._status, key, value)

    def publish_result(self, result: Any, **changes: Any) -> None:
        """Store the finished job's result for ``take_result`` (and status fields with it)."""
        with self._lock:
            self._result = result
            for key, value in changes.items():
                setattr(self._status, key, value)

    def finish(self, state: str, message: str, start: float, stages: dict, progress: float | None = None) -> None:
        """End the job in ``state`` with ``message``; logs one line."""
        changes = {"state": state, "message": message, "seconds": round(time.perf_counter() - start, 3)}
        changes["stage_seconds"] = {k: round(v, 3) for k, v in stages.items()}
        if progress is not None:
            changes["progress"] = progress
        self.update(**changes)
        self._log(f"{self._name} {self._status.job}: {state}: {message}")

    def _run(self, work: Callable[..., None], job: int, args: tuple) -> None:
        start = time.perf_counter()
        stages: dict[str, float] = {}
        try:
            work(job, start, stages, *args)
        except JobCancelled:
            self.finish("failed", "cancelled: the node is shutting down", start, stages)
        except Exception as exc:  # noqa: BLE001 - a bad checkpoint, out of memory, ...: reported, the node goes on
            self.finish("failed", f"{type(exc).__name__}: {exc}", start, stages)
