"""Models built by name from their own config (the Pointcept / semantic_inference registry pattern).

Each model family registers its model beside its config dataclass::

    @MODELS.register("alster", config=AlsterNetConfig, task="semantic_mapping", inputs="posed_rgbd_frames")
    class AlsterModel(nn.Module): ...

and anyone builds it by name: ``MODELS.build("alster", config, num_classes=20, feature_dim=40)``
(``config`` defaults to the family's defaults). A registered model is an ``nn.Module`` with

* ``config``: its config instance (a dataclass of the ``core.config`` schema);
* ``num_classes``: C of the label space it predicts;
* ``build_arguments() -> dict``: the keyword arguments that, with ``config``, rebuild it
  (``num_classes`` and any sizes it takes from its surroundings, e.g. ALSTER's D_F);

which is what a checkpoint's card records (``nets.checkpoint``), so a card alone rebuilds
the model.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..core.config import validate
from ..core.registry import Registry


@dataclass(frozen=True)
class ModelEntry:
    """One registered model.

    name: the registry name. builder: the class (or factory) called as
    ``builder(config, **arguments)``. config: its config dataclass. task: what it
    predicts (e.g. "semantic_mapping", "point_semantics", "instance_segmentation",
    "scene_completion"). inputs: what it consumes (e.g. "posed_rgbd_frames",
    "point_block", "rgbd_frame"). before_loading: maps a card's config to the one to
    build before a checkpoint's weights are loaded (e.g. without fetching pretrained
    weights the checkpoint replaces anyway); None = the card's config as it is.
    legacy_config: config values that cards written before those keys existed meant
    (a key added with a new default must not change what an old checkpoint builds).
    """

    name: str
    builder: Callable[..., Any]
    config: type
    task: str
    inputs: str
    before_loading: Callable[[Any], Any] | None = None
    legacy_config: Mapping[str, Any] = dataclasses.field(default_factory=dict)


class ModelRegistry(Registry[ModelEntry]):
    """name -> ``ModelEntry``; the family packages are the built-ins (``core.registry.Registry``)."""

    def register(
        self,
        name: str,
        *,
        config: type,
        task: str,
        inputs: str,
        before_loading: Callable[[Any], Any] | None = None,
        legacy_config: Mapping[str, Any] | None = None,
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator registering ``name`` with its config dataclass; a second registration of
        the same name is an error."""
        if not dataclasses.is_dataclass(config):
            raise TypeError(f"{self.kind} {name!r}: config must be a dataclass, got {config!r}")

        def decorate(builder: Callable[..., Any]) -> Callable[..., Any]:
            self.add(name, ModelEntry(name, builder, config, task, inputs, before_loading, dict(legacy_config or {})))
            return builder

        return decorate

    def entry(self, name: str) -> ModelEntry:
        """The entry of ``name``; unknown names raise ValueError listing the known ones."""
        return self.get(name)

    def name_of(self, model: Any) -> str:
        """The registry name of a built model (looked up by its class)."""
        for entry in self.entries():
            if type(model) is entry.builder:
                return entry.name
        raise ValueError(f"{type(model).__name__} is not a registered {self.kind}")

    def build(self, name: str, config: Any = None, **arguments: Any) -> Any:
        """Build ``name`` from ``config`` (an instance of its registered config class; None =
        the defaults), validated first, and ``arguments`` (e.g. ``num_classes``)."""
        entry = self.entry(name)
        if config is None:
            config = entry.config()
        if not isinstance(config, entry.config):
            raise TypeError(f"{self.kind} {name!r} takes a {entry.config.__name__}, got {type(config).__name__}")
        return entry.builder(validate(config), **arguments)


MODELS = ModelRegistry(
    "model",
    builtins=(
        "alster_mapping.nets.alster",
        "alster_mapping.nets.asis",
        "alster_mapping.nets.ban",
        "alster_mapping.nets.safnet",
        "alster_mapping.nets.imenet",
    ),
)
