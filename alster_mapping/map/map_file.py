"""Map files: versioned safetensors, written atomically, validated completely on load.

Layout (format ``alster_mapping.SemanticVoxelMap``, version 2): tensors ``keys`` (V, 3)
int32, ``feature`` (V, D_F) float16, ``count`` (V,) int16, ``label`` (V,) int16,
``confidence`` (V,) float16, ``color`` (V, 3) uint8, ``instance`` (V,) int16,
``block_keys`` (M, 3) int32, ``block_ticks`` (M,) int64; string metadata with the
geometry, the label space, the feature kind and a CRC-32 of every tensor. No pickle
anywhere. Version 1 files (before instance ids) are read with every instance id -1.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from ..core.config import MapConfig
from ..core.geometry import check_key_range, pack_keys
from ..core.labels import LabelSpace
from ..core.tensor_file import TensorFileError, read_metadata, read_tensor_file, write_tensor_file
from .voxel_index import resolve_index_backend
from .voxel_map import FEATURE_KINDS, INSTANCE_LIMIT, SemanticVoxelMap

FORMAT = "alster_mapping.SemanticVoxelMap"
VERSION = 2
READABLE_VERSIONS = ("1", "2")
# Columns a version lacks, read as the column's default (version 1: no instance layer).
_ADDED_COLUMNS = {"1": ("instance",)}

_INDEX_DTYPES = {"keys": torch.int32, "block_keys": torch.int32, "block_ticks": torch.int64}


class MapFileError(ValueError):
    """A map file is missing, unreadable, truncated, corrupt, of another version or incompatible."""


def save_map(voxel_map: SemanticVoxelMap, path: str | os.PathLike) -> Path:
    """Write ``voxel_map`` to ``path`` atomically (temporary file, fsync, rename); returns the path.

    Raises OSError when the file cannot be written (the previous file, if any, stays intact).
    """
    path = Path(path)
    with voxel_map.lock:
        keys, rows = voxel_map.items()
        block_keys, ticks, _ = voxel_map._index.blocks()
        tensors = {"keys": keys, **{name: col[rows] for name, col in voxel_map._columns.items()}}
        tensors.update(block_keys=block_keys, block_ticks=ticks)
        tick = voxel_map._tick
        feature_kind = voxel_map.feature_kind
    cfg = voxel_map.config
    metadata = {
        "format": FORMAT,
        "version": str(VERSION),
        "voxel_size": repr(voxel_map.voxel_size),
        "feature_dim": str(voxel_map.feature_dim),
        "block_size": str(cfg.block_size),
        "feature_kind": feature_kind,
        "tick": str(tick),
        "num_voxels": str(int(keys.shape[0])),
        "label_space": voxel_map.label_space.to_json(),
    }
    return write_tensor_file(path, tensors, metadata)


def load_map(
    path: str | os.PathLike, device: str | None = None, label_space: LabelSpace | None = None, index: str = "auto"
) -> SemanticVoxelMap:
    """Read and validate a map file into a new ``SemanticVoxelMap``.

    device: where to put it (default: CPU). label_space: if given, the file's must equal it.
    index: the map's index backend (``MapConfig.index``; files do not depend on it).
    Raises MapFileError naming the file and the problem; nothing outside the new map changes;
    ValueError when ``index`` is unusable here.
    """
    path = Path(path)
    resolve_index_backend(index, device or "cpu")  # before the file: this is no problem of the file's
    try:
        _check_header(path, read_metadata(path))  # before reading (and checksumming) the data
        tensors, meta = read_tensor_file(path)
    except TensorFileError as exc:
        raise MapFileError(f"map file {exc}") from exc

    try:
        stored_space = LabelSpace.from_json(meta["label_space"])
        config = MapConfig(
            voxel_size=float(meta["voxel_size"]),
            feature_dim=int(meta["feature_dim"]),
            block_size=int(meta["block_size"]),
            initial_capacity=max(int(meta["num_voxels"]), 1),
            device=device or "cpu",
            index=index,
        )
        tick = int(meta["tick"])
        voxel_map = SemanticVoxelMap(config, stored_space)
    except (KeyError, ValueError, TypeError, json.JSONDecodeError) as exc:
        raise MapFileError(f"map file {path}: bad metadata: {exc}") from exc
    if label_space is not None and stored_space != label_space:
        raise MapFileError(f"map file {path} uses label space {stored_space.name!r}, expected {label_space.name!r}")
    _check_tensors(path, tensors, meta, voxel_map)
    voxel_map.feature_kind = meta["feature_kind"]
    voxel_map._tick = tick
    values = {}
    for name, (dtype, shape, default) in voxel_map.column_spec().items():
        values[name] = tensors[name] if name in tensors else torch.full((tensors["keys"].shape[0], *shape), default, dtype=dtype)
    voxel_map._rebuild(tensors["keys"].to(voxel_map.device), values, tensors["block_keys"], tensors["block_ticks"])
    return voxel_map


def _check_header(path: Path, meta: dict) -> None:
    if meta.get("format") != FORMAT:
        raise MapFileError(f"{path} is not an alster_mapping map file (format {meta.get('format')!r})")
    if meta.get("version") not in READABLE_VERSIONS:
        raise MapFileError(f"map file {path} has version {meta.get('version')!r}; this build reads versions {', '.join(READABLE_VERSIONS)}")
    if meta.get("feature_kind") not in FEATURE_KINDS:
        raise MapFileError(f"map file {path}: unknown feature kind {meta.get('feature_kind')!r}")


def _check_tensors(path: Path, t: dict[str, torch.Tensor], meta: dict, voxel_map: SemanticVoxelMap) -> None:
    """Validate names, dtypes, shapes, checksums and value ranges against the (empty) target map."""

    def fail(msg: str) -> None:
        raise MapFileError(f"map file {path}: {msg}")

    missing = _ADDED_COLUMNS.get(meta["version"], ())
    spec = {name: column for name, column in voxel_map.column_spec().items() if name not in missing}
    expected = {**_INDEX_DTYPES, **{name: dtype for name, (dtype, _, _) in spec.items()}}
    if set(t) != set(expected):
        fail(f"tensors {sorted(t)} differ from {sorted(expected)}")
    for name, dtype in expected.items():
        if t[name].dtype != dtype:
            fail(f"tensor {name} is {t[name].dtype}, expected {dtype}")
    v = t["keys"].shape[0]
    shapes = {"keys": (v, 3), **{name: (v, *shape) for name, (_, shape, _) in spec.items()}}
    for name, shape in shapes.items():
        if tuple(t[name].shape) != shape:
            fail(f"tensor {name} has shape {tuple(t[name].shape)}, expected {shape}")
    if v != int(meta.get("num_voxels", -1)):
        fail(f"holds {v} voxels but its header says {meta.get('num_voxels')}")
    m = t["block_keys"].shape[0]
    if tuple(t["block_keys"].shape) != (m, 3) or tuple(t["block_ticks"].shape) != (m,):
        fail("block tensors have inconsistent shapes")
    if v:
        try:
            check_key_range(t["keys"])  # before packing: far keys would alias near ones
            check_key_range(t["block_keys"])
        except ValueError as exc:
            fail(str(exc))
        if torch.unique(pack_keys(t["keys"])).shape[0] != v:
            fail("duplicate voxel keys")
        if not bool(torch.isfinite(t["feature"]).all()):
            fail("non-finite features")
        if int(t["count"].min()) < 0:
            fail("negative observation counts")
        num_classes = voxel_map.label_space.num_classes
        if int(t["label"].min()) < -1 or int(t["label"].max()) >= num_classes:
            fail(f"label indices outside [-1, {num_classes})")
        conf = t["confidence"].float()
        if not bool(((conf >= 0) & (conf <= 1)).all()):
            fail("confidence outside [0, 1]")
        if "instance" in t and (int(t["instance"].min()) < -1 or int(t["instance"].max()) >= INSTANCE_LIMIT):
            fail(f"instance ids outside [-1, {INSTANCE_LIMIT})")
