"""ALSTER's 3D encoder F^3D: a light-weight sparse U-Net over one frame's voxels.

Paper (../papers/alster.md, section 3, "3D Encoder"): the 2D feature map f_t^2D is lifted
to 3D by back-projecting the depth (points beyond 3 m dropped), voxelized at 4 cm, and the
resulting *local* feature volume is refined by "a light-weight U-Net [33] F^3D yielding a 3D
feature map f_t^3D with the same feature dimension D_F = 40 as the 2D feature map". An
auxiliary per-voxel segmentation head on f_t^3D is trained with focal loss (Eq. 4-5,
lambda_3D = 1); the paper used MinkowskiEngine for these sparse convolutions (section 4.1).

Layout (channels c_0..c_L, default (16, 32, 48, 64); every convolution is bias-free and
followed by batch norm + ReLU):

    stem      linear in -> c_0, 3^3 conv c_0 -> c_0             tensor stride 1 (4 cm)
    encoder   level i > 0: 2^3 conv stride 2, c_{i-1} -> c_i   tensor stride 2^i
              then blocks[i] residual blocks of two 3^3 convs
    decoder   level i (coarse to fine): 2^3 transposed conv c_{i+1} -> c_i onto the
              encoder level's voxels, concatenate the skip, linear 2 c_i -> c_i, 3^3
              conv c_i -> c_i
    heads     features = Linear([U-Net output c_0, input features] -> D_F), no activation
              (like the 2D encoder's 40-d projection); logits = Linear(D_F -> num_classes)
              (the auxiliary 3D head reads f_t^3D itself, so its focal loss shapes the
              feature space that the temporal expert consumes)

Why this shape: the cost is dominated by the full-resolution level (a frame voxel has
~15 of its 26 neighbours on surfaces at 4 cm, and the level holds ~80% of the voxels), so
it is kept narrow (c_0 = 16, no residual block, 3^3 convs only on 16 channels after a
linear projection) while the coarse levels, 4-8x fewer voxels each, carry the wide
layers. The input features reach the head directly, so the narrow full-resolution path
only has to add geometric context to f_t^2D, not carry all of it. 2^3 stride-2 kernels
down and up (as in MinkUNet) touch every voxel exactly once. Measured on 2 threads
(bench/bench_sparse.py): ~36 ms forward at 10k frame voxels, ~0.6M parameters.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .sparse import (
    DEFAULT_BACKEND,
    SparseBatchNorm,
    SparseConv3d,
    SparseConvTranspose3d,
    SparseModule,
    SparseReLU,
    SparseTensor,
    cat,
    sparse_tensor,
)


class ConvBNReLU(nn.Module):
    """Sparse convolution (no bias) -> batch norm -> ReLU. forward(SparseTensor) -> SparseTensor."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1, backend: str = DEFAULT_BACKEND
    ):
        super().__init__()
        self.conv = SparseConv3d(in_channels, out_channels, kernel_size, stride, backend=backend)
        self.bn = SparseBatchNorm(out_channels)
        self.relu = SparseReLU()

    def forward(self, x: SparseTensor) -> SparseTensor:
        """SparseTensor (N, in) -> (N_out, out)."""
        return self.relu(self.bn(self.conv(x)))


class ProjectedConv(nn.Module):
    """Per-voxel linear projection in -> out, then 3^3 conv out -> out, batch norm, ReLU.

    A 3^3 conv factorized through ``out`` channels: its cost grows with out^2 instead of
    in * out per neighbour, which matters at full resolution where in > out (the stem's 40
    input channels, the decoder's concatenated skips). forward(SparseTensor (N, in)) ->
    SparseTensor (N, out) on the same coordinates.
    """

    def __init__(self, in_channels: int, out_channels: int, backend: str = DEFAULT_BACKEND):
        super().__init__()
        self.project = SparseConv3d(in_channels, out_channels, kernel_size=1, backend=backend)
        self.conv = ConvBNReLU(out_channels, out_channels, 3, backend=backend)

    def forward(self, x: SparseTensor) -> SparseTensor:
        """SparseTensor (N, in) -> (N, out), same coordinates."""
        return self.conv(self.project(x))


class ResidualBlock(nn.Module):
    """Basic residual block on fixed voxels: relu(x + bn(conv(relu(bn(conv(x)))))), channels kept.

    forward(SparseTensor (N, C)) -> SparseTensor (N, C) on the same coordinates.
    """

    def __init__(self, channels: int, backend: str = DEFAULT_BACKEND):
        super().__init__()
        self.conv1 = SparseConv3d(channels, channels, 3, backend=backend)
        self.bn1 = SparseBatchNorm(channels)
        self.conv2 = SparseConv3d(channels, channels, 3, backend=backend)
        self.bn2 = SparseBatchNorm(channels)
        self.relu = SparseReLU()

    def forward(self, x: SparseTensor) -> SparseTensor:
        """SparseTensor (N, C) -> (N, C), same coordinates."""
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.relu(y + x)


class UpBlock(nn.Module):
    """Transposed 2^3 conv onto the skip's voxels, concatenate the skip, fuse (ProjectedConv).

    forward(x (N_coarse, c_in) at stride 2s, skip (N_fine, c_out) at stride s) ->
    SparseTensor (N_fine, c_out) on the skip's coordinates and row order.
    """

    def __init__(self, in_channels: int, out_channels: int, backend: str = DEFAULT_BACKEND):
        super().__init__()
        self.up = SparseConvTranspose3d(in_channels, out_channels, kernel_size=2, stride=2, backend=backend)
        self.up_bn = SparseBatchNorm(out_channels)
        self.fuse = ProjectedConv(2 * out_channels, out_channels, backend=backend)
        self.relu = SparseReLU()

    def forward(self, x: SparseTensor, skip: SparseTensor) -> SparseTensor:
        """x at stride 2s, skip at stride s -> (N_skip, c_out) on the skip's coordinates."""
        up = self.relu(self.up_bn(self.up(x, target=skip)))
        return self.fuse(cat([up, skip]))


class UNet3D(SparseModule):
    """Light-weight sparse 3D U-Net F^3D of ALSTER (../papers/alster.md, section 3, "3D Encoder").

    in_channels: input feature size per voxel (the lifted 2D features, D^2D = 40).
    feature_dim: output feature size D_F (40). num_classes: auxiliary head classes (20 for
    ScanNet-20). channels: per-level widths, level i at tensor stride 2^i (len >= 1).
    blocks: residual blocks per encoder level (an int applies to levels >= 1; level 0
    then has none), or one count per level. input_skip: feed the input features to the
    feature head as well. backend: 'torch' (CPU/CUDA) or 'minkowski'
    (MinkowskiEngine, CPU); the state_dict is the same for both (``set_backend`` switches).

    forward(keys (N, 3) int32 distinct voxel coordinates of ONE frame (voxel units, any
    sign), features (N, in_channels) float) -> (features (N, feature_dim), logits (N,
    num_classes)), row i for input voxel i. Translating the keys by a multiple of
    ``2 ** (len(channels) - 1)`` voxels leaves the outputs unchanged.
    """

    def __init__(
        self,
        in_channels: int = 40,
        feature_dim: int = 40,
        num_classes: int = 20,
        channels: Sequence[int] = (16, 32, 48, 64),
        blocks: int | Sequence[int] = 1,
        input_skip: bool = True,
        backend: str = DEFAULT_BACKEND,
    ):
        super().__init__(backend)
        channels = tuple(int(c) for c in channels)
        if not channels or min(channels) < 1:
            raise ValueError(f"channels must be a non-empty sequence of positive ints, got {channels}")
        if isinstance(blocks, int):
            blocks = (0,) + (blocks,) * (len(channels) - 1)
        blocks = tuple(int(b) for b in blocks)
        if len(blocks) != len(channels) or min(blocks) < 0:
            raise ValueError(f"blocks must be one count >= 0 per level ({len(channels)}), got {blocks}")
        self.in_channels = int(in_channels)
        self.feature_dim = int(feature_dim)
        self.num_classes = int(num_classes)
        self.channels = channels
        self.blocks = blocks
        self.input_skip = bool(input_skip)
        self.stem = ProjectedConv(in_channels, channels[0], backend=backend)
        self.encoders = nn.ModuleList()
        for i, c in enumerate(channels):
            layers: list[nn.Module] = []
            if i > 0:
                layers.append(ConvBNReLU(channels[i - 1], c, kernel_size=2, stride=2, backend=backend))
            layers += [ResidualBlock(c, backend=backend) for _ in range(blocks[i])]
            self.encoders.append(nn.Sequential(*layers))
        self.decoders = nn.ModuleList(
            UpBlock(channels[i + 1], channels[i], backend=backend) for i in reversed(range(len(channels) - 1))
        )
        self.feature_head = nn.Linear(channels[0] + (in_channels if input_skip else 0), feature_dim)
        self.class_head = nn.Linear(feature_dim, num_classes)

    @property
    def coarsest_stride(self) -> int:
        """Tensor stride of the deepest level, 2^(levels - 1) voxels."""
        return 2 ** (len(self.channels) - 1)

    @property
    def num_parameters(self) -> int:
        """Number of trainable scalars."""
        return count_parameters(self)

    def forward_sparse(self, x: SparseTensor) -> SparseTensor:
        """U-Net body on a sparse tensor (any batch): (N, in_channels) -> (N, channels[0]), same voxels."""
        self._check_input(x)
        skips = []
        y = self.stem(x)
        for encoder in self.encoders:
            y = encoder(y)
            skips.append(y)
        for decoder, skip in zip(self.decoders, reversed(skips[:-1])):
            y = decoder(y, skip)
        return y

    def forward(self, keys: torch.Tensor, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """keys (N, 3) int32/int64 distinct voxels, features (N, in_channels) float ->
        (features (N, feature_dim), logits (N, num_classes)) in input row order."""
        if keys.dim() != 2 or keys.shape[1] != 3:
            raise ValueError(f"keys must be (N, 3) voxel coordinates, got shape {tuple(keys.shape)}")
        if features.dim() != 2 or features.shape != (keys.shape[0], self.in_channels):
            raise ValueError(
                f"features must be (N, {self.in_channels}) with N = {keys.shape[0]}, got {tuple(features.shape)}"
            )
        if keys.shape[0] == 0:
            out = self.feature_head.weight.new_zeros((0, self.feature_dim))
            return out, self.class_head(out)
        keys = keys.to(device=features.device, dtype=torch.int64)
        # Shift to non-negative coordinates by a multiple of the coarsest stride: the
        # down-sampling cells stay aligned to the world grid (outputs are invariant to such
        # shifts) and neither backend sees negative coordinates.
        s = self.coarsest_stride
        origin = torch.div(keys.min(0).values, s, rounding_mode="floor") * s
        coords = torch.cat([keys.new_zeros((keys.shape[0], 1)), keys - origin], 1).to(torch.int32)
        x = sparse_tensor(coords, features, backend=self.backend)
        y = self.forward_sparse(x).features
        if self.input_skip:
            y = torch.cat([y, features], 1)
        out = self.feature_head(y)
        return out, self.class_head(out)


def count_parameters(module: nn.Module) -> int:
    """Number of trainable scalars of a module."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
