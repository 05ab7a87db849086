"""The model registry (alster_mapping.nets.registry): built by name from the model's own config."""

from dataclasses import dataclass

import pytest
from torch import nn

from alster_mapping.core.config import param
from alster_mapping.nets.alster import AlsterModel, AlsterNetConfig
from alster_mapping.nets.registry import MODELS, ModelRegistry


@dataclass
class SquareConfig:
    """A throw-away config."""

    width: int = param(3, "width", min=1, max=10)


def test_registry_builds_by_name_from_the_registered_config_and_rejects_mistakes():
    registry = ModelRegistry("thing")

    @registry.register("square", config=SquareConfig, task="arithmetic", inputs="number")
    class Square(nn.Module):
        def __init__(self, config: SquareConfig, scale: int = 1):
            super().__init__()
            self.config, self.scale = config, scale

    built = registry.build("square", scale=2)  # the config's defaults
    assert isinstance(built, Square) and built.config.width == 3 and built.scale == 2
    assert registry.build("square", SquareConfig(width=5)).config.width == 5
    assert registry.names() == ["square"] and registry.name_of(built) == "square"
    entry = registry.entry("square")
    assert (entry.config, entry.task, entry.inputs) == (SquareConfig, "arithmetic", "number")
    with pytest.raises(ValueError, match="unknown thing 'cube'; known: square"):
        registry.build("cube")
    with pytest.raises(ValueError, match="already registered"):
        registry.register("square", config=SquareConfig, task="t", inputs="i")(Square)
    with pytest.raises(TypeError, match="takes a SquareConfig, got AlsterNetConfig"):
        registry.build("square", AlsterNetConfig())
    with pytest.raises(ValueError, match="config width = 11: above the maximum 10"):
        registry.build("square", SquareConfig(width=11))
    with pytest.raises(TypeError, match="must be a dataclass"):
        registry.register("bad", config=dict, task="t", inputs="i")
    registry.unregister("square")
    assert registry.names() == []


def test_the_built_in_families_register_themselves_on_first_use():
    assert "alster" in MODELS.names()
    entry = MODELS.entry("alster")
    assert entry.builder is AlsterModel and entry.config is AlsterNetConfig and entry.task == "semantic_mapping"
