"""Scoring a completion model on whole volumes (alster_mapping.eval.completion): the geometry-only
baseline, perfect and model predictions on real volumes of a synthetic world."""

import numpy as np
import pytest
import torch

from alster_mapping.core.samples import SURFACE
from alster_mapping.data.sequences import SyntheticSequence
from alster_mapping.eval.completion import evaluate_completion, geometry_baseline, most_frequent_class, score_predictions
from alster_mapping.nets.imenet import ImenetConfig, ImenetModel
from alster_mapping.train.recipes.imenet import ImenetDataConfig, world_samples


@pytest.fixture(scope="module")
def samples():
    found, skipped = world_samples(SyntheticSequence(2, 12, 160, 120), ImenetDataConfig(every=6), 80)
    assert len(found) == 2 and skipped == {}
    return found


def test_perfect_predictions_score_one_and_the_baseline_far_less(samples):
    perfect = score_predictions(samples, [(s.labels_3d.numpy(), s.labels_2d.numpy()) for s in samples])
    assert perfect["sc"]["iou"] == 1.0 and perfect["ssc"]["miou"] == 1.0
    assert perfect["ss"]["miou"] == pytest.approx(1.0)
    common = most_frequent_class(samples)
    assert 1 <= common <= 11
    volume, image = geometry_baseline(samples[0], common)
    assert set(np.unique(volume)) <= {0, common} and ((volume > 0) == (samples[0].visibility.numpy() == SURFACE)).all()
    assert (image == common).all()
    baseline = score_predictions(samples, [geometry_baseline(s, common) for s in samples])
    assert baseline["sc"]["iou"] < 0.5 and baseline["ssc"]["miou"] < 0.2 and baseline["ss"]["miou"] < 0.2


def test_a_model_is_scored_on_whole_volumes(samples):
    torch.manual_seed(0)
    model = ImenetModel(ImenetConfig.variant("E", pretrained=False, width_3d=8, image_width=80, iterations=1))
    report = evaluate_completion(model, samples)
    assert set(report) == {"sc", "ssc", "ss"} and 0 <= report["ssc"]["miou"] <= 1
    assert len(report["ssc"]["per_class"]) == 11


def test_the_shipped_model_beats_the_geometry_only_baseline():
    """The shipped IMENet on held-out frames (worlds 0 and 1, classic look) scores above the baseline on SSC and 2D mIoU."""
    from alster_mapping.nets.shipped import shipped_imenet_checkpoint
    from alster_mapping.pipeline.scene_completion import load_completion_model

    model, _ = load_completion_model(shipped_imenet_checkpoint())
    held_out = []
    for seed in (0, 1):
        held_out += world_samples(SyntheticSequence(seed, 24, 320, 240), ImenetDataConfig(every=6), model.config.image_width)[0]
    common = most_frequent_class(held_out)
    baseline = score_predictions(held_out, [geometry_baseline(s, common) for s in held_out])
    scores = evaluate_completion(model, held_out)
    assert scores["ssc"]["miou"] > baseline["ssc"]["miou"] + 0.01, (scores["ssc"], baseline["ssc"])
    assert scores["ss"]["miou"] > baseline["ss"]["miou"] + 0.01, (scores["ss"], baseline["ss"])
    assert scores["sc"]["iou"] > baseline["sc"]["iou"]
