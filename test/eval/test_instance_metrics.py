"""Instance scores (alster_mapping.eval.instance_metrics) on cases small enough to check by hand."""

import math

import numpy as np
import pytest

from alster_mapping.eval.instance_metrics import Prediction, average_precision, instance_masks, scannet_instance_classes, score_instances

# Ten points. Ground truth: class 0 instances A = {0..3} and B = {4, 5}; class 1 instance
# C = {6..9}. Prediction: class 0 instance P = {0, 1, 2} (IoU with A 3/4), Q = {4, 5, 6}
# (IoU with B 2/3, its majority class is 0); class 1 instance R = {7, 8} (IoU with C 2/4).
GT_SEM = np.array([0, 0, 0, 0, 0, 0, 1, 1, 1, 1])
GT_INS = np.array([1, 1, 1, 1, 2, 2, 3, 3, 3, 3])
PRED_SEM = np.array([0, 0, 0, 1, 0, 0, 0, 1, 1, 1])
PRED_INS = np.array([7, 7, 7, -1, 8, 8, 8, 9, 9, -1])


def test_coverage_precision_and_recall_by_hand():
    s = score_instances([(GT_SEM, GT_INS, PRED_SEM, PRED_INS)])
    # Class 0: Cov = (3/4 + 2/3) / 2; WCov = (4 * 3/4 + 2 * 2/3) / 6.
    assert s.cov[0] == pytest.approx((0.75 + 2 / 3) / 2)
    assert s.wcov[0] == pytest.approx((4 * 0.75 + 2 * 2 / 3) / 6)
    # Class 1: C's best IoU is R's 2/4.
    assert s.cov[1] == pytest.approx(0.5) and s.wcov[1] == pytest.approx(0.5)
    # IoU >= 0.5: P-A, Q-B, R-C all match: precision and recall 1 in both classes.
    assert s.precision == {0: 1.0, 1: 1.0} and s.recall == {0: 1.0, 1: 1.0}
    assert s.mcov == pytest.approx(((0.75 + 2 / 3) / 2 + 0.5) / 2)
    d = s.to_dict(["chair", "table"])
    assert d["per_class"]["chair"]["ground_truth_instances"] == 2 and d["per_class"]["table"]["predicted_instances"] == 1


def test_a_duplicate_prediction_counts_once():
    # One ground-truth object of 8 points; the prediction splits it 5 + 3 (IoU 5/8 and 3/8):
    # one true positive of two predictions. Cov takes the better one.
    semantic = np.zeros(8, np.int64)
    truth = np.ones(8, np.int64)
    split = np.array([1, 1, 1, 1, 1, 2, 2, 2])
    s = score_instances([(semantic, truth, semantic, split)])
    assert s.precision[0] == 0.5 and s.recall[0] == 1.0 and s.cov[0] == pytest.approx(5 / 8)
    # Scenes pool: a second scene whose single prediction matches adds one TP of one.
    s = score_instances([(semantic, truth, semantic, split), (semantic, truth, semantic, truth)])
    assert s.precision[0] == pytest.approx(2 / 3) and s.recall[0] == 1.0
    assert s.cov[0] == pytest.approx((5 / 8 + 1.0) / 2)  # the mean of the scenes' coverages


def test_missing_predictions_and_ignored_points():
    gt_sem = np.array([0, 0, -1, -1])
    gt_ins = np.array([1, 1, 2, -1])  # instance 2 has only ignored points: no instance
    s = score_instances([(gt_sem, gt_ins, np.full(4, -1), np.full(4, -1))])
    assert s.cov == {0: 0.0} and s.precision == {0: 0.0} and s.recall == {0: 0.0}
    assert list(instance_masks(gt_sem, gt_ins)) == [0]
    assert math.isnan(score_instances([]).mcov)
    with pytest.raises(ValueError, match="one entry per point"):
        score_instances([(gt_sem, gt_ins, gt_sem[:3], gt_ins)])


def ap_scene(pred_masks_scores, size=200, label=0):
    """One ground-truth instance of class ``label`` on points 0..size-1 of 3 * size points."""
    semantic = np.full(3 * size, 1)
    semantic[:size] = label
    instance = np.full(3 * size, -1)
    instance[:size] = 5
    predictions = [Prediction(mask, label, score) for mask, score in pred_masks_scores]
    return semantic, instance, predictions


def mask(start, stop, total=600):
    m = np.zeros(total, bool)
    m[start:stop] = True
    return m


def test_average_precision_by_hand():
    # An exact prediction: AP 1 at every threshold.
    result = average_precision([ap_scene([(mask(0, 200), 0.9)])], num_classes=2)
    assert result["ap"] == pytest.approx(1.0) and result["ap50"] == 1.0 and result["ap25"] == 1.0
    assert list(result["per_class"]) == [0]  # class 1 has no instance ground truth
    # A false positive scored above the true one: precision 1/2 at recall 1. ScanNet's
    # curve (precisions 1/2, 0, 1 at recalls 1, 0, 0; step widths 1/2, 1/2, 0) gives 1/4.
    result = average_precision([ap_scene([(mask(0, 200), 0.9), (mask(300, 500), 0.95)])], num_classes=1)
    assert result["ap50"] == pytest.approx(0.25)
    # Scored below the true one it costs nothing.
    result = average_precision([ap_scene([(mask(0, 200), 0.9), (mask(300, 500), 0.5)])], num_classes=1)
    assert result["ap50"] == pytest.approx(1.0)


def test_average_precision_over_scannets_object_classes():
    names = ["wall", "floor", "chair"]
    assert scannet_instance_classes(names) == [2]
    # A missed wall instance (class 0) lowers AP over all classes, not over ScanNet's.
    scene = ap_scene([(mask(0, 200), 0.9)])
    assert average_precision([scene], num_classes=1)["ap50"] == 1.0
    assert average_precision([scene], num_classes=1, classes=[])["per_class"] == {}
    assert math.isnan(average_precision([scene], num_classes=1, classes=[])["ap50"])


def test_average_precision_thresholds_duplicates_and_ignored_points():
    # IoU 0.6 (120 of 200 points): matches at 0.5 and 0.55 (IoU > t), not from 0.6 on.
    result = average_precision([ap_scene([(mask(0, 120), 0.9)])], num_classes=1)
    assert result["ap50"] == 1.0 and result["ap25"] == 1.0 and result["ap"] == pytest.approx(2 / 9)
    # Two matches of one instance: the more confident is the true positive, the other a
    # false positive at the lower score (ranked below it, so AP stays 1).
    result = average_precision([ap_scene([(mask(0, 200), 0.6), (mask(0, 190), 0.8)])], num_classes=1)
    assert result["ap50"] == pytest.approx(1.0)
    # A prediction on ignored points (class -1) is no false positive; a too small one is not evaluated.
    semantic, instance, predictions = ap_scene([(mask(0, 200), 0.5), (mask(300, 500), 0.9), (mask(500, 550), 0.99)])
    semantic[300:500] = -1
    result = average_precision([(semantic, instance, predictions)], num_classes=1)
    assert result["ap50"] == pytest.approx(1.0)
    # No prediction at all: AP 0 for the class.
    assert average_precision([ap_scene([])], num_classes=1)["ap"] == 0.0
