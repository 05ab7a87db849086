"""A short SAFNet training whose fusion beats its 3D-only variant on a held-out world.

Both variants train through the one training loop on the same chunks of a synthetic world
(fused map, keyframes, the shipped ALSTER model's frozen image features, misregistered
views), then label another world's map by sliding chunks. With the image features the
fusion has what the tiny 3D network alone cannot learn in a few steps: the look of things.
"""

import dataclasses

import pytest
import torch
from tiny_configs import as_set_arguments, tiny_safnet_net

from alster_mapping.core.config import apply_overrides
from alster_mapping.eval.refinement import refinement_scores
from alster_mapping.train.loop import TrainingLoop
from alster_mapping.train.recipes.fusion_worlds import synthetic_world
from alster_mapping.train.recipes.safnet import SafnetTrainConfig, image_checkpoint


@pytest.mark.slow
def test_fusion_beats_3d_only_after_a_short_training(tmp_path):
    overrides = [
        "data.seeds=[1000, 1000]",
        "data.frames=40",
        "data.chunks_per_world=30",
        "chunks.points=512",
        "steps=120",
        "batch=4",
        *as_set_arguments(tiny_safnet_net("model.")),
    ]
    config = apply_overrides(SafnetTrainConfig(), overrides)
    data = config.data
    held_out = synthetic_world(3, data.frames, data.width, data.height, "classic", data.voxel_size, image_checkpoint(""), "scannet20")
    scores, losses = {}, {}
    for variant, switches in {"points": ["model.image_branch=false"], "full": []}.items():
        torch.manual_seed(0)
        run = apply_overrides(dataclasses.replace(config), switches)
        loop = TrainingLoop("safnet", run, tmp_path / variant, progress=False, log=lambda _: None)
        card = loop.run()
        losses[variant] = card["metrics"]["final_losses"]["train"]["fusion"]
        scores[variant] = refinement_scores(loop.model, held_out, run.chunks)["miou"]
    assert scores["full"] > scores["points"] + 0.1, (scores, losses)
    assert losses["full"] < losses["points"]


def test_a_prior_model_trains_on_worlds_with_the_online_maps_classes(tmp_path):
    overrides = [
        "data.seeds=[1201, 1201]", "data.frames=6", "data.width=96", "data.height=72", "data.chunks_per_world=4",
        "chunks.points=128", "chunks.min_points=10", "steps=2", "batch=2", "model.map_prior=true",
        *as_set_arguments(tiny_safnet_net("model.")),
    ]
    config = apply_overrides(SafnetTrainConfig(), overrides)
    loop = TrainingLoop("safnet", config, tmp_path, progress=False, log=lambda _: None)
    world = synthetic_world(1201, 6, 96, 72, "randomized", 0.04, image_checkpoint(""), "scannet20", True)
    assert world.prior is not None and (world.prior.label >= 0).mean() > 0.5  # the online map saw most voxels
    assert {tuple(c.map_label[:5]) for c in loop.recipe.chunks} != {(-1,) * 5}
    card = loop.run()
    assert card["config"]["map_prior"] is True
