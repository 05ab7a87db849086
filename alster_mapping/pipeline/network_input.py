"""The 2D network's input of a frame: RGB, depth, normals and the gravity channels (eq. 1).

Built with tensor ops (``Encoder2D.prepare_input``, ``geometry.normals_from_depth``) or,
on the CPU with numba, by the fused loops of ``image_kernels`` (the same image; normals
within 1e-6).
"""

from __future__ import annotations

import numpy as np
import torch

from ..core.frame import RGBDFrame
from ..core.geometry import backproject, check_image_size, normals_from_depth, transform_points
from ..nets.efficientnet_lite import RGB_MEAN, RGB_STD
from ..nets.encoder2d import DEPTH_SCALE, HEIGHT_SCALE, Encoder2D
from . import image_kernels
from .gravity import GravityReference
from .lifting import LiftedFrame, use_numba


def network_image(
    frame: RGBDFrame,
    inputs: str,
    gravity: GravityReference,
    max_range: float,
    device: torch.device | str = "cpu",
    lifted: LiftedFrame | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The 2D network input of a frame and its per-pixel gravity values.

    inputs: the model's input layout ("camera" or "gravity", ``AlsterNetConfig.inputs``).
    gravity: the run's up and floor (updated with this frame). lifted: the frame's lifted
    voxels, whose world points the gravity values reuse (None: the valid pixels within
    ``max_range`` are back-projected here). Returns (image (1, 7 or 9, H, W) float32 on
    ``device``, gravity (H, W, 2) float32 = height / HEIGHT_SCALE and normal . up, or None
    for the camera layout).
    """
    depth = torch.from_numpy(frame.depth).to(device)
    fused = use_numba("auto", device)  # the numba kernels on the CPU (image_kernels)
    normals = camera_normals(frame, max_range) if fused else normals_from_depth(depth, frame.intrinsics, max_range)
    if inputs != "gravity":
        return stacked_image(frame, normals, None, fused).to(device), None
    if lifted is None:
        points, mask = backproject(depth, frame.intrinsics, max_range)
        points = transform_points(frame.T_world_camera, points)
    else:
        points, mask = lifted.points, lifted.pixel_mask
    height, normal_up = gravity.channels(points, mask, normals, frame.T_world_camera)
    image = stacked_image(frame, normals, (height, normal_up), fused).to(device)
    return image, torch.stack([height / HEIGHT_SCALE, normal_up], -1)


def camera_normals(frame: RGBDFrame, max_range: float) -> torch.Tensor:
    """``normals_from_depth`` of a frame by the numba kernel: (H, W, 3) float32 on the CPU."""
    f32, intrinsics = np.float32, frame.intrinsics
    depth = np.ascontiguousarray(frame.depth, dtype=np.float32)
    check_image_size(depth, intrinsics, "depth")
    fx, fy, cx, cy = f32(intrinsics.fx), f32(intrinsics.fy), f32(intrinsics.cx), f32(intrinsics.cy)
    return torch.from_numpy(image_kernels.normals(depth, fx, fy, cx, cy, f32(max_range)))


def stacked_image(
    frame: RGBDFrame, normals: torch.Tensor, gravity: tuple[torch.Tensor, torch.Tensor] | None, fused: bool
) -> torch.Tensor:
    """``Encoder2D.prepare_input`` of a frame (1, 7 or 9, H, W) float32 on the CPU, by the
    numba kernel when ``fused`` (the same values)."""
    normals = normals.cpu()
    if not fused:
        return Encoder2D.prepare_input(frame.color, frame.depth, normals.numpy(), gravity=gravity)
    f32 = np.float32
    height, normal_up = (g.cpu().numpy() for g in gravity) if gravity else (np.zeros((1, 1), f32),) * 2
    image = image_kernels.network_image(
        np.ascontiguousarray(frame.color),
        np.ascontiguousarray(frame.depth, dtype=f32),
        normals.numpy(),
        np.ascontiguousarray(height, dtype=f32),
        np.ascontiguousarray(normal_up, dtype=f32),
        np.asarray(RGB_MEAN, dtype=f32),
        np.asarray(RGB_STD, dtype=f32),
        f32(DEPTH_SCALE),
        f32(HEIGHT_SCALE),
        gravity is not None,
    )
    return torch.from_numpy(image).unsqueeze(0)
