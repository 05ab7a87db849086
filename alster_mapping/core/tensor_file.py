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
    written (also when safetensors reports the failure, e.g. a full disk, as its own
    error type); an existing file at ``path`` is then left as it was, and nothing of the
    attempt remains beside it.
    """
    tensors = {name: t.detach().to("cpu").contiguous() for name, t in tensors.items()}
    metadata = {**metadata, CHECKSUM_KEY: json.dumps({name: tensor_crc32(t) for name, t in tensors.items()})}
    try:
        with atomic_path(path) as tmp:
            save_file(tensors, str(tmp), metadata=metadata)
    except SafetensorError as exc:
        raise OSError(f"cannot write {path}: {exc}") from exc
    return Path(path)


def _require_file(path: Path) -> None:
    """TensorFileError unless ``path`` names a regular file (also for names the OS rejects, e.g. too long)."""
    try:
        exists = path.is_file()
    except (OSError, ValueError) as exc:  # ENAMETOOLONG, EACCES on a parent, embedded NUL
        raise TensorFileError(f"{path} cannot be opened: {exc}") from exc
    if not exists:
        raise TensorFileError(f"{path} does not exist")


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The string metadata of a tensor file without reading its tensors; raises TensorFileError."""
    path = Path(path)
    _require_file(path)
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
    _require_file(path)
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
