"""Sparse network modules with one weight layout and a per-module backend string.

Every module works on ``SparseTensor`` (tensor.py) and owns the same parameters whatever
its backend: a convolution holds ``weight`` (K^3, C_in, C_out) in the canonical offset order
(kernels.py) and optionally ``bias`` (C_out,); batch norm is a ``torch.nn.BatchNorm1d`` over
the feature rows (MinkowskiEngine's ``MinkowskiBatchNorm`` is the same computation). A
state_dict saved with one backend therefore loads and runs unchanged on the other;
``set_backend`` switches a whole network in place.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

from .factory import DEFAULT_BACKEND, check_backend
from .kernels import check_kernel_args, kernel_volume
from .tensor import SparseTensor
from .torch_backend import TorchCoordinateManager
from .torch_convolution import sparse_convolution


class SparseModule(nn.Module):
    """Base of the backend-aware modules; ``backend`` is 'torch' or 'minkowski'.

    Inputs must come from the same backend (a 'torch' module refuses a 'minkowski' tensor
    rather than silently converting it).
    """

    def __init__(self, backend: str = DEFAULT_BACKEND):
        super().__init__()
        self.backend = check_backend(backend)

    def _check_input(self, x: SparseTensor) -> None:
        if not isinstance(x, SparseTensor):
            raise TypeError(f"{type(self).__name__} expects a SparseTensor, got {type(x).__name__}")
        if x.backend != self.backend:
            raise ValueError(
                f"{type(self).__name__} uses backend {self.backend!r} but the input tensor is {x.backend!r}; "
                "build the input with the same backend or call set_backend()"
            )

    def extra_repr(self) -> str:
        """Shown by ``repr(module)``."""
        return f"backend={self.backend!r}"


def set_backend(module: nn.Module, backend: str) -> nn.Module:
    """Switch every SparseModule inside ``module`` (and ``module`` itself) to ``backend``; returns it.

    Parameters and buffers are untouched: both backends use the same layout.
    """
    check_backend(backend)
    for m in module.modules():
        if isinstance(m, SparseModule):
            m.backend = backend
    return module


class _ConvolutionBase(SparseModule):
    transpose = False

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int,
        dilation: int,
        bias: bool,
        backend: str,
    ):
        super().__init__(backend)
        self.kernel_size, self.stride, self.dilation = check_kernel_args(kernel_size, stride, dilation)
        self.in_channels = int(in_channels)
        self.out_channels = int(out_channels)
        self.weight = nn.Parameter(torch.empty(kernel_volume(self.kernel_size), self.in_channels, self.out_channels))
        self.bias = nn.Parameter(torch.empty(self.out_channels)) if bias else None
        self._minkowski_call = None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Uniform init in +-1/sqrt(fan_in) (torch's and MinkowskiEngine's default)."""
        volume = self.weight.shape[0]
        if self.transpose:
            # Each output voxel of a stride-s transposed conv sees ~K^3 / s^3 of the offsets.
            fan_in = self.in_channels * max(1, volume // self.stride**3)
        else:
            fan_in = self.in_channels * volume
        bound = 1.0 / math.sqrt(max(1, fan_in))
        with torch.no_grad():
            self.weight.uniform_(-bound, bound)
            if self.bias is not None:
                self.bias.uniform_(-bound, bound)

    def _minkowski(self):
        if self._minkowski_call is None:
            from .minkowski_backend import MinkowskiConvolutionCall

            self._minkowski_call = MinkowskiConvolutionCall(
                self.kernel_size, self.stride, self.dilation, self.transpose
            )
        return self._minkowski_call

    def _add_bias(self, out: SparseTensor) -> SparseTensor:
        if self.bias is None:
            return out
        return out.with_features(out.features + self.bias)

    def extra_repr(self) -> str:
        """Shown by ``repr(module)``."""
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
            f"dilation={self.dilation}, bias={self.bias is not None}, backend={self.backend!r}"
        )


class SparseConv3d(_ConvolutionBase):
    """Sparse 3D convolution (MinkowskiEngine semantics), backend 'torch' or 'minkowski'.

    out[u] = sum_k W_k^T x[u + o_k * s * dilation] (+ bias) for output voxels u, where s is
    the input tensor stride and o_k the canonical offsets (kernels.py). stride 1: output
    voxels = input voxels, same rows (submanifold convolution). stride r > 1: output voxels
    are the distinct floor(c / (s r)) * s r of the input coordinates (tensor stride s r).

    weight: (K^3, in_channels, out_channels); bias: (out_channels,) or None.
    forward(x: SparseTensor with in_channels) -> SparseTensor (N_out, out_channels).
    kernel_size 1 with stride 1 is a per-voxel linear layer.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        dilation: int = 1,
        bias: bool = False,
        backend: str = DEFAULT_BACKEND,
    ):
        super().__init__(in_channels, out_channels, kernel_size, stride, dilation, bias, backend)

    def forward(self, x: SparseTensor) -> SparseTensor:
        """x (N_in, in_channels) -> (N_out, out_channels) at tensor stride x.stride * stride."""
        self._check_input(x)
        if x.num_channels != self.in_channels:
            raise ValueError(f"expected {self.in_channels} input channels, got {x.num_channels}")
        if self.kernel_size == 1 and self.stride == 1:
            return self._add_bias(x.with_features(x.features @ self.weight[0]))
        if self.backend == "minkowski":
            return self._add_bias(self._minkowski()(x, self.weight))
        manager: TorchCoordinateManager = x.manager  # type: ignore[assignment]
        out_key, kmap = manager.convolution_map(x.key, self.kernel_size, self.stride, self.dilation)
        features = sparse_convolution(x.features, self.weight, kmap)
        return self._add_bias(SparseTensor(features, manager, out_key, manager.stride(out_key)))


class SparseConvTranspose3d(_ConvolutionBase):
    """Sparse transposed 3D convolution back onto a finer, existing coordinate set.

    The exact adjoint of ``SparseConv3d`` with the same kernel size, stride and dilation:
    a coarse voxel c (tensor stride S) sends W_k^T x[c] to the fine voxel c + o_k * (S /
    stride) * dilation when that voxel exists in the target set. No coordinates are
    generated: the output lives on ``target`` (the encoder tensor at stride S / stride)
    or, if None, on the set the input was down-sampled from.

    weight: (K^3, in_channels, out_channels); bias: (out_channels,) or None.
    forward(x: SparseTensor, target: SparseTensor | None) -> SparseTensor on the target's
    coordinates and row order, (N_target, out_channels).
    """

    transpose = True

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 2,
        stride: int = 2,
        dilation: int = 1,
        bias: bool = False,
        backend: str = DEFAULT_BACKEND,
    ):
        super().__init__(in_channels, out_channels, kernel_size, stride, dilation, bias, backend)

    def forward(self, x: SparseTensor, target: SparseTensor | None = None) -> SparseTensor:
        """x (N, in_channels) at stride S -> (N_target, out_channels) at stride S / stride."""
        self._check_input(x)
        if x.num_channels != self.in_channels:
            raise ValueError(f"expected {self.in_channels} input channels, got {x.num_channels}")
        if x.stride % self.stride:
            raise ValueError(f"transposed stride {self.stride} does not divide the input tensor stride {x.stride}")
        if target is not None:
            self._check_input(target)
            if target.manager is not x.manager:
                raise ValueError("target must come from the same network pass (same coordinate manager)")
            if target.stride * self.stride != x.stride:
                raise ValueError(
                    f"target tensor stride {target.stride} != input stride {x.stride} / {self.stride}"
                )
        if self.backend == "minkowski":
            return self._add_bias(self._minkowski()(x, self.weight, target))
        manager: TorchCoordinateManager = x.manager  # type: ignore[assignment]
        out_key, kmap = manager.transposed_map(
            x.key, self.kernel_size, self.stride, self.dilation, None if target is None else target.key
        )
        features = sparse_convolution(x.features, self.weight, kmap)
        return self._add_bias(SparseTensor(features, manager, out_key, manager.stride(out_key)))


class SparseBatchNorm(nn.BatchNorm1d):
    """Batch norm over the voxels of a SparseTensor (``MinkowskiBatchNorm`` computes the same).

    Same arguments and state_dict as ``torch.nn.BatchNorm1d(num_features)``; identical on
    both backends, hence no backend argument. forward(x (N, num_features)) -> same
    coordinates. In training mode a
    tensor with fewer than two voxels has no batch statistics: it is normalized with the
    running statistics (which are not updated) instead of raising.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1):
        super().__init__(num_features, eps=eps, momentum=momentum)

    def forward(self, x: SparseTensor) -> SparseTensor:  # type: ignore[override]
        """Normalize x's features (N, num_features); same coordinates."""
        features = x.features
        if self.training and features.shape[0] < 2:
            out = F.batch_norm(
                features, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps
            )
        else:
            out = super().forward(features)
        return x.with_features(out)


class SparseActivation(nn.Module):
    """Apply an element-wise function (e.g. ``torch.relu``) to the features; coordinates unchanged.

    fn: Callable[[Tensor (N, C)], Tensor (N, C)].
    """

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor]):
        super().__init__()
        self.fn = fn

    def forward(self, x: SparseTensor) -> SparseTensor:
        """fn applied to x's features; same coordinates."""
        return x.with_features(self.fn(x.features))

    def extra_repr(self) -> str:
        """Shown by ``repr(module)``."""
        return getattr(self.fn, "__name__", repr(self.fn))


class SparseReLU(SparseActivation):
    """ReLU on the features (``MinkowskiReLU``)."""

    def __init__(self):
        super().__init__(torch.relu)
