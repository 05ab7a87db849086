"""Scatter reductions over index groups (pixels -> voxels), vectorized for CPU and CUDA."""

from __future__ import annotations

import torch


def scatter_mean(values: torch.Tensor, index: torch.Tensor, size: int) -> torch.Tensor:
    """Average rows of ``values`` (P, C) by group ``index`` (P,) int64 in [0, size): (size, C) float.

    Groups without rows are zero. Rows stored channel-first (a transposed view of (C, P)
    memory, as ``grid_sample`` returns them) are added along their contiguous axis:
    ``index_add`` over the rows of such a view takes a strided path ~3x slower at
    320x240. Every group adds its rows in the same order either way, so the result is
    bitwise identical; it is always returned contiguous.
    """
    if values.dim() == 1:
        values = values.unsqueeze(1)
    if not values.dtype.is_floating_point:
        values = values.to(torch.float32)
    counts = torch.bincount(index, minlength=size).clamp_min(1).to(values.dtype)
    if values.shape[0] > 1 and values.t().is_contiguous():
        channels_first = values.t()
        sums = channels_first.new_zeros((channels_first.shape[0], size)).index_add_(1, index, channels_first)
        return (sums / counts).t().contiguous()
    sums = values.new_zeros((size, values.shape[1])).index_add_(0, index, values)
    return sums / counts.unsqueeze(1)
