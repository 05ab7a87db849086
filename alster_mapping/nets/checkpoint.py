"""Model checkpoints of every registered model: safetensors weights plus a model card, no pickle.

``save_checkpoint`` writes ``NAME.safetensors`` (the state dict; the card is also stored in
its metadata so the weights never travel without it) and ``NAME.json`` (the same card,
for people). The card (version 2) records:

    model        registry name ("alster", ...)          task, inputs   from the registry entry
    config       the model's own config dataclass       arguments      build_arguments() (num_classes, sizes)
    label_space  the classes it predicts                parameters     trainable parameter counts
    provenance   command, data, seeds, time             metrics        scores measured on it

``load_checkpoint`` rebuilds the model from the card alone (``MODELS.build(model, config,
**arguments)``) and refuses a file whose label space, task, build arguments or tensor shapes
do not match what the caller needs, with a message that says what differs. Version 1 cards
(ALSTER only, before model families) are upgraded when read.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from ..core.atomic_file import write_text_atomic
from ..core.config import from_dict, to_dict
from ..core.labels import LabelSpace
from ..core.tensor_file import TensorFileError, read_metadata, read_tensor_file, write_tensor_file
from .registry import MODELS

FORMAT = "alster_mapping.checkpoint"
VERSION = 2


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
    """Write ``model`` (any registered model: ``config``, ``num_classes``,
    ``build_arguments()``) to ``path`` and its card beside it, both atomically; returns the card."""
    if label_space.num_classes != model.num_classes:
        raise ValueError(f"label space {label_space.name!r} has {label_space.num_classes} classes, the model {model.num_classes}")
    entry = MODELS.entry(MODELS.name_of(model))
    card = {
        "format": FORMAT,
        "version": VERSION,
        "model": entry.name,
        "task": entry.task,
        "inputs": entry.inputs,
        "config": to_dict(model.config),
        "arguments": model.build_arguments(),
        "label_space": label_space.to_dict(),
        "parameters": model.parameter_counts()
        if hasattr(model, "parameter_counts")  # per-part counts where the model offers them
        else {"total": sum(p.numel() for p in model.parameters() if p.requires_grad)},
        "provenance": provenance or {},
        "metrics": metrics or {},
    }
    card = json.loads(json.dumps(card))  # plain JSON types (tuples -> lists), as a reader sees it
    write_tensor_file(path, model.state_dict(), {"card": json.dumps(card)})
    write_text_atomic(card_path(path), json.dumps(card, indent=2))
    return card


def upgrade_card(card: dict) -> dict:
    """A card of any known version in the current layout; raises CheckpointError if unknown.

    Version 1 (ALSTER only): the config held the model's name, ``num_classes`` and
    ``feature_dim`` were top-level keys, and task / inputs were implied.
    """
    if not isinstance(card, dict) or card.get("format") != FORMAT or card.get("version") not in (1, VERSION):
        raise CheckpointError(f"not an alster_mapping checkpoint of version 1 or {VERSION}")
    if card["version"] == VERSION:
        return card
    card = dict(card)
    config = dict(card.get("config") or {})
    name = config.pop("name", card.get("model"))
    try:
        entry = MODELS.entry(name)
    except ValueError as exc:
        raise CheckpointError(f"version 1 card: {exc}") from exc
    arguments = {"num_classes": card.pop("num_classes", None), "feature_dim": card.pop("feature_dim", None)}
    card.update(version=VERSION, model=name, task=entry.task, inputs=entry.inputs, config=config, arguments=arguments)
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
    try:
        return upgrade_card(card)
    except CheckpointError as exc:
        raise CheckpointError(f"{path}: {exc}") from None


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
    task: str | None = None,
    device: str | torch.device = "cpu",
    **arguments: Any,
) -> tuple[torch.nn.Module, dict]:
    """Rebuild the model a checkpoint's card describes and load its weights (strict).

    label_space: the classes the caller needs; task: the kind of model it needs (e.g.
    "semantic_mapping"); arguments: build arguments that must match (ALSTER:
    ``feature_dim`` = the map's D_F). A checkpoint that differs in any of them is refused.
    Returns (model in eval mode, card). Raises CheckpointError naming the file and the
    mismatch.
    """
    path = Path(path)
    card = read_card(path)
    try:
        stored_space = LabelSpace.from_dict(card["label_space"])
        entry = MODELS.entry(card["model"])
        config = from_dict(entry.config, {**entry.legacy_config, **card["config"]})
        stored_arguments = dict(card["arguments"])
    except (KeyError, ValueError, TypeError) as exc:
        raise CheckpointError(f"checkpoint {path}: bad model card: {exc}") from exc
    if label_space is not None and stored_space != label_space:
        raise CheckpointError(
            f"checkpoint {path} was trained for label space {stored_space.name!r} "
            f"({stored_space.num_classes} classes), the caller uses {label_space.name!r} ({label_space.num_classes})"
        )
    if task is not None and card.get("task") != task:
        raise CheckpointError(f"checkpoint {path} holds a {card.get('task')!r} model ({card['model']}), a {task!r} model is needed")
    for name, value in arguments.items():
        if stored_arguments.get(name) != value:
            raise CheckpointError(f"checkpoint {path} has {name} = {stored_arguments.get(name)}, the caller needs {value}")
    if stored_arguments.get("num_classes") != stored_space.num_classes:
        raise CheckpointError(
            f"checkpoint {path}: the model predicts {stored_arguments.get('num_classes')} classes, "
            f"its label space {stored_space.name!r} has {stored_space.num_classes}"
        )
    if entry.before_loading is not None:
        config = entry.before_loading(config)
    try:
        model = MODELS.build(card["model"], config, **stored_arguments)
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
