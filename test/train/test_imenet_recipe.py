"""``alster train --model imenet`` on a tiny world: its phases (iterative learning freezes the other
branch), SGD, crops that keep pixels and voxels together, SSCNet's balancing of the empty voxels,
and a short run whose losses fall and which beats the geometry-only baseline on a held-out world."""

import numpy as np
import pytest
import torch

from alster_mapping.core.config import apply_overrides
from alster_mapping.data.sequences import SyntheticSequence
from alster_mapping.eval.completion import evaluate_completion, geometry_baseline, most_frequent_class, score_predictions
from alster_mapping.nets.imenet.inputs import crop
from alster_mapping.nets.imenet.model import empty_voxel_weights
from alster_mapping.train.loop import TrainingLoop
from alster_mapping.train.recipes.imenet import ImenetDataConfig, ImenetRecipe, ImenetTrainConfig, world_samples

TINY = [
    "data.seeds=[1400, 1400]", "data.frames=12", "data.every=4", "data.width=160", "data.height=120", "data.crop=24",
    "model.pretrained=false", "model.width_3d=8", "model.dilated_blocks=1", "model.image_width=80", "model.iterations=1",
    "batch=2", "rounds=1",
]  # fmt: skip


@pytest.fixture(scope="module")
def recipe_loop(tmp_path_factory):
    torch.manual_seed(0)
    # Without ImageNet weights the 2D branch, too, learns from scratch: at the 3D branch's rate.
    config = apply_overrides(ImenetTrainConfig(), [*TINY, "steps=150", "lr_2d=0.05"])
    return TrainingLoop("imenet", config, tmp_path_factory.mktemp("imenet"), progress=False, log=lambda _: None)


@pytest.fixture(scope="module")
def trained(recipe_loop):
    return recipe_loop.run()


def test_phases_alternate_the_branches(recipe_loop):
    recipe = recipe_loop.recipe
    assert recipe.phases() == ["separate", "ssc_1", "ss_1"] and [recipe.steps(p) for p in recipe.phases()] == [50, 50, 50]
    assert len(recipe.samples) == 3 and all(s.labels_2d is not None for s in recipe.samples)
    phase = recipe.start_phase("ssc_1")
    trainable = {id(p) for p in phase.param_groups[0][0]}
    assert phase.optimizer == "sgd" and phase.momentum == 0.9 and phase.weight_decay == 1e-4
    assert all(p.requires_grad for p in recipe.model.branch_3d.parameters()) and not any(p.requires_grad for p in recipe.model.branch_2d.parameters())
    assert all(id(p) in trainable for p in recipe.model.dda.parameters())
    recipe.start_phase("ss_1")
    assert not any(p.requires_grad for p in recipe.model.branch_3d.parameters()) and all(p.requires_grad for p in recipe.model.dcp.parameters())
    a = apply_overrides(ImenetTrainConfig(), ["model.iterative_learning=false", "model.dcp=false", "model.dda=false"])
    assert a.model.variant_name == "A"
    # Counted as updates per branch, each branch trains 150 times: 50 + 50 + 50 in 250 optimizer steps.
    config = apply_overrides(recipe.config, ["budget=branch_updates", "rounds=2"])
    per_branch = ImenetRecipe(config, sequences=[recipe.samples])
    assert per_branch.phases() == ["separate", "ssc_1", "ss_1", "ssc_2", "ss_2"]
    assert [per_branch.steps(p) for p in per_branch.phases()] == [50] * 5
    per_branch.config.steps = 152  # the remainder goes to the first phases of each branch
    assert [per_branch.steps(p) for p in per_branch.phases()] == [51, 51, 51, 50, 50]


def test_crops_keep_each_pixel_on_its_voxel(recipe_loop):
    sample = recipe_loop.recipe.samples[0]
    window = crop(sample, 24, np.random.default_rng(3))
    assert window.tsdf.shape[1:] == (24, 24, 36) and window.labels_3d.shape == (24, 24, 36)
    kept = window.pixel_voxel >= 0
    assert 0 < kept.sum() < (sample.pixel_voxel >= 0).sum()
    # A kept pixel points at the same voxel content as before the crop.
    before = sample.tsdf.reshape(-1)[sample.pixel_voxel[kept]]
    after = window.tsdf.reshape(-1)[window.pixel_voxel[kept]]
    torch.testing.assert_close(before, after)


def test_empty_voxels_are_balanced_as_sscnet_samples_them():
    target = torch.tensor([0, 0, 0, 0, 0, 0, 3, 5])
    weights = empty_voxel_weights(target, 1.0)
    # Two non-empty voxels: of the six empty ones, two are kept in expectation.
    torch.testing.assert_close(weights, torch.tensor([1 / 3] * 6 + [1.0, 1.0]))
    torch.testing.assert_close(empty_voxel_weights(target, 0.0), torch.ones(8))
    torch.testing.assert_close(empty_voxel_weights(target, 10.0), torch.ones(8))  # never above "all of them"
    torch.testing.assert_close(empty_voxel_weights(torch.zeros(4, dtype=torch.long), 2.0), torch.ones(4))


def test_a_short_run_lowers_the_losses(recipe_loop, trained):
    card = trained
    history = recipe_loop.history
    first = [h["total"] for h in history if h["phase"] == "separate"][:5]
    last = [h["total"] for h in history if h["phase"] == "separate"][-5:]
    assert np.mean(last) < np.mean(first), (first, last)
    assert set(card["metrics"]["final_losses"]) == {"separate", "ssc_1", "ss_1"}
    assert card["provenance"]["variant"] == "E" and card["provenance"]["frames_skipped"] == {}


def test_a_short_run_beats_the_geometry_only_baseline(recipe_loop, trained):
    """On a world it never saw, the trained model completes hidden voxels and labels pixels better
    than occupying the measured surface with the held-out frames' own most frequent class."""
    held_out, skipped = world_samples(SyntheticSequence(2, 12, 160, 120), ImenetDataConfig(every=6), 80)
    assert len(held_out) == 2 and skipped == {}
    common = most_frequent_class(held_out)
    baseline = score_predictions(held_out, [geometry_baseline(s, common) for s in held_out])
    scores = evaluate_completion(recipe_loop.model, held_out)
    assert baseline["sc"]["iou"] == 0.0  # the baseline predicts nothing behind the surface
    assert scores["sc"]["iou"] > 0.05, scores["sc"]
    assert scores["ssc"]["miou"] > baseline["ssc"]["miou"] + 0.02, (scores["ssc"], baseline["ssc"])
    assert scores["ss"]["miou"] > baseline["ss"]["miou"] + 0.02, (scores["ss"], baseline["ss"])
