"""What a model family tells the one training loop (``train/loop.py``): a recipe.

A recipe builds its model and data from its config, names its optimisation phases (e.g.
ALSTER: 2D pre-training, then joint sequential training), gives each phase its parameter
groups with their peak learning rates, and computes the losses of one forward. The loop
does everything else the same way for every family: seeding, Adam + OneCycle, gradient
accumulation and clipping, DDP under ``torchrun``, resumable state, progress bars,
checkpoint cadence and the model card at the end.

A new family adds one recipe module under ``train/recipes/`` registered with
``@RECIPES.register("name")`` and one config file ``config/train/name.yaml``.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..core.config import param
from ..core.labels import LabelSpace
from ..core.registry import Registry


@dataclass
class RecipeConfig:
    """Settings every recipe's config starts with (its own sections follow)."""

    seed: int = param(0, "seed of everything random in training (data order, resets, initialisation)", min=0)
    checkpoint_every: int = param(100, "write the resumable training state every n optimizer steps", min=1)


@dataclass
class Phase:
    """One optimisation phase as the loop runs it.

    param_groups: (parameters, peak learning rate) pairs, one optimizer group each, annealed
    by one OneCycle schedule over ``steps``. forwards: forwards per optimizer step; each
    backward is scaled by 1 / forwards, so a step sums their mean gradient. grad_clip:
    clip the gradient norm at this value (0 = off). network: the module the forwards go
    through when it is wrapped in DistributedDataParallel (the loop skips gradient sync in
    all but the last forward of a step); None otherwise. optimizer: ``adam`` (the default)
    or ``sgd`` with ``momentum`` (constant, not cycled) and ``weight_decay`` (IMENet's protocol).
    """

    steps: int
    param_groups: list[tuple[list[nn.Parameter], float]]
    forwards: int = 1
    grad_clip: float = 0.0
    network: nn.Module | None = None
    optimizer: str = "adam"
    momentum: float = 0.9
    weight_decay: float = 0.0


class Recipe(abc.ABC):
    """How one model family trains.

    Subclasses set ``config_class`` (a ``RecipeConfig`` subclass) and, in ``__init__``,
    ``model`` (a registered model), ``label_space``, ``device`` and ``setup_seconds``
    (time spent building data, outside the step times). rank / world_size: this process
    under ``torchrun`` (each rank draws its own data).
    """

    config_class: type = RecipeConfig
    model: nn.Module
    label_space: LabelSpace
    device: torch.device
    setup_seconds: float = 0.0

    def __init__(self, config: Any, sequences: list | None = None, rank: int = 0, world_size: int = 1):
        self.config = config
        self.rank, self.world_size = rank, world_size

    @abc.abstractmethod
    def phases(self) -> list[str]:
        """The phase names, in order."""

    @abc.abstractmethod
    def steps(self, phase: str) -> int:
        """Optimizer steps of ``phase`` (0 skips it)."""

    def phase_config_keys(self, phase: str) -> set[str]:
        """Top-level config keys that only shape ``phase``: they may change on resume until it starts."""
        return {phase}

    @abc.abstractmethod
    def start_phase(self, phase: str) -> Phase:
        """Set the model up for ``phase`` (train mode, frozen parts) and describe it."""

    @abc.abstractmethod
    def forward(self, phase: str, step: int, index: int) -> dict[str, torch.Tensor] | None:
        """Losses of forward ``index`` of optimizer step ``step`` (0-based), the one to
        minimise under "total"; None when the drawn data holds nothing to learn from."""

    def after_backward(self, phase: str, step: int, index: int) -> None:  # noqa: B027 - optional hook
        """Called after the backward of a forward that returned losses (e.g. to write state
        that must not change before the backward)."""

    def end_phase(self, phase: str) -> None:  # noqa: B027 - optional hook
        """Called when ``phase`` has run all its steps."""

    def state(self) -> dict:
        """The recipe's own resumable state (plain JSON data, e.g. positions in sequences)."""
        return {}

    def load_state(self, state: dict) -> None:  # noqa: B027 - optional hook
        """Restore what ``state`` returned."""

    def provenance(self) -> dict:
        """What the card records about the training data."""
        return {}


class OnePhaseRecipe(Recipe):
    """A recipe of one phase, "train", over all of the model's parameters: ``config.steps``
    optimizer steps at peak rate ``config.max_lr``, gradients clipped at
    ``config.grad_clip`` (the point families' recipes)."""

    def phases(self) -> list[str]:
        return ["train"]

    def steps(self, phase: str) -> int:
        return self.config.steps

    def start_phase(self, phase: str) -> Phase:
        self.model.train()
        return Phase(self.config.steps, [(list(self.model.parameters()), self.config.max_lr)], 1, self.config.grad_clip)


class RecipeRegistry(Registry[type[Recipe]]):
    """name (the model's) -> recipe class; the built-in recipes register on first use."""

    def register(self, name: str) -> Callable[[type[Recipe]], type[Recipe]]:
        """Decorator registering a recipe class under its model's name."""

        def decorate(cls: type[Recipe]) -> type[Recipe]:
            self.add(name, cls)
            return cls

        return decorate


RECIPES = RecipeRegistry(
    "training recipe",
    builtins=(
        "alster_mapping.train.recipes.alster",
        "alster_mapping.train.recipes.asis",
        "alster_mapping.train.recipes.ban",
        "alster_mapping.train.recipes.safnet",
        "alster_mapping.train.recipes.imenet",
    ),
)
