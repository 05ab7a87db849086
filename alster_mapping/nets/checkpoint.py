"""Model checkpoints: safetensors weights plus a model card, no pickle.

``save_checkpoint`` writes ``NAME.safetensors`` (the state dict; the card is also stored in
its metadata so the weights never travel without it) and ``NAME.json`` (the same card,
for people): format version, model name and config, D_F, label space, parameter counts,
provenance (command, data, seeds, time) and metrics. ``load_checkpoint`` rebuilds the
model by name from the card and refuses files whose label space, feature size or tensor
shapes do not match, with a message that says what differs.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import torch

from ..core.atomic_file import write_text_atomic
from ..core.config import ModelConfig, from_dict, to_dict
from ..core.labels import LabelSpace
from ..core.tensor_file import TensorFileError, read_metadata, read_tensor_file, write_tensor_file
from .registry import MODELS

FORMAT = "alster_mapping.checkpoint"
VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable, corrupt, of another version, or does not fit."""


def card_path(path: str | os.PathLike) -> Path:
    """The model card beside a checkpoint: ``NAME.json`` for ``NAME.safetensors``."""
    return Path(path).with_suffix(".json")


def save_checkpoint(
    model: torch.nn.Module,
    path: str | os.PathLike,
    label_space: LabelSpace,
    provenance: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
) -> dict:
    """Write ``model`` (an ``AlsterModel``-like module with ``config``, ``num_classes``,
    ``feature_dim``) to ``path`` and its card beside it, both atomically; returns the card."""
    if label_space.num_classes != model.num_classes:
        raise ValueError(f"label space {label_space.name!r} has {label_space.num_classes} classes, the model {model.num_classes}")
    card = {
        "format": FORMAT,
        "version": VERSION,
        "model": model.config.name,
        "config": to_dict(model.config),
        "feature_dim": model.feature_dim,
        "num_classes": model.num_classes,
        "label_space": label_space.to_dict(),
        "parameters": model.parameter_counts() if hasattr(model, "parameter_counts") else None,
        "provenance": provenance or {},
        "metrics": metrics or {},
    }
    card = json.loads(json.dumps(card))  # plain JSON types (tuples -> lists), as a reader sees it
    write_tensor_file(path, model.state_dict(), {"card": json.dumps(card)})
    write_text_atomic(card_path(path), json.dumps(card, indent=2))
    return card


def read_card(path: str | os.PathLike) -> dict:
    """The model card stored in a checkpoint's metadata; raises CheckpointError."""
    path = Path(path)
    try:
        card = json.loads(read_metadata(path)["card"])
    except TensorFileError as exc:
        raise CheckpointError(f"checkpoint {exc}") from exc
    except (KeyError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"checkpoint {path} has no readable model card: {exc}") from exc
    if card.get("format") != FORMAT or card.get("version") != VERSION:
        raise CheckpointError(f"{path} is not an alster_mapping checkpoint of version {VERSION}")
    return card


def update_card(path: str | os.PathLike, metrics: dict[str, Any] | None = None, provenance: dict[str, Any] | None = None) -> dict:
    """Merge ``metrics`` / ``provenance`` entries into a checkpoint's card (in the file's
    metadata and the JSON beside it), weights unchanged; returns the new card.

    Used to record evaluation results measured after training. Raises CheckpointError.
    """
    card = read_card(path)
    try:
        tensors, _ = read_tensor_file(path)
    except TensorFileError as exc:
        raise CheckpointError(f"checkpoint {exc}") from exc
    card["metrics"] = {**card.get("metrics", {}), **(metrics or {})}
    card["provenance"] = {**card.get("provenance", {}), **(provenance or {})}
    card = json.loads(json.dumps(card))
    write_tensor_file(path, tensors, {"card": json.dumps(card)})
    write_text_atomic(card_path(path), json.dumps(card, indent=2))
    return card


def load_checkpoint(
    path: str | os.PathLike,
    label_space: LabelSpace | None = None,
    feature_dim: int | None = None,
    device: str | torch.device = "cpu",
) -> tuple[torch.nn.Module, dict]:
    """Rebuild the model a checkpoint describes and load its weights (strict).

    label_space / feature_dim: what the caller's map uses; a checkpoint trained for
    another label space or feature size is refused. Returns (model in eval mode, card).
    Raises CheckpointError naming the file and the mismatch.
    """
    path = Path(path)
    card = read_card(path)
    try:
        stored_space = LabelSpace.from_dict(card["label_space"])
        config = from_dict(ModelConfig, card["config"])
    except (KeyError, ValueError, TypeError) as exc:
        raise CheckpointError(f"checkpoint {path}: bad model card: {exc}") from exc
    if label_space is not None and stored_space != label_space:
        raise CheckpointError(
            f"checkpoint {path} was trained for label space {stored_space.name!r} "
            f"({stored_space.num_classes} classes), the map uses {label_space.name!r} ({label_space.num_classes})"
        )
    if feature_dim is not None and card.get("feature_dim") != feature_dim:
        raise CheckpointError(f"checkpoint {path} has D_F = {card.get('feature_dim')}, the map has {feature_dim}")
    # The weights come from the file: do not load the ImageNet ones first.
    config = dataclasses.replace(config, encoder2d=dataclasses.replace(config.encoder2d, pretrained=False))
    try:
        model = MODELS.build(card["model"], config, num_classes=card["num_classes"], feature_dim=card["feature_dim"])
    except (KeyError, ValueError, TypeError) as exc:
        raise CheckpointError(f"checkpoint {path}: cannot build the model it describes: {exc}") from exc
    try:
        state, _ = read_tensor_file(path)
    except TensorFileError as exc:
        raise CheckpointError(f"checkpoint {exc}") from exc
    expected = model.state_dict()
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if missing or unexpected:
        raise CheckpointError(f"checkpoint {path}: missing tensors {missing[:5]}, unexpected {unexpected[:5]}")
    for name, tensor in state.items():
        if tensor.shape != expected[name].shape:
            raise CheckpointError(
                f"checkpoint {path}: tensor {name} has shape {tuple(tensor.shape)}, the model needs {tuple(expected[name].shape)}"
            )
    model.load_state_dict(state, strict=True)
    return model.to(device).eval(), card
