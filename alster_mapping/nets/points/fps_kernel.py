"""Farthest point sampling as one compiled CPU loop (numba).

Why: the torch loop of ``ops.farthest_point_sample`` issues about eight small tensor
operations per sampled point (340 points per chunk at the shipped ASIS/BAN layout), and
on this CPU their fixed costs made the sampling about a fifth of a forward pass. The same
arithmetic in one loop per batch element takes a few milliseconds for a batch
(``bench/bench_point_ops.py``). The result is the torch loop's index for index: the same
float32 operations in the same order ((dx^2 + dy^2) + dz^2, the running minimum, the
first largest entry).
"""

from __future__ import annotations

import numpy as np

from ...core.jit import compile_kernel, numba


def _farthest_point_sample(xyz, num_samples):
    """xyz (B, N, 3) float32 C-contiguous -> (B, num_samples) int64, starting at point 0."""
    batch, count, _ = xyz.shape
    chosen = np.zeros((batch, num_samples), np.int64)
    nearest = np.empty(count, np.float32)
    for b in range(batch):
        nearest[:] = np.inf
        current = 0
        for i in range(num_samples):
            chosen[b, i] = current
            cx, cy, cz = xyz[b, current, 0], xyz[b, current, 1], xyz[b, current, 2]
            best, best_distance = 0, np.float32(-np.inf)
            for n in range(count):
                dx, dy, dz = xyz[b, n, 0] - cx, xyz[b, n, 1] - cy, xyz[b, n, 2] - cz
                distance = dx * dx + dy * dy + dz * dz
                if distance < nearest[n]:
                    nearest[n] = distance
                if nearest[n] > best_distance:  # strict: the first of equal distances, as argmax
                    best, best_distance = n, nearest[n]
            current = best
    return chosen


farthest_point_sample_kernel = compile_kernel(_farthest_point_sample) if numba is not None else None
