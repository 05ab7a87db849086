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
``sum > 0``. numba has no float16 on the CPU: the kernels read and write float16 columns
as their bits, converted here (``_float_bits`` exactly, ``_half_bits`` rounding to nearest
even as torch does; tested against torch on every float16 and on random floats). Done by
torch instead, each conversion woke its second thread (~0.1 ms a frame each).
"""

from __future__ import annotations

import numpy as np

from ..core.jit import compile_kernel, numba
from ..map.voxel_map import COUNT_MAX


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
    rows (``gather_evidence``), updated in place. evidence_sum: (V,) float32 sum(f) as
    torch computed it. hist: (V, C) float32 this frame's class counts. observed_color:
    (V, 3) float32 this frame's mean colour. evidence_cap, color_cap: float32 weight caps.
    count (N,) int16, label (N,) int16, color (N, 3) uint8: the map's columns
    (``column_arrays``), updated at ``rows``. Returns the confidences (V,) float32 in [0, 1];
    ``store_evidence`` writes them and the evidence into the float16 columns.
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


def _store_evidence(rows, evidence, confidence, feature, confidence_column):
    """feature[rows, :C] = evidence (V, C) float32 and confidence_column[rows] = confidence
    (V,) float32, as float16 bits into the map's uint16 columns (``column_arrays``). A loop
    of its own: inside ``update_evidence`` the same writes cost twice as much (measured)."""
    num_voxels, num_classes = evidence.shape
    # numba has no scalar bitcast: bits are read through flat views (numba indexes a view
    # of a 2D array ~3x slower)
    evidence_bits = np.ascontiguousarray(evidence).reshape(-1).view(np.uint32)
    confidence_bits = np.ascontiguousarray(confidence).view(np.uint32)
    for v in range(num_voxels):
        row = rows[v]
        for c in range(num_classes):
            feature[row, c] = _half_bits(evidence_bits[v * num_classes + c])
        confidence_column[row] = _half_bits(confidence_bits[v])


def _half_bits(bits):
    """IEEE float16 bits of a float32 given by its bits (uint32), rounded to nearest even,
    as torch's and numpy's conversions: beyond 65504 (from 65520 on) +-inf, below 2^-25
    +-0, subnormals in between; NaN becomes the quiet NaN 0x7E00 (with its sign). The
    common cases (zero, a normal float16) take one path; the rest ``_half_bits_rare``."""
    x = np.int64(bits)
    sign = (x >> 16) & 0x8000
    a = x & 0x7FFFFFFF
    # a normal float16: rebias the exponent (127 -> 15) and round 13 bits away to nearest
    # even (adding 0xFFF plus the kept lowest bit carries exactly when rounding up; a carry
    # out of the mantissa steps the exponent up, as it should)
    half = (a - 0x38000000 + 0xFFF + ((a >> 13) & 1)) >> 13
    half = half if a != 0 else 0
    if a != 0 and (a < 0x38800000 or a >= 0x477FF000):
        half = _half_bits_rare(a)
    return np.uint16(sign | half)


def _half_bits_rare(a):
    """``_half_bits`` of a magnitude (float32 bits without the sign) that is not zero and
    not a normal float16: NaN, infinity, beyond 65504, tiny or subnormal."""
    if a > 0x7F800000:
        return 0x7E00
    if a >= 0x477FF000:  # 65520 and up round to inf
        return 0x7C00
    if a < 0x33000000:  # below 2^-25 (2^-25 itself ties to the even zero)
        return 0
    # a float16 subnormal: the 24-bit significand in units of 2^-24
    shift = 126 - (a >> 23)
    significand = (a & 0x7FFFFF) | 0x800000
    half = significand >> shift
    rest = significand & ((np.int64(1) << shift) - 1)
    midpoint = np.int64(1) << (shift - 1)
    if rest > midpoint or (rest == midpoint and (half & 1) == 1):
        half += 1
    return half


def _float_bits(half):
    """float32 bits (uint32) of the float16 with bits ``half`` (uint16): exact. The common
    cases (zero, a normal float16) take one path; the rest ``_float_bits_rare``."""
    h = np.int64(half)
    sign = (h & 0x8000) << 16
    magnitude = h & 0x7FFF
    bits = (magnitude << 13) + (112 << 23)  # a normal float16: rebias the exponent (15 -> 127)
    bits = bits if magnitude != 0 else 0
    exponent = magnitude >> 10
    if magnitude != 0 and (exponent == 0 or exponent == 0x1F):
        bits = _float_bits_rare(magnitude)
    return np.uint32(sign | bits)


def _float_bits_rare(magnitude):
    """``_float_bits`` of a float16 magnitude that is subnormal, infinite or NaN."""
    mantissa = magnitude & 0x3FF
    if magnitude >= 0x7C00:  # inf; NaN quieted with its payload kept, as the hardware converts
        return 0x7F800000 | (mantissa << 13) | (0x400000 if mantissa else 0)
    exponent = 113  # a subnormal: normalise its mantissa
    while (mantissa & 0x400) == 0:
        mantissa <<= 1
        exponent -= 1
    return (exponent << 23) | ((mantissa & 0x3FF) << 13)


def _gather_evidence(rows, feature, width):
    """The stored evidence feature[rows, :width] as float32 (V, width), from the float16
    column's bits (N, D) uint16; rows (V,) int64. One pass instead of gathering all D
    columns, slicing and converting through torch."""
    bits = np.empty(rows.shape[0] * width, np.uint32)  # flat: see store_evidence
    for v in range(rows.shape[0]):
        row = rows[v]
        for k in range(width):
            bits[v * width + k] = _float_bits(feature[row, k])
    return bits.view(np.float32).reshape(rows.shape[0], width)


def half_bits(values: np.ndarray) -> np.ndarray:
    """float32 values (any shape) as the uint16 bits of their float16 (``_half_bits``)."""
    flat = np.ascontiguousarray(values, dtype=np.float32).reshape(-1).view(np.uint32)
    return _half_bits_of_array(flat).reshape(np.shape(values))


def float_values(bits: np.ndarray) -> np.ndarray:
    """uint16 float16 bits (any shape) as float32 values (``_float_bits``)."""
    flat = np.ascontiguousarray(bits, dtype=np.uint16).reshape(-1)
    return _float_bits_of_array(flat).view(np.float32).reshape(np.shape(bits))


def _half_bits_of_array(flat):
    out = np.empty(flat.shape[0], np.uint16)
    for i in range(flat.shape[0]):
        out[i] = _half_bits(flat[i])
    return out


def _float_bits_of_array(flat):
    out = np.empty(flat.shape[0], np.uint32)
    for i in range(flat.shape[0]):
        out[i] = _float_bits(flat[i])
    return out


if numba is not None:
    _half_bits_rare = compile_kernel(_half_bits_rare)
    _float_bits_rare = compile_kernel(_float_bits_rare)
    _half_bits = compile_kernel(_half_bits)
    _float_bits = compile_kernel(_float_bits)
    count_votes = compile_kernel(_count_votes)
    update_evidence = compile_kernel(_update_evidence)
    gather_evidence = compile_kernel(_gather_evidence)
    store_evidence = compile_kernel(_store_evidence)
    _half_bits_of_array = compile_kernel(_half_bits_of_array)
    _float_bits_of_array = compile_kernel(_float_bits_of_array)
else:  # pragma: no cover - exercised where numba is absent
    count_votes = update_evidence = gather_evidence = store_evidence = None
