"""Fused CPU kernels (numba) for label fusion: per-voxel votes and the evidence update.

Why: after the lift, the torch path spends ~45 tensor ops over the frame's voxels (bincount
votes, a scatter mean of colours, the update of ``label_fusion``'s docstring, the colour
blend); one loop per stage does the same arithmetic in a fraction of the time
(``bench/bench_label_fusion.py``).

Bit-for-bit the same as the torch path: every product, sum and quotient is the same
float32 operation in the same order (numba does not contract a * b + c into an FMA
without fast-math); the only sums whose order could differ are sums of integers (exact in
float32) or come from torch (``evidence_sum``). A voxel's label is valid when its
largest evidence is positive, which for non-negative evidence is the torch path's
``sum > 0``. numba has no float16 on the CPU: float16 columns are read through torch and
written as bits that numpy's IEEE round-to-nearest-even conversion made (torch's too).
"""

from __future__ import annotations

import numpy as np

from ..map.voxel_map import COUNT_MAX
from .lift_kernels import compile_kernel, numba


def _count_votes(mask, inverse, classes, color, num_voxels, num_classes):
    """Per-voxel class counts and mean colour of the valid pixels.

    mask: (H, W) bool valid pixels (row-major order of ``inverse``). inverse: (N,) int64
    voxel of each valid pixel. classes: (H, W) int64 class index (-1 = none). color: (H,
    W, 3) uint8. Returns (hist (V, C) float32 counts, color (V, 3) float32 mean): float32
    sums of integers are exact, so the means equal ``scatter_mean``'s. The colour is
    averaged here rather than by ``LiftedFrame.image_mean``: a second pass over the pixels
    costs 0.2 ms of the ~5 ms step (measured).
    """
    height, width = mask.shape
    hist = np.zeros((num_voxels, num_classes), np.float32)
    sums = np.zeros((num_voxels, 3), np.float32)
    counts = np.zeros(num_voxels, np.float32)
    one = np.float32(1.0)
    n = 0
    for row in range(height):
        for col in range(width):
            if not mask[row, col]:
                continue
            voxel = inverse[n]
            n += 1
            c = classes[row, col]
            if c >= 0:
                hist[voxel, c] += one
            counts[voxel] += one
            for channel in range(3):
                sums[voxel, channel] += np.float32(color[row, col, channel])
    for voxel in range(num_voxels):
        count = max(counts[voxel], one)
        for channel in range(3):
            sums[voxel, channel] = sums[voxel, channel] / count
    return hist, sums


def _update_evidence(rows, evidence, evidence_sum, hist, observed_color, evidence_cap, color_cap, count, label, color):
    """One frame's update of V voxels (``label_fusion``'s docstring), written into the map's
    columns in place of ~45 tensor ops and the gathers and scatters around them.

    rows: (V,) int64 map rows. evidence: (V, C) float32 stored class fractions f of those
    rows, updated in place. evidence_sum: (V,) float32 sum(f) as torch computed it.
    hist: (V, C) float32 this frame's class counts. observed_color: (V, 3) float32 this
    frame's mean colour. evidence_cap, color_cap: float32 weight caps. count (N,) int16,
    label (N,) int16, color (N, 3) uint8: the map's columns (``column_arrays``), updated
    at ``rows``. Returns the confidences (V,) float32 in [0, 1]; the caller stores them and
    the evidence as float16 (numba has none).
    """
    num_voxels, num_classes = evidence.shape
    confidence = np.empty(num_voxels, np.float32)
    zero, one = np.float32(0.0), np.float32(1.0)
    for v in range(num_voxels):
        row = rows[v]
        seen = count[row]
        votes = zero
        for c in range(num_classes):
            votes += hist[v, c]
        weight = min(np.float32(seen), evidence_cap)
        if votes > zero:  # a voxel whose pixels all lack a label keeps its evidence
            denominator = weight * evidence_sum[v] + one
            for c in range(num_classes):
                h = hist[v, c] / max(votes, np.float32(1e-12))
                evidence[v, c] = (weight * evidence[v, c] + h) / denominator
        best, best_class = evidence[v, 0], 0
        for c in range(1, num_classes):
            if evidence[v, c] > best:  # the first maximum, as torch.max
                best, best_class = evidence[v, c], c
        label[row] = best_class if best > zero else -1
        confidence[v] = min(max(best, zero), one)
        count[row] = min(np.int64(seen) + 1, COUNT_MAX)
        # SemanticVoxelMap.blend_color: a running mean up to color_cap observations
        color_weight = min(np.float32(seen), color_cap)
        for channel in range(3):
            mean = (color_weight * np.float32(color[row, channel]) + observed_color[v, channel]) / (color_weight + one)
            color[row, channel] = np.uint8(min(max(np.rint(mean), zero), np.float32(255.0)))
    return confidence


def float16_bits(values: np.ndarray) -> np.ndarray:
    """float32 values as the uint16 bits of their float16 (IEEE round to nearest even, as torch;
    beyond +-65504 that is +-inf, as torch's)."""
    with np.errstate(over="ignore"):
        return values.astype(np.float16).view(np.uint16)


def _store_float16(rows, values, column):
    """column[rows[v], :K] = values[v] for float16 bits: values (V, K) uint16, column (N, D) uint16."""
    for v in range(rows.shape[0]):
        for k in range(values.shape[1]):
            column[rows[v], k] = values[v, k]


if numba is not None:
    count_votes = compile_kernel(_count_votes)
    update_evidence = compile_kernel(_update_evidence)
    store_float16 = compile_kernel(_store_float16)
else:  # pragma: no cover - exercised where numba is absent
    count_votes = update_evidence = store_float16 = None
