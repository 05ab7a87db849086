"""Ablation variants of a model family: named sets of its config's on / off switches.

A family lists its paper's ablation as ``VARIANT_SWITCHES`` ({name: {config key: value}})
and makes its config a ``SwitchedVariants`` with ``variant_switches`` set: then
``Config.variant(name, **changes)`` builds a variant's config and ``config.variant_name``
says which variant a config is ("custom" for another combination).
"""

from __future__ import annotations

from typing import Any, ClassVar


class SwitchedVariants:
    """Mixin of a config dataclass (see the module docstring). ``family`` names the model in errors."""

    variant_switches: ClassVar[dict[str, dict[str, Any]]] = {}
    family: ClassVar[str] = "model"

    @classmethod
    def variant(cls, name: str, **changes):
        """The config of variant ``name`` (other keys from ``changes``); ValueError for an unknown name."""
        if name not in cls.variant_switches:
            raise ValueError(f"unknown {cls.family} variant {name!r}; one of {', '.join(cls.variant_switches)}")
        return cls(**{**cls.variant_switches[name], **changes})

    @property
    def variant_name(self) -> str:
        """Which variant the switches make ("custom" for another combination)."""
        keys = next(iter(self.variant_switches.values()), {})  # every variant sets the same switches
        switches = {key: getattr(self, key) for key in keys}
        return next((name for name, flags in self.variant_switches.items() if flags == switches), "custom")
