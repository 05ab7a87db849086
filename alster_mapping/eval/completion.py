"""A scene-completion model scored on held-out frames (IMENet, issue 13), next to a geometry-only baseline.

Held-out volumes are whole (60 x 60 x 36, not training crops), from synthetic worlds with
seeds below 1000 (``train.recipes.imenet.world_samples``). Scores as
``eval/completion_metrics.py``: SC precision / recall / IoU on occluded voxels, SSC per-class
IoU and mIoU, 2D mIoU, pooled over all volumes.

The geometry-only baseline knows what the depth image measured and nothing else: the
voxels on the measured surface are occupied by one class (``most_frequent_class`` of the
held-out volumes in the benches and tests: the best single guess), every other voxel is
empty, and every pixel gets that class. A model that learnt
anything beyond geometry beats it on both mIoUs.
"""

from __future__ import annotations

import numpy as np
import torch

from ..core.samples import SURFACE
from ..nets.imenet.inputs import CompletionInput
from ..pipeline.scene_completion import infer
from .completion_metrics import CompletionMeter, segmentation_scores


def most_frequent_class(samples: list[CompletionInput]) -> int:
    """The ssc11 id (1..11) most frequent among the non-empty voxels of ``samples``."""
    counts = sum(torch.bincount(s.labels_3d.reshape(-1), minlength=12) for s in samples)
    return int(counts[1:].argmax()) + 1


def geometry_baseline(sample: CompletionInput, class_id: int) -> tuple[np.ndarray, np.ndarray]:
    """(3D prediction (X, Y, Z), 2D prediction (h, w)) ssc11 ids of the baseline (module docstring)."""
    volume = np.where(sample.visibility.numpy() == SURFACE, class_id, 0)
    return volume, np.full(tuple(sample.pixel_voxel.shape), class_id)


def predict(model, sample: CompletionInput, iterations: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(3D prediction (X, Y, Z), 2D prediction (h, w)) ssc11 ids of ``model`` (an ``ImenetModel``)
    on one sample (``pipeline.scene_completion.infer``; unscored voxels are left as predicted)."""
    volume, _, image, _ = infer(model, sample, iterations)
    return volume, image


def score_predictions(samples: list[CompletionInput], predictions: list[tuple[np.ndarray, np.ndarray]]) -> dict:
    """Pooled scores of predictions (one (volume, image) pair per sample) against the samples' labels:
    sc {precision, recall, iou}, ssc {miou, per_class}, ss {miou} (class names: ssc11 ids)."""
    meter = CompletionMeter()
    truth_2d, predicted_2d = [], []
    for sample, (volume, image) in zip(samples, predictions):
        meter.add(sample.labels_3d.numpy(), volume, sample.visibility.numpy())
        truth_2d.append(sample.labels_2d.numpy().reshape(-1))
        predicted_2d.append(image.reshape(-1))
    report = meter.scores().to_dict([str(i) for i in range(1, 12)])
    report["ss"] = {"miou": float(segmentation_scores(np.concatenate(truth_2d), np.concatenate(predicted_2d)).miou)}
    return report


def evaluate_completion(model, samples: list[CompletionInput], iterations: int | None = None) -> dict:
    """``score_predictions`` of ``model`` on ``samples`` (whole volumes with labels)."""
    return score_predictions(samples, [predict(model, s, iterations) for s in samples])
