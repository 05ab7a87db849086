"""Tensor files: safetensors with string metadata and a CRC-32 per tensor, written atomically.

safetensors validates its header but not the data, so a flipped bit would load silently;
the checksums in the metadata catch that. Used by map files and model checkpoints.
"""

from __future__ import annotations

import json
import os
import zlib
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from .atomic_file import atomic_path

CHECKSUM_KEY = "crc32"


class TensorFileError(ValueError):
    """A tensor file is missing, unreadable, truncated or corrupt."""


def tensor_crc32(t: torch.Tensor) -> int:
    """CRC-32 of a tensor's bytes (CPU copy if needed)."""
    return zlib.crc32(np.ascontiguousarray(t.detach().cpu().numpy()).view(np.uint8).reshape(-1))


def write_tensor_file(path: str | os.PathLike, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> Path:
    """Write tensors (moved to CPU, made contiguous) and string metadata to ``path`` atomically.

    Adds the per-tensor checksums under ``"crc32"``. Raises OSError if it cannot be
    written; an existing file at ``path`` is then left as it was.
    """
    tensors = {name: t.detach().to("cpu").contiguous() for name, t in tensors.items()}
    metadata = {**metadata, CHECKSUM_KEY: json.dumps({name: tensor_crc32(t) for name, t in tensors.items()})}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return Path(path)


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The string metadata of a tensor file without reading its tensors; raises TensorFileError."""
    path = Path(path)
    if not path.is_file():
        raise TensorFileError(f"{path} does not exist")
    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except (SafetensorError, OSError, RuntimeError, ValueError) as exc:
        raise TensorFileError(f"{path} is unreadable, truncated or corrupt: {exc}") from exc


def read_tensor_file(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read every tensor (CPU) and the metadata of ``path``, verifying the checksums.

    Raises TensorFileError naming the file and the problem.
    """
    path = Path(path)
    if not path.is_file():
        raise TensorFileError(f"{path} does not exist")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            metadata = dict(f.metadata() or {})
            tensors = {name: f.get_tensor(name) for name in f.keys()}
    except (SafetensorError, OSError, RuntimeError, ValueError) as exc:
        raise TensorFileError(f"{path} is unreadable, truncated or corrupt: {exc}") from exc
    try:
        checksums = json.loads(metadata[CHECKSUM_KEY])
    except (KeyError, json.JSONDecodeError) as exc:
        raise TensorFileError(f"{path} has no checksums") from exc
    if set(checksums) != set(tensors):
        raise TensorFileError(f"{path}: checksums name {sorted(checksums)}, the file holds {sorted(tensors)}")
    for name, tensor in tensors.items():
        if checksums[name] != tensor_crc32(tensor):
            raise TensorFileError(f"{path}: checksum mismatch in tensor {name} (file corrupt)")
    return tensors, metadata
