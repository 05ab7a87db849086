"""Scores of SAFNet's sliding-window labelling of a map (issue 12), at clean poses or with
misregistered views, against the map's ground-truth voxel labels."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import torch

from ..pipeline.map_chunks import ChunkConfig, label_map, plan_chunks
from ..train.recipes.fusion_worlds import FusionWorld
from ..train.recipes.safnet import MisregistrationConfig, disturbed_views
from .metrics import SemanticScores, confusion_matrix


def label_scores(truth: np.ndarray, predicted: np.ndarray, num_classes: int) -> dict:
    """mIoU (over the classes with a defined IoU, as the benchmark) and the per-class IoU of
    ``predicted`` (V,) against ``truth`` (V,) class indices (-1: not scored / no label)."""
    scores = SemanticScores.from_confusion(confusion_matrix(truth, predicted, num_classes))
    return {"miou": round(float(scores.miou), 4), "iou": [None if np.isnan(v) else round(float(v), 4) for v in scores.iou]}


def refinement_scores(
    model: torch.nn.Module,
    world: FusionWorld,
    chunks: ChunkConfig,
    misregistration: MisregistrationConfig | None = None,
    seed: int = 0,
) -> dict:
    """Label ``world``'s voxels with ``model`` and score them. misregistration: views
    disturbed as in training (none dropped: the chunks keep their views; seeded by
    ``seed``), or None for clean poses. Returns {"miou", "iou", "chunks", "unlabelled",
    "seconds", "labels": (V,) int64 the voxels' labels, -1 where no chunk held them}."""
    views, poses = world.views, [view.T_world_camera for view in world.views]
    if misregistration is not None:
        kept = dataclasses.replace(misregistration, drop_view=0.0)
        views, poses = disturbed_views(world.views, kept, np.random.default_rng([seed, 12, 1]))
    start = time.perf_counter()
    plan = plan_chunks(world.xyz, world.keyframes, chunks)
    views, poses = dict(enumerate(views)), dict(enumerate(poses))
    votes = label_map(model, world.xyz, world.colour, plan, views, chunks, world.floor, poses, seed, prior=world.prior)
    seconds = time.perf_counter() - start
    scores = label_scores(world.labels, votes.labels, model.num_classes)
    return {**scores, "chunks": votes.chunks, "unlabelled": votes.unlabelled, "seconds": round(seconds, 2), "labels": votes.labels}
