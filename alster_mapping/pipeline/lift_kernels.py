"""A fused CPU kernel (numba) for lifting a depth image into the voxels it observes.

Why: the lift is a chain of ~20 element-wise torch ops over every pixel plus a sort
(``torch.unique``) to find the distinct voxels; at 320x240 that is ~7 ms on two cores,
while Open3D's C++ ``VoxelBlockGrid`` integrates a whole frame in ~2 ms. One pass over
the pixels with a small open-addressing hash table does the same work in a fraction of
that (``bench/bench_label_fusion.py`` measures both).

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

try:  # numba is optional: GPU machines and minimal installs run the torch path
    import numba
except ImportError:  # pragma: no cover - exercised where numba is absent
    numba = None

# Status codes of ``lift_pixels``.
LIFT_OK = 0
LIFT_NON_FINITE = 1  # a world point is NaN or inf (a broken pose)
LIFT_OUT_OF_RANGE = 2  # a voxel key beyond +-2^20 voxels
LIFT_TABLE_FULL = 3  # more distinct voxels than half the hash table: retry with a bigger one

_KEY_MASK = (1 << KEY_BITS) - 1
_GOLDEN = 0x9E3779B97F4A7C15  # Fibonacci hashing multiplier (2^64 / golden ratio)


def table_size(pixels: int) -> tuple[int, np.uint64]:
    """A first hash table for an image of ``pixels``: (slots, shift), 2^bits slots for a
    quarter of the pixels as distinct voxels (typical frames have ~1/5)."""
    bits = max(int(np.ceil(np.log2(max(pixels, 1) / 2))), 10)
    return 1 << bits, np.uint64(64 - bits)


def available() -> bool:
    """True when numba imports, so the fused CPU kernels can run."""
    return numba is not None


def _probe(slot_code, slot_voxel, code, capacity, shift):
    """Slot of ``code`` in the table of ``capacity`` = 2^(64 - shift) slots, or the empty
    slot where it belongs (Fibonacci hashing, linear probing)."""
    slot = np.int64((np.uint64(code) * np.uint64(_GOLDEN)) >> shift)
    while slot_voxel[slot] >= 0 and slot_code[slot] != code:
        slot = (slot + 1) & (capacity - 1)
    return slot


def _lift_pixels(depth, fx, fy, cx, cy, transform, voxel_size, use_min, min_range, max_range, capacity, shift):
    """One pass over a depth image: valid pixels -> world points -> voxel keys -> distinct voxels.

    depth: (H, W) float32 metres. fx, fy, cx, cy, min_range, max_range: float32 (pixels,
    metres) so every comparison and product is the float32 one torch makes. transform:
    (4, 4) float64 T_world_camera. capacity: hash table slots, 2^(64 - shift); the table
    is never more than half full (status ``LIFT_TABLE_FULL`` asks for a bigger one). Returns (status, keys (V, 3) int32 in first-seen
    order, inverse (N,) int64 voxel of each valid pixel, mask (H, W) bool, points (N, 3)
    float32 world metres).
    """
    height, width = depth.shape
    # Open addressing sized for the voxels, not the pixels (a frame's pixels fall into ~5x
    # fewer voxels), so the table stays in cache. Growing it inside the loop would make
    # numba reference-count the reassigned arrays per pixel (measured 60 % slower).
    slot_code = np.empty(capacity, np.int64)
    slot_voxel = np.full(capacity, -1, np.int64)
    mask = np.zeros((height, width), np.bool_)
    inverse = np.empty(height * width, np.int64)
    points = np.empty((height * width, 3), np.float32)
    keys = np.empty((height * width, 3), np.int32)
    last_code = np.int64(-1)  # neighbouring pixels mostly share a voxel: skip the probe
    last_voxel = np.int64(-1)
    zero = np.float32(0.0)
    n = 0
    v = 0
    for row in range(height):
        ray_y = (np.float32(row) - cy) / fy
        for col in range(width):
            d = depth[row, col]
            # valid_depth_mask: finite, > 0, > min_range (when > 0), <= max_range
            if not (np.isfinite(d) and d > zero):
                continue
            if use_min and not d > min_range:
                continue
            if not d <= max_range:
                continue
            ray_x = (np.float32(col) - cx) / fx
            px = np.float64(ray_x * d)
            py = np.float64(ray_y * d)
            pz = np.float64(d)
            # transform_points: ((x r0 + y r1) + z r2) + t in float64, rounded to float32
            wx = np.float32(px * transform[0, 0] + py * transform[0, 1] + pz * transform[0, 2] + transform[0, 3])
            wy = np.float32(px * transform[1, 0] + py * transform[1, 1] + pz * transform[1, 2] + transform[1, 3])
            wz = np.float32(px * transform[2, 0] + py * transform[2, 1] + pz * transform[2, 2] + transform[2, 3])
            # voxel_keys: floor(float64(p) / voxel_size)
            sx = np.floor(np.float64(wx) / voxel_size)
            sy = np.floor(np.float64(wy) / voxel_size)
            sz = np.floor(np.float64(wz) / voxel_size)
            if not (np.isfinite(sx) and np.isfinite(sy) and np.isfinite(sz)):
                return LIFT_NON_FINITE, keys[:0], inverse[:0], mask, points[:0]
            if max(abs(sx), abs(sy), abs(sz)) >= KEY_LIMIT:
                return LIFT_OUT_OF_RANGE, keys[:0], inverse[:0], mask, points[:0]
            kx, ky, kz = np.int64(sx), np.int64(sy), np.int64(sz)
            code = ((kx & _KEY_MASK) << (2 * KEY_BITS)) | ((ky & _KEY_MASK) << KEY_BITS) | (kz & _KEY_MASK)
            if code != last_code:
                if 2 * (v + 1) > capacity:
                    return LIFT_TABLE_FULL, keys[:0], inverse[:0], mask, points[:0]
                slot = _probe(slot_code, slot_voxel, code, capacity, shift)
                if slot_voxel[slot] < 0:
                    slot_voxel[slot] = v
                    slot_code[slot] = code
                    keys[v, 0] = kx
                    keys[v, 1] = ky
                    keys[v, 2] = kz
                    v += 1
                last_code = code
                last_voxel = slot_voxel[slot]
            inverse[n] = last_voxel
            points[n, 0] = wx
            points[n, 1] = wy
            points[n, 2] = wz
            mask[row, col] = True
            n += 1
    return LIFT_OK, keys[:v].copy(), inverse[:n].copy(), mask, points[:n].copy()


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


if numba is not None:
    _probe = numba.njit(cache=True, nogil=True)(_probe)
    # cache=True: compiled once per machine into __pycache__ (or NUMBA_CACHE_DIR), not at every start
    lift_pixels = numba.njit(cache=True, nogil=True)(_lift_pixels)
    image_mean = numba.njit(cache=True, nogil=True)(_image_mean)
else:  # pragma: no cover
    lift_pixels = image_mean = None
