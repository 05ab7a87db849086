"""Scene completion scores (alster_mapping.eval.completion_metrics) against hand-computed volumes."""

import numpy as np
import pytest

from alster_mapping.core.samples import FREE, OCCLUDED, OUTSIDE, SURFACE
from alster_mapping.eval.completion_metrics import CompletionMeter, segmentation_scores

CHAIR, TABLE = 5, 8


def test_scene_completion_and_semantic_scene_completion_by_hand():
    # Eight voxels:          0         1         2         3         4       5          6         7
    visibility = np.array([OCCLUDED, OCCLUDED, OCCLUDED, OCCLUDED, SURFACE, SURFACE, FREE, OUTSIDE]).reshape(2, 2, 2)
    truth = np.array([CHAIR, CHAIR, 0, 0, TABLE, CHAIR, CHAIR, TABLE]).reshape(2, 2, 2)
    predicted = np.array([CHAIR, 0, TABLE, 0, TABLE, TABLE, 0, 0]).reshape(2, 2, 2)
    meter = CompletionMeter()
    meter.add(truth, predicted, visibility)
    scores = meter.scores()
    # SC on the occluded voxels 0-3: occupied truth {0, 1}, predicted {0, 2}: tp 1, fp 1, fn 1.
    assert (scores.sc_precision, scores.sc_recall, scores.sc_iou) == (0.5, 0.5, pytest.approx(1 / 3))
    # SSC on voxels 0-5 (free and outside voxels 6, 7 are not scored):
    # chair: truth {0, 1, 5}, predicted {0}: tp 1, fn 2, fp 0 -> 1/3.
    # table: truth {4}, predicted {2, 4, 5}: tp 1, fp 2 -> 1/3. Other classes: undefined.
    iou = scores.ssc_iou
    assert iou[CHAIR - 1] == pytest.approx(1 / 3) and iou[TABLE - 1] == pytest.approx(1 / 3)
    assert np.isnan(iou[[i for i in range(11) if i not in (CHAIR - 1, TABLE - 1)]]).all()
    assert scores.ssc_miou == pytest.approx(1 / 3)
    names = [f"c{i}" for i in range(1, 12)]
    report = scores.to_dict(names)
    assert report["sc"]["iou"] == pytest.approx(1 / 3) and report["ssc"]["per_class"]["c1"] is None

    # Counts add up over volumes: the same volume again gives the same ratios.
    meter.add(truth, predicted, visibility)
    assert meter.scores().sc_iou == pytest.approx(1 / 3) and meter.sc.tolist() == [2, 2, 2]


def test_two_dimensional_segmentation_by_hand():
    truth = np.array([[0, CHAIR, CHAIR], [TABLE, TABLE, 0]])
    predicted = np.array([[TABLE, CHAIR, 0], [TABLE, CHAIR, CHAIR]])
    scores = segmentation_scores(truth, predicted)
    # Unlabelled pixels (0) do not count; a pixel predicted 0 is a miss.
    # chair: truth 2 pixels, tp 1, fn 1 (the miss), fp 1 (a table pixel) -> 1/3. table: tp 1, fn 1 -> 1/2.
    assert scores.iou[CHAIR - 1] == pytest.approx(1 / 3) and scores.iou[TABLE - 1] == pytest.approx(1 / 2)
    assert scores.miou == pytest.approx((1 / 3 + 1 / 2) / 2)


def test_bad_input_is_refused():
    meter = CompletionMeter()
    with pytest.raises(ValueError, match="ssc11 ids"):
        meter.add(np.full((2, 2, 2), 12), np.zeros((2, 2, 2), np.int64), np.zeros((2, 2, 2), np.uint8))
    with pytest.raises(ValueError, match="differ in size"):
        meter.add(np.zeros((2, 2, 2), np.int64), np.zeros((2, 2, 1), np.int64), np.zeros((2, 2, 2), np.uint8))
    assert np.isnan(CompletionMeter().scores().sc_iou)
