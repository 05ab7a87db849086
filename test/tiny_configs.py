"""Tiny model configurations shared by the tests: the smallest ALSTER network that still
has every part (2D encoder, 3D U-Net with one down-sampling, one expert layer), so tests
that build, train, checkpoint or evaluate it stay fast."""

from __future__ import annotations

import json

TINY_ALSTER_NET = {
    "encoder2d.pretrained": False,
    "encoder2d.aspp_channels": 16,
    "encoder2d.decoder_channels": 16,
    "unet3d.channels": [8, 16],
    "expert.layers": 1,
    "expert.hidden": 16,
}
"""Overrides of ``AlsterNetConfig`` (keys relative to it)."""


TINY_ASIS_NET = {
    "backbone.centroids": [64, 16],
    "backbone.radii": [0.2, 0.4],
    "backbone.neighbours": 8,
    "backbone.sa_channels": [16, 32],
    "backbone.fp_channels": [32, 32],
    "feature_dim": 32,
    "neighbours": 8,
}
"""Overrides of ``AsisConfig``: two set abstraction levels, 32-wide features."""


def tiny_asis_net(prefix: str = "") -> dict:
    """``TINY_ASIS_NET`` with its keys under ``prefix`` (``"model."`` in the ASIS training config)."""
    return {prefix + key: value for key, value in TINY_ASIS_NET.items()}


def tiny_alster_net(prefix: str = "") -> dict:
    """``TINY_ALSTER_NET`` with its keys under ``prefix`` (``"model."`` in a MappingConfig,
    ``"mapping.model."`` in the ALSTER training config)."""
    return {prefix + key: value for key, value in TINY_ALSTER_NET.items()}


def as_set_arguments(overrides: dict) -> list[str]:
    """``{"a.b": [8, 16], "c": False}`` -> ``["a.b=[8, 16]", "c=false"]`` (``--set`` / ``apply_overrides`` strings)."""
    return [f"{key}={json.dumps(value)}" for key, value in overrides.items()]


TINY_SAFNET_NET = {
    "backbone.centroids": [64, 16],
    "backbone.radii": [0.2, 0.4],
    "backbone.neighbours": 8,
    "backbone.sa_channels": [16, 32],
    "backbone.fp_channels": [32, 32],
    "context_dim": 16,
    "head": [32, 32],
}
"""Overrides of ``SafnetConfig``: two set abstraction levels, a 32-wide head."""


def tiny_safnet_net(prefix: str = "") -> dict:
    """``TINY_SAFNET_NET`` with its keys under ``prefix`` (``"model."`` in the SAFNet training config)."""
    return {prefix + key: value for key, value in TINY_SAFNET_NET.items()}
