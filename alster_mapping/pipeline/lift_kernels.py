"""Fused CPU kernels (numba) for lifting a depth image into the voxels it observes.

Why: the lift is a chain of ~20 element-wise torch ops over every pixel plus a sort
(``torch.unique``) to find the distinct voxels; at 320x240 that is ~4-7 ms on two cores,
while Open3D's C++ ``VoxelBlockGrid`` integrates a whole frame in ~2 ms. Two passes over
the pixels -- voxel codes, then a small open-addressing hash table -- do the same work in
~1.3 ms (one fused pass measured 2.1 ms: the hash's branches slowed the arithmetic;
``bench/bench_label_fusion.py`` measures the whole step).

The kernels reproduce the torch path bit for bit: the same float32 ray and point
arithmetic (``geometry.backproject``), the same float64 transform in the same order
(``geometry.transform_points``), the same float32 world points and float64 floor
(``geometry.voxel_keys``). The kernel lists the distinct voxels in the order the pixels
first meet them; ``lifting`` sorts those few by packed key, as ``torch.unique`` does.

numba is optional: without it (or on CUDA) the torch path runs.
"""

from __future__ import annotations

import numpy as np

from ..core.geometry import KEY_BITS, KEY_LIMIT
from ..core.jit import compile_kernel, numba, probe

# Status codes of ``pixel_codes`` and ``distinct_voxels``.
LIFT_OK = 0
LIFT_NON_FINITE = 1  # a world point is NaN or inf (a broken pose)
LIFT_OUT_OF_RANGE = 2  # a voxel key beyond +-2^20 voxels
LIFT_TABLE_FULL = 3  # more distinct voxels than half the hash table: retry with a bigger one

_KEY_MASK = (1 << KEY_BITS) - 1


def _pixel_codes(depth, fx, fy, cx, cy, transform, voxel_size, use_min, min_range, max_range, codes, points):
    """First pass, per pixel and without dependencies between pixels (so the compiler keeps
    it branch-light): the packed voxel code of every valid pixel (-1 elsewhere) and its
    float32 world point.

    depth: (H, W) float32 metres. fx, fy, cx, cy, min_range, max_range: float32 (pixels,
    metres) so every comparison and product is the float32 one torch makes. transform:
    (4, 4) float64 T_world_camera. codes: (H * W,) int64 and points (H * W, 3) float32,
    written. Returns LIFT_OK, or LIFT_NON_FINITE / LIFT_OUT_OF_RANGE when a valid pixel
    lands on a non-finite point (a broken pose) / beyond +-2^20 voxels (non-finite first,
    as ``geometry.voxel_keys`` checks).
    """
    height, width = depth.shape
    zero = np.float32(0.0)
    non_finite = out_of_range = False
    # The same float32 quotient per column as per pixel, divided once (0.2 of ~0.9 ms at 320x240)
    rays_x = np.empty(width, np.float32)
    for col in range(width):
        rays_x[col] = (np.float32(col) - cx) / fx
    for row in range(height):
        ray_y = (np.float32(row) - cy) / fy
        for col in range(width):
            pixel = row * width + col
            d = depth[row, col]
            # valid_depth_mask: finite, > 0, > min_range (when > 0), <= max_range
            valid = np.isfinite(d) and d > zero and (not use_min or d > min_range) and d <= max_range
            ray_x = rays_x[col]
            px, py, pz = np.float64(ray_x * d), np.float64(ray_y * d), np.float64(d)
            # transform_points: ((x r0 + y r1) + z r2) + t in float64, rounded to float32
            wx = np.float32(px * transform[0, 0] + py * transform[0, 1] + pz * transform[0, 2] + transform[0, 3])
            wy = np.float32(px * transform[1, 0] + py * transform[1, 1] + pz * transform[1, 2] + transform[1, 3])
            wz = np.float32(px * transform[2, 0] + py * transform[2, 1] + pz * transform[2, 2] + transform[2, 3])
            points[pixel, 0] = wx
            points[pixel, 1] = wy
            points[pixel, 2] = wz
            codes[pixel] = -1
            if not valid:
                continue
            # voxel_keys: floor(float64(p) / voxel_size)
            sx = np.floor(np.float64(wx) / voxel_size)
            sy = np.floor(np.float64(wy) / voxel_size)
            sz = np.floor(np.float64(wz) / voxel_size)
            if not (np.isfinite(sx) and np.isfinite(sy) and np.isfinite(sz)):
                non_finite = True
            elif max(abs(sx), abs(sy), abs(sz)) >= KEY_LIMIT:
                out_of_range = True
            else:
                kx, ky, kz = np.int64(sx), np.int64(sy), np.int64(sz)
                codes[pixel] = ((kx & _KEY_MASK) << (2 * KEY_BITS)) | ((ky & _KEY_MASK) << KEY_BITS) | (kz & _KEY_MASK)
    if non_finite:
        return LIFT_NON_FINITE
    return LIFT_OUT_OF_RANGE if out_of_range else LIFT_OK


def _distinct_voxels(codes, points, height, width, capacity, shift):
    """Second pass: the distinct codes with a small open-addressing hash table.

    codes (H * W,) int64 (-1 = invalid pixel), points (H * W, 3) float32 from
    ``pixel_codes``. capacity: hash table slots, 2^(64 - shift); the table is never more
    than half full (status LIFT_TABLE_FULL asks for a bigger one). Returns (status, codes
    (V,) int64 and keys (V, 3) int32 of the voxels in first-seen order, inverse (N,) int64
    voxel of each valid pixel, mask (H, W) bool, points (N, 3) float32 of the valid pixels).
    """
    # Sized for the voxels, not the pixels (a frame's pixels fall into ~5x fewer voxels),
    # so the table stays in cache.
    slot_code = np.empty(capacity, np.int64)
    slot_voxel = np.full(capacity, -1, np.int64)
    mask = np.zeros(height * width, np.bool_)
    inverse = np.empty(height * width, np.int64)
    valid_points = np.empty((height * width, 3), np.float32)
    keys = np.empty((capacity // 2, 3), np.int32)  # the table holds at most capacity / 2 voxels
    voxel_codes = np.empty(capacity // 2, np.int64)
    last_code = np.int64(-1)  # neighbouring pixels mostly share a voxel: skip the probe
    last_voxel = np.int64(-1)
    n = 0
    v = 0
    for pixel in range(height * width):
        code = codes[pixel]
        if code < 0:
            continue
        if code != last_code:
            if 2 * (v + 1) > capacity:
                return LIFT_TABLE_FULL, voxel_codes[:0], keys[:0], inverse[:0], mask.reshape(height, width), valid_points[:0]
            slot = probe(slot_code, slot_voxel, code, capacity, shift)
            if slot_voxel[slot] < 0:
                slot_voxel[slot] = v
                slot_code[slot] = code
                voxel_codes[v] = code
                for axis in range(3):  # unpack_keys: 21-bit fields, sign-extended
                    field = (code >> ((2 - axis) * KEY_BITS)) & _KEY_MASK
                    keys[v, axis] = field - (1 << KEY_BITS) if field >= KEY_LIMIT else field
                v += 1
            last_code = code
            last_voxel = slot_voxel[slot]
        inverse[n] = last_voxel
        valid_points[n, 0] = points[pixel, 0]
        valid_points[n, 1] = points[pixel, 1]
        valid_points[n, 2] = points[pixel, 2]
        mask[pixel] = True
        n += 1
    return LIFT_OK, voxel_codes[:v], keys[:v], inverse[:n], mask.reshape(height, width), valid_points[:n]


def _image_mean(mask, inverse, image, num_voxels):
    """Per-voxel mean of an (H, W, C) image over the valid pixels (``mask`` (H, W) bool, row-major
    order of ``inverse`` (N,) int64): (V, C) float32. Sums in pixel order in float32, as
    ``scatter_mean``'s index_add does, so the means are the same bits."""
    height, width, channels = image.shape
    sums = np.zeros((num_voxels, channels), np.float32)
    counts = np.zeros(num_voxels, np.float32)
    n = 0
    for row in range(height):
        for col in range(width):
            if mask[row, col]:
                voxel = inverse[n]
                n += 1
                counts[voxel] += np.float32(1.0)
                for channel in range(channels):
                    sums[voxel, channel] += np.float32(image[row, col, channel])
    for voxel in range(num_voxels):
        count = max(counts[voxel], np.float32(1.0))
        for channel in range(channels):
            sums[voxel, channel] = sums[voxel, channel] / count
    return sums


def _renumber_voxels(order, keys, inverse):
    """Renumber the voxels of ``distinct_voxels`` in ``order`` (V,) int64 (their packed
    codes' argsort, torch.unique's order): returns the keys (V, 3) int32 in that order and
    rewrites inverse (N,) int64 in place. One pass for the rank and the two gathers
    numpy makes in three (the sort stays numpy's: numba's argsort is ~5x slower)."""
    rank = np.empty(order.shape[0], np.int64)
    sorted_keys = np.empty_like(keys)
    for r in range(order.shape[0]):
        rank[order[r]] = r
        for axis in range(3):
            sorted_keys[r, axis] = keys[order[r], axis]
    for n in range(inverse.shape[0]):
        inverse[n] = rank[inverse[n]]
    return sorted_keys


if numba is not None:
    renumber_voxels = compile_kernel(_renumber_voxels)
    pixel_codes = compile_kernel(_pixel_codes)
    distinct_voxels = compile_kernel(_distinct_voxels)
    image_mean = compile_kernel(_image_mean)
else:  # pragma: no cover
    pixel_codes = distinct_voxels = renumber_voxels = image_mean = None
