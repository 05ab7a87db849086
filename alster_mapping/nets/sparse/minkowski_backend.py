"""MinkowskiEngine backend (the reference; ALSTER's 3D encoder used it, ../papers/alster.md, 4.1).

Wraps MinkowskiEngine 0.5.4's ``SparseTensor`` / ``CoordinateManager`` and the autograd
functions behind ``MinkowskiConvolution`` and ``MinkowskiConvolutionTranspose``. Weights
stay in the canonical layout (K^3, C_in, C_out) of ``kernels.py`` and are permuted into
MinkowskiEngine's offset order at call time (a differentiable ``index_select``), so the
same state_dict runs on either backend. Batch norm and activations act on the feature
matrix exactly as ``MinkowskiBatchNorm`` / ``MinkowskiReLU`` do, so they need no wrapper.

MinkowskiEngine is optional. Its Python code does ``from collections import Sequence``
(removed in Python 3.10); ``import_minkowski`` restores that alias before importing it and
never touches installed files. The build here is CPU-only: features must be on the CPU.
"""

from __future__ import annotations

import collections
import collections.abc
import warnings
from collections.abc import Hashable
from types import ModuleType
from typing import Any

import torch

from .kernels import minkowski_kernel_order
from .tensor import CoordinateManager, SparseTensor

_ME: ModuleType | None = None
_IMPORT_ERROR: BaseException | None = None


class BackendUnavailableError(ImportError):
    """The requested sparse backend cannot be used here (with the reason)."""


def import_minkowski() -> ModuleType:
    """Import and return the ``MinkowskiEngine`` module, or raise BackendUnavailableError.

    Sets ``collections.Sequence = collections.abc.Sequence`` first (MinkowskiEngine 0.5.4
    still imports it from ``collections``) and silences its CPU_ONLY warning.
    """
    global _ME, _IMPORT_ERROR
    if _ME is not None:
        return _ME
    if _IMPORT_ERROR is None:
        if not hasattr(collections, "Sequence"):
            collections.Sequence = collections.abc.Sequence  # type: ignore[attr-defined]
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*compiled with CPU_ONLY.*")
                import MinkowskiEngine  # noqa: PLC0415
        except Exception as exc:  # ImportError, or a broken build failing in its import code
            _IMPORT_ERROR = exc
        else:
            _ME = MinkowskiEngine
            return _ME
    raise BackendUnavailableError(
        "sparse backend 'minkowski' needs MinkowskiEngine 0.5.4, which failed to import "
        f"({type(_IMPORT_ERROR).__name__}: {_IMPORT_ERROR}); use backend='torch' or install it "
        "(see ../shared/docs/MEASUREMENTS.md / `make setup`)"
    ) from _IMPORT_ERROR


def minkowski_available() -> bool:
    """Whether MinkowskiEngine imports here (the 'minkowski' backend can be used)."""
    try:
        import_minkowski()
    except BackendUnavailableError:
        return False
    return True


def minkowski_unavailable_reason() -> str:
    """Why the 'minkowski' backend cannot be used ('' when it can)."""
    try:
        import_minkowski()
    except BackendUnavailableError as exc:
        return str(exc)
    return ""


def _key_tuple(key: Any) -> tuple:
    stride, name = key.get_key()
    return (tuple(stride), name)


class MinkowskiCoordinateManager(CoordinateManager):
    """Our view of one ``MinkowskiEngine.CoordinateManager``; keys are ``CoordinateMapKey``.

    MinkowskiEngine caches kernel maps and strided coordinate maps itself, per manager.
    """

    backend = "minkowski"

    def __init__(self, me_manager: Any):
        self.me_manager = me_manager

    def coordinates(self, key: Hashable) -> torch.Tensor:
        """Coordinates (N, 4) int32 of the map ``key`` (a copy out of MinkowskiEngine)."""
        return self.me_manager.get_coordinates(key)

    def size(self, key: Hashable) -> int:
        """N, the number of voxels of the map ``key``."""
        return int(self.me_manager.size(key))

    def same_set(self, key_a: Hashable, key_b: Hashable) -> bool:
        """Whether two CoordinateMapKeys name the same map (tensor stride and id)."""
        return _key_tuple(key_a) == _key_tuple(key_b)


def _check_cpu(features: torch.Tensor) -> None:
    if features.device.type != "cpu":
        raise BackendUnavailableError(
            f"the MinkowskiEngine build here is CPU-only; features are on {features.device} (use backend='torch')"
        )


def minkowski_sparse_tensor(coordinates: torch.Tensor, features: torch.Tensor, stride: int) -> SparseTensor:
    """Build our SparseTensor on a new MinkowskiEngine coordinate manager.

    coordinates: (N, 4) int32 distinct [batch, x, y, z]; features (N, C) float on the CPU.
    Raises ValueError if MinkowskiEngine would merge or reorder rows (we promise input order).
    """
    ME = import_minkowski()
    _check_cpu(features)
    if coordinates.shape[0] == 0:
        # MinkowskiEngine's coordinate maps cannot hold zero rows reliably through
        # convolutions; an empty tensor has no neighbours to compute with anyway.
        raise ValueError("the 'minkowski' backend cannot build an empty sparse tensor")
    # An explicit manager with torch's thread count: a default one sets the process-wide
    # OpenMP thread count to min(cpu_count, 20) as a side effect (seen as
    # torch.get_num_threads() changing after the first MinkowskiEngine call).
    manager = ME.CoordinateManager(D=3, num_threads=torch.get_num_threads())
    x = ME.SparseTensor(
        features, coordinates=coordinates.cpu(), tensor_stride=int(stride), coordinate_manager=manager
    )
    n = int(coordinates.shape[0])
    unique_index = getattr(x, "unique_index", None)
    if x.F.shape[0] != n:
        raise ValueError("MinkowskiEngine merged duplicate coordinates; coordinates must be distinct")
    if unique_index is not None and not torch.equal(unique_index.cpu(), torch.arange(n)):
        raise ValueError("MinkowskiEngine reordered the input rows; this backend wrapper keeps input order only")
    return SparseTensor(x.F, MinkowskiCoordinateManager(x.coordinate_manager), x.coordinate_map_key, int(stride))


class MinkowskiConvolutionCall:
    """The MinkowskiEngine side of one convolution module (kernel generator + offset order).

    Built once per module; ``__call__`` applies the canonical weight (K^3, C_in, C_out).
    """

    def __init__(self, kernel_size: int, stride: int, dilation: int, transpose: bool):
        ME = import_minkowski()
        from MinkowskiEngineBackend._C import ConvolutionMode  # noqa: PLC0415

        self.kernel_generator = ME.KernelGenerator(
            kernel_size=kernel_size, stride=stride, dilation=dilation, dimension=3
        )
        self.mode = ConvolutionMode.DEFAULT
        self.order = minkowski_kernel_order(kernel_size)
        self.stride = stride
        self.transpose = transpose
        self.function = (
            ME.MinkowskiConvolutionTransposeFunction if transpose else ME.MinkowskiConvolutionFunction
        )
        self._key_class = ME.CoordinateMapKey

    def __call__(self, x: SparseTensor, weight: torch.Tensor, target: SparseTensor | None = None) -> SparseTensor:
        """Convolve ``x`` (a 'minkowski' SparseTensor) with canonical ``weight``; see SparseConv3d."""
        _check_cpu(x.features)
        manager: MinkowskiCoordinateManager = x.manager  # type: ignore[assignment]
        if target is not None:
            if target.manager is not manager:
                raise ValueError("target must share the input's coordinate manager")
            out_key = target.key
        else:
            # An unset key: MinkowskiEngine fills it with the strided (or, transposed, the
            # existing finer) coordinate map it creates or finds in the manager.
            out_key = self._key_class(4)
        me_weight = weight.index_select(0, self.order.to(weight.device))
        features = self.function.apply(
            x.features.contiguous(),
            me_weight,
            self.kernel_generator,
            self.mode,
            x.key,
            out_key,
            manager.me_manager,
        )
        out_stride = x.stride // self.stride if self.transpose else x.stride * self.stride
        return SparseTensor(features, manager, out_key, out_stride)
