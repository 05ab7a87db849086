"""Name -> entry registries whose built-in entries register themselves on first use.

The base of the model registry (``nets.registry.MODELS``) and the training recipes
(``train.recipe.RECIPES``): modules register entries at import; ``builtins`` names the
modules that hold the built-in ones, imported on the first lookup, so a caller can find an
entry by name (e.g. from a checkpoint's card) without importing its module first.
"""

from __future__ import annotations

import importlib
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """kind: what is registered (for messages). builtins: modules whose import registers
    the built-in entries."""

    def __init__(self, kind: str, builtins: tuple[str, ...] = ()):
        self.kind = kind
        self._entries: dict[str, T] = {}
        self._builtins = builtins

    def _import_builtins(self) -> None:
        while self._builtins:
            module, *rest = self._builtins
            self._builtins = tuple(rest)  # before importing: its own registrations come back here
            importlib.import_module(module)

    def add(self, name: str, entry: T) -> None:
        """Register ``entry`` as ``name``; a second registration of the same name is an error."""
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._entries[name] = entry

    def unregister(self, name: str) -> None:
        """Remove ``name`` (for tests that register throw-away entries)."""
        self._entries.pop(name, None)

    def names(self) -> list[str]:
        """Registered names, sorted."""
        self._import_builtins()
        return sorted(self._entries)

    def entries(self) -> list[T]:
        """Every registered entry."""
        self._import_builtins()
        return list(self._entries.values())

    def get(self, name: str) -> T:
        """The entry of ``name``; unknown names raise ValueError listing the known ones."""
        self._import_builtins()
        if name not in self._entries:
            raise ValueError(f"unknown {self.kind} {name!r}; known: {', '.join(self.names()) or 'none'}")
        return self._entries[name]
