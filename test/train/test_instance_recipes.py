"""The instance recipes (ASIS, BAN; alster_mapping.train.recipes): blocks of a fused map, trained through the one loop."""

import numpy as np
import pytest
from tiny_configs import tiny_asis_net

from alster_mapping.core.config import apply_overrides
from alster_mapping.data.sequences import SyntheticSequence
from alster_mapping.nets.checkpoint import load_checkpoint
from alster_mapping.nets.points.inputs import block_inputs
from alster_mapping.train.loop import MODEL_FILE, TrainingLoop
from alster_mapping.train.recipes.asis import AsisTrainConfig
from alster_mapping.train.recipes.ban import BanTrainConfig
from alster_mapping.train.recipes.instance_blocks import fused_map_points

TINY = {
    "data.points": 256,
    "data.voxel_size": 0.08,
    "steps": 25,
    "batch": 4,
    "max_lr": 3e-3,
    "checkpoint_every": 10,
    **tiny_asis_net("model."),
}


@pytest.fixture(scope="module")
def world():
    return SyntheticSequence(1001, 6, 96, 72)


def test_the_fused_map_is_labelled_and_the_inputs_are_normalised(world):
    points = fused_map_points(world, 0.08)
    assert len(points) > 500 and points.rgb is not None
    assert (points.labels > 0).mean() > 0.8 and points.has_instances
    low, extent = points.xyz.min(0), points.xyz.max(0) - points.xyz.min(0)
    xyz, features = block_inputs(points, low, extent)
    assert features.shape == (len(points), 6) and 0.0 <= features.min() and features.max() <= 1.0
    assert np.allclose((xyz[:, :2].min(0) + xyz[:, :2].max(0)) / 2, 0.0, atol=1e-5)


@pytest.mark.parametrize("name, config", [("asis", AsisTrainConfig()), ("ban", BanTrainConfig())])
def test_the_instance_models_train_through_the_loop_and_reload_from_their_cards(world, tmp_path, name, config):
    overrides = {**TINY, "model.attention_dim": 16} if name == "ban" else TINY
    if name == "ban":
        overrides = {k: v for k, v in overrides.items() if k != "model.neighbours"}
    loop = TrainingLoop(name, apply_overrides(config, overrides), tmp_path, sequences=[world], progress=False)
    card = loop.run()
    losses = [r["total"] for r in loop.history]
    assert len(losses) == 25 and np.mean(losses[-5:]) < 0.8 * np.mean(losses[:5]), losses
    assert {"semantic", "var", "dist", "reg", "instance"} <= set(loop.history[-1])
    assert card["model"] == name and card["provenance"]["blocks"] > 0
    model, _ = load_checkpoint(tmp_path / MODEL_FILE, task="instance_segmentation")
    assert type(model).__name__ == {"asis": "AsisModel", "ban": "BanModel"}[name]
    # The class sizes learnt from the training map travel with the weights and the card.
    sizes = dict(zip(loop.recipe.label_space.names, model.instance_sizes.mean_points.tolist()))
    assert sizes["floor"] > 0 and sum(size > 0 for size in sizes.values()) >= 3
    assert card["provenance"]["mean_instance_voxels"] == {k: round(v, 1) for k, v in sizes.items() if v > 0}


def test_the_model_must_take_colour_and_position(world, tmp_path):
    with pytest.raises(ValueError, match="in_channels must be 6"):
        TrainingLoop("asis", apply_overrides(AsisTrainConfig(), {**TINY, "model.in_channels": 3}), tmp_path, sequences=[world], progress=False)
