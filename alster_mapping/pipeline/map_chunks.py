"""Chunks of a map for image-and-point fusion (SAFNet section IV-B): columns of map voxels,
each with the keyframes that cover it best and their back-projected image features, and
the sliding-window labelling of a whole map with per-voxel voting.

A chunk is a ``size`` x ``size`` [m] column of the map's floor plan (the paper: 1.5 m x
1.5 m x 3 m; indoor maps are under 3 m tall, so a column is the whole height). Its points
are ``points`` voxels (sampled without replacement when the column has more, repeated when
fewer), in a frame centred on the column with the floor at z = 0. Its views are the
``views`` keyframes chosen greedily for coverage (``keyframes.greedy_views``); their
feature cells within ``radius`` of the column's box are its Q (at most ``image_points``,
sampled). At test time columns step by ``stride`` and every voxel's label is the majority
of its votes over the chunks that hold it (the paper's sliding window); a column with
more voxels than ``points`` is split into several chunks, so every voxel votes.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from ..core.config import param
from ..core.geometry import block_columns
from ..nets.safnet.inputs import SafnetChunk, make_chunk, stack_chunks
from .keyframes import Keyframe, greedy_views, keyframe_visibility
from .view_features import ViewPoints


@dataclass
class ChunkConfig:
    """How a map is cut into SAFNet chunks (the paper's values where a CPU allows them)."""

    size: float = param(1.5, "edge of a chunk's floor-plan square [m] (the paper: 1.5)", min=0.1, max=20.0)
    stride: float = param(0.5, "step between chunks at test [m] (the paper: 0.5)", min=0.05, max=20.0)
    points: int = param(2048, "voxels per chunk (the paper: 8192 points; 2048 on a CPU)", min=16, max=65536)
    views: int = param(3, "keyframes per chunk (the paper: 3 in its ablation, 5 in its benchmark)", min=1, max=32)
    image_points: int = param(4096, "most back-projected feature cells per chunk (sampled)", min=1, max=1 << 20)
    neighbours: int = param(16, "k of the GSM and CSM neighbourhoods (the paper: 64)", min=1, max=256)
    radius: float = param(0.2, "radius of the GSM and CSM neighbourhoods [m]", min=0.01, max=5.0)
    unprojected_radius: float = param(0.05, "r' of the 2D unprojected loss [m]", min=0.0, max=5.0)
    min_points: int = param(50, "columns with fewer voxels are not labelled", min=1)
    max_range: float = param(3.0, "a keyframe covers voxels within this depth [m]", min=0.1, max=100.0)
    batch: int = param(4, "chunks per forward at test", min=1, max=256)


@dataclass
class MapPrior:
    """The live map's labels of the voxels being refined: label (V,) int64 class index (-1
    unknown), confidence (V,) float32."""

    label: np.ndarray
    confidence: np.ndarray


def chunk_origin(xyz: np.ndarray, floor: float) -> np.ndarray:
    """(3,) float64: the centre of the points' floor plan (N, 3) [m], at height ``floor``."""
    return np.array([*(xyz[:, :2].min(0) + xyz[:, :2].max(0)) / 2.0, floor])


def image_points_near(
    views: list[ViewPoints], poses: list[np.ndarray], low: np.ndarray, high: np.ndarray, margin: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The feature cells of ``views`` under ``poses`` (4, 4) that lie in the box [low, high]
    grown by ``margin`` [m]: (xyz (M, 3) float32 world, features (M, D), labels (M,))."""
    parts = []
    for view, pose in zip(views, poses):
        xyz = view.world_xyz(pose)
        inside = np.all((xyz >= low - margin) & (xyz <= high + margin), axis=1)
        parts.append((xyz[inside], view.features[inside], view.labels[inside]))
    if not parts:
        return np.empty((0, 3), np.float32), np.empty((0, 0), np.float32), np.empty(0, np.int64)
    return tuple(np.concatenate(p) for p in zip(*parts))  # type: ignore[return-value]


def build_chunk(
    xyz: np.ndarray,
    colour: np.ndarray,
    labels: np.ndarray | None,
    rows: np.ndarray,
    views: list[ViewPoints],
    poses: list[np.ndarray],
    floor: float,
    config: ChunkConfig,
    rng: np.random.Generator,
    feature_dim: int,
    prior: MapPrior | None = None,
) -> SafnetChunk:
    """The chunk of the map's voxels ``rows`` (exactly ``config.points`` of them) with the
    given views under ``poses`` (possibly none). xyz: (V, 3) [m] map voxel centres; colour:
    (V, 3) uint8; labels: (V,) class indices or None. floor: the map's floor height [m].
    feature_dim: D of the views' features. prior: the live map's classes of the voxels (for
    a model with ``map_prior``), or None."""
    points = xyz[rows]
    origin = chunk_origin(points, floor)
    q_xyz, q_features, q_labels = image_points_near(views, poses, points.min(0), points.max(0), config.radius)
    if len(q_xyz) > config.image_points:
        keep = rng.choice(len(q_xyz), config.image_points, replace=False)
        q_xyz, q_features, q_labels = q_xyz[keep], q_features[keep], q_labels[keep]
    return make_chunk(
        (points - origin).astype(np.float32),
        colour[rows].astype(np.float32) / 255.0,
        (q_xyz - origin).astype(np.float32),
        q_features.reshape(len(q_xyz), feature_dim),
        None if labels is None else labels[rows],
        q_labels,
        config.neighbours,
        config.radius,
        config.unprojected_radius,
        None if prior is None else prior.label[rows],
        None if prior is None else prior.confidence[rows],
    )


def split_rows(rows: np.ndarray, size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """``rows`` in random parts of exactly ``size`` each that together hold every row (the
    last part topped up with rows drawn from the others; fewer rows than ``size``: one part,
    every row once and some again)."""
    if len(rows) <= size:
        return [rng.permutation(np.concatenate([rows, rng.choice(rows, size - len(rows))]))]
    order = rng.permutation(rows)
    parts = [order[i : i + size] for i in range(0, len(order), size)]
    if len(parts[-1]) < size:
        parts[-1] = np.concatenate([parts[-1], rng.choice(order[: -len(parts[-1])], size - len(parts[-1]), replace=False)])
    return parts


def perturb_pose(T: np.ndarray, translation: float, rotation_deg: float, rng: np.random.Generator) -> np.ndarray:
    """T (4, 4) moved by ``translation`` [m] in a random direction and turned by
    ``rotation_deg`` about a random axis through the camera centre: a misregistered view."""
    direction = rng.normal(size=3)
    axis = rng.normal(size=3)
    delta = np.eye(4)
    delta[:3, :3] = Rotation.from_rotvec(axis / np.linalg.norm(axis) * math.radians(rotation_deg)).as_matrix()
    moved = np.asarray(T, np.float64) @ delta
    moved[:3, 3] += direction / np.linalg.norm(direction) * translation
    return moved


@dataclass
class ChunkVotes:
    """Per-voxel votes of a sliding-window labelling. votes: (V, C) int32. chunks: how many
    chunks ran."""

    votes: np.ndarray
    chunks: int

    @property
    def labels(self) -> np.ndarray:
        """(V,) int64 majority class per voxel, -1 where no chunk voted."""
        return np.where(self.votes.sum(1) > 0, self.votes.argmax(1), -1)

    @property
    def unlabelled(self) -> int:
        """Voxels no chunk held (in columns too sparse to label)."""
        return int((self.votes.sum(1) == 0).sum())


def map_floor(xyz: np.ndarray) -> float:
    """The floor height [m] of map voxels (N, 3) in a z-up frame: the 1st percentile of z
    (robust to a few voxels of noise below the floor)."""
    return float(np.percentile(xyz[:, 2], 1.0)) if len(xyz) else 0.0


@dataclass
class ChunkPlan:
    """Where the chunks of a map go. columns: (rows of the map voxels in the column, the
    keyframes chosen for it, in the order chosen); columns no keyframe observes are
    ``unseen`` (their rows) and get no chunk."""

    columns: list[tuple[np.ndarray, list[int]]]
    unseen: list[np.ndarray]

    @property
    def keyframes(self) -> list[int]:
        """Every keyframe some chunk uses, ascending."""
        return sorted({i for _, chosen in self.columns for i in chosen})


def plan_chunks(xyz: np.ndarray, keyframes: list[Keyframe], config: ChunkConfig) -> ChunkPlan:
    """Tile the map voxels xyz (V, 3) [m] with ``config.size`` columns every ``config.stride``
    and choose each column's keyframes (``greedy_views`` over the keyframes' visibility of
    every voxel, computed once). Columns with fewer than
    ``config.min_points`` voxels are left out."""
    columns, unseen = [], []
    visible = keyframe_visibility(xyz, keyframes, config.max_range)
    for _, rows in block_columns(xyz[:, :2], config.size, config.stride):
        if len(rows) < config.min_points:
            continue
        chosen, _ = greedy_views(visible[:, rows].toarray(), config.views)
        (columns.append((rows, chosen)) if chosen else unseen.append(rows))
    return ChunkPlan(columns, unseen)


@torch.inference_mode()
def label_map(
    model: torch.nn.Module,
    xyz: np.ndarray,
    colour: np.ndarray,
    plan: ChunkPlan,
    views: dict[int, ViewPoints],
    config: ChunkConfig,
    floor: float,
    poses: dict[int, np.ndarray] | None = None,
    seed: int = 0,
    progress: Callable[[float], None] | None = None,
    prior: MapPrior | None = None,
) -> ChunkVotes:
    """Label map voxels with a SAFNet model by sliding chunks (see the module docstring).

    xyz: (V, 3) [m] voxel centres; colour: (V, 3) uint8; plan: ``plan_chunks`` of them;
    views: the planned keyframes' ``ViewPoints`` by keyframe index; poses: the poses to
    back-project them with (default: their own). floor: the map's floor height [m].
    progress: called with the share done after each column. prior: the map's own labels of
    the voxels (used by a model with ``map_prior``)."""
    device = next(model.parameters()).device
    model.eval()
    rng = np.random.default_rng(seed)
    votes = np.zeros((len(xyz), model.num_classes), np.int32)
    pending: list[tuple[SafnetChunk, np.ndarray]] = []
    chunks = 0

    def run() -> None:
        nonlocal chunks
        chunks += len(pending)
        out = model(stack_chunks([c for c, _ in pending], device))
        predicted = out.logits.argmax(-1).cpu().numpy()
        for (_, rows), labels in zip(pending, predicted):
            first = np.unique(rows, return_index=True)[1]  # a repeated voxel votes once
            np.add.at(votes, (rows[first], labels[first]), 1)
        pending.clear()

    for done, (column, chosen) in enumerate(plan.columns, 1):
        chosen_views = [views[i] for i in chosen]
        chosen_poses = [poses[i] if poses is not None else views[i].T_world_camera for i in chosen]
        for rows in split_rows(column, config.points, rng):
            chunk = build_chunk(xyz, colour, None, rows, chosen_views, chosen_poses, floor, config, rng, model.config.image_features, prior)
            pending.append((chunk, rows))
            if len(pending) == config.batch:
                run()
        if progress is not None:
            progress(done / len(plan.columns))
    if pending:
        run()
    return ChunkVotes(votes, chunks)
