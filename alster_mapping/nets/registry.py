"""Models built by name from config (the Pointcept / mmcv registry pattern)."""

from __future__ import annotations

from typing import Any, Callable


class Registry:
    """name -> builder. ``@REGISTRY.register("name")`` adds a class or factory; ``build``
    calls it with a config dataclass."""

    def __init__(self, kind: str):
        self.kind = kind
        self._builders: dict[str, Callable[..., Any]] = {}

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
        return sorted(self._builders)

    def build(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Build ``name`` with the given arguments; unknown names raise ValueError listing the known ones."""
        if name not in self._builders:
            raise ValueError(f"unknown {self.kind} {name!r}; known: {', '.join(self.names()) or 'none'}")
        return self._builders[name](*args, **kwargs)


MODELS = Registry("model")
