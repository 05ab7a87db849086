"""Evaluation (alster_mapping.eval): benchmark scores, label transfer, figures."""

import json
import math
import os

import numpy as np
import pytest

from alster_mapping.core.labels import scannet20
from alster_mapping.eval.metrics import (
    SemanticScores,
    confusion_matrix,
    evaluate_points,
    map_raw_labels,
    transfer_labels,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# A 3-class example small enough to check by hand. -1 in gt: ignored point; -1 in pred:
# no prediction ("unknown").
HAND_GT = np.array([0, 0, 0, 0, 1, 1, 1, 2, 2, -1, -1])
HAND_PRED = np.array([0, 0, 1, -1, 1, 1, 0, 2, 1, 2, 0])
# Rows = gt 0, 1, 2; columns = pred 0, 1, 2, unknown. The two ignored points vanish.
HAND_CONFUSION = [
    [2, 1, 0, 1],
    [1, 2, 0, 0],
    [0, 1, 1, 0],
]


def test_confusion_matrix_of_hand_example():
    conf = confusion_matrix(HAND_GT, HAND_PRED, 3)
    assert conf.dtype == np.int64 and conf.shape == (3, 4)
    np.testing.assert_array_equal(conf, HAND_CONFUSION)


def test_scores_of_hand_example():
    s = SemanticScores.from_confusion(np.array(HAND_CONFUSION))
    # TP = diagonal = [2, 2, 1]
    # FN = row sums [4, 3, 2] - TP = [2, 1, 1]   (class 0's miss to "unknown" is an FN)
    # FP = class-column sums [3, 4, 1] - TP = [1, 2, 0]
    np.testing.assert_array_equal(s.tp, [2, 2, 1])
    np.testing.assert_array_equal(s.fn, [2, 1, 1])
    np.testing.assert_array_equal(s.fp, [1, 2, 0])
    np.testing.assert_array_equal(s.gt_points, [4, 3, 2])
    # IoU = TP / (TP + FP + FN): 2/(2+1+2) = 0.4, 2/(2+2+1) = 0.4, 1/(1+0+1) = 0.5
    np.testing.assert_allclose(s.iou, [0.4, 0.4, 0.5])
    # mIoU = (0.4 + 0.4 + 0.5) / 3 = 1.3 / 3
    assert s.miou == pytest.approx(0.4333333333)
    # wIoU = (4 * 0.4 + 3 * 0.4 + 2 * 0.5) / 9 = 3.8 / 9
    assert s.wiou == pytest.approx(0.4222222222)
    # acc = TP / gt points: 2/4, 2/3, 1/2; mAcc = (0.5 + 0.6667 + 0.5) / 3 = 5/9
    np.testing.assert_allclose(s.acc, [0.5, 0.6666666667, 0.5])
    assert s.macc == pytest.approx(0.5555555556)
    # overall accuracy = (2 + 2 + 1) / 9
    assert s.oacc == pytest.approx(0.5555555556)
    assert s.num_points == 9 and s.num_unknown == 1 and s.absent == ()
    assert SemanticScores.from_labels(HAND_GT, HAND_PRED, 3).miou == s.miou


def test_confusion_matrix_matches_a_loop_on_random_labels():
    rng = np.random.default_rng(0)
    c = 7
    gt = rng.integers(-1, c, 5000)
    pred = rng.integers(-1, c, 5000)
    want = np.zeros((c, c + 1), dtype=np.int64)
    for g, p in zip(gt, pred):
        if g >= 0:
            want[g, c if p < 0 else p] += 1
    np.testing.assert_array_equal(confusion_matrix(gt, pred, c), want)


def test_ignored_ground_truth_never_creates_false_positives():
    base = SemanticScores.from_labels(HAND_GT[:9], HAND_PRED[:9], 3)
    # 1000 extra ignored points, all predicted as class 2, must change nothing.
    gt = np.concatenate([HAND_GT[:9], np.full(1000, -1)])
    pred = np.concatenate([HAND_PRED[:9], np.full(1000, 2)])
    s = SemanticScores.from_labels(gt, pred, 3)
    np.testing.assert_array_equal(s.confusion, base.confusion)
    np.testing.assert_array_equal(s.fp, [1, 2, 0])
    assert s.iou[2] == 0.5


def test_unknown_prediction_is_a_miss_but_no_false_positive():
    # Class 0: 2 hits, 2 unknown. Class 1: 2 hits.
    s = SemanticScores.from_labels(np.array([0, 0, 0, 0, 1, 1]), np.array([0, 0, -1, -1, 1, 1]), 2)
    np.testing.assert_array_equal(s.fn, [2, 0])
    np.testing.assert_array_equal(s.fp, [0, 0])
    # IoU: 2 / (2 + 0 + 2) = 0.5 and 2 / 2 = 1.0
    np.testing.assert_allclose(s.iou, [0.5, 1.0])
    assert s.num_unknown == 2
    assert s.oacc == pytest.approx(4 / 6)


def test_a_class_predicted_but_absent_scores_zero_as_on_the_benchmark():
    # Nobody is class 1 in the ground truth, but one class-0 point is predicted as 1.
    s = SemanticScores.from_labels(np.array([0, 0, 2, 2]), np.array([0, 1, 2, 2]), 3)
    assert s.absent == (1,)
    # ScanNet's get_iou: tp / (tp + fp + fn) = 0 / 1 for class 1; its accuracy has no meaning.
    assert s.iou[1] == 0.0 and math.isnan(s.acc[1])
    # IoU 0: 1 / (1 + 0 + 1) = 0.5; IoU 2: 2/2 = 1.0
    np.testing.assert_allclose(s.iou[[0, 2]], [0.5, 1.0])
    assert s.miou == pytest.approx(0.5)  # (0.5 + 0 + 1) / 3, the benchmark's mean
    assert s.miou_present == pytest.approx(0.75)  # over the two classes with ground truth
    # mAcc = (1/2 + 2/2) / 2; wIoU = (2 * 0.5 + 2 * 1.0) / 4
    assert s.macc == pytest.approx(0.75)
    assert s.wiou == pytest.approx(0.75)
    d = s.to_dict(["a", "b", "c"])
    assert d["per_class"]["b"]["iou"] == 0.0 and d["per_class"]["b"]["fp"] == 1
    assert d["classes_absent"] == ["b"] and d["miou_present"] == pytest.approx(0.75)
    json.dumps(d, allow_nan=False)


def test_a_class_neither_present_nor_predicted_is_left_out():
    s = SemanticScores.from_labels(np.array([0, 0, 2, 2]), np.array([0, 0, 2, 2]), 3)
    assert math.isnan(s.iou[1]) and s.miou == s.miou_present == 1.0


def _official_mean_iou(gt_ids: np.ndarray, pred_ids: np.ndarray, valid_ids: list[int]) -> float:
    """ScanNet's evaluate_semantic_label.py, restated: a confusion over raw ids, get_iou per
    valid id (fp counted over the other valid ids' ground truth only, NaN where the
    denominator is 0) and the mean over the defined IoUs."""
    keep = np.isin(gt_ids, valid_ids)
    size = max(valid_ids) + 1
    pred = np.where(np.isin(pred_ids, valid_ids), pred_ids, 0)  # not a valid class: lands on no valid column
    confusion = np.zeros((size, size), dtype=np.ulonglong)
    np.add.at(confusion, (gt_ids[keep], pred[keep]), 1)
    ious = []
    for label in valid_ids:
        tp = int(confusion[label, label])
        fn = int(confusion[label, :].sum()) - tp
        fp = int(confusion[[v for v in valid_ids if v != label], label].sum())
        if tp + fp + fn:
            ious.append(tp / (tp + fp + fn))
    return float(np.mean(ious))


def test_mean_iou_agrees_exactly_with_the_official_script_when_labels_are_randomised():
    space = scannet20()
    rng = np.random.default_rng(5)
    ids = np.asarray(space.ids)
    # Ground truth uses only 12 of the 20 classes plus ignored ids; 30 % of the
    # predictions are random valid ids, so some absent classes get predicted.
    gt = rng.choice(np.concatenate([ids[:12], [0, 13, 40]]), 30000)
    pred = gt.copy()
    noisy = rng.random(gt.size) < 0.3
    pred[noisy] = rng.choice(ids, int(noisy.sum()))
    pred_index = map_raw_labels(pred, space)
    result = evaluate_points(gt, pred_index, np.ones(gt.size, bool), space)
    official = _official_mean_iou(gt, pred, list(space.ids))
    assert result["miou"] == pytest.approx(official, abs=1e-12)
    assert result["miou_present"] > result["miou"] + 0.1  # the old figure hid the false positives


def test_no_valid_points_gives_nan_scores_and_none_in_dict():
    s = SemanticScores.from_labels(np.array([-1, -1]), np.array([0, 1]), 2)
    assert s.num_points == 0 and s.absent == (0, 1)
    assert math.isnan(s.miou) and math.isnan(s.oacc)
    d = s.to_dict(["a", "b"])
    assert d["miou"] is None and d["wiou"] is None and d["macc"] is None and d["oacc"] is None
    json.dumps(d, allow_nan=False)


def test_perfect_prediction_scores_one():
    gt = np.repeat(np.arange(5), [10, 1, 3, 50, 7])
    s = SemanticScores.from_labels(gt, gt.copy(), 5)
    np.testing.assert_allclose(s.iou, 1.0)
    assert s.miou == s.wiou == s.macc == s.oacc == 1.0


def test_chance_level_prediction_has_low_miou():
    rng = np.random.default_rng(1)
    c = 20
    s = SemanticScores.from_labels(rng.integers(0, c, 40000), rng.integers(0, c, 40000), c)
    # Expected IoU of independent uniform labels: (1/C^2) / (2/C - 1/C^2) = 1/39.
    assert s.miou == pytest.approx(1 / 39, abs=0.01)
    assert s.miou < 0.05 and s.oacc < 0.07


def test_invalid_inputs_raise():
    with pytest.raises(ValueError, match="outside"):
        confusion_matrix(np.array([0, 3]), np.array([0, 0]), 3)
    with pytest.raises(ValueError, match="outside"):
        confusion_matrix(np.array([0, 1]), np.array([-2, 0]), 3)
    with pytest.raises(ValueError, match="length"):
        confusion_matrix(np.array([0, 1]), np.array([0]), 3)
    with pytest.raises(ValueError, match="integers"):
        confusion_matrix(np.array([0.0]), np.array([0]), 3)
    with pytest.raises(ValueError, match="shape"):
        SemanticScores.from_confusion(np.zeros((3, 3), dtype=np.int64))
    with pytest.raises(ValueError, match="class names"):
        SemanticScores.from_confusion(np.array(HAND_CONFUSION)).to_dict(["a", "b"])


def test_transfer_labels_takes_the_nearest_voxel_within_the_radius():
    centres = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [2.0, 0.0, 0.0]])
    labels = np.array([3, 5, -1])
    points = np.array(
        [
            [0.1, 0.0, 0.0],  # 0.1 from voxel 0 -> 3
            [0.45, 0.0, 0.0],  # 0.45 from voxel 0, 0.55 from voxel 1: nearest wins -> 3
            [0.7, 0.0, 0.0],  # 0.3 from voxel 1 -> 5
            [0.0, 0.6, 0.0],  # 0.6 from voxel 0: beyond the radius -> uncovered
            [2.1, 0.0, 0.0],  # next to the unlabelled voxel: covered, but no label
            [9.0, 9.0, 9.0],  # far from everything
        ]
    )
    got, covered = transfer_labels(centres, labels, points, radius=0.5)
    np.testing.assert_array_equal(got, [3, 3, 5, -1, -1, -1])
    np.testing.assert_array_equal(covered, [True, True, True, False, True, False])
    assert got.dtype == np.int64 and covered.dtype == bool


def test_transfer_labels_matches_brute_force():
    rng = np.random.default_rng(2)
    centres = rng.random((300, 3)).astype(np.float32)
    labels = rng.integers(0, 20, 300)
    points = rng.random((500, 3)) * 1.2 - 0.1
    radius = 0.08
    got, covered = transfer_labels(centres, labels, points, radius)
    d = np.linalg.norm(points[:, None, :] - centres[None, :, :].astype(np.float64), axis=2)
    nearest = d.argmin(1)
    want_cov = d.min(1) < radius
    assert 0 < want_cov.sum() < len(points)
    np.testing.assert_array_equal(covered, want_cov)
    np.testing.assert_array_equal(got, np.where(want_cov, labels[nearest], -1))


def test_transfer_labels_with_empty_inputs():
    got, covered = transfer_labels(np.zeros((0, 3)), np.zeros(0, dtype=np.int64), np.ones((4, 3)), 0.1)
    np.testing.assert_array_equal(got, [-1] * 4)
    assert not covered.any() and covered.shape == (4,)
    got, covered = transfer_labels(np.ones((2, 3)), np.array([1, 2]), np.zeros((0, 3)), 0.1)
    assert got.shape == (0,) and covered.shape == (0,)
    with pytest.raises(ValueError, match="radius"):
        transfer_labels(np.ones((2, 3)), np.array([1, 2]), np.zeros((1, 3)), 0.0)


def test_map_raw_labels_ignores_everything_outside_the_space():
    space = scannet20()
    # NYU40 wall=1 -> 0, floor=2 -> 1, toilet=33 -> 16, otherfurniture=39 -> 19;
    # 0 (unannotated), 22 (ceiling, ignored by ScanNet-20), 40, 99 and -3 are not classes.
    raw = np.array([1, 2, 33, 39, 0, 22, 40, 99, -3])
    np.testing.assert_array_equal(map_raw_labels(raw, space), [0, 1, 16, 19, -1, -1, -1, -1, -1])


def test_evaluate_points_with_raw_nyu40_ids():
    space = scannet20()
    wall, floor, chair = 0, 1, 4  # class indices of NYU40 ids 1, 2, 5
    gt_raw = np.array([1, 1, 2, 2, 5, 0, 22, 99, 1])
    pred = np.array([wall, floor, floor, floor, chair, chair, chair, chair, wall])
    covered = np.array([True] * 8 + [False])
    r = evaluate_points(gt_raw, pred, covered, space)
    json.dumps(r, allow_nan=False)
    # Covered valid points: wall -> wall, floor; floor -> floor, floor; chair -> chair.
    # The ignored points (ids 0, 22, 99) predicted as chair are no false positives.
    # wall: TP 1, FN 1, FP 0 -> 1/2; floor: TP 2, FN 0, FP 1 -> 2/3; chair: 1/1.
    assert r["per_class"]["wall"]["iou"] == pytest.approx(0.5)
    assert r["per_class"]["floor"]["iou"] == pytest.approx(2 / 3)
    assert r["per_class"]["chair"]["iou"] == pytest.approx(1.0)
    assert r["per_class"]["chair"]["gt_points"] == 1
    # mIoU = (1/2 + 2/3 + 1) / 3 = 13/18
    assert r["miou"] == pytest.approx(13 / 18)
    # wIoU = (2 * 1/2 + 2 * 2/3 + 1 * 1) / 5 = (10/3) / 5 = 2/3
    assert r["wiou"] == pytest.approx(2 / 3)
    # mAcc = (1/2 + 1 + 1) / 3; oAcc = 4/5
    assert r["macc"] == pytest.approx(5 / 6)
    assert r["oacc"] == pytest.approx(0.8)
    assert len(r["classes_absent"]) == 17 and "sofa" in r["classes_absent"]
    assert r["per_class"]["sofa"]["iou"] is None
    # 6 valid gt points (4 of them wall/floor/chair covered + 1 uncovered wall): 5/6 covered.
    assert r["num_valid_points"] == 6 and r["num_covered_points"] == 5 and r["num_ignored_points"] == 3
    assert r["coverage"] == pytest.approx(5 / 6)
    # Counting the uncovered wall point as a miss: wall IoU 1/3 (TP 1, FN 2), so
    # mIoU_all = (1/3 + 2/3 + 1) / 3 = 2/3.
    assert r["miou_all"] == pytest.approx(2 / 3)
    assert r["oacc_all"] == pytest.approx(4 / 6)
    conf = np.array(r["confusion"])
    assert conf.shape == (20, 21) and conf.sum() == 5
    assert conf[wall, floor] == 1 and conf[floor, floor] == 2 and conf[chair, chair] == 1


def test_evaluate_points_ignores_pred_where_uncovered_and_checks_shapes():
    space = scannet20()
    r = evaluate_points(np.array([1, 1]), np.array([0, 0]), np.array([True, False]), space)
    assert r["miou"] == 1.0 and r["miou_all"] == pytest.approx(0.5) and r["coverage"] == 0.5
    r = evaluate_points(np.array([0, 22]), np.array([0, 0]), np.array([True, True]), space)
    assert r["miou"] is None and r["coverage"] is None
    with pytest.raises(ValueError, match="shape"):
        evaluate_points(np.array([1, 1]), np.array([0]), np.array([True, True]), space)
    with pytest.raises(ValueError, match="bool"):
        evaluate_points(np.array([1]), np.array([0]), np.array([1]), space)


# -- figures -------------------------------------------------------------------------


def _assert_png(path):
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 1000
    assert sorted(os.listdir(path.parent)) == [path.name], "temporary files left behind"


def test_plot_class_iou_writes_png(tmp_path):
    from alster_mapping.eval.plots import plot_class_iou

    space = scannet20()
    rng = np.random.default_rng(3)
    iou_2d = list(rng.random(20))
    iou_3d = rng.random(20)
    iou_3d[5] = np.nan
    expert = [None] + list(rng.random(19))
    path = tmp_path / "iou.png"
    out = plot_class_iou({"2D": iou_2d, "3D": iou_3d, "expert": expert}, space.names, space.colors, path, dpi=50)
    assert out == path
    _assert_png(path)
    with pytest.raises(ValueError, match="classes"):
        plot_class_iou({"2D": [0.5, 0.5]}, space.names, space.colors, tmp_path / "bad.png")


def test_plot_confusion_writes_png(tmp_path):
    from alster_mapping.eval.plots import plot_confusion

    path = tmp_path / "confusion.png"
    # A 4th class without ground-truth points (blank row) that is predicted once.
    conf = np.array([[2, 1, 0, 0, 1], [1, 2, 0, 0, 0], [0, 1, 0, 1, 0], [0, 0, 0, 0, 0]])
    assert plot_confusion(conf, ["a", "b", "c", "d"], path, dpi=50) == path
    _assert_png(path)
    counts = tmp_path / "counts" / "confusion.png"
    plot_confusion(np.array(HAND_CONFUSION), ["a", "b", "c"], counts, normalize=None, dpi=50)
    _assert_png(counts)
    with pytest.raises(ValueError, match="normalize"):
        plot_confusion(np.array(HAND_CONFUSION), ["a", "b", "c"], tmp_path / "x.png", normalize="pred")


def test_render_labelled_map_writes_png(tmp_path):
    from alster_mapping.eval.plots import render_labelled_map

    space = scannet20()
    rng = np.random.default_rng(4)
    points = rng.random((400, 3)) * [2.0, 2.0, 1.0]
    colors = space.colorize(rng.integers(-1, 20, 400))
    path = tmp_path / "map.png"
    try:
        out = render_labelled_map(points, colors, path, width=96, height=64, voxel_size=0.1)
    except RuntimeError as exc:
        pytest.skip(f"no rendering context: {exc}")
    assert out == path
    _assert_png(path)
    from PIL import Image

    image = np.asarray(Image.open(path))
    assert image.shape[:2] == (64, 96)
    assert (image[..., :3].reshape(-1, 3) != 255).any(axis=1).mean() > 0.01, "nothing drawn"


def test_render_labelled_map_rejects_bad_input(tmp_path):
    from alster_mapping.eval.plots import render_labelled_map

    with pytest.raises(ValueError, match="uint8"):
        render_labelled_map(np.zeros((2, 3)), np.zeros((2, 3)), tmp_path / "a.png")
    with pytest.raises(ValueError, match="empty"):
        render_labelled_map(np.zeros((0, 3)), np.zeros((0, 3), dtype=np.uint8), tmp_path / "a.png")
    assert os.listdir(tmp_path) == []
