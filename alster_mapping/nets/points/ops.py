"""Point-set operations of PointNet++ (Qi et al., NeurIPS 2017, section 3.2), in plain torch.

Batched, device-agnostic (CPU and CUDA run the same code; no compiled extension):

* ``farthest_point_sample``: iterative farthest point sampling of the centroids;
* ``ball_query``: up to k neighbours of each centroid within a radius;
* ``gather_points`` / ``group_points``: index a point tensor by sample or neighbour ids;
* ``three_nn_interpolate``: inverse-distance interpolation from the 3 nearest known points
  (the feature propagation of section 3.4).

They follow the semantics of the reference CUDA / TF operators that ASIS's code uses, so
that layer sizes and results carry over: sampling starts at point 0; a ball query returns
the first k points in index order that lie within the radius and repeats the first one to
fill k; interpolation weights are the normalised inverses of the *squared* distances, as
the TF ``three_nn`` operator returns squared distances (the later PyTorch port takes the
square root first; documented deviation of that port, not of ours).

Shapes: xyz (B, N, 3) float [m]; features channels-last (B, N, C); indices int64.
"""

from __future__ import annotations

import torch


def farthest_point_sample(xyz: torch.Tensor, num_samples: int) -> torch.Tensor:
    """Indices (B, M) int64 of ``num_samples`` = M points chosen by farthest point sampling.

    Starts from point 0 of every batch element; each next point maximises the distance to
    the ones chosen so far. M may not exceed N. O(M N) work, M sequential steps.
    """
    batch, count, _ = xyz.shape
    if not 0 < num_samples <= count:
        raise ValueError(f"cannot sample {num_samples} of {count} points")
    chosen = torch.zeros(batch, num_samples, dtype=torch.int64, device=xyz.device)
    nearest = torch.full((batch, count), float("inf"), dtype=xyz.dtype, device=xyz.device)
    rows = torch.arange(batch, device=xyz.device)
    current = torch.zeros(batch, dtype=torch.int64, device=xyz.device)
    for i in range(num_samples):
        chosen[:, i] = current
        distance = ((xyz - xyz[rows, current].unsqueeze(1)) ** 2).sum(-1)
        nearest = torch.minimum(nearest, distance)
        current = nearest.argmax(-1)
    return chosen


def gather_points(points: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """points (B, N, C) at index (B, M) -> (B, M, C)."""
    return torch.gather(points, 1, index.unsqueeze(-1).expand(-1, -1, points.shape[-1]))


def group_points(points: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """points (B, N, C) at neighbour index (B, M, K) -> (B, M, K, C)."""
    batch, centres, neighbours = index.shape
    flat = gather_points(points, index.reshape(batch, centres * neighbours))
    return flat.reshape(batch, centres, neighbours, points.shape[-1])


def ball_query(xyz: torch.Tensor, centres: torch.Tensor, radius: float, num_neighbours: int) -> torch.Tensor:
    """Neighbour indices (B, M, K) int64: for each centre (B, M, 3), the first K points of
    xyz (B, N, 3) in index order within ``radius`` [m]; slots beyond the points found
    repeat the first one found. A centre with no point in reach (it is not one of xyz)
    gets index 0 everywhere, as the reference operator leaves it."""
    count = xyz.shape[1]
    distance = torch.cdist(centres, xyz).pow_(2)  # (B, M, N); squared, as the reference compares
    inside = distance < radius * radius
    order = torch.arange(count, device=xyz.device).expand_as(distance)
    # The K smallest indices inside the ball: outside points get index N (sorted last).
    ranked = torch.where(inside, order, torch.full_like(order, count))
    k = min(num_neighbours, count)
    first = ranked.topk(k, dim=-1, largest=False, sorted=True).values
    if k < num_neighbours:
        first = torch.cat([first, first.new_full((*first.shape[:2], num_neighbours - k), count)], -1)
    fill = torch.where(first[..., :1] < count, first[..., :1], torch.zeros_like(first[..., :1]))
    return torch.where(first < count, first, fill.expand_as(first))


def three_nn_interpolate(target_xyz: torch.Tensor, known_xyz: torch.Tensor, known_features: torch.Tensor) -> torch.Tensor:
    """Features (B, N, C) at target_xyz (B, N, 3), interpolated from the 3 nearest of
    known_xyz (B, M, 3) carrying known_features (B, M, C) with weights proportional to
    1 / squared distance (PointNet++ eq. 2 with p = 2 on squared distances, as the
    reference operator). With M < 3 the available neighbours are used."""
    distance = torch.cdist(target_xyz, known_xyz).pow_(2)  # (B, N, M)
    k = min(3, known_xyz.shape[1])
    nearest, index = distance.topk(k, dim=-1, largest=False)
    weight = 1.0 / nearest.clamp_min(1e-10)
    weight = weight / weight.sum(-1, keepdim=True)
    return (group_points(known_features, index) * weight.unsqueeze(-1)).sum(2)
