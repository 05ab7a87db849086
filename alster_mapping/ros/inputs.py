"""Inputs of the mapping node: image conversion, camera poses from TF or pose topics.

Everything here is duck-typed on message fields (no rclpy import), so the same code
handles rclpy messages, rosbags messages and test namespaces:

- ``ImageConverter``: colour / depth / label image messages (or raw images parsed by
  ``raw_image``) -> numpy, through ``core.image_codec``.
- ``stamp_to_ns``, ``transform_to_matrix``, ``pose_to_matrix``, ``pose_message_edge``:
  message fields -> nanoseconds and (4, 4) float64 rigid transforms.
- ``PoseSource``: a thread-safe ``TransformBuffer`` fed by /tf, /tf_static or a pose
  topic, with a lookup that waits (in the worker thread, never in a callback) up to a
  timeout for data at the image stamp.
- ``SkipFrame``: the reason a frame is skipped (counted in diagnostics by ``reason``).
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np

from ..core.geometry import pose_from_quaternion
from ..core.image_codec import (
    ENCODINGS,
    ImageEncodingError,
    color_to_rgb,
    depth_to_metres,
    image_to_array,
)
from ..core.tf_buffer import (
    DEFAULT_CACHE_NS,
    ExtrapolationError,
    FrameNotFound,
    InterpolationGapError,
    NotConnected,
    TransformBuffer,
    TransformError,
)

POSE_CHILD = "alster_mapping/pose_source"
"""Frame name under which pose-topic samples are stored (the pose's child frame)."""

COLOR_ENCODINGS = ("rgb8", "bgr8", "rgba8", "bgra8", "mono8", "8UC1")
DEPTH_ENCODINGS = ("16UC1", "mono16", "32FC1")
LABEL_ENCODINGS = ("mono8", "8UC1", "mono16", "16UC1")


class SkipFrame(Exception):
    """A frame cannot be mapped; ``reason`` is a short counter name (e.g. ``bad_encoding``)."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


def stamp_to_ns(stamp: Any) -> int:
    """``builtin_interfaces/Time`` (sec, nanosec) -> integer nanoseconds."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def _xyz(v: Any) -> np.ndarray:
    return np.array([float(v.x), float(v.y), float(v.z)])


def _quat_xyzw(q: Any) -> np.ndarray:
    return np.array([float(q.x), float(q.y), float(q.z), float(q.w)])


def _rigid(translation: np.ndarray, quaternion_xyzw: np.ndarray, what: str) -> np.ndarray:
    """(4, 4) float64 from a translation [m] and a quaternion, normalised; ValueError when unusable."""
    if not (np.isfinite(translation).all() and np.isfinite(quaternion_xyzw).all()):
        raise ValueError(f"{what} has non-finite values")
    norm = float(np.linalg.norm(quaternion_xyzw))
    # Publishers round quaternions; anything far from unit length is a bug on their side.
    if not 0.9 < norm < 1.1:
        raise ValueError(f"{what} has a quaternion of norm {norm:.3f} (expected 1)")
    return pose_from_quaternion(translation, quaternion_xyzw / norm)


def transform_to_matrix(transform: Any, what: str = "transform") -> np.ndarray:
    """``geometry_msgs/Transform`` (translation, rotation) -> (4, 4) float64 T_parent_child."""
    return _rigid(_xyz(transform.translation), _quat_xyzw(transform.rotation), what)


def pose_to_matrix(pose: Any, what: str = "pose") -> np.ndarray:
    """``geometry_msgs/Pose`` (position, orientation) -> (4, 4) float64 T_frame_body."""
    return _rigid(_xyz(pose.position), _quat_xyzw(pose.orientation), what)


def pose_message_edge(msg: Any, kind: str) -> tuple[str, np.ndarray, int]:
    """A pose-topic message as (parent frame, (4, 4) T_parent_posechild, stamp [ns]).

    kind: ``pose`` (geometry_msgs/PoseStamped), ``odometry`` (nav_msgs/Odometry: its
    pose.pose; the child_frame_id is the body) or ``transform``
    (geometry_msgs/TransformStamped). Raises ValueError for unusable values.
    """
    if kind == "pose":
        T = pose_to_matrix(msg.pose, "PoseStamped")
    elif kind == "odometry":
        T = pose_to_matrix(msg.pose.pose, "Odometry")
    elif kind == "transform":
        T = transform_to_matrix(msg.transform, "TransformStamped")
    else:
        raise ValueError(f"unknown pose message kind {kind!r}")
    return str(msg.header.frame_id), T, stamp_to_ns(msg.header.stamp)


class PoseSource:
    """A ``TransformBuffer`` shared by subscription callbacks (writers) and the worker (reader).

    cache_ns: history kept per dynamic edge [ns]. tolerance_ns: how far beyond the first
    or last sample of an edge a lookup may use the nearest sample instead of failing
    (poses are not extrapolated further; an image older or newer than that is skipped).
    max_gap_ns: samples further apart are not interpolated (None: no limit).
    """

    def __init__(self, cache_ns: int = DEFAULT_CACHE_NS, tolerance_ns: int = 0, max_gap_ns: int | None = None):
        self.buffer = TransformBuffer(cache_ns)
        self.tolerance_ns = int(tolerance_ns)
        self.max_gap_ns = max_gap_ns
        self._cond = threading.Condition()
        self.samples = 0

    def set_transform(self, parent: str, child: str, T: np.ndarray, stamp_ns: int, static: bool = False) -> None:
        """Store one sample (see ``TransformBuffer.set_transform``) and wake waiting lookups."""
        with self._cond:
            self.buffer.set_transform(parent, child, T, stamp_ns, static)
            self.samples += 1
            self._cond.notify_all()

    def add_transform(self, t: Any, static: bool = False) -> None:
        """Store one ``geometry_msgs/TransformStamped``; ValueError (or TransformError) when it is unusable."""
        T = transform_to_matrix(t.transform, f"transform {t.header.frame_id} -> {t.child_frame_id}")
        self.set_transform(t.header.frame_id, t.child_frame_id, T, stamp_to_ns(t.header.stamp), static)

    def clear(self) -> None:
        """Forget every sample (e.g. after the clock jumped back)."""
        with self._cond:
            self.buffer.clear()

    def lookup(self, target: str, source: str, stamp_ns: int, timeout_s: float) -> np.ndarray:
        """T_target_source (4, 4) at ``stamp_ns``, waiting up to ``timeout_s`` seconds for the data.

        Waiting blocks the calling thread (the worker): the pose for an image often arrives
        a little after the image. Raises ``SkipFrame`` with reason ``pose_unavailable``
        (unknown or unconnected frames), ``pose_extrapolation`` (no data close enough
        to the stamp) or ``pose_gap`` (the poses around the stamp are too far apart; new
        poses cannot close that gap, so this one does not wait).
        """
        deadline = time.monotonic() + max(0.0, timeout_s)
        with self._cond:
            while True:
                try:
                    return self.buffer.lookup(target, source, stamp_ns, self.tolerance_ns, self.max_gap_ns)
                except ExtrapolationError as exc:
                    error: SkipFrame = SkipFrame("pose_extrapolation", f"no pose at the image stamp: {exc}")
                except InterpolationGapError as exc:
                    raise SkipFrame("pose_gap", f"no pose at the image stamp: {exc}") from exc
                except (FrameNotFound, NotConnected) as exc:
                    error = SkipFrame("pose_unavailable", f"no pose: {exc}")
                except TransformError as exc:
                    error = SkipFrame("pose_unavailable", f"no pose: {exc}")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise error
                self._cond.wait(remaining)


def _check_layout(msg: Any, allowed: tuple[str, ...], what: str) -> None:
    """Cheap checks before decoding: a known encoding of the right kind and a consistent size."""
    encoding = str(msg.encoding)
    if encoding not in allowed:
        raise ImageEncodingError(f"{what} has encoding {encoding!r} (expected one of {', '.join(allowed)})")
    dtype, channels = ENCODINGS[encoding]
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height <= 0 or width <= 0 or step < width * channels * dtype.itemsize or len(msg.data) != step * height:
        raise ImageEncodingError(
            f"{what} {width}x{height} ({encoding}, step {step}) does not match its {len(msg.data)} data bytes"
        )


class ImageConverter:
    """Image messages (or ``raw_image.RawImage``) -> numpy arrays through ``core.image_codec``.

    colour (H, W, 3) uint8 RGB, depth (H, W) float32 metres (16UC1 / mono16 times
    ``depth_scale``; 32FC1 as is), labels (H, W) uint8 / uint16 raw ids. Errors raise
    ``ImageEncodingError``. cv_bridge is not used: the node receives images as serialized
    bytes and decodes their data in place, which cv_bridge cannot do from bytes.
    """

    backend = "numpy"

    def __init__(self, depth_scale: float = 0.001):
        self.depth_scale = float(depth_scale)

    def color(self, msg: Any) -> np.ndarray:
        """Colour message (rgb8, bgr8, rgba8, bgra8, mono8) -> (H, W, 3) uint8 RGB."""
        _check_layout(msg, COLOR_ENCODINGS, "colour image")
        return color_to_rgb(msg)

    def depth(self, msg: Any) -> np.ndarray:
        """Depth message (16UC1 / mono16 in units of ``depth_scale`` metres, 32FC1 metres) -> (H, W) float32 m."""
        _check_layout(msg, DEPTH_ENCODINGS, "depth image")
        return depth_to_metres(msg, self.depth_scale)

    def labels(self, msg: Any) -> np.ndarray:
        """Label image (mono8 / 8UC1 / mono16 / 16UC1 raw label ids) -> (H, W) uint8 or uint16."""
        _check_layout(msg, LABEL_ENCODINGS, "label image")
        return image_to_array(msg)
