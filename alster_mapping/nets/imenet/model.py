"""IMENet: Iterative Mutual Enhancement of semantic scene completion and 2D segmentation (Li et al., ../papers/imenet.md).

    2D branch (3.1): the project's image encoder (DeepLabV3+ on EfficientNet-Lite, RGB only, as
        the paper's Seg2DNet-RGB) -> coarse f_2d, 12 channels (empty / unlabelled + 11 classes)
    3D branch (3.2): SSCNet-style dilated 3D convolutions on the flipped TSDF -> coarse f_3d (12)
    reprojection p: the 3D prediction at each pixel's voxel; its inverse q: the mean 2D
        prediction of the pixels falling in each voxel (``VoxelVolume.pixel_voxel``)
    DCP (3.4, eq. 1): F_2d = f_2d + h(p(F_3d)) + C R[sum_i D_i(p(F_3d))]
    DDA (3.5, eq. 2): f^3 = DCP_3d(f_3d, q(F_2d)); F_3d,j = sum_i softmax_i(f^3_i . f^3_j) f^3_i + f^3_j
        along the depth axis (the horizontal viewing direction: the volume's y axis)
    iterations (3.3): F_3d = f_3d; T times: F_2d = DCP(f_2d, F_3d), F_3d = DDA(f_3d, F_2d)

D_i are deformable convolutions (``nets/deformable.py``, on grid_sample) with the pyramid's
rates, C a 1x1 convolution, R ReLU, h the one-hot of the arg-max. Deviations, each for this
CPU or for lack of the paper's details (no public code):

* The 3D branch works at the volume's resolution (60 x 60 x 36, the paper's quarter
  resolution) from the start: SSCNet's strided stem over its 240 x 144 x 240 input is left
  out, the residual / dilated blocks and the concatenated multi-scale head are kept.
* The deformable pyramid reads the projected class probabilities (softmax) instead of the
  projected label map, so it is differentiable and sees the other branch's uncertainty; h
  is the one-hot of their arg-max, zero where nothing was projected.
* The pyramid's rates (1, 2, 3) and the modules' weights shared over the iterations are our
  choices (the paper's figures give the structure, not these numbers).
* The 2D branch runs at ``image_width`` (160 px) and so do its predictions and the
  pixel -> voxel map (nearest subsampling).
* DDA's deformable pyramid runs at half the volume's resolution (``dda_stride``: 8x less
  work; its output upsampled), the one-hot and the depth attention at full resolution.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ...core.samples import OCCLUDED, OUTSIDE
from ..deformable import DeformConv
from ..encoder2d import Encoder2D
from ..registry import MODELS
from .config import ImenetConfig

CHANNELS = 12
"""Prediction channels of both branches: 0 empty (3D) / unlabelled (2D), 1..11 the ssc11 classes."""


@dataclass
class ImenetOutput:
    """logits_2d: (B, 12, h, w) refined 2D prediction F_2d; logits_3d: (B, 12, X, Y, Z) F_3d.
    coarse_2d, coarse_3d: the branches' own predictions f_2d, f_3d (same shapes)."""

    logits_2d: torch.Tensor
    logits_3d: torch.Tensor
    coarse_2d: torch.Tensor
    coarse_3d: torch.Tensor


def reproject_to_pixels(volume: torch.Tensor, pixel_voxel: torch.Tensor) -> torch.Tensor:
    """p: per pixel the values (B, C, X, Y, Z) of its voxel -> (B, C, h, w); 0 where pixel_voxel (B, h, w) is -1."""
    b, c = volume.shape[:2]
    flat = volume.reshape(b, c, -1)
    index = pixel_voxel.reshape(b, 1, -1)
    gathered = torch.gather(flat, 2, index.clamp_min(0).expand(b, c, -1))
    return (gathered * (index >= 0)).view(b, c, *pixel_voxel.shape[1:])


def project_to_voxels(image: torch.Tensor, pixel_voxel: torch.Tensor, shape: tuple[int, int, int]) -> torch.Tensor:
    """q: per voxel the mean of the pixels (B, C, h, w) that fall in it -> (B, C, *shape); 0 where none does."""
    b, c = image.shape[:2]
    cells = shape[0] * shape[1] * shape[2]
    index = pixel_voxel.reshape(b, -1)
    valid = index >= 0
    target = torch.where(valid, index, torch.full_like(index, cells))  # invalid pixels land in a spare cell
    sums = image.new_zeros(b, c, cells + 1).scatter_add_(2, target.unsqueeze(1).expand(b, c, -1), image.reshape(b, c, -1))
    counts = image.new_zeros(b, 1, cells + 1).scatter_add_(2, target.unsqueeze(1), valid.unsqueeze(1).to(image.dtype))
    return (sums[:, :, :cells] / counts[:, :, :cells].clamp_min(1)).view(b, c, *shape)


def one_hot_of(probabilities: torch.Tensor) -> torch.Tensor:
    """h: the one-hot (B, C, ...) of the arg-max over channels; zero where every channel is 0 (nothing projected)."""
    hot = F.one_hot(probabilities.argmax(1), probabilities.shape[1]).movedim(-1, 1).to(probabilities.dtype)
    return hot * (probabilities.sum(1, keepdim=True) > 0)


class ContextPyramid(nn.Module):
    """DCP's refinement (eq. 1): own + h(x) + C R[sum_i D_i(x)] in ``dims`` (2 or 3) dimensions.

    stride: the pyramid runs on the input average-pooled by this factor and its output is
    upsampled back (linear); h stays at full resolution. In 3D a full-resolution pyramid
    costs 2.5 s per round at 60 x 60 x 36 on a 2-core CPU, stride 2 an eighth of that.
    """

    def __init__(self, dims: int, rates: tuple[int, ...], stride: int = 1):
        super().__init__()
        self.dims, self.stride = dims, stride
        self.branches = nn.ModuleList(DeformConv(dims, CHANNELS, CHANNELS, 3, rate) for rate in rates)
        self.fuse = (nn.Conv2d if dims == 2 else nn.Conv3d)(CHANNELS, CHANNELS, 1)

    def forward(self, own: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
        """own: this branch's coarse logits; other: the other branch's probabilities projected here (same shape)."""
        x = other
        if self.stride > 1:
            pool = F.avg_pool2d if self.dims == 2 else F.avg_pool3d
            x = pool(other, self.stride, ceil_mode=True)
        context = self.fuse(F.relu(torch.stack([branch(x) for branch in self.branches]).sum(0)))
        if self.stride > 1:
            context = F.interpolate(context, size=other.shape[2:], mode="bilinear" if self.dims == 2 else "trilinear", align_corners=False)
        return own + one_hot_of(other) + context


def depth_attention(features: torch.Tensor, axis: int = 3) -> torch.Tensor:
    """Eq. 2's second line: along ``axis`` (the depth axis of (B, C, X, Y, Z)), each position j
    becomes sum_i softmax_i(f_i . f_j) f_i + f_j, independently for every column."""
    moved = features.movedim(axis, -1).movedim(1, -1)  # (B, ..., D, C)
    scores = moved @ moved.transpose(-1, -2)  # (B, ..., D_i, D_j) = f_i . f_j
    attention = torch.softmax(scores, dim=-2)  # normalised over i for each j
    refined = attention.transpose(-1, -2) @ moved + moved  # row j: sum_i a_ij f_i + f_j
    return refined.movedim(-1, 1).movedim(-1, axis)


class SSCBranch(nn.Module):
    """The 3D branch: SSCNet's residual and dilated 3D convolutions and its concatenated head, at the volume's resolution."""

    def __init__(self, width: int, dilated_blocks: int):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv3d(1, width, 3, padding=1), nn.ReLU(inplace=True))
        self.blocks = nn.ModuleList([self._block(width, 1)] + [self._block(width, 2) for _ in range(dilated_blocks)])
        self.head = nn.Sequential(
            nn.Conv3d(width * len(self.blocks), width, 1), nn.ReLU(inplace=True), nn.Conv3d(width, CHANNELS, 1)
        )

    @staticmethod
    def _block(width: int, dilation: int) -> nn.Sequential:
        return nn.Sequential(
            nn.Conv3d(width, width, 3, padding=dilation, dilation=dilation), nn.ReLU(inplace=True),
            nn.Conv3d(width, width, 3, padding=dilation, dilation=dilation),
        )  # fmt: skip

    def forward(self, tsdf: torch.Tensor) -> torch.Tensor:
        x = self.stem(tsdf)
        outputs = []
        for block in self.blocks:
            x = F.relu(x + block(x))  # residual, as SSCNet's
            outputs.append(x)
        return self.head(torch.cat(outputs, 1))


@MODELS.register("imenet", config=ImenetConfig, task="scene_completion", inputs="rgbd_frame")
class ImenetModel(nn.Module):
    """config: ``ImenetConfig``. num_classes: classes besides empty (11 for ssc11).
    forward(batch) -> ``ImenetOutput``; batch: ``color`` (B, 3, h, w) float32 normalised as the
    image encoder expects, ``tsdf`` (B, 1, X, Y, Z) float32, ``pixel_voxel`` (B, h, w) int64."""

    def __init__(self, config: ImenetConfig | None = None, num_classes: int = CHANNELS - 1):
        super().__init__()
        self.config = config or ImenetConfig()
        if num_classes != CHANNELS - 1:
            raise ValueError(f"IMENet predicts the {CHANNELS - 1} scene-completion classes, got num_classes={num_classes}")
        self.num_classes = num_classes
        cfg = self.config
        self.branch_2d = Encoder2D(cfg.image_backbone, in_channels=3, num_classes=CHANNELS, pretrained=cfg.pretrained, channels_last=False)
        self.branch_3d = SSCBranch(cfg.width_3d, cfg.dilated_blocks)
        self.dcp = ContextPyramid(2, tuple(cfg.pyramid_rates)) if cfg.dcp else None
        self.dda = ContextPyramid(3, tuple(cfg.pyramid_rates), cfg.dda_stride) if cfg.dda else None

    def build_arguments(self) -> dict:
        return {"num_classes": self.num_classes}

    def forward(self, batch: dict[str, torch.Tensor], iterations: int | None = None) -> ImenetOutput:
        """Coarse predictions, then ``iterations`` (default ``config.iterations``; 0: none) rounds of DCP and DDA."""
        pixel_voxel = batch["pixel_voxel"]
        _, coarse_2d = self.branch_2d(batch["color"])
        coarse_3d = self.branch_3d(batch["tsdf"])
        shape = tuple(coarse_3d.shape[2:])
        logits_2d, logits_3d = coarse_2d, coarse_3d
        for _ in range(self.config.iterations if iterations is None else iterations):
            if self.dcp is not None:
                logits_2d = self.dcp(coarse_2d, reproject_to_pixels(torch.softmax(logits_3d, 1), pixel_voxel))
            if self.dda is not None:
                refined = self.dda(coarse_3d, project_to_voxels(torch.softmax(logits_2d, 1), pixel_voxel, shape))
                logits_3d = depth_attention(refined, axis=3)
            if self.dcp is None and self.dda is None:
                break  # no interaction: nothing changes between rounds
        return ImenetOutput(logits_2d, logits_3d, coarse_2d, coarse_3d)


def empty_voxel_weights(target: torch.Tensor, empty_ratio: float) -> torch.Tensor:
    """(N,) float32 loss weights of the voxels whose classes are ``target`` (N,) int64 (0 =
    empty): 1 for the non-empty ones, and for the empty ones the probability that SSCNet's
    balancing keeps one — ``empty_ratio`` times as many empty as non-empty voxels, at most
    all of them. empty_ratio 0, or no non-empty voxel: all ones."""
    weights = torch.ones(target.shape, dtype=torch.float32, device=target.device)
    empty = target == 0
    count, occupied = int(empty.sum()), int((~empty).sum())
    if empty_ratio > 0 and count and occupied:  # all empty: nothing to balance against, and a zero sum would divide by 0
        weights[empty] = min(1.0, empty_ratio * occupied / count)
    return weights


def completion_losses(
    output: ImenetOutput,
    batch: dict[str, torch.Tensor],
    tasks: tuple[str, ...] = ("2d", "3d"),
    coarse_weight: float = 1.0,
    empty_ratio: float = 0.0,
) -> dict[str, torch.Tensor]:
    """Section 3.6: softmax cross-entropy without class balancing — in 3D on the voxels in the
    camera's view that are not empty or are occluded (seen-free voxels are left out, and so is
    everything outside the view: a voxel no ray reaches says nothing the network could learn
    from this frame, and training on its non-empty ones alone taught a first model to fill
    the space above the view with ceiling), in 2D on the pixels with a class. tasks: which of
    them count in "total" (the iterative learning trains one branch at a time). The coarse
    predictions get ``coarse_weight`` of their own loss (deep supervision of each branch: a
    deviation, the paper is silent on it). empty_ratio > 0: SSCNet's data balancing in
    expectation (Song et al. sample the occluded empty voxels at this ratio to the non-empty
    ones; here each empty voxel's term is weighted by that sampling probability instead of
    drawing a mask) — the paper does without it; 0 = its protocol."""
    losses: dict[str, torch.Tensor] = {}
    total = output.logits_3d.new_zeros(())
    if "3d" in tasks:
        in_view = batch["visibility"] != OUTSIDE
        mask = in_view & ((batch["labels_3d"] > 0) | (batch["visibility"] == OCCLUDED))
        target = batch["labels_3d"][mask]
        weights = empty_voxel_weights(target, empty_ratio)
        for name, logits in (("3d", output.logits_3d), ("coarse_3d", output.coarse_3d)):
            if not target.numel():
                losses[name] = logits.sum() * 0
                continue
            per_voxel = F.cross_entropy(logits.movedim(1, -1)[mask], target, reduction="none")
            losses[name] = (per_voxel * weights).sum() / weights.sum()
        total = total + losses["3d"] + coarse_weight * losses["coarse_3d"]
    if "2d" in tasks:
        mask = batch["labels_2d"] > 0
        target = batch["labels_2d"][mask]
        for name, logits in (("2d", output.logits_2d), ("coarse_2d", output.coarse_2d)):
            losses[name] = F.cross_entropy(logits.movedim(1, -1)[mask], target) if target.numel() else logits.sum() * 0
        total = total + losses["2d"] + coarse_weight * losses["coarse_2d"]
    losses["total"] = total
    return losses
