"""Point-set operations of PointNet++ (Qi et al., NeurIPS 2017, section 3.2), in plain torch.

Batched, device-agnostic (CPU and CUDA run the same tensor code, no compiled extension;
only the sampling has a numba loop for the CPU beside it, optional like numba):

* ``farthest_point_sample``: iterative farthest point sampling of the centroids (on the
  CPU compiled by ``fps_kernel``, elsewhere the torch loop);
* ``ball_query``: up to k neighbours of each centroid within a radius;
* ``gather_points`` / ``group_points``: index a point tensor by sample or neighbour ids;
  ``group_max``: the max over each group without the grouped tensor;
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

from .fps_kernel import farthest_point_sample_kernel


def farthest_point_sample(xyz: torch.Tensor, num_samples: int) -> torch.Tensor:
    """Indices (B, M) int64 of ``num_samples`` = M points chosen by farthest point sampling.

    Starts from point 0 of every batch element; each next point maximises the distance to
    the ones chosen so far. M may not exceed N. O(M N) work, M sequential steps: float32
    points on the CPU take the compiled loop of ``fps_kernel`` (the same indices), others
    (a GPU, float64, no numba) the torch loop.
    """
    batch, count, _ = xyz.shape
    if not 0 < num_samples <= count:
        raise ValueError(f"cannot sample {num_samples} of {count} points")
    if xyz.device.type == "cpu" and xyz.dtype == torch.float32 and farthest_point_sample_kernel is not None:
        return torch.from_numpy(farthest_point_sample_kernel(xyz.detach().contiguous().numpy(), num_samples))
    return farthest_point_sample_torch(xyz, num_samples)


def farthest_point_sample_torch(xyz: torch.Tensor, num_samples: int) -> torch.Tensor:
    """``farthest_point_sample`` in tensor operations, for any device and dtype."""
    batch, count, _ = xyz.shape
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
    """points (B, N, C) at index (B, M) -> (B, M, C).

    Whole rows are copied from the batch flattened to (B N, C) (``index_select``):
    ``torch.gather`` with an index expanded over C reads element by element, 2-8x slower
    on this CPU for the groups of the set abstractions (``bench/bench_point_ops.py``)."""
    batch, count, channels = points.shape
    flat = batch_flat_index(index, count).reshape(-1)
    return points.reshape(batch * count, channels).index_select(0, flat).reshape(batch, index.shape[1], channels)


def batch_flat_index(index: torch.Tensor, count: int) -> torch.Tensor:
    """index (B, ...) into each batch element's ``count`` points -> the same rows of the
    batch flattened to (B count, ...)."""
    offsets = torch.arange(index.shape[0], device=index.device) * count
    return index + offsets.view(-1, *[1] * (index.ndim - 1))


def group_points(points: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """points (B, N, C) at neighbour index (B, M, K) -> (B, M, K, C)."""
    batch, centres, neighbours = index.shape
    flat = gather_points(points, index.reshape(batch, centres * neighbours))
    return flat.reshape(batch, centres, neighbours, points.shape[-1])


def group_max(points: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """points (B, N, C) at neighbour index (B, M, K), max over the K neighbours -> (B, M, C).

    Equal to ``group_points(points, index).max(2).values``, which it is where a gradient is
    needed (training). Without one (inference) it never builds the (B, M, K, C) tensor:
    one neighbour slot at a time, so the running maximum stays in cache (ASIS's instance
    fusion, K = 30 and C = 128: 7x faster on this CPU, ``bench/bench_point_ops.py``).
    The loop's own backward (a masked copy per slot) made a training step slower."""
    if torch.is_grad_enabled() and points.requires_grad:
        return group_points(points, index).max(2).values
    batch, centres, neighbours = index.shape
    count, channels = points.shape[1:]
    flat = points.reshape(batch * count, channels)
    slots = batch_flat_index(index, count).reshape(-1, neighbours).T.contiguous()
    out = flat.index_select(0, slots[0])
    for slot in slots[1:]:
        torch.maximum(out, flat.index_select(0, slot), out=out)
    return out.reshape(batch, centres, channels)


def ball_query(xyz: torch.Tensor, centres: torch.Tensor, radius: float, num_neighbours: int) -> torch.Tensor:
    """Neighbour indices (B, M, K) int64: for each centre (B, M, 3), the first K points of
    xyz (B, N, 3) in index order within ``radius`` [m]; slots beyond the points found
    repeat the first one found. A centre with no point in reach (it is not one of xyz)
    gets index 0 everywhere, as the reference operator leaves it."""
    batch, count, _ = xyz.shape
    num_centres = centres.shape[1]
    distance = torch.cdist(centres, xyz).pow_(2)  # (B, M, N); squared, as the reference compares
    inside = (distance < radius * radius).reshape(batch * num_centres, count)
    # The pairs inside come row-major, so each centre's points are in index order; a
    # point's slot is its rank among its centre's. (A top-k over N per centre did the same
    # 4x slower at the first level, the one that costs: bench/bench_point_ops.py.)
    row, column = inside.nonzero(as_tuple=True)
    found = inside.sum(1)
    slot = torch.arange(row.numel(), device=xyz.device) - (found.cumsum(0) - found)[row]
    keep = slot < num_neighbours
    index = torch.full((batch * num_centres, num_neighbours), -1, dtype=torch.int64, device=xyz.device)
    index[row[keep], slot[keep]] = column[keep]
    fill = index[:, :1].clamp_min(0)  # slots beyond the points found repeat the first; none found: 0
    return torch.where(index >= 0, index, fill).reshape(batch, num_centres, num_neighbours)


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
