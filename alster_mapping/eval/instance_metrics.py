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

``average_precision`` computes ScanNet's instance AP (``evaluate_semantic_instance.py``):
scored predictions matched per class at IoU thresholds 0.25, 0.5 and 0.5:0.95, over the
classes ScanNet evaluates (all but wall and floor). Cov / WCov / Prec / Rec keep every
class with instances, walls and floors included, as the papers do on S3DIS.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["InstanceScores", "Prediction", "average_precision", "instance_masks", "scannet_instance_classes", "score_instances"]


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


@dataclass(frozen=True)
class Prediction:
    """One predicted instance: mask (N,) bool over the scene's points, class index, confidence."""

    mask: np.ndarray
    label: int
    score: float


AP_THRESHOLDS = tuple(float(t) for t in np.arange(0.5, 0.95, 0.05))
"""IoU thresholds averaged into AP (ScanNet: 0.5, 0.55, ..., 0.9)."""


def _ap_from_matches(true: np.ndarray, scores: np.ndarray, hard_false_negatives: int) -> float:
    """AP of scored detections (true: 1 = matched, 0 = false positive) as ScanNet integrates
    its precision-recall curve (recall steps, precision at each distinct score)."""
    if true.size == 0:
        return float("nan") if hard_false_negatives == 0 else 0.0
    order = np.argsort(scores, kind="stable")
    scores, true = scores[order], true[order]
    cumulative = np.cumsum(true)
    _, first = np.unique(scores, return_index=True)
    examples, positives = len(scores), cumulative[-1]
    precision, recall = np.zeros(len(first) + 1), np.zeros(len(first) + 1)
    cumulative = np.append(cumulative, 0)
    for k, index in enumerate(first):
        before = cumulative[index - 1]  # index 0 reads the appended 0
        tp = positives - before
        fp = examples - index - tp
        fn = before + hard_false_negatives
        precision[k] = tp / (tp + fp)
        recall[k] = tp / (tp + fn) if tp + fn else 0.0
    precision[-1], recall[-1] = 1.0, 0.0
    padded = np.concatenate([[recall[0]], recall, [0.0]])
    step_widths = np.convolve(padded, [-0.5, 0, 0.5], "valid")
    return float(np.dot(precision, step_widths))


@dataclass
class _ClassInScene:
    """One class in one scene, computed once for every IoU threshold: the IoUs of the
    evaluated ground-truth instances (rows) and predictions (columns), the predictions'
    scores, and the share of each prediction on ignored points or on ground-truth
    instances too small to evaluate."""

    iou: np.ndarray
    scores: np.ndarray
    ignored: np.ndarray


def _class_in_scene(masks: list[np.ndarray], void: np.ndarray, preds: list[Prediction], min_region_size: int) -> _ClassInScene:
    truths = [m for m in masks if m.sum() >= min_region_size]
    small = [m for m in masks if m.sum() < min_region_size]
    ignored = np.array(
        [(np.logical_and(p.mask, void).sum() + sum(np.logical_and(p.mask, t).sum() for t in small)) / max(int(p.mask.sum()), 1) for p in preds]
    )
    return _ClassInScene(_iou_matrix(truths, [p.mask for p in preds]), np.array([p.score for p in preds], float), ignored)


def _match_scene(case: _ClassInScene, threshold: float) -> tuple[list[float], list[float], int]:
    """(true flags, scores, unmatched ground truth) of one scene, class and threshold, as
    ScanNet's ``evaluate_matches``: each ground-truth instance keeps its most confident
    prediction with IoU > threshold as a true positive (a prediction serves one instance;
    further matches are false positives at the lower score); a prediction that matches
    nothing is a false positive unless more than ``threshold`` of it lies on ignored points
    or on ground-truth instances too small to evaluate."""
    above = case.iou > threshold  # (G, P)
    matched = [False] * above.shape[0]
    best = [0.0] * above.shape[0]
    true, scores = [], []
    used = set()
    for gi in range(above.shape[0]):
        for pi in np.flatnonzero(above[gi]):
            if pi in used:
                continue
            score = float(case.scores[pi])
            if matched[gi]:  # a second match: the less confident one is a false positive
                true.append(0.0)
                scores.append(min(best[gi], score))
                best[gi] = max(best[gi], score)
            else:
                matched[gi], best[gi] = True, score
                used.add(pi)
    true += [1.0] * sum(matched)
    scores += [best[gi] for gi in range(len(matched)) if matched[gi]]
    unmatched = ~above.any(0) & (case.ignored <= threshold)
    true += [0.0] * int(unmatched.sum())
    scores += case.scores[unmatched].tolist()
    return true, scores, matched.count(False)


def scannet_instance_classes(class_names: list[str]) -> list[int]:
    """The classes ScanNet's instance benchmark evaluates: all but wall and floor (stuff, not objects)."""
    return [i for i, name in enumerate(class_names) if name not in ("wall", "floor")]


def average_precision(
    scenes: list[tuple[np.ndarray, np.ndarray, list[Prediction]]],
    num_classes: int,
    min_region_size: int = 100,
    classes: list[int] | None = None,
) -> dict:
    """ScanNet's instance AP over ``scenes``: each (gt_semantic (N,), gt_instance (N,),
    predictions). Ground-truth instances and predictions smaller than ``min_region_size``
    points are not evaluated (ScanNet: 100 vertices); matching per scene, class and IoU
    threshold as ``_match_scene``; the precision-recall curve pooled over the scenes.
    Returns {"ap" (mean over IoU 0.5:0.95), "ap50", "ap25": means over the classes with
    ground truth, "per_class": {class: {"ap", "ap50", "ap25"}}}; a class with ground truth
    but no prediction scores 0. classes: the class indices evaluated (default all;
    ScanNet's benchmark leaves out wall and floor, see ``scannet_instance_classes``).
    """
    thresholds = (*AP_THRESHOLDS, 0.25)
    per_class: dict[int, dict[str, float]] = {}
    prepared = [
        (instance_masks(gt_semantic, gt_instance), np.asarray(gt_semantic) < 0, [p for p in predictions if p.mask.sum() >= min_region_size])
        for gt_semantic, gt_instance, predictions in scenes
    ]
    for c in range(num_classes) if classes is None else classes:
        cases, has_truth = [], False
        for masks_by_class, void, predictions in prepared:
            masks = masks_by_class.get(c, [])
            has_truth |= any(m.sum() >= min_region_size for m in masks)
            cases.append(_class_in_scene(masks, void, [p for p in predictions if p.label == c], min_region_size))
        if not has_truth:
            continue
        ap = []
        for threshold in thresholds:
            true_all: list[float] = []
            score_all: list[float] = []
            unmatched = 0
            for case in cases:
                true, scores, missed = _match_scene(case, threshold)
                true_all += true
                score_all += scores
                unmatched += missed
            ap.append(_ap_from_matches(np.array(true_all), np.array(score_all), unmatched))
        per_class[c] = {"ap": float(np.mean(ap[: len(AP_THRESHOLDS)])), "ap50": ap[0], "ap25": ap[-1]}
    mean = {key: float(np.mean([v[key] for v in per_class.values()])) if per_class else float("nan") for key in ("ap", "ap50", "ap25")}
    return {**mean, "per_class": per_class}
