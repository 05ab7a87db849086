"""Instance segmentation scores as the ASIS and BAN papers define them (ASIS eq. 7-9).

Per semantic class c, over the scenes (e.g. rooms or maps) given:

* Cov: the mean over the ground-truth instances of class c of the best IoU any predicted
  instance of class c reaches with it (eq. 7); WCov weights each ground-truth instance by
  its share of the class's ground-truth points (eq. 8-9). A scene's Cov / WCov are
  averaged over the scenes that have instances of class c, as the ASIS script does.
* Prec / Rec at IoU >= 0.5: a predicted instance of class c is a true positive when it
  matches a ground-truth instance of class c; Prec = TP / predictions, Rec = TP / ground
  truth, pooled over the scenes.
* mCov, mWCov, mPrec, mRec: the means over the classes that have ground-truth instances.

Where this differs from the ASIS / BAN evaluation script, and why:

* Matching for Prec / Rec is one-to-one here (predictions in order of their IoU, each
  ground-truth instance taken once). The script counts every prediction that overlaps
  some ground truth by 0.5 as a true positive, so two predictions covering one object
  both count and recall can exceed 1. At IoU >= 0.5 two predictions can both match one
  ground-truth instance only if they (nearly) duplicate each other, so the counts differ
  only for duplicated predictions. A class with ground truth but no prediction has
  precision 0.
* Points are counted once. The script scores the union of the overlapping 1 m blocks
  with points repeated where blocks overlap; our inputs are per point (or per voxel) of
  the merged scene.

Inputs per scene: (N,) int arrays of semantic class indices (-1 = ignored) and instance
ids (< 0 = no instance) for the ground truth and the prediction. An instance's class is
the most frequent class of its points.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["InstanceScores", "instance_masks", "score_instances"]


def instance_masks(semantic: np.ndarray, instance: np.ndarray) -> dict[int, list[np.ndarray]]:
    """class index -> boolean masks (N,) of the instances of that class (the class of an
    instance: the most frequent class of its points; instance ids < 0 are no instance)."""
    semantic = np.asarray(semantic)
    instance = np.asarray(instance)
    if semantic.shape != instance.shape or semantic.ndim != 1:
        raise ValueError(f"semantic {semantic.shape} and instance {instance.shape} must be equal 1-D shapes")
    masks: dict[int, list[np.ndarray]] = {}
    for ident in np.unique(instance[instance >= 0]):
        mask = instance == ident
        classes = semantic[mask]
        classes = classes[classes >= 0]
        if classes.size == 0:
            continue
        masks.setdefault(int(np.bincount(classes).argmax()), []).append(mask)
    return masks


def _iou_matrix(ground_truth: list[np.ndarray], predicted: list[np.ndarray]) -> np.ndarray:
    """(G, P) IoU of every ground-truth / predicted mask pair."""
    if not ground_truth or not predicted:
        return np.zeros((len(ground_truth), len(predicted)))
    gt = np.stack(ground_truth).astype(np.float64)
    pred = np.stack(predicted).astype(np.float64)
    intersection = gt @ pred.T
    union = gt.sum(1)[:, None] + pred.sum(1)[None, :] - intersection
    return np.where(union > 0, intersection / np.maximum(union, 1), 0.0)


def _one_to_one_matches(iou: np.ndarray, threshold: float) -> int:
    """Pairs with IoU >= threshold, each row and column used once, best IoU first."""
    rows, cols = np.nonzero(iou >= threshold)
    order = np.argsort(-iou[rows, cols], kind="stable")
    used_rows, used_cols, matches = set(), set(), 0
    for r, c in zip(rows[order], cols[order]):
        if r not in used_rows and c not in used_cols:
            used_rows.add(r)
            used_cols.add(c)
            matches += 1
    return matches


@dataclass
class InstanceScores:
    """Per class (dicts keyed by class index) and their means; see the module docstring."""

    cov: dict[int, float] = field(default_factory=dict)
    wcov: dict[int, float] = field(default_factory=dict)
    precision: dict[int, float] = field(default_factory=dict)
    recall: dict[int, float] = field(default_factory=dict)
    ground_truth_instances: dict[int, int] = field(default_factory=dict)
    predicted_instances: dict[int, int] = field(default_factory=dict)

    @staticmethod
    def _mean(values: dict[int, float]) -> float:
        return float(np.mean(list(values.values()))) if values else float("nan")

    @property
    def mcov(self) -> float:
        return self._mean(self.cov)

    @property
    def mwcov(self) -> float:
        return self._mean(self.wcov)

    @property
    def mprec(self) -> float:
        return self._mean(self.precision)

    @property
    def mrec(self) -> float:
        return self._mean(self.recall)

    def to_dict(self, class_names: list[str]) -> dict:
        """JSON-friendly: the four means and per class {cov, wcov, precision, recall, gt / predicted instances}."""
        per_class = {
            class_names[c]: {
                "cov": self.cov[c],
                "wcov": self.wcov[c],
                "precision": self.precision[c],
                "recall": self.recall[c],
                "ground_truth_instances": self.ground_truth_instances[c],
                "predicted_instances": self.predicted_instances.get(c, 0),
            }
            for c in sorted(self.cov)
        }
        return {"mcov": self.mcov, "mwcov": self.mwcov, "mprec": self.mprec, "mrec": self.mrec, "per_class": per_class}


def score_instances(
    scenes: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]], iou_threshold: float = 0.5
) -> InstanceScores:
    """Scores over ``scenes``: each (gt_semantic, gt_instance, pred_semantic, pred_instance),
    four (N,) int arrays of one scene (see the module docstring)."""
    covs: dict[int, list[float]] = {}
    wcovs: dict[int, list[float]] = {}
    true_positives: dict[int, int] = {}
    ground_truth_count: dict[int, int] = {}
    predicted_count: dict[int, int] = {}
    for gt_semantic, gt_instance, pred_semantic, pred_instance in scenes:
        if not (len(gt_semantic) == len(gt_instance) == len(pred_semantic) == len(pred_instance)):
            raise ValueError("the four arrays of a scene must have one entry per point")
        truth = instance_masks(gt_semantic, gt_instance)
        predicted = instance_masks(pred_semantic, pred_instance)
        for c, masks in predicted.items():
            predicted_count[c] = predicted_count.get(c, 0) + len(masks)
        for c, gt_masks in truth.items():
            iou = _iou_matrix(gt_masks, predicted.get(c, []))
            best = iou.max(1) if iou.shape[1] else np.zeros(len(gt_masks))
            sizes = np.array([m.sum() for m in gt_masks], np.float64)
            covs.setdefault(c, []).append(float(best.mean()))
            wcovs.setdefault(c, []).append(float((best * sizes).sum() / sizes.sum()))
            true_positives[c] = true_positives.get(c, 0) + _one_to_one_matches(iou, iou_threshold)
            ground_truth_count[c] = ground_truth_count.get(c, 0) + len(gt_masks)
    scores = InstanceScores(ground_truth_instances=ground_truth_count, predicted_instances=predicted_count)
    for c in ground_truth_count:
        scores.cov[c] = float(np.mean(covs[c]))
        scores.wcov[c] = float(np.mean(wcovs[c]))
        scores.precision[c] = true_positives[c] / predicted_count[c] if predicted_count.get(c) else 0.0
        scores.recall[c] = true_positives[c] / ground_truth_count[c]
    return scores
