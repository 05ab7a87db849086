"""SAFNet's similarity modules (../papers/safnet.md section III-B).

Both compare the input points P (the map's voxels of a chunk) with the points Q
back-projected from the views' pixels. The neighbour searches depend on geometry only, so
``nets.safnet.inputs`` computes them once per chunk (scipy k-d trees); these modules hold
the learnable parts:

* ``GeometricSimilarity`` (GSM, eq. 3-5) maps the mean forward distance d^F (each point of
  N_P,k(i) to its nearest point of Q) and the mean backward distance d^B (each point of
  N_Q,k(i) to its nearest point of N_P,k(i)) to S^Geo with learnable alphas and betas.
* ``ContextualSimilarity`` (CSM, eq. 6-8) encodes a neighbourhood around p_i: the
  neighbourhood characters f_c(x_i, x_j) = [x_j - x_i, |x_i - x_j|^2] (eq. 6) of the
  nearest neighbour in each of the 8 octants around p_i (PointSIFT's orientation
  encoding), with the centre x_i, go through the orientation-encoding layer and the MLP M
  to the contextual feature f_i (eq. 7); the same M encodes p_i's neighbourhood in P and
  in Q, and S^Con is the cosine of the two (eq. 8). f^P is also the point attribute that
  PointNet++ takes (eq. 9).

Deviations (documented in docs/ARCHITECTURE.md): the orientation-encoding convolution is
one layer over the 8 octant cells (a full 2x2x2 kernel) where PointSIFT factorises it into
three 1x2 convolutions along x, y and z; a ninth character flags an empty octant (its
other characters are zero) so that an empty cell is told apart from a neighbour at p_i.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..points.pointnet2 import shared_mlp

OCTANTS = 8
CHARACTERS = 5
"""Per octant cell: x_j - x_i (3), |x_i - x_j|^2 (1), a flag that the cell has a neighbour (1)."""


class GeometricSimilarity(nn.Module):
    """GSM (eq. 3-5). forward(forward_distance (B, N), backward_distance (B, N)) [m] -> S^Geo (B, N).

        S^P2Q = exp(-mean d^F / alpha_1) + beta_1                    (eq. 3)
        S^Q2P = exp(-mean d^B / alpha_2) + beta_2                    (eq. 4)
        S^Geo = alpha_3 S^P2Q + alpha_4 S^Q2P + beta_3               (eq. 5)

    alpha_1 and alpha_2 are distance scales [m], kept positive (learnt as logarithms);
    they start at ``scale``. alpha_3 = alpha_4 = 0.5 and the betas 0 at the start, so S^Geo
    starts in [0, 1]: 1 where Q lies on P, towards 0 where it is far.
    """

    def __init__(self, scale: float = 0.05):
        super().__init__()
        self.log_alpha = nn.Parameter(torch.full((2,), math.log(scale)))  # alpha_1, alpha_2
        self.beta = nn.Parameter(torch.zeros(3))  # beta_1, beta_2, beta_3
        self.mix = nn.Parameter(torch.full((2,), 0.5))  # alpha_3, alpha_4

    def forward(self, forward_distance: torch.Tensor, backward_distance: torch.Tensor) -> torch.Tensor:
        alpha = self.log_alpha.exp()
        p2q = torch.exp(-forward_distance / alpha[0]) + self.beta[0]  # eq. 3
        q2p = torch.exp(-backward_distance / alpha[1]) + self.beta[1]  # eq. 4
        return self.mix[0] * p2q + self.mix[1] * q2p + self.beta[2]  # eq. 5


def octant_characters(centres: torch.Tensor, points: torch.Tensor, neighbours: torch.Tensor) -> torch.Tensor:
    """The neighbourhood characters (eq. 6) of each centre's octant neighbours.

    centres: (B, N, 3) [m]. points: (B, M, 3) [m], the set the neighbours index.
    neighbours: (B, N, 8) int64 index into points of the nearest neighbour in each octant,
    -1 = none. Returns (B, N, 8, 5): x_j - x_i, |x_i - x_j|^2, present (zeros when absent).
    """
    present = neighbours >= 0
    batch, count, _ = neighbours.shape
    flat = neighbours.clamp_min(0).reshape(batch, -1, 1).expand(-1, -1, 3)
    offset = torch.gather(points, 1, flat).reshape(batch, count, OCTANTS, 3) - centres.unsqueeze(2)
    offset = offset * present.unsqueeze(-1)
    squared = (offset * offset).sum(-1, keepdim=True)
    return torch.cat([offset, squared, present.unsqueeze(-1).to(offset.dtype)], -1)


class ContextualSimilarity(nn.Module):
    """CSM (eq. 6-8): the mapping M and the cosine similarity.

    ``encode(centres (B, N, 3), points (B, M, 3), neighbours (B, N, 8)) -> f (B, N, context_dim)``
    is eq. 7: [x_i, the 8 octant cells' characters] -> orientation-encoding layer -> MLP
    (context_dim x 3, batch norm + ReLU after each, as the paper) -> a linear layer.
    ``forward`` returns (f^P, S^Con (B, N)) for p_i's neighbourhoods in P and in Q (eq. 8).
    """

    def __init__(self, context_dim: int = 64):
        super().__init__()
        width = context_dim
        self.orientation = shared_mlp([3 + OCTANTS * CHARACTERS, width], dims=1)  # the 2x2x2 cell kernel as one layer
        self.mlp = shared_mlp([width, width, width, width], dims=1)
        self.out = nn.Conv1d(width, width, 1)

    def encode(self, centres: torch.Tensor, points: torch.Tensor, neighbours: torch.Tensor) -> torch.Tensor:
        cells = octant_characters(centres, points, neighbours).flatten(2)  # (B, N, 40)
        x = torch.cat([centres, cells], -1).transpose(1, 2)  # (B, 43, N)
        return self.out(self.mlp(self.orientation(x))).transpose(1, 2)

    def forward(
        self, xyz: torch.Tensor, p_neighbours: torch.Tensor, q_xyz: torch.Tensor, q_neighbours: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        f_p = self.encode(xyz, xyz, p_neighbours)
        f_q = self.encode(xyz, q_xyz, q_neighbours)
        return f_p, F.cosine_similarity(f_p, f_q, dim=-1, eps=1e-6)  # eq. 8


class ChannelAttention(nn.Module):
    """Squeeze-and-excitation over a chunk's points: x (B, C, N) * sigmoid(W2 relu(W1 mean_N x))."""

    def __init__(self, channels: int, reduction: int = 4):
        super().__init__()
        hidden = max(channels // reduction, 1)
        self.gate = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, channels), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x.mean(-1)).unsqueeze(-1)
