"""Scores of semantic scene completion and of the 2D segmentation beside it (SSCNet's protocol, IMENet's tables).

Volumes hold ssc11 class ids (0 = empty, 1..11 the classes; ``data/completion_volumes.py``)
and a visibility code per voxel (``core.samples``: outside, free, surface, occluded):

- **Scene completion (SC)**: occupied (any class) against empty, on the voxels the camera
  could not see — ``OCCLUDED`` ones (in the view, behind the measured surface): precision,
  recall and IoU of "occupied".
- **Semantic scene completion (SSC)**: per class IoU on the voxels in the view that are not
  seen free — ``SURFACE`` and ``OCCLUDED`` (SSCNet evaluates the observed surface and the
  occluded space; seen free space and the space outside the view are not scored). Empty
  voxels count: a chair predicted in empty space is a false positive of chair. mIoU is the
  mean over the 11 classes with a defined IoU (a class absent from both the ground truth
  and the prediction in the scored voxels has none).
- **2D segmentation (SS)**: per class IoU over pixels with a ground-truth class (0 =
  unlabelled pixels are ignored), mean over the classes with a defined IoU.

``CompletionMeter`` sums the counts over many volumes (a benchmark's scores are over all of
its voxels, not a mean of per-frame scores).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.samples import OCCLUDED, SURFACE
from .metrics import SemanticScores, confusion_matrix

NUM_SSC_CLASSES = 11
"""ssc11: ids 1..11; 0 is empty (volumes) or unlabelled (images)."""


def _ids(values: np.ndarray, what: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.size and (not np.issubdtype(arr.dtype, np.integer) or arr.min() < 0 or arr.max() > NUM_SSC_CLASSES):
        raise ValueError(f"{what} must hold ssc11 ids 0..{NUM_SSC_CLASSES}")
    return arr.astype(np.int64, copy=False).reshape(-1)


@dataclass(frozen=True)
class CompletionScores:
    """sc_precision, sc_recall, sc_iou: scene completion on occluded voxels (NaN when undefined).
    ssc: ``SemanticScores`` over 12 classes (index = ssc11 id, 0 = empty) on the scored voxels;
    ``ssc_iou`` (11,) and ``ssc_miou`` leave the empty class out."""

    sc_precision: float
    sc_recall: float
    sc_iou: float
    ssc: SemanticScores

    @property
    def ssc_iou(self) -> np.ndarray:
        """(11,) IoU of classes 1..11 (NaN where undefined)."""
        return self.ssc.iou[1:]

    @property
    def ssc_miou(self) -> float:
        defined = self.ssc_iou[~np.isnan(self.ssc_iou)]
        return float(defined.mean()) if defined.size else float("nan")

    def to_dict(self, class_names: list[str]) -> dict:
        """JSON-friendly: sc {precision, recall, iou}, ssc {miou, per_class {name: iou}} (NaN -> None)."""
        if len(class_names) != NUM_SSC_CLASSES:
            raise ValueError(f"{len(class_names)} class names for {NUM_SSC_CLASSES} classes")

        def clean(x: float) -> float | None:
            return None if np.isnan(x) else float(x)

        return {
            "sc": {"precision": clean(self.sc_precision), "recall": clean(self.sc_recall), "iou": clean(self.sc_iou)},
            "ssc": {"miou": clean(self.ssc_miou), "per_class": {n: clean(v) for n, v in zip(class_names, self.ssc_iou)}},
        }


class CompletionMeter:
    """Counts of scene completion and semantic scene completion over many volumes."""

    def __init__(self) -> None:
        self.sc = np.zeros(3, np.int64)  # true positives, false positives, false negatives of "occupied"
        self.confusion = np.zeros((NUM_SSC_CLASSES + 1, NUM_SSC_CLASSES + 2), np.int64)

    def add(self, truth: np.ndarray, prediction: np.ndarray, visibility: np.ndarray) -> None:
        """One volume: ground truth and predicted ssc11 ids and the visibility codes, all (X, Y, Z)."""
        truth, prediction = _ids(truth, "truth"), _ids(prediction, "prediction")
        visibility = np.asarray(visibility).reshape(-1)
        if not truth.shape == prediction.shape == visibility.shape:
            raise ValueError(f"truth, prediction and visibility differ in size: {truth.shape}, {prediction.shape}, {visibility.shape}")
        occluded = visibility == OCCLUDED
        t, p = truth[occluded] > 0, prediction[occluded] > 0
        self.sc += [int((t & p).sum()), int((~t & p).sum()), int((t & ~p).sum())]
        scored = occluded | (visibility == SURFACE)
        self.confusion += confusion_matrix(truth[scored], prediction[scored], NUM_SSC_CLASSES + 1)

    def scores(self) -> CompletionScores:
        tp, fp, fn = (int(v) for v in self.sc)

        def ratio(a: int, b: int) -> float:
            return a / b if b else float("nan")

        return CompletionScores(ratio(tp, tp + fp), ratio(tp, tp + fn), ratio(tp, tp + fp + fn), SemanticScores.from_confusion(self.confusion))


def segmentation_scores(truth: np.ndarray, prediction: np.ndarray) -> SemanticScores:
    """2D segmentation scores over 11 classes (index = ssc11 id - 1) of ground truth (H, W)
    (0 = unlabelled pixel, ignored) and predicted (H, W) ssc11 ids (0 = no prediction, a miss)."""
    truth, prediction = _ids(truth, "truth"), _ids(prediction, "prediction")
    if truth.shape != prediction.shape:
        raise ValueError(f"truth and prediction differ in size: {truth.shape} vs {prediction.shape}")
    return SemanticScores.from_labels(truth - 1, prediction - 1, NUM_SSC_CLASSES)
