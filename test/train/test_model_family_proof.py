"""Proof that the house has room for more model families.

A tiny second family lives entirely in this file: a per-point classifier (points in,
per-point classes out) registered with its own config, and its training recipe. It trains
through the one training loop, writes a checkpoint, is rebuilt from the card alone and is
scored with the evaluation's metric functions, without any edit outside this file.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from alster_mapping.core.config import apply_overrides, param
from alster_mapping.core.labels import scannet20
from alster_mapping.core.samples import PointBlock
from alster_mapping.data.point_blocks import cut_blocks
from alster_mapping.data.sequences import SyntheticSequence
from alster_mapping.eval.metrics import evaluate_points
from alster_mapping.nets.checkpoint import load_checkpoint, read_card
from alster_mapping.nets.registry import MODELS
from alster_mapping.train.loop import MODEL_FILE, TrainingLoop
from alster_mapping.train.recipe import RECIPES, Phase, Recipe, RecipeConfig

NAME = "test_point_mlp"


# -- the family: config + model ------------------------------------------------------------------


@dataclass
class PointMLPConfig:
    """A per-point MLP."""

    hidden: int = param(32, "hidden width", min=1, max=1024)


def point_features(block: PointBlock) -> torch.Tensor:
    """(N, 3) float: x, y centred on the block, z (height above the floor) as it is."""
    xyz = torch.from_numpy(block.xyz).float()
    return torch.cat([xyz[:, :2] - xyz[:, :2].mean(0), xyz[:, 2:]], 1)


@MODELS.register(NAME, config=PointMLPConfig, task="point_semantics", inputs="point_block")
class PointMLP(nn.Module):
    def __init__(self, config: PointMLPConfig, num_classes: int = 20):
        super().__init__()
        self.config, self.num_classes = config, int(num_classes)
        self.layers = nn.Sequential(
            nn.Linear(3, config.hidden), nn.ReLU(), nn.Linear(config.hidden, config.hidden), nn.ReLU(), nn.Linear(config.hidden, num_classes)
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """features (N, 3) -> logits (N, C)."""
        return self.layers(features)

    def build_arguments(self) -> dict:
        return {"num_classes": self.num_classes}


# -- its recipe --------------------------------------------------------------------------------


@dataclass
class PointMLPTrainConfig(RecipeConfig):
    """Training of the per-point MLP on blocks of one synthetic world's ground truth."""

    steps: int = param(150, "optimizer steps", min=0)
    blocks_per_step: int = param(4, "blocks (forwards) per step", min=1, max=64)
    max_lr: float = param(1e-2, "OneCycle peak learning rate", min=0.0, max=1.0)
    world: int = param(1000, "synthetic world seed", min=0)
    hidden: int = param(32, "the model's hidden width", min=1, max=1024)


@RECIPES.register(NAME)
class PointMLPRecipe(Recipe):
    config_class = PointMLPTrainConfig

    def __init__(self, config: PointMLPTrainConfig, sequences=None, rank: int = 0, world_size: int = 1):
        super().__init__(config, sequences, rank, world_size)
        self.label_space = scannet20()
        self.device = torch.device("cpu")
        self.model = MODELS.build(NAME, PointMLPConfig(hidden=config.hidden), num_classes=self.label_space.num_classes)
        truth = SyntheticSequence(config.world, 2, 64, 48).ground_truth()
        self.blocks = cut_blocks(truth, np.random.default_rng(config.seed), num_points=512)

    def phases(self) -> list[str]:
        return ["fit"]

    def steps(self, phase: str) -> int:
        return self.config.steps

    def start_phase(self, phase: str) -> Phase:
        self.model.train()
        return Phase(self.config.steps, [(list(self.model.parameters()), self.config.max_lr)], forwards=self.config.blocks_per_step)

    def forward(self, phase: str, step: int, index: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.config.seed, step, index])
        block = self.blocks[int(rng.integers(len(self.blocks)))]
        target = self.label_space.encode(block.labels)
        return {"total": F.cross_entropy(self.model(point_features(block)), target, ignore_index=-1)}

    def provenance(self) -> dict:
        return {"world": self.config.world, "blocks": len(self.blocks)}


@pytest.fixture(scope="module", autouse=True)
def registered_family():
    yield
    MODELS.unregister(NAME)
    RECIPES.unregister(NAME)


def test_a_second_family_trains_checkpoints_reloads_from_its_card_and_is_evaluated(tmp_path):
    config = apply_overrides(PointMLPTrainConfig(), {"checkpoint_every": 20})
    loop = TrainingLoop(NAME, config, tmp_path, progress=False, provenance={"command": "test"})
    card = loop.run()
    losses = [r["total"] for r in loop.history]
    assert len(losses) == 150 and np.mean(losses[-10:]) < 0.7 * np.mean(losses[:10]), losses
    assert (card["model"], card["task"], card["inputs"]) == (NAME, "point_semantics", "point_block")
    assert card["provenance"]["world"] == 1000 and card["metrics"]["final_losses"]["fit"]["total"] > 0

    # The card alone rebuilds the model (config, label space, arguments), weights equal.
    model, loaded_card = load_checkpoint(tmp_path / MODEL_FILE, task="point_semantics")
    assert loaded_card == read_card(tmp_path / MODEL_FILE) and isinstance(model, PointMLP)
    for name, tensor in loop.model.state_dict().items():
        assert torch.equal(model.state_dict()[name], tensor), name

    # Scored on a held-out world with the evaluation's metric functions; beats predicting
    # the most frequent class everywhere.
    space = scannet20()
    truth = SyntheticSequence(3, 2, 64, 48).ground_truth()
    with torch.no_grad():
        blocks = cut_blocks(truth, np.random.default_rng(0), num_points=2048)
        predicted = np.concatenate([model(point_features(b)).argmax(1).numpy() for b in blocks])
    labels = np.concatenate([b.labels for b in blocks])
    covered = np.ones(labels.size, bool)
    scores = evaluate_points(labels, predicted, covered, space)
    encoded = space.encode(labels).numpy()
    majority = np.bincount(encoded[encoded >= 0]).argmax()
    baseline = evaluate_points(labels, np.full(labels.size, majority), covered, space)
    assert scores["miou"] > 2 * baseline["miou"] and scores["oacc"] > baseline["oacc"] + 0.1, (scores, baseline)


def test_the_loop_resumes_the_second_family_too(tmp_path):
    config = apply_overrides(PointMLPTrainConfig(), {"steps": 6, "checkpoint_every": 2})
    reference = TrainingLoop(NAME, config, tmp_path / "a", progress=False)
    reference.run()
    interrupted = TrainingLoop(NAME, config, tmp_path / "b", progress=False)
    interrupted._start_phase()
    for _ in range(4):  # four steps, then "killed": the state of step 4 is on disk
        interrupted._step()
        interrupted.step += 1
    interrupted.save_state()
    resumed = TrainingLoop(NAME, config, tmp_path / "b", progress=False)
    resumed.run()
    for name, tensor in reference.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[name], tensor), name
