"""Instances of a whole scene (a map's voxels) from a point model that sees one block at a time.

    1. the floor plan is tiled with ``block_size`` columns every ``stride`` m, as in training;
       each column's points are shuffled and cut into chunks of ``points`` that overlap by
       ``chunk_overlap`` (a column with fewer points is padded by repeating them), so every
       point is seen at least once and the chunks of one column share points to merge on;
    2. the model (ASIS or BAN, any ``instance_segmentation`` model returning semantic logits
       and embeddings) runs on batches of chunks, ``workers`` batches at once on threads;
    3. per chunk, mean-shift in the embedding space (``nets.points.mean_shift``, bandwidth
       0.6) groups the points; a group's class is the mode of its points' predicted classes;
    4. BlockMerging (``pipeline.block_merging``) joins the chunks' groups into scene
       instances; a point's semantic class is the argmax of its class probabilities summed
       over every chunk that saw it — or, with ``semantics = "map"``, the map's own label
       where it has one (a live map's labels come from a model that saw the images), and a
       group that spans the map's classes is split into one instance per class;
    5. instances smaller than ``size_fraction`` of their class's mean size in the training
       scenes (the model's ``instance_sizes``, learnt by its recipe; SGPN and ASIS use a
       quarter) or than ``min_object_points`` are dropped, their points keep their class.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, field

import numpy as np
import torch

from ..core.config import param
from ..core.geometry import block_columns
from ..core.samples import PointBlock
from ..nets.points.inputs import block_inputs
from ..nets.points.mean_shift import mean_shift
from .block_merging import BlockMerger, group_classes


@dataclass
class InstanceSegmentationConfig:
    """How a scene is cut, clustered and merged (``segment_instances``)."""

    block_size: float = param(1.0, "edge of the block columns [m] (as in training)", min=0.1, max=10.0)
    stride: float = param(0.5, "step between block columns [m]", min=0.05, max=10.0)
    points: int = param(1024, "points per chunk (as in training)", min=16, max=65536)
    chunk_overlap: float = param(
        0.5, "share of a chunk that the next chunk of the same column repeats (columns overlap anyway by the stride)", min=0.0, max=0.9
    )
    batch: int = param(8, "chunks per forward", min=1, max=256)
    workers: int = param(
        2,
        "batches run at once on threads (network and mean-shift); the merging stays in order. On 2 cores "
        "2 workers run ASIS about twice and BAN about 1.5x as fast as one with 2 torch threads (bench/bench_segment.py)",
        min=1,
        max=64,
    )
    bandwidth: float = param(0.6, "mean-shift bandwidth in the embedding space (ASIS: 0.6)", min=0.01, max=10.0)
    min_overlap: int = param(7, "BlockMerging: shared points for a group to join an instance", min=1)
    min_new_size: int = param(30, "BlockMerging: points for a non-overlapping group to become an instance", min=0)
    seed: int = param(0, "seed of the chunk shuffling", min=0)
    size_fraction: float = param(0.25, "drop instances below this share of their class's mean training size (ASIS: 0.25); 0 = off", min=0.0, max=10.0)
    min_object_points: int = param(0, "drop instances with fewer points (voxels) than this", min=0)
    semantics: str = param(
        "map",
        "classes of the voxels: map = the map's own labels where it has one (the live mapper's, given as map_labels), "
        "model = the instance model's semantic head (the papers' protocol, and where the map has no label)",
        choices=("map", "model"),
    )


@dataclass
class SceneInstances:
    """semantic: (N,) int64 class index per point. instance: (N,) int64 instance id (-1 =
    none). confidence: (N,) float probability of the point's class, averaged over the chunks
    that saw it. timings: seconds per stage (blocks, network, clustering, merging); the
    network and the clustering run on ``workers`` threads at once and are summed over them,
    so with several workers the stages add up to more than the wall time."""

    semantic: np.ndarray
    instance: np.ndarray
    confidence: np.ndarray
    timings: dict[str, float] = field(default_factory=dict)


def instance_objects(xyz: np.ndarray, result: SceneInstances, class_names: list[str]) -> list[dict]:
    """The object list: per instance its id, class, score (mean confidence of its points),
    centroid (mean of its points), center and extent of its axis-aligned box (metres) and
    point count; largest first."""
    objects = []
    for ident in np.unique(result.instance[result.instance >= 0]):
        members = result.instance == ident
        classes = result.semantic[members]
        label = int(np.bincount(classes).argmax())
        points = xyz[members]
        objects.append(
            {
                "id": int(ident),
                "class": class_names[label],
                "class_index": label,
                "score": float(result.confidence[members].mean()),
                "centroid": [float(v) for v in points.mean(0)],
                "center": [float(v) for v in (points.max(0) + points.min(0)) / 2],
                "extent": [float(v) for v in points.max(0) - points.min(0)],
                "points": int(members.sum()),
            }
        )
    return sorted(objects, key=lambda o: -o["points"])


def instance_colors(instance: np.ndarray) -> np.ndarray:
    """(N, 3) uint8: a fixed pseudo-random colour per instance id, grey for -1."""
    rng = np.random.default_rng(12345)
    palette = rng.integers(40, 256, (int(instance.max(initial=-1)) + 2, 3)).astype(np.uint8)
    colors = palette[np.clip(instance, 0, None)]
    colors[instance < 0] = 128
    return colors


def scene_chunks(xyz: np.ndarray, config: InstanceSegmentationConfig) -> list[np.ndarray]:
    """Row indices (``config.points`` each) of the chunks covering every point (step 1)."""
    rng = np.random.default_rng(config.seed)
    chunks = []
    for _, rows in block_columns(xyz[:, :2], config.block_size, config.stride):
        rows = rng.permutation(rows)
        if rows.size <= config.points:
            chunks.append(np.concatenate([rows, rng.choice(rows, config.points - rows.size)]))
            continue
        # Chunks of one column overlap (by half by default), so that BlockMerging can join their groups.
        step = max(int(round(config.points * (1.0 - config.chunk_overlap))), 1)
        starts = list(range(0, rows.size - config.points, step)) + [rows.size - config.points]
        chunks += [rows[start : start + config.points] for start in starts]
    return chunks


def map_voxels(
    xyz: np.ndarray, color: np.ndarray, label: np.ndarray, confidence: np.ndarray, name: str = "map"
) -> tuple[PointBlock, tuple[np.ndarray, np.ndarray]]:
    """A map's voxels as ``segment_instances``' input: the points (centres (N, 3) [m], mean
    colours (N, 3) uint8) and ``map_labels`` (class index (N,) int64, -1 unknown; confidence (N,))."""
    points = PointBlock(xyz, np.zeros(len(xyz), np.int64), rgb=color, name=name)
    return points, (np.asarray(label, np.int64), np.asarray(confidence))


def segment_instances(
    model: torch.nn.Module,
    points: PointBlock,
    config: InstanceSegmentationConfig | None = None,
    progress: Callable[[float], None] | None = None,
    map_labels: tuple[np.ndarray, np.ndarray] | None = None,
) -> SceneInstances:
    """Semantic classes and instances of every point of ``points`` (xyz [m], rgb; see the
    module docstring).

    model: an instance model in eval mode, forward(xyz (B, P, 3), features (B, P, 6)) ->
    an output with ``semantic_logits`` (B, P, C) and ``embeddings`` (B, P, E). progress:
    called with the share of chunks done (0..1) after each batch; an exception it raises
    stops the segmentation (a cancelled job). map_labels: the map's own (class index (N,),
    -1 = unknown; confidence (N,)) per point; with ``semantics = "map"`` they replace the
    model's class and confidence where known, before the size rule and the object list.
    Raises ValueError on an empty scene, points without colour or with non-finite
    coordinates.
    """
    cfg = config or InstanceSegmentationConfig()
    if len(points) == 0:
        raise ValueError("no points to segment")
    if points.rgb is None:
        raise ValueError("the points have no colour: instance models take colour as input")
    finite = np.isfinite(points.xyz).all(1)
    if not finite.all():
        raise ValueError(f"{int((~finite).sum())} of {len(points)} points have non-finite coordinates")
    timings = {"blocks": 0.0, "network": 0.0, "clustering": 0.0, "merging": 0.0}
    start = time.perf_counter()
    chunks = scene_chunks(points.xyz, cfg)
    low = points.xyz.min(0)
    extent = points.xyz.max(0) - low
    timings["blocks"] += time.perf_counter() - start
    device = next(model.parameters()).device

    def run_batch(batch: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray], dict[str, float]]:
        """(class probabilities (B, P, C), mean-shift groups per chunk, seconds per stage) of one batch."""
        spent = {}
        clock = time.perf_counter()
        inputs = [block_inputs(points.subset(rows), low, extent) for rows in batch]
        xyz = torch.from_numpy(np.stack([x for x, _ in inputs])).to(device)
        features = torch.from_numpy(np.stack([f for _, f in inputs])).to(device)
        spent["blocks"] = time.perf_counter() - clock
        clock = time.perf_counter()
        with torch.no_grad():  # per thread: set here, in the worker
            out = model(xyz, features)
        probabilities = torch.softmax(out.semantic_logits.float(), -1).cpu().numpy()
        spent["network"] = time.perf_counter() - clock
        clock = time.perf_counter()
        groups = [mean_shift(embedding, cfg.bandwidth)[0].cpu().numpy() for embedding in out.embeddings]
        spent["clustering"] = time.perf_counter() - clock
        return probabilities, groups, spent

    probabilities = None
    merger = BlockMerger(len(points), cfg.min_overlap, cfg.min_new_size)
    batches = [chunks[first : first + cfg.batch] for first in range(0, len(chunks), cfg.batch)]
    with closing(in_order(run_batch, batches, cfg.workers)) as results:
        for index, (batch, (chunk_probabilities, groups, spent)) in enumerate(zip(batches, results)):
            for stage, seconds in spent.items():
                timings[stage] += seconds
            clock = time.perf_counter()
            if probabilities is None:
                probabilities = np.zeros((len(points), chunk_probabilities.shape[-1]))
            for rows, chunk_p, chunk_groups in zip(batch, chunk_probabilities, groups):
                np.add.at(probabilities, rows, chunk_p)
                merger.add_block(rows, chunk_groups, group_classes(chunk_groups, chunk_p.argmax(-1)))
            timings["merging"] += time.perf_counter() - clock
            if progress is not None:
                progress(min((index + 1) * cfg.batch, len(chunks)) / len(chunks))
    clock = time.perf_counter()
    visits = np.bincount(np.concatenate(chunks), minlength=len(points))[:, None]
    mean = probabilities / np.maximum(visits, 1)
    semantic = mean.argmax(-1).astype(np.int64)
    confidence = mean.max(-1)
    instance = merger.result().instance
    if map_labels is not None and cfg.semantics == "map":
        known = map_labels[0] >= 0
        semantic = np.where(known, map_labels[0], semantic).astype(np.int64)
        confidence = np.where(known, map_labels[1], confidence)
        # An object has one class: a group spanning the map's classes becomes one instance per class.
        instance = split_by_class(instance, semantic)
    sizes = getattr(model, "instance_sizes", None)
    thresholds = sizes.thresholds(cfg.size_fraction) if sizes is not None else np.zeros(mean.shape[-1])
    instance = drop_small_instances(instance, semantic, thresholds, cfg.min_object_points)
    timings["merging"] += time.perf_counter() - clock
    return SceneInstances(semantic, instance, confidence, timings)


def in_order(function: Callable, items: list, workers: int) -> Iterator:
    """``function(item)`` for every item, run on ``workers`` threads, yielded in the items'
    order. At most ``workers`` + 1 calls are in flight, so results do not pile up; when the
    caller stops early (an exception, a cancelled job) the pending calls are cancelled and
    the running ones finish before this returns."""
    if workers <= 1:
        yield from map(function, items)
        return
    with ThreadPoolExecutor(workers, thread_name_prefix="segment") as pool:
        pending: deque[Future] = deque()
        try:
            for item in items:
                pending.append(pool.submit(function, item))
                if len(pending) > workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()


def split_by_class(instance: np.ndarray, semantic: np.ndarray) -> np.ndarray:
    """instance (N,) ids (-1 = none) made unique per (instance, class of ``semantic`` (N,)) pair:
    0, 1, ... in the pairs' order; -1 stays -1."""
    out = np.full_like(instance, -1)
    valid = instance >= 0
    if valid.any():
        _, inverse = np.unique(np.stack([instance[valid], semantic[valid]], 1), axis=0, return_inverse=True)
        out[valid] = inverse.reshape(-1)
    return out


def drop_small_instances(instance: np.ndarray, semantic: np.ndarray, thresholds: np.ndarray, min_points: int = 0) -> np.ndarray:
    """instance (N,) ids (-1 = none) with every instance of fewer than ``min_points`` points, or
    of at most ``thresholds[c]`` points for its class c (the mode of ``semantic`` (N,) over its
    points, as ASIS's test script), set to -1; the others are numbered 0, 1, ... in order."""
    out = np.full_like(instance, -1)
    kept = 0
    for ident in np.unique(instance[instance >= 0]):
        members = instance == ident
        size = int(members.sum())
        label = int(np.bincount(semantic[members]).argmax())
        if size >= min_points and size > thresholds[label]:
            out[members] = kept
            kept += 1
    return out
