"""Sparse 3D convolution behind one small API with two backends ('torch', 'minkowski').

ALSTER's 3D encoder is a light-weight sparse U-Net over the frustum voxels
(../papers/alster.md, section 3, "3D Encoder"; the paper used MinkowskiEngine, 4.1).
Here the same modules run either on a pure-PyTorch backend (CPU and CUDA; the default)
or on MinkowskiEngine (optional, CPU-only build), with one weight layout so checkpoints
move freely between them.

    x = sparse_tensor(coords_b_xyz_int32, features, backend="torch")
    y = SparseConv3d(40, 32, kernel_size=3, backend="torch")(x)      # same voxels
    z = SparseConv3d(32, 48, kernel_size=2, stride=2)(y)              # stride 2
    u = SparseConvTranspose3d(48, 32, kernel_size=2, stride=2)(z, target=y)
"""

from .factory import BACKENDS, DEFAULT_BACKEND, check_backend, sparse_tensor
from .kernels import kernel_offsets, kernel_volume, minkowski_kernel_order
from .minkowski_backend import (
    BackendUnavailableError,
    import_minkowski,
    minkowski_available,
    minkowski_unavailable_reason,
)
from .modules import (
    SparseActivation,
    SparseBatchNorm,
    SparseConv3d,
    SparseConvTranspose3d,
    SparseModule,
    SparseReLU,
    set_backend,
)
from .tensor import CoordinateManager, SparseTensor, cat
from .torch_backend import KernelMap, TorchCoordinateManager, build_kernel_map, strided_coordinates
from .torch_convolution import sparse_convolution

__all__ = [
    "BACKENDS",
    "DEFAULT_BACKEND",
    "BackendUnavailableError",
    "CoordinateManager",
    "KernelMap",
    "SparseActivation",
    "SparseBatchNorm",
    "SparseConv3d",
    "SparseConvTranspose3d",
    "SparseModule",
    "SparseReLU",
    "SparseTensor",
    "TorchCoordinateManager",
    "build_kernel_map",
    "cat",
    "check_backend",
    "import_minkowski",
    "kernel_offsets",
    "kernel_volume",
    "minkowski_available",
    "minkowski_kernel_order",
    "minkowski_unavailable_reason",
    "set_backend",
    "sparse_convolution",
    "sparse_tensor",
    "strided_coordinates",
]
