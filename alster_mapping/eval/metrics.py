"""Semantic segmentation scores with the ScanNet benchmark's semantics.

The scores agree with ScanNet's official ``evaluate_semantic_label.py``: a class's IoU is
tp / (tp + fp + fn), undefined (NaN) only when that denominator is 0. A class without
ground-truth points that is nevertheless predicted therefore scores IoU 0 and counts in
the mean, as on the benchmark; ``miou_present`` (the mean over classes with ground
truth only) is kept as a second, named figure.

Conventions: ground-truth and predicted labels are *class indices* 0..C-1 of a
``LabelSpace``. A ground-truth index of -1 marks a point that is not one of the valid
classes; such points are dropped before anything is counted, so they never produce a
false positive. A predicted index of -1 means "no prediction" (unlabelled voxel, or no
map voxel near the point); it is a miss of the ground-truth class and is kept in an
extra last column of the confusion matrix, so it is a false negative but nobody's false
positive.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import open3d as o3d

from ..core.labels import LabelSpace

__all__ = ["SemanticScores", "confusion_matrix", "evaluate_points", "map_raw_labels", "transfer_labels"]


def _int_labels(values: np.ndarray | Sequence[int], what: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{what} must be a 1-D array, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{what} must hold integers, got {arr.dtype}")
    return arr.astype(np.int64, copy=False)


def confusion_matrix(gt: np.ndarray, pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Count (ground truth, prediction) pairs.

    gt: (N,) int class indices in -1..C-1; -1 (not a valid class) drops the point.
    pred: (N,) int class indices in -1..C-1; -1 (no prediction) lands in the last column.
    num_classes: C. Returns (C, C+1) int64: row = ground-truth class, column = predicted
    class, column C = "unknown". Raises ValueError on shape mismatch or out-of-range ids.
    """
    c = int(num_classes)
    if c <= 0:
        raise ValueError(f"num_classes must be positive, got {num_classes}")
    gt = _int_labels(gt, "gt")
    pred = _int_labels(pred, "pred")
    if gt.shape != pred.shape:
        raise ValueError(f"gt and pred differ in length: {gt.shape[0]} vs {pred.shape[0]}")
    for arr, what in ((gt, "gt"), (pred, "pred")):
        if arr.size and (arr.min() < -1 or arr.max() >= c):
            raise ValueError(f"{what} has class indices outside -1..{c - 1}: min {arr.min()}, max {arr.max()}")
    valid = gt >= 0
    pred_col = np.where(pred[valid] < 0, c, pred[valid])
    flat = gt[valid] * (c + 1) + pred_col
    return np.bincount(flat, minlength=c * (c + 1)).astype(np.int64).reshape(c, c + 1)


def _nan_to_none(x: float) -> float | None:
    return None if x is None or math.isnan(x) else float(x)


@dataclass(frozen=True)
class SemanticScores:
    """Scores derived from a (C, C+1) confusion matrix (see ``confusion_matrix``).

    Per class (arrays of shape (C,)): tp, fp, fn (int64 point counts; fn includes
    "unknown" predictions, fp only counts points of *other valid* classes), gt_points
    (tp + fn), iou = tp / (tp + fp + fn) (float64; NaN only where tp + fp + fn = 0, so a
    class predicted but absent from the ground truth scores 0, as in ScanNet's
    ``get_iou``) and acc = tp / gt_points (NaN for classes without ground-truth points).
    Summaries (float, NaN when nothing is defined): miou is the benchmark's mean over
    the classes with a defined IoU; miou_present the mean over the classes with
    ground-truth points only; macc the mean accuracy over those; wiou weights the IoUs
    by ground-truth point frequency; oacc = sum(tp) / num_points. absent: indices of
    classes without ground-truth points. num_points: valid ground-truth points;
    num_unknown: those predicted as -1.
    """

    confusion: np.ndarray
    tp: np.ndarray
    fp: np.ndarray
    fn: np.ndarray
    gt_points: np.ndarray
    iou: np.ndarray
    acc: np.ndarray
    miou: float
    miou_present: float
    wiou: float
    macc: float
    oacc: float
    absent: tuple[int, ...]
    num_points: int
    num_unknown: int

    @property
    def num_classes(self) -> int:
        """Number of classes C."""
        return int(self.tp.shape[0])

    @classmethod
    def from_confusion(cls, confusion: np.ndarray) -> SemanticScores:
        """Scores of a (C, C+1) integer confusion matrix (rows gt, last column unknown)."""
        conf = np.asarray(confusion)
        if conf.ndim != 2 or conf.shape[1] != conf.shape[0] + 1 or conf.shape[0] == 0:
            raise ValueError(f"confusion must have shape (C, C+1), got {conf.shape}")
        if not np.issubdtype(conf.dtype, np.integer) or (conf < 0).any():
            raise ValueError("confusion must hold non-negative integer counts")
        conf = conf.astype(np.int64)
        c = conf.shape[0]
        tp = np.diag(conf[:, :c]).copy()
        gt_points = conf.sum(axis=1)
        fn = gt_points - tp
        # Only the C class columns: the unknown column is nobody's false positive, and
        # rows exist only for valid classes, so ignored points cannot contribute either.
        fp = conf[:, :c].sum(axis=0) - tp
        present = gt_points > 0
        union = tp + fp + fn
        with np.errstate(invalid="ignore", divide="ignore"):
            iou = np.where(union > 0, tp / union, np.nan)
            acc = np.where(present, tp / gt_points, np.nan)
        num_points = int(gt_points.sum())
        miou = float(iou[union > 0].mean()) if (union > 0).any() else float("nan")
        if present.any():
            miou_present = float(iou[present].mean())
            wiou = float((gt_points[present] * iou[present]).sum() / num_points)
            macc = float(acc[present].mean())
            oacc = float(tp.sum() / num_points)
        else:
            miou_present = wiou = macc = oacc = float("nan")
        return cls(
            confusion=conf,
            tp=tp,
            fp=fp,
            fn=fn,
            gt_points=gt_points,
            iou=iou,
            acc=acc,
            miou=miou,
            miou_present=miou_present,
            wiou=wiou,
            macc=macc,
            oacc=oacc,
            absent=tuple(int(i) for i in np.flatnonzero(~present)),
            num_points=num_points,
            num_unknown=int(conf[:, c].sum()),
        )

    @classmethod
    def from_labels(cls, gt: np.ndarray, pred: np.ndarray, num_classes: int) -> SemanticScores:
        """Shortcut for ``from_confusion(confusion_matrix(gt, pred, num_classes))``."""
        return cls.from_confusion(confusion_matrix(gt, pred, num_classes))

    def to_dict(self, class_names: Sequence[str]) -> dict:
        """JSON-friendly dict (NaN -> None): miou, miou_present, wiou, macc, oacc (fractions in [0, 1]),
        num_points, num_unknown, per_class {name: {iou, acc, gt_points, tp, fp, fn}},
        classes_absent [names], class_names [C names], confusion (C lists of C+1 ints)."""
        names = [str(n) for n in class_names]
        if len(names) != self.num_classes:
            raise ValueError(f"{len(names)} class names for {self.num_classes} classes")
        if len(set(names)) != len(names):
            raise ValueError("class names must be unique (they key the per-class scores)")
        per_class = {
            name: {
                "iou": _nan_to_none(self.iou[i]),
                "acc": _nan_to_none(self.acc[i]),
                "gt_points": int(self.gt_points[i]),
                "tp": int(self.tp[i]),
                "fp": int(self.fp[i]),
                "fn": int(self.fn[i]),
            }
            for i, name in enumerate(names)
        }
        return {
            "miou": _nan_to_none(self.miou),
            "miou_present": _nan_to_none(self.miou_present),
            "wiou": _nan_to_none(self.wiou),
            "macc": _nan_to_none(self.macc),
            "oacc": _nan_to_none(self.oacc),
            "num_points": self.num_points,
            "num_unknown": self.num_unknown,
            "per_class": per_class,
            "classes_absent": [names[i] for i in self.absent],
            "class_names": names,
            "confusion": self.confusion.tolist(),
        }


def transfer_labels(
    voxel_centres: np.ndarray, voxel_labels: np.ndarray, points: np.ndarray, radius: float
) -> tuple[np.ndarray, np.ndarray]:
    """Give each point the label of its nearest map voxel centre closer than ``radius``.

    voxel_centres: (M, 3) float [m]; voxel_labels: (M,) int class indices (-1 allowed);
    points: (N, 3) float [m]; radius: metres, > 0 (a neighbour must be strictly closer).
    Returns (labels (N,) int64, -1 where no voxel is within reach or the nearest voxel
    is unlabelled; covered (N,) bool, True where some voxel is within reach). M = 0 and
    N = 0 are allowed.
    """
    centres = np.asarray(voxel_centres, dtype=np.float64)
    pts = np.asarray(points, dtype=np.float64)
    labels = _int_labels(voxel_labels, "voxel_labels")
    if centres.ndim != 2 or centres.shape[1] != 3:
        raise ValueError(f"voxel_centres must have shape (M, 3), got {centres.shape}")
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise ValueError(f"points must have shape (N, 3), got {pts.shape}")
    if labels.shape[0] != centres.shape[0]:
        raise ValueError(f"{centres.shape[0]} voxel centres but {labels.shape[0]} voxel labels")
    if not radius > 0:
        raise ValueError(f"radius must be positive, got {radius}")
    n = pts.shape[0]
    out = np.full(n, -1, dtype=np.int64)
    if n == 0 or centres.shape[0] == 0:
        return out, np.zeros(n, dtype=bool)
    nns = o3d.core.nns.NearestNeighborSearch(o3d.core.Tensor(np.ascontiguousarray(centres)))
    if not nns.hybrid_index(float(radius)):
        raise RuntimeError("open3d could not build the neighbour index")
    # max_knn=1 makes the hybrid search return the nearest neighbour inside the radius.
    index, _, counts = nns.hybrid_search(o3d.core.Tensor(np.ascontiguousarray(pts)), float(radius), 1)
    nearest = index.numpy().reshape(n)
    covered = counts.numpy().reshape(n) > 0
    out[covered] = labels[nearest[covered]]
    return out, covered


def map_raw_labels(raw_ids: np.ndarray, label_space: LabelSpace) -> np.ndarray:
    """Raw ids (N,) int (e.g. NYU40) -> class indices (N,) int64; any id that is not one
    of the space's classes (ignored or entirely foreign) -> -1. Never raises on ids."""
    raw = _int_labels(raw_ids, "gt_labels_raw")
    ids = np.asarray(label_space.ids, dtype=np.int64)
    order = np.argsort(ids)
    sorted_ids = ids[order]
    pos = np.clip(np.searchsorted(sorted_ids, raw), 0, len(sorted_ids) - 1)
    return np.where(sorted_ids[pos] == raw, order[pos], -1).astype(np.int64)


def evaluate_points(
    gt_labels_raw: np.ndarray, pred: np.ndarray, covered: np.ndarray, label_space: LabelSpace
) -> dict:
    """Score per-point predictions against raw ground truth, benchmark style.

    gt_labels_raw: (N,) int raw ids (e.g. NYU40); ids that are not classes of
    ``label_space`` are ignored. pred: (N,) int class indices, -1 = no prediction.
    covered: (N,) bool, points the map reached (from ``transfer_labels``).
    Returns a JSON-friendly dict: the ``SemanticScores.to_dict`` keys (miou, miou_present, wiou,
    macc, oacc, per_class, classes_absent, class_names, confusion, ...) over the covered
    valid points; ``coverage`` (fraction of valid gt points covered, None if there are
    none); ``miou_all``/``wiou_all``/``macc_all``/``oacc_all`` over all valid points
    with uncovered ones counted as misses; ``num_valid_points``, ``num_covered_points``,
    ``num_ignored_points``; ``label_space`` (its name). Scores are fractions in [0, 1].
    """
    gt = map_raw_labels(gt_labels_raw, label_space)
    pred = _int_labels(pred, "pred")
    cov = np.asarray(covered)
    if cov.dtype != bool:
        raise ValueError(f"covered must be a bool array, got {cov.dtype}")
    if not gt.shape == pred.shape == cov.shape:
        raise ValueError(f"gt, pred and covered differ in shape: {gt.shape}, {pred.shape}, {cov.shape}")
    c = label_space.num_classes
    scores = SemanticScores.from_labels(gt[cov], pred[cov], c)
    # An uncovered point has no prediction, whatever ``pred`` holds there.
    scores_all = SemanticScores.from_labels(gt, np.where(cov, pred, -1), c)
    valid = gt >= 0
    num_valid = int(valid.sum())
    num_covered = int((valid & cov).sum())
    result = scores.to_dict(label_space.names)
    result.update(
        {
            "label_space": label_space.name,
            "coverage": num_covered / num_valid if num_valid else None,
            "num_valid_points": num_valid,
            "num_covered_points": num_covered,
            "num_ignored_points": int(gt.shape[0] - num_valid),
            "miou_all": _nan_to_none(scores_all.miou),
            "wiou_all": _nan_to_none(scores_all.wiou),
            "macc_all": _nan_to_none(scores_all.macc),
            "oacc_all": _nan_to_none(scores_all.oacc),
        }
    )
    return result
