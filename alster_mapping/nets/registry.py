"""Models built by name from config (the Pointcept / mmcv registry pattern)."""

from __future__ import annotations

import importlib
from typing import Any, Callable


class Registry:
    """name -> builder. ``@REGISTRY.register("name")`` adds a class or factory; ``build``
    calls it with a config dataclass.

    kind: what is registered (for messages). builtins: modules whose import registers the
    built-in entries; they are imported on the first ``build``/``names``, so a caller can
    build by name (e.g. from a checkpoint's card) without importing the defining module.
    """

    def __init__(self, kind: str, builtins: tuple[str, ...] = ()):
        self.kind = kind
        self._builders: dict[str, Callable[..., Any]] = {}
        self._builtins = builtins

    def _import_builtins(self) -> None:
        while self._builtins:
            module, *rest = self._builtins
            self._builtins = tuple(rest)  # before importing: its own registrations come back here
            importlib.import_module(module)

    def register(self, name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator registering ``name``; a second registration of the same name is an error."""

        def decorate(builder: Callable[..., Any]) -> Callable[..., Any]:
            if name in self._builders:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._builders[name] = builder
            return builder

        return decorate

    def names(self) -> list[str]:
        """Registered names, sorted."""
        self._import_builtins()
        return sorted(self._builders)

    def build(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Build ``name`` with the given arguments; unknown names raise ValueError listing the known ones."""
        self._import_builtins()
        if name not in self._builders:
            raise ValueError(f"unknown {self.kind} {name!r}; known: {', '.join(self.names()) or 'none'}")
        return self._builders[name](*args, **kwargs)


MODELS = Registry("model", builtins=("alster_mapping.nets.alster",))
