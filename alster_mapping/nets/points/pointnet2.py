"""PointNet++ with single-scale grouping (Qi et al., NeurIPS 2017): the shared point backbone.

    set abstraction (section 3.2):  centroids = FPS(xyz, M); groups = ball_query(r, K);
        f_j = max_k MLP([x_k - x_j, f_k])                                  (eq. 1, h = MLP, max pooling)
    feature propagation (section 3.4): f_i = MLP([interp_3NN(f)(x_i), skip_i])   (eq. 2)

ASIS and BAN (../papers/asis.md, ban.md) use it as their shared encoder with the S3DIS
semantic-segmentation layout that ``PointNet2Config`` defaults to: four set abstractions
(1024 / 256 / 64 / 16 centroids, radii 0.1 / 0.2 / 0.4 / 0.8 m, 32 neighbours, MLPs
32-32-64, 64-64-128, 128-128-256, 256-256-512) and four feature propagations back to
every input point. Deviation: each propagation here is two layers of its width (256-256,
256-256, 128-128, 128-128), where the reference code has 256-256, 256-256, 256-128 and
128-128-128 (one width per level keeps the config flat; the output width, 128, is the
same). Smaller settings for a CPU are a config change. Inputs: xyz (B, N, 3) and per-point features (B, N, C_in) (e.g. colour
and normalised room coordinates); output: per-point features (B, N, C_out).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ...core.config import param
from .ops import ball_query, farthest_point_sample, gather_points, group_points, three_nn_interpolate


@dataclass
class PointNet2Config:
    """The PointNet++ backbone: set abstraction levels and feature propagation widths."""

    centroids: tuple[int, ...] = param((1024, 256, 64, 16), "centroids of each set abstraction level", min=1, max=1 << 20)
    radii: tuple[float, ...] = param((0.1, 0.2, 0.4, 0.8), "ball query radius of each level [m]", min=0.0)
    neighbours: int = param(32, "points grouped per centroid (ball query K)", min=1, max=1024)
    sa_channels: tuple[int, ...] = param((64, 128, 256, 512), "output width of each set abstraction level", min=1, max=4096)
    fp_channels: tuple[int, ...] = param((256, 256, 128, 128), "output width of each feature propagation level, coarse to fine", min=1, max=4096)

    def __post_init__(self) -> None:
        levels = len(self.centroids)
        if not (len(self.radii) == len(self.sa_channels) == len(self.fp_channels) == levels):
            raise ValueError(f"centroids, radii, sa_channels and fp_channels need one entry per level ({levels})")


def shared_mlp(widths: list[int], dims: int) -> nn.Sequential:
    """1x1 convolutions + batch norm + ReLU over channels-first tensors (B, C, ...) of ``dims`` spatial dims."""
    conv, norm = (nn.Conv1d, nn.BatchNorm1d) if dims == 1 else (nn.Conv2d, nn.BatchNorm2d)
    layers: list[nn.Module] = []
    for c_in, c_out in zip(widths[:-1], widths[1:]):
        layers += [conv(c_in, c_out, 1, bias=False), norm(c_out), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


class SetAbstraction(nn.Module):
    """Sample ``num_centroids`` with FPS, group ``neighbours`` within ``radius``, apply an MLP to
    [relative xyz, features] and max-pool per group (eq. 1).

    forward(xyz (B, N, 3), features (B, N, C_in) or None) -> (centroids (B, M, 3), features (B, M, C_out)).
    """

    def __init__(self, num_centroids: int, radius: float, neighbours: int, in_channels: int, widths: list[int]):
        super().__init__()
        self.num_centroids, self.radius, self.neighbours = num_centroids, radius, neighbours
        self.mlp = shared_mlp([in_channels + 3, *widths], dims=2)

    def forward(self, xyz: torch.Tensor, features: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        centres = gather_points(xyz, farthest_point_sample(xyz, min(self.num_centroids, xyz.shape[1])))
        index = ball_query(xyz, centres, self.radius, self.neighbours)
        grouped = group_points(xyz, index) - centres.unsqueeze(2)  # (B, M, K, 3) in the centroid's frame
        if features is not None:
            grouped = torch.cat([grouped, group_points(features, index)], -1)
        pooled = self.mlp(grouped.permute(0, 3, 1, 2)).max(-1).values  # (B, C_out, M)
        return centres, pooled.transpose(1, 2)


class FeaturePropagation(nn.Module):
    """Interpolate coarse features to the finer points (3 nearest, inverse squared distance),
    concatenate the finer level's own features and apply an MLP (eq. 2).

    forward(fine_xyz (B, N, 3), coarse_xyz (B, M, 3), fine_features (B, N, C_skip) or None,
    coarse_features (B, M, C)) -> (B, N, C_out).
    """

    def __init__(self, in_channels: int, widths: list[int]):
        super().__init__()
        self.mlp = shared_mlp([in_channels, *widths], dims=1)

    def forward(self, fine_xyz, coarse_xyz, fine_features, coarse_features) -> torch.Tensor:
        features = three_nn_interpolate(fine_xyz, coarse_xyz, coarse_features)
        if fine_features is not None:
            features = torch.cat([features, fine_features], -1)
        return self.mlp(features.transpose(1, 2)).transpose(1, 2)


class PointNet2Encoder(nn.Module):
    """The set abstraction levels. forward(xyz (B, N, 3), features (B, N, in_channels) or
    None) -> the levels [(xyz, features), ...] from the input to the coarsest."""

    def __init__(self, config: PointNet2Config, in_channels: int = 0):
        super().__init__()
        self.config, self.in_channels = config, int(in_channels)
        self.abstractions = nn.ModuleList()
        previous = self.in_channels
        for m, r, c in zip(config.centroids, config.radii, config.sa_channels):
            # The reference layers widen in three steps: c/2, c/2, c (S3DIS: 32-32-64, ...).
            self.abstractions.append(SetAbstraction(m, r, config.neighbours, previous, [max(c // 2, 1), max(c // 2, 1), c]))
            previous = c

    def forward(self, xyz: torch.Tensor, features: torch.Tensor | None = None) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
        if (features is None) != (self.in_channels == 0):
            raise ValueError(f"the backbone takes {self.in_channels} feature channels besides xyz")
        levels: list[tuple[torch.Tensor, torch.Tensor | None]] = [(xyz, features)]
        for abstraction in self.abstractions:
            levels.append(abstraction(*levels[-1]))
        return levels


class PointNet2Decoder(nn.Module):
    """The feature propagation levels, from the coarsest back to the input points.
    forward(levels of ``PointNet2Encoder``) -> (B, N, config.fp_channels[-1])."""

    def __init__(self, config: PointNet2Config, in_channels: int = 0):
        super().__init__()
        self.config = config
        skips = [int(in_channels), *config.sa_channels[:-1]]  # what each finer level carries, fine to coarse
        self.propagations = nn.ModuleList()
        coarse = config.sa_channels[-1]
        for skip, c in zip(reversed(skips), config.fp_channels):
            self.propagations.append(FeaturePropagation(coarse + skip, [c, c]))
            coarse = c

    @property
    def out_channels(self) -> int:
        return self.config.fp_channels[-1]

    def forward(self, levels: list[tuple[torch.Tensor, torch.Tensor | None]]) -> torch.Tensor:
        coarse_xyz, coarse_features = levels[-1]
        for propagation, (fine_xyz, fine_features) in zip(self.propagations, reversed(levels[:-1])):
            coarse_features = propagation(fine_xyz, coarse_xyz, fine_features, coarse_features)
            coarse_xyz = fine_xyz
        return coarse_features


class PointNet2Backbone(nn.Module):
    """Encoder (set abstractions) + decoder (feature propagations) to per-point features.

    config: ``PointNet2Config``. in_channels: per-point input features besides xyz (0 = xyz
    only). forward(xyz (B, N, 3), features (B, N, in_channels) or None) -> (B, N,
    config.fp_channels[-1]). Families with several decoders over one encoder (ASIS, BAN)
    use ``PointNet2Encoder`` and ``PointNet2Decoder`` directly.
    """

    def __init__(self, config: PointNet2Config, in_channels: int = 0):
        super().__init__()
        self.config, self.in_channels = config, int(in_channels)
        self.encoder = PointNet2Encoder(config, in_channels)
        self.decoder = PointNet2Decoder(config, in_channels)

    @property
    def out_channels(self) -> int:
        return self.decoder.out_channels

    def forward(self, xyz: torch.Tensor, features: torch.Tensor | None = None) -> torch.Tensor:
        return self.decoder(self.encoder(xyz, features))
