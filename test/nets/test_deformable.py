"""Deformable convolution on grid_sample (alster_mapping.nets.deformable) against references."""

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from alster_mapping.nets.deformable import DeformConv


def interpolate(x: np.ndarray, point: np.ndarray) -> np.ndarray:
    """Multilinear interpolation of x (C, *spatial) at a point (dims,), zeros outside: the reference."""
    lower = np.floor(point).astype(int)
    value = np.zeros(x.shape[0])
    for corner in itertools.product((0, 1), repeat=len(point)):
        index = lower + corner
        weight = np.prod([1 - abs(point[a] - index[a]) for a in range(len(point))])
        if all(0 <= index[a] < x.shape[1 + a] for a in range(len(point))):
            value += weight * x[(slice(None),) + tuple(index)]
    return value


def brute_force(layer: DeformConv, x: torch.Tensor, offsets: torch.Tensor) -> np.ndarray:
    """y(p) = sum_k w_k . x(p + d * k + delta_k(p)), one output position at a time."""
    xs, off = x[0].double().numpy(), offsets[0].double().numpy()
    kernel = layer.kernel().detach().double().numpy()  # (C_out, C_in, k, ...)
    dims, k, d = layer.dims, layer.kernel_size, layer.dilation
    taps = list(itertools.product(range(k), repeat=dims))
    spatial = xs.shape[1:]
    out = np.zeros((kernel.shape[0],) + spatial)
    for p in itertools.product(*[range(s) for s in spatial]):
        for t, tap in enumerate(taps):
            delta = off[t * dims : (t + 1) * dims][(slice(None),) + p]
            sample = interpolate(xs, np.array(p) + d * (np.array(tap) - k // 2) + delta)
            out[(slice(None),) + p] += kernel[(slice(None), slice(None)) + tap] @ sample
    return out + layer.bias.detach().double().numpy().reshape((-1,) + (1,) * dims)


@pytest.mark.parametrize("dims, shape, dilation", [(2, (7, 6), 1), (2, (6, 5), 2), (3, (4, 5, 3), 1)])
def test_matches_the_brute_force_definition(dims, shape, dilation):
    torch.manual_seed(0)
    layer = DeformConv(dims, 2, 3, kernel_size=3, dilation=dilation)
    with torch.no_grad():
        layer.bias.normal_()
    x = torch.randn(1, 2, *shape)
    offsets = 1.5 * torch.randn(1, dims * 3**dims, *shape)  # fractional, some pointing outside
    got = layer(x, offsets)[0].double().detach().numpy()
    np.testing.assert_allclose(got, brute_force(layer, x, offsets), atol=1e-5)


@pytest.mark.parametrize("dims, dilation", [(2, 1), (2, 3), (3, 2)])
def test_zero_offsets_are_the_ordinary_dilated_convolution(dims, dilation):
    torch.manual_seed(1)
    layer = DeformConv(dims, 4, 5, kernel_size=3, dilation=dilation)
    x = torch.randn(2, 4, *([9] * dims))
    conv = F.conv2d if dims == 2 else F.conv3d
    want = conv(x, layer.kernel(), layer.bias, padding=dilation, dilation=dilation)
    torch.testing.assert_close(layer(x), want, atol=1e-5, rtol=1e-5)  # a fresh layer: learnt offsets are zero


def test_offsets_learn():
    torch.manual_seed(2)
    layer = DeformConv(2, 2, 2)
    x = torch.randn(1, 2, 8, 8)
    layer(x).pow(2).sum().backward()
    assert layer.offset.weight.grad.abs().sum() > 0 and layer.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="odd"):
        DeformConv(2, 1, 1, kernel_size=2)
    with pytest.raises(ValueError, match="4-D"):
        layer(torch.randn(2, 8, 8))
