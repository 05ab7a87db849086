"""SAFNet's per-chunk input: the points, the back-projected image points and every
neighbour search the network needs, precomputed (../papers/safnet.md section III).

The searches depend on geometry only, so they run once per chunk in scipy's k-d tree (C)
instead of in the network's graph: the octant neighbours of CSM in P and in Q, GSM's mean
forward and backward distances, the three nearest back-projected points of each point
(the image feature it takes, as MVPNet), and the nearest back-projected point within r'
(the 2D unprojected loss of eq. 11).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.spatial import cKDTree

from .similarity import OCTANTS

FAR_AWAY = 1.0e3
"""Where a chunk without any back-projected point puts its one placeholder [m]: every
distance to it is huge, so GSM weighs its (zero) image feature down."""


@dataclass
class SafnetChunk:
    """One chunk as the network takes it (numpy; ``stack_chunks`` batches them).

    xyz: (N, 3) float32 [m], centred (the chunk's floor-plan centre and the floor at 0).
    colour: (N, 3) float32 0..1. q_xyz: (M, 3) float32 [m], the back-projected pixels in the
    same frame. q_features: (M, D) float32, their image features. p_neighbours, q_neighbours:
    (N, 8) int64, the nearest neighbour of each point in each octant within the radius,
    in P and in Q (-1 = none). forward_distance, backward_distance: (N,) float32 [m] mean
    d^F and d^B (eq. 3, 4). nearest_q: (N, 3) int64 and nearest_weight: (N, 3) float32,
    the 3 nearest back-projected points and their inverse-distance weights. unprojected:
    (N,) int64 the nearest back-projected point within r' (-1 = none). labels: (N,) int64
    class indices (-1 = unknown) and q_labels: (M,) of the pixels (-1 = unknown), for
    training and evaluation. map_label: (N,) int64 the live map's class of each point (-1
    unknown) and map_confidence: (N,) float32 its confidence, for ``SafnetConfig.map_prior``.
    """

    xyz: np.ndarray
    colour: np.ndarray
    q_xyz: np.ndarray
    q_features: np.ndarray
    p_neighbours: np.ndarray
    q_neighbours: np.ndarray
    forward_distance: np.ndarray
    backward_distance: np.ndarray
    nearest_q: np.ndarray
    nearest_weight: np.ndarray
    unprojected: np.ndarray
    labels: np.ndarray
    q_labels: np.ndarray
    map_label: np.ndarray
    map_confidence: np.ndarray


def octant_neighbours(centres: np.ndarray, tree: cKDTree, k: int, radius: float, exclude_self: bool) -> np.ndarray:
    """(N, 8) int64: for each centre (N, 3), the index in ``tree`` of its nearest point in each
    octant (sign pattern of x_j - x_i) among its ``k`` nearest within ``radius`` [m], -1 where
    an octant has none. exclude_self: the centres are the tree's own points, in order (a
    point is not its own neighbour)."""
    count = len(centres)
    extra = 1 if exclude_self else 0
    distance, index = tree.query(centres, k=min(k + extra, tree.n), distance_upper_bound=radius)
    distance, index = distance.reshape(count, -1), index.reshape(count, -1)
    valid = np.isfinite(distance)
    if exclude_self:
        valid &= index != np.arange(count)[:, None]
    offset = tree.data[np.where(valid, index, 0)] - centres[:, None, :]
    code = (offset[..., 0] > 0) * 4 + (offset[..., 1] > 0) * 2 + (offset[..., 2] > 0)
    code = np.where(valid, code, OCTANTS)
    result = np.full((count, OCTANTS), -1, np.int64)
    for octant in range(OCTANTS):  # neighbours come sorted by distance: the first hit is the nearest
        hit = code == octant
        first = hit.argmax(1)
        found = hit[np.arange(count), first]
        result[found, octant] = index[found, first[found]]
    return result


def similarity_distances(xyz: np.ndarray, q_xyz: np.ndarray, k: int, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """GSM's mean distances (eq. 3, 4) [m] of every point of P = ``xyz`` (N, 3) against
    Q = ``q_xyz`` (M, 3), with N_P,k(i) (N_Q,k(i)): p_i and its k nearest neighbours within
    ``radius`` in P (in Q).

    forward: mean over p_j in N_P,k(i) of d^F_j = the distance of p_j to its nearest point
    of Q (wherever that is: a mismatch makes it long). backward: mean over q_j in N_Q,k(i)
    of d^B_j = the distance of q_j to its nearest point of N_P,k(i); when N_Q,k(i) is empty,
    the nearest point of Q to p_i stands in for it (Fig. 3, case A).
    Returns (forward (N,), backward (N,)) float32."""
    p_tree, q_tree = cKDTree(xyz), cKDTree(q_xyz)
    nearest_q_distance, nearest_q = q_tree.query(xyz, k=1)
    p_distance, p_index = p_tree.query(xyz, k=min(k + 1, len(xyz)), distance_upper_bound=radius)
    p_distance, p_index = p_distance.reshape(len(xyz), -1), p_index.reshape(len(xyz), -1)
    p_valid = np.isfinite(p_distance)  # p_i itself is always first (distance 0)
    p_members = np.where(p_valid, p_index, 0)
    forward = (nearest_q_distance[p_members] * p_valid).sum(1) / p_valid.sum(1)
    q_distance, q_index = q_tree.query(xyz, k=min(k, len(q_xyz)), distance_upper_bound=radius)
    q_distance, q_index = q_distance.reshape(len(xyz), -1), q_index.reshape(len(xyz), -1)
    q_valid = np.isfinite(q_distance)
    empty = ~q_valid.any(1)
    q_index[empty, 0], q_valid[empty, 0] = nearest_q[empty], True
    q_points = q_xyz[np.where(q_valid, q_index, 0)]  # (N, kq, 3)
    p_points = xyz[p_members]  # (N, kp, 3)
    pairwise = np.linalg.norm(q_points[:, :, None, :] - p_points[:, None, :, :], axis=-1)
    pairwise = np.where(p_valid[:, None, :], pairwise, np.inf).min(2)  # (N, kq): to the nearest of N_P,k(i)
    backward = (np.where(q_valid, pairwise, 0.0)).sum(1) / q_valid.sum(1)
    return forward.astype(np.float32), backward.astype(np.float32)


def make_chunk(
    xyz: np.ndarray,
    colour: np.ndarray,
    q_xyz: np.ndarray,
    q_features: np.ndarray,
    labels: np.ndarray | None = None,
    q_labels: np.ndarray | None = None,
    neighbours: int = 16,
    radius: float = 0.2,
    unprojected_radius: float = 0.05,
    map_label: np.ndarray | None = None,
    map_confidence: np.ndarray | None = None,
) -> SafnetChunk:
    """Precompute a chunk's searches. xyz: (N, 3) [m] and q_xyz: (M, 3) [m] already in the
    chunk's frame; colour (N, 3) 0..1; q_features (M, D); labels (N,) / q_labels (M,) class
    indices or None (unknown). neighbours, radius [m]: k and r of the neighbourhoods (the
    paper: k = 64). unprojected_radius: r' of the 2D unprojected loss [m]. map_label (N,) /
    map_confidence (N,): the live map's classes and confidences, or None (unknown). With
    M = 0 one placeholder point far away with a zero feature stands in for Q."""
    xyz = np.ascontiguousarray(xyz, np.float32)
    q_xyz = np.ascontiguousarray(q_xyz, np.float32).reshape(-1, 3)
    q_features = np.asarray(q_features, np.float32)
    if q_features.ndim != 2 or len(q_features) != len(q_xyz):
        raise ValueError(f"q_features must be ({len(q_xyz)}, D), got {q_features.shape}")
    labels = np.full(len(xyz), -1, np.int64) if labels is None else np.asarray(labels, np.int64)
    q_labels = np.full(len(q_xyz), -1, np.int64) if q_labels is None else np.asarray(q_labels, np.int64)
    map_label = np.full(len(xyz), -1, np.int64) if map_label is None else np.asarray(map_label, np.int64)
    map_confidence = np.zeros(len(xyz), np.float32) if map_confidence is None else np.asarray(map_confidence, np.float32)
    if len(q_xyz) == 0:
        q_xyz = np.array([[0.0, 0.0, FAR_AWAY]], np.float32)
        q_features = np.zeros((1, q_features.shape[1]), np.float32)
        q_labels = np.full(1, -1, np.int64)
    p_tree, q_tree = cKDTree(xyz), cKDTree(q_xyz)
    forward, backward = similarity_distances(xyz, q_xyz, neighbours, radius)
    k3 = min(3, len(q_xyz))
    distance, nearest = q_tree.query(xyz, k=k3)
    distance, nearest = distance.reshape(len(xyz), k3), nearest.reshape(len(xyz), k3)
    if k3 < 3:  # fewer than 3 back-projected points: repeat the nearest with zero weight
        distance = np.concatenate([distance, np.full((len(xyz), 3 - k3), np.inf)], 1)
        nearest = np.concatenate([nearest, np.repeat(nearest[:, :1], 3 - k3, 1)], 1)
    weight = 1.0 / np.maximum(distance * distance, 1e-10)  # PointNet++ eq. 2 on squared distances, as nets.points.ops
    weight /= weight.sum(1, keepdims=True)
    unprojected = np.where(distance[:, 0] <= unprojected_radius, nearest[:, 0], -1)
    return SafnetChunk(
        xyz=xyz,
        colour=np.asarray(colour, np.float32),
        q_xyz=q_xyz,
        q_features=q_features,
        p_neighbours=octant_neighbours(xyz, p_tree, neighbours, radius, exclude_self=True),
        q_neighbours=octant_neighbours(xyz, q_tree, neighbours, radius, exclude_self=False),
        forward_distance=forward,
        backward_distance=backward,
        nearest_q=nearest.astype(np.int64),
        nearest_weight=weight.astype(np.float32),
        unprojected=unprojected.astype(np.int64),
        labels=labels,
        q_labels=q_labels,
        map_label=map_label,
        map_confidence=map_confidence,
    )


def stack_chunks(chunks: list[SafnetChunk], device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    """Batch chunks of equal N into tensors (B, ...). Their Q sets may differ in size: each is
    padded to the largest by repeating its first point with label -1 (nothing indexes the
    padding, so it changes no result)."""
    if len({len(c.xyz) for c in chunks}) != 1:
        raise ValueError("chunks of one batch must have the same number of points")
    size = max(len(c.q_xyz) for c in chunks)

    def pad(values: np.ndarray, fill=None) -> np.ndarray:
        extra = size - len(values)
        if extra == 0:
            return values
        tail = np.repeat(values[:1], extra, 0) if fill is None else np.full((extra, *values.shape[1:]), fill, values.dtype)
        return np.concatenate([values, tail])

    fields = {
        "xyz": [c.xyz for c in chunks],
        "colour": [c.colour for c in chunks],
        "q_xyz": [pad(c.q_xyz) for c in chunks],
        "q_features": [pad(c.q_features) for c in chunks],
        "p_neighbours": [c.p_neighbours for c in chunks],
        "q_neighbours": [c.q_neighbours for c in chunks],
        "forward_distance": [c.forward_distance for c in chunks],
        "backward_distance": [c.backward_distance for c in chunks],
        "nearest_q": [c.nearest_q for c in chunks],
        "nearest_weight": [c.nearest_weight for c in chunks],
        "unprojected": [c.unprojected for c in chunks],
        "labels": [c.labels for c in chunks],
        "q_labels": [pad(c.q_labels, -1) for c in chunks],
        "map_label": [c.map_label for c in chunks],
        "map_confidence": [c.map_confidence for c in chunks],
    }
    return {name: torch.from_numpy(np.stack(values)).to(device) for name, values in fields.items()}
