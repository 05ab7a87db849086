"""Conversions between ROS ``sensor_msgs`` image / camera-info fields and numpy, plus image files.

Everything is duck-typed on the message fields (``height``, ``width``, ``encoding``,
``is_bigendian``, ``step``, ``data``; ``k``, ``width``, ``height`` for CameraInfo), so
rosbags message objects, rclpy message objects and plain namespaces all work; nothing
here imports rclpy.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .atomic_file import atomic_path
from .camera import CameraIntrinsics

# encoding -> (numpy base dtype, channels)
ENCODINGS: dict[str, tuple[np.dtype, int]] = {
    "rgb8": (np.dtype(np.uint8), 3),
    "bgr8": (np.dtype(np.uint8), 3),
    "rgba8": (np.dtype(np.uint8), 4),
    "bgra8": (np.dtype(np.uint8), 4),
    "mono8": (np.dtype(np.uint8), 1),
    "8UC1": (np.dtype(np.uint8), 1),
    "mono16": (np.dtype(np.uint16), 1),
    "16UC1": (np.dtype(np.uint16), 1),
    "32FC1": (np.dtype(np.float32), 1),
}


class ImageEncodingError(ValueError):
    """An image message cannot be converted: unknown encoding, wrong size or step."""


class CameraInfoError(ValueError):
    """A CameraInfo message does not describe a usable pinhole camera."""


def _raw_bytes(data: Any) -> np.ndarray:
    """The message's data field as a flat uint8 array (no copy where possible)."""
    if isinstance(data, np.ndarray):
        if data.dtype != np.uint8:
            raise ImageEncodingError(f"image data must be bytes / uint8, got an array of {data.dtype}")
        return data.reshape(-1)
    try:
        return np.frombuffer(data, dtype=np.uint8)
    except TypeError:  # a plain list of ints (rclpy accepts those too)
        return np.asarray(data, dtype=np.uint8).reshape(-1)


def image_to_array(msg: Any) -> np.ndarray:
    """Decode an image message into a numpy array in native byte order.

    Returns (H, W, C) for multi-channel encodings (channel order as encoded) and (H, W)
    for single-channel ones: uint8 for *8 encodings, uint16 for mono16 / 16UC1, float32
    for 32FC1. Row padding (``step`` > W * C * itemsize) is removed. Raises
    ImageEncodingError for unknown encodings, an empty image, a too-small step, or a
    data length other than step * H.
    """
    encoding = str(msg.encoding)
    if encoding not in ENCODINGS:
        raise ImageEncodingError(f"unsupported image encoding {encoding!r} (supported: {', '.join(ENCODINGS)})")
    dtype, channels = ENCODINGS[encoding]
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height <= 0 or width <= 0:
        raise ImageEncodingError(f"{encoding} image has empty size {width}x{height}")
    row_bytes = width * channels * dtype.itemsize
    if step < row_bytes:
        raise ImageEncodingError(f"{encoding} image {width}x{height}: step {step} is less than a row ({row_bytes} bytes)")
    raw = _raw_bytes(msg.data)
    if raw.size != step * height:
        raise ImageEncodingError(
            f"{encoding} image {width}x{height} with step {step} needs {step * height} bytes, got {raw.size}"
        )
    rows = raw.reshape(height, step)[:, :row_bytes]
    wire = dtype.newbyteorder(">" if msg.is_bigendian else "<")
    array = np.ascontiguousarray(rows).view(wire).astype(dtype, copy=True)
    return array.reshape(height, width, channels) if channels > 1 else array.reshape(height, width)


def color_to_rgb(msg: Any) -> np.ndarray:
    """Colour image message -> (H, W, 3) uint8 RGB.

    Accepts rgb8, bgr8, rgba8, bgra8 (alpha dropped) and mono8 / 8UC1 (grey replicated
    to three channels); other encodings raise ImageEncodingError.
    """
    encoding = str(msg.encoding)
    if encoding not in ("rgb8", "bgr8", "rgba8", "bgra8", "mono8", "8UC1"):
        raise ImageEncodingError(f"{encoding!r} is not a colour encoding (expected rgb8, bgr8, rgba8, bgra8 or mono8)")
    array = image_to_array(msg)
    if array.ndim == 2:
        return np.repeat(array[:, :, None], 3, axis=2)
    if encoding.startswith("bgr"):
        return np.ascontiguousarray(array[:, :, 2::-1])
    return np.ascontiguousarray(array[:, :, :3])


def depth_to_metres(msg: Any, depth_scale: float = 0.001) -> np.ndarray:
    """Depth image message -> (H, W) float32 metres along the optical axis.

    16UC1 / mono16 values are multiplied by ``depth_scale`` (metres per unit; 0.001 for
    the usual millimetres), so 0 stays 0 (no return). 32FC1 is already in metres and is
    returned as is, NaN / inf included (``RGBDFrame`` treats them as invalid). Other
    encodings raise ImageEncodingError.
    """
    if not (np.isfinite(depth_scale) and depth_scale > 0):
        raise ValueError(f"depth_scale must be positive and finite, got {depth_scale}")
    encoding = str(msg.encoding)
    if encoding not in ("16UC1", "mono16", "32FC1"):
        raise ImageEncodingError(f"{encoding!r} is not a depth encoding (expected 16UC1, mono16 or 32FC1)")
    array = image_to_array(msg)
    if encoding == "32FC1":
        return array
    return (array.astype(np.float32) * np.float32(depth_scale)).astype(np.float32)


def array_to_image_fields(array: np.ndarray, encoding: str) -> dict[str, Any]:
    """Encode an array as image message fields: dict(height, width, encoding, is_bigendian, step, data).

    array: (H, W) or (H, W, C) with the dtype and channel count of ``encoding`` (uint8
    for *8, uint16 for mono16 / 16UC1, float32 for 32FC1). ``data`` is a flat
    (step * H,) uint8 numpy array in native byte order with no row padding (pass
    ``bytes(data)`` or ``data.tolist()`` where a consumer needs another type).
    """
    if encoding not in ENCODINGS:
        raise ImageEncodingError(f"unsupported image encoding {encoding!r} (supported: {', '.join(ENCODINGS)})")
    dtype, channels = ENCODINGS[encoding]
    array = np.asarray(array)
    if array.ndim == 3 and channels == 1 and array.shape[2] == 1:
        array = array[:, :, 0]
    expected_ndim = 2 if channels == 1 else 3
    if array.ndim != expected_ndim or (channels > 1 and array.shape[2] != channels):
        raise ImageEncodingError(f"{encoding} needs an array of {channels} channel(s), got shape {array.shape}")
    if array.dtype != dtype:
        raise ImageEncodingError(f"{encoding} needs {dtype} data, got {array.dtype}")
    height, width = array.shape[:2]
    if height == 0 or width == 0:
        raise ImageEncodingError(f"cannot encode an empty {width}x{height} image")
    native = np.ascontiguousarray(array, dtype=dtype.newbyteorder("="))
    return {
        "height": int(height),
        "width": int(width),
        "encoding": encoding,
        "is_bigendian": int(sys.byteorder == "big"),
        "step": int(width * channels * dtype.itemsize),
        "data": native.view(np.uint8).reshape(-1).copy(),
    }


def intrinsics_from_camera_info(msg: Any) -> CameraIntrinsics:
    """CameraInfo message -> ``CameraIntrinsics`` (K row-major 3x3 in pixels, width x height pixels).

    Distortion (``d``) is ignored: images must be rectified (or their distortion
    small) for the pinhole model to hold. Raises CameraInfoError for a missing or
    non-finite K, zero focal lengths (an uncalibrated camera publishes all zeros),
    skew, or a zero image size.
    """
    k = getattr(msg, "k", None)
    if k is None:
        k = getattr(msg, "K", None)
    if k is None:
        raise CameraInfoError("camera info has no K matrix")
    K = np.asarray(k, dtype=np.float64).reshape(-1)
    if K.size != 9:
        raise CameraInfoError(f"camera info K must have 9 entries, got {K.size}")
    K = K.reshape(3, 3)
    width, height = int(msg.width), int(msg.height)
    if width <= 0 or height <= 0:
        raise CameraInfoError(f"camera info has image size {width}x{height}")
    if not np.isfinite(K).all():
        raise CameraInfoError(f"camera info K has non-finite entries: {K.tolist()}")
    if K[0, 0] <= 0 or K[1, 1] <= 0:
        raise CameraInfoError(f"camera info has non-positive focal lengths fx={K[0, 0]}, fy={K[1, 1]} (uncalibrated camera?)")
    try:
        return CameraIntrinsics.from_matrix(K, width, height)
    except ValueError as exc:
        raise CameraInfoError(f"camera info: {exc}") from exc


def camera_info_fields(intrinsics: CameraIntrinsics) -> dict[str, Any]:
    """CameraInfo fields for an undistorted pinhole camera: dict(height, width, distortion_model, d, k, r, p).

    d: (5,) zeros (plumb_bob); k: (9,) row-major K; r: (9,) identity; p: (12,) [K | 0],
    all float64 numpy arrays.
    """
    P = np.zeros((3, 4))
    P[:, :3] = intrinsics.K
    return {
        "height": intrinsics.height,
        "width": intrinsics.width,
        "distortion_model": "plumb_bob",
        "d": np.zeros(5),
        "k": intrinsics.K.reshape(-1),
        "r": np.eye(3).reshape(-1),
        "p": P.reshape(-1),
    }


# ---------------------------------------------------------------------------
# Image files (PNG / JPEG) shared by the dataset readers and writers
# ---------------------------------------------------------------------------


def read_image_file(path: str | os.PathLike) -> tuple[np.ndarray, str]:
    """Read an image file fully: returns (array, PIL mode).

    array: (H, W) or (H, W, C) as PIL decodes it; 16-bit greyscale PNGs come back as
    uint16 (whatever PIL's mode for them). Raises ValueError naming the file when it
    is missing, truncated or not an image.
    """
    path = Path(path)
    try:
        with Image.open(path) as image:
            mode = image.mode
            array = np.array(image)
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise ValueError(f"cannot read image {path}: {exc}") from exc
    if mode.startswith("I;16"):
        array = array.astype(np.uint16)
    return array, mode


def write_image_file(path: str | os.PathLike, array: np.ndarray, quality: int = 95) -> None:
    """Write an image atomically; the format follows the suffix (.png lossless, .jpg with ``quality``).

    array: (H, W, 3) uint8 RGB, (H, W) uint8 or (H, W) uint16 (PNG only).
    """
    path = Path(path)
    array = np.asarray(array)
    suffix = path.suffix.lower()
    fmt = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}.get(suffix)
    if fmt is None:
        raise ValueError(f"cannot write {path}: unknown image suffix {suffix!r}")
    if array.dtype == np.uint16:
        if fmt != "PNG" or array.ndim != 2:
            raise ValueError(f"cannot write {path}: 16-bit images must be single-channel PNG")
        # PIL maps native uint16 to mode I;16 and writes a 16-bit greyscale PNG.
        image = Image.fromarray(np.ascontiguousarray(array, dtype="=u2"))
    elif array.dtype == np.uint8 and (array.ndim == 2 or (array.ndim == 3 and array.shape[2] == 3)):
        image = Image.fromarray(array)
    else:
        raise ValueError(f"cannot write {path}: unsupported image {array.dtype} {array.shape}")
    with atomic_path(path) as tmp:
        if fmt == "JPEG":
            image.save(tmp, format=fmt, quality=quality)
        else:
            image.save(tmp, format=fmt)
