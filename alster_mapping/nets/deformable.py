"""Deformable convolution (Dai et al. 2017, v1) in 2D and 3D, built on ``grid_sample``.

torchvision's ``deform_conv2d`` does not work with this CPU torch and has no 3D version;
IMENet's DCP (2D) and DDA (3D) need both. A deformable convolution samples its input at
each kernel tap's position plus a learnt offset (per output position and tap), with
bilinear (trilinear) interpolation and zeros outside, then weights the samples like an
ordinary convolution:

    y(p) = sum_k w_k . x(p + d * k + delta_k(p))

Here the offsets delta come from an ordinary convolution of the input (initialised to zero,
so a fresh layer is the ordinary dilated convolution), every tap is sampled by one
``grid_sample`` call over all positions, and the weighted sum is a 1x1 convolution over the
stacked samples. Stride 1 and "same" padding only (what DCP / DDA use); one offset group.
Shapes: 2D (N, C, H, W), 3D (N, C, D, H, W); offsets are in voxels, ordered like the
spatial axes.
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import nn


class DeformConv(nn.Module):
    """A deformable convolution over ``dims`` (2 or 3) spatial axes.

    in_channels, out_channels: C_in, C_out. kernel_size: odd taps per axis. dilation: tap
    spacing in voxels (the context pyramid's rates). bias: of the output. The offset
    convolution has the same kernel and dilation and starts at zero.
    """

    def __init__(self, dims: int, in_channels: int, out_channels: int, kernel_size: int = 3, dilation: int = 1, bias: bool = True):
        super().__init__()
        if dims not in (2, 3):
            raise ValueError(f"dims must be 2 or 3, got {dims}")
        if kernel_size % 2 != 1 or kernel_size < 1 or dilation < 1:
            raise ValueError(f"kernel_size must be odd and dilation >= 1, got {kernel_size} and {dilation}")
        self.dims, self.kernel_size, self.dilation = dims, kernel_size, dilation
        taps = kernel_size**dims
        conv = nn.Conv2d if dims == 2 else nn.Conv3d
        padding = dilation * (kernel_size // 2)
        self.offset = conv(in_channels, dims * taps, kernel_size, padding=padding, dilation=dilation)
        nn.init.zeros_(self.offset.weight)
        nn.init.zeros_(self.offset.bias)
        # The kernel weights, applied to the taps' samples stacked along channels (tap-major).
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels * taps))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        nn.init.kaiming_uniform_(self.weight, a=5**0.5)
        half = kernel_size // 2
        # (taps, dims) tap displacements in voxels, in the spatial axes' order.
        steps = list(itertools.product(range(-half, half + 1), repeat=dims))
        self.register_buffer("taps", torch.tensor(steps, dtype=torch.float32) * dilation, persistent=False)

    def forward(self, x: torch.Tensor, offsets: torch.Tensor | None = None) -> torch.Tensor:
        """x: (N, C_in, *spatial). offsets: (N, dims * taps, *spatial) to use instead of the
        learnt ones (tests, analysis). Returns (N, C_out, *spatial)."""
        if x.dim() != self.dims + 2:
            raise ValueError(f"expected a {self.dims + 2}-D input (N, C, *spatial), got shape {tuple(x.shape)}")
        n, c = x.shape[:2]
        spatial = x.shape[2:]
        taps = self.taps.shape[0]
        delta = self.offset(x) if offsets is None else offsets
        delta = delta.view(n, taps, self.dims, *spatial)
        # Sampling positions in voxels: the output position + the tap + its offset.
        axes = [torch.arange(s, device=x.device, dtype=x.dtype) for s in spatial]
        base = torch.stack(torch.meshgrid(*axes, indexing="ij"), 0)  # (dims, *spatial)
        shape = (1, taps, self.dims) + (1,) * self.dims
        position = base.unsqueeze(0).unsqueeze(0) + self.taps.to(x.dtype).view(shape) + delta  # (N, taps, dims, *spatial)
        # grid_sample wants normalised coordinates in [-1, 1], last axis ordered (x, y[, z]) =
        # the spatial axes reversed, with align_corners=True mapping -1 / 1 to the first / last voxel.
        sizes = torch.tensor([max(s - 1, 1) for s in spatial], device=x.device, dtype=x.dtype).view(1, 1, self.dims, *([1] * self.dims))
        normalised = (2 * position / sizes - 1).flip(2)
        grid = normalised.permute(0, 1, *range(3, 3 + self.dims), 2).reshape(n, taps * spatial[0], *spatial[1:], self.dims)
        sampled = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=True)  # (N, C, taps * S0, ...)
        sampled = sampled.view(n, c, taps, *spatial).transpose(1, 2).reshape(n, taps * c, *spatial)
        weight = self._tap_major_weight(c).view(self.weight.shape[0], taps * c, *([1] * self.dims))
        conv = F.conv2d if self.dims == 2 else F.conv3d
        return conv(sampled, weight, self.bias)

    def _tap_major_weight(self, channels: int) -> torch.Tensor:
        """The weight (C_out, C_in * taps) as stored (channel-major, like ``nn.ConvNd``'s flattened
        kernel), reordered tap-major to match the stacked samples."""
        out = self.weight.shape[0]
        taps = self.taps.shape[0]
        return self.weight.view(out, channels, taps).transpose(1, 2).reshape(out, taps * channels)

    def kernel(self) -> torch.Tensor:
        """The weights as an ordinary convolution kernel (C_out, C_in, k, k[, k]): with zero
        offsets the layer equals ``F.conv{2,3}d`` with this kernel, its dilation and padding."""
        k = self.kernel_size
        return self.weight.view(self.weight.shape[0], -1, *([k] * self.dims))
