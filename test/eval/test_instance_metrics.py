"""Instance scores (alster_mapping.eval.instance_metrics) on cases small enough to check by hand."""

import math

import numpy as np
import pytest

from alster_mapping.eval.instance_metrics import instance_masks, score_instances

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
