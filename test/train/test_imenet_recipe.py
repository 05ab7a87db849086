"""``alster train --model imenet`` on a tiny world: its phases (iterative learning freezes the other
branch), SGD, crops that keep pixels and voxels together, a run whose losses fall."""

import numpy as np
import pytest
import torch

from alster_mapping.core.config import apply_overrides
from alster_mapping.nets.imenet.inputs import crop
from alster_mapping.train.loop import TrainingLoop
from alster_mapping.train.recipes.imenet import ImenetTrainConfig

TINY = [
    "data.seeds=[1400, 1400]", "data.frames=12", "data.every=4", "data.width=160", "data.height=120", "data.crop=24",
    "model.pretrained=false", "model.width_3d=8", "model.dilated_blocks=1", "model.image_width=80", "model.iterations=1",
    "batch=2", "rounds=1",
]  # fmt: skip


@pytest.fixture(scope="module")
def recipe_loop(tmp_path_factory):
    torch.manual_seed(0)
    config = apply_overrides(ImenetTrainConfig(), [*TINY, "steps=45"])
    return TrainingLoop("imenet", config, tmp_path_factory.mktemp("imenet"), progress=False, log=lambda _: None)


def test_phases_alternate_the_branches(recipe_loop):
    recipe = recipe_loop.recipe
    assert recipe.phases() == ["separate", "ssc_1", "ss_1"] and [recipe.steps(p) for p in recipe.phases()] == [15, 15, 15]
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


def test_a_short_run_lowers_the_losses(recipe_loop):
    card = recipe_loop.run()
    history = recipe_loop.history
    first = [h["total"] for h in history if h["phase"] == "separate"][:5]
    last = [h["total"] for h in history if h["phase"] == "separate"][-5:]
    assert np.mean(last) < np.mean(first), (first, last)
    assert set(card["metrics"]["final_losses"]) == {"separate", "ssc_1", "ss_1"}
    assert card["provenance"]["variant"] == "E" and card["provenance"]["frames_skipped"] == {}
