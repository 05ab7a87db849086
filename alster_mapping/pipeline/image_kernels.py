"""Fused CPU kernels (numba) for ALSTER's 2D input: depth normals and the stacked network image.

Why: ``geometry.normals_from_depth`` and ``Encoder2D.prepare_input`` are ~30 tensor ops
over every pixel (9 and 6 ms at 640x480 on two cores); one loop each does the same in
well under a millisecond (``bench/bench_online_mapper.py`` measures the step).

The network image is the torch path's bit for bit (the same float32 operations). The
normals agree to about one unit in the last place (|difference| < 1e-6), not exactly:
torch's vectorized cross product and norm contract products into FMAs, which numba does
not; the labels are unchanged (tests compare the mapper's labels).
"""

from __future__ import annotations

import numpy as np

from ..core.jit import compile_kernel, numba


def _normals(depth, fx, fy, cx, cy, max_range):
    """``geometry.normals_from_depth``: depth (H, W) float32 metres, float32 intrinsics and
    range -> (H, W, 3) float32 camera-frame unit normals facing the camera, zero where the
    pixel or one of its four neighbours has no valid depth (and on the border)."""
    height, width = depth.shape
    zero, tiny = np.float32(0.0), np.float32(1e-12)
    points = np.zeros((height, width, 3), np.float32)
    valid = np.zeros((height, width), np.bool_)
    for row in range(height):
        ray_y = (np.float32(row) - cy) / fy
        for col in range(width):
            d = depth[row, col]
            if np.isfinite(d) and d > zero and d <= max_range:
                valid[row, col] = True
                points[row, col, 0] = ((np.float32(col) - cx) / fx) * d
                points[row, col, 1] = ray_y * d
                points[row, col, 2] = d
    normals = np.zeros((height, width, 3), np.float32)
    for row in range(1, height - 1):
        for col in range(1, width - 1):
            if not (valid[row, col] and valid[row, col + 1] and valid[row, col - 1] and valid[row + 1, col] and valid[row - 1, col]):
                continue
            # central differences along x and y, their cross product
            ax = points[row, col + 1, 0] - points[row, col - 1, 0]
            ay = points[row, col + 1, 1] - points[row, col - 1, 1]
            az = points[row, col + 1, 2] - points[row, col - 1, 2]
            bx = points[row + 1, col, 0] - points[row - 1, col, 0]
            by = points[row + 1, col, 1] - points[row - 1, col, 1]
            bz = points[row + 1, col, 2] - points[row - 1, col, 2]
            nx, ny, nz = ay * bz - az * by, az * bx - ax * bz, ax * by - ay * bx
            norm = np.sqrt(nx * nx + ny * ny + nz * nz)
            if not norm > zero:
                continue
            norm = max(norm, tiny)
            nx, ny, nz = nx / norm, ny / norm, nz / norm
            if nx * points[row, col, 0] + ny * points[row, col, 1] + nz * points[row, col, 2] > zero:
                nx, ny, nz = -nx, -ny, -nz  # towards the camera
            normals[row, col, 0] = nx
            normals[row, col, 1] = ny
            normals[row, col, 2] = nz
    return normals


def _network_image(color, depth, normals, height, normal_up, mean, std, depth_scale, height_scale, gravity):
    """``Encoder2D.prepare_input`` into one (C, H, W) float32 array, C = 9 with ``gravity``
    (height (H, W), normal_up (H, W) float32) else 7.

    color (H, W, 3) uint8; depth (H, W) float32 metres; normals (H, W, 3) float32; mean,
    std (3,) float32 RGB normalisation; depth_scale, height_scale float32 metres.
    """
    rows, cols = depth.shape
    image = np.zeros((9 if gravity else 7, rows, cols), np.float32)
    zero = np.float32(0.0)
    for row in range(rows):
        for col in range(cols):
            for channel in range(3):
                image[channel, row, col] = (np.float32(color[row, col, channel]) - mean[channel]) / std[channel]
            d = depth[row, col]
            if not (np.isfinite(d) and d > zero):
                continue  # invalid depth: zero depth, normals and gravity
            image[3, row, col] = d / depth_scale
            nx, ny, nz = normals[row, col, 0], normals[row, col, 1], normals[row, col, 2]
            if np.isfinite(nx) and np.isfinite(ny) and np.isfinite(nz):
                image[4, row, col] = nx
                image[5, row, col] = ny
                image[6, row, col] = nz
            if gravity:
                h = height[row, col] / height_scale
                u = normal_up[row, col]
                if np.isfinite(h) and np.isfinite(u):
                    image[7, row, col] = h
                    image[8, row, col] = u
    return image


if numba is not None:
    normals = compile_kernel(_normals)
    network_image = compile_kernel(_network_image)
else:  # pragma: no cover - exercised where numba is absent
    normals = network_image = None
