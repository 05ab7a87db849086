"""The one configuration schema: dataclasses that feed YAML files, ROS parameters and the CLI.

Every tunable is declared once with ``param(default, help, min=, max=, choices=)``; the
metadata gives its description and valid range everywhere it is exposed. Sections
nest as dataclass fields (``map.voxel_size``).

This module holds the machinery and the configs of the core layer (the map, label
fusion). Every other config lives beside what it configures and uses the same
machinery: a model family's in ``nets/<family>/config.py``, the mapper's
``MappingConfig`` in ``pipeline/mapping_config.py``, each training recipe's in its module
under ``train/recipes/``.
"""

from __future__ import annotations

import dataclasses
import math
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


def param(default: Any, help: str, *, min: float | None = None, max: float | None = None, choices: tuple | None = None):
    """A config field with a description (units included) and an optional valid range or choice list."""
    return field(default=default, metadata={"help": help, "min": min, "max": max, "choices": choices})


def section(cls: type, help: str = ""):
    """A nested config section (a dataclass field holding another config dataclass).

    cls: the config class, or a function returning the section's default instance (then
    give ``help``)."""
    return field(default_factory=cls, metadata={"help": help or (cls.__doc__ or "").strip().splitlines()[0]})


# ---------------------------------------------------------------------------
# The schema
# ---------------------------------------------------------------------------


@dataclass
class MapConfig:
    """The sparse semantic voxel map."""

    voxel_size: float = param(0.04, "voxel edge length [m]", min=0.002, max=1.0)
    feature_dim: int = param(40, "D_F: learned feature channels stored per voxel (float16)", min=1, max=1024)
    block_size: int = param(4, "voxels per edge of the hashed blocks that index the voxels", min=1, max=16)
    initial_capacity: int = param(65536, "voxel rows allocated up front (grows by doubling)", min=1, max=2**31 - 1)
    max_bytes: int = param(
        0, "memory budget of the map [bytes]; 0 = unlimited, else the least recently observed blocks are evicted", min=0
    )
    color_weight_cap: int = param(16, "observations after which the mean colour becomes a moving average", min=1, max=10000)
    device: str = param("cpu", "torch device of the map's storage ('cpu', 'cuda', 'cuda:1', ...)")
    index: str = param(
        "auto",
        "block index backend: open3d = Open3D hash map (needs open3d; CPU, or CUDA builds of Open3D); "
        "torch = sorted block keys searched with searchsorted (runs wherever torch runs); "
        "auto = open3d when open3d imports (with CUDA for a CUDA device), else torch",
        choices=("auto", "open3d", "torch"),
    )


@dataclass
class LabelFusionConfig:
    """The label-fusion baseline: external label images fused by per-class voting."""

    max_range: float = param(3.0, "ignore depth beyond this distance along the optical axis [m]", min=0.05, max=100.0)
    min_range: float = param(0.1, "ignore depth closer than this [m]", min=0.0, max=100.0)
    evidence_weight_cap: int = param(
        255, "observations after which class evidence becomes a moving average (bounds float16 rounding)", min=1, max=1000
    )
    kernel: str = param(
        "auto",
        "lift and vote implementation: 'numba' (fused CPU loops), 'torch' (tensor ops, CPU or CUDA), "
        "'auto' = numba on the CPU when it is installed; both give the same map",
        choices=("auto", "numba", "torch"),
    )


# ---------------------------------------------------------------------------
# Generic machinery
# ---------------------------------------------------------------------------


def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def field_problem(value: Any, kind: type, f: dataclasses.Field) -> str | None:
    """Why ``value`` is invalid for config field ``f`` of type ``kind``; None when valid.

    An int is valid for a float field (YAML and ROS write 1 for 1.0).
    """
    if typing.get_origin(kind) is tuple:  # tuple[int, ...] / tuple[float, ...]: a non-empty list
        if not isinstance(value, (list, tuple)) or not value:
            return f"expected a non-empty list, got {value!r}"
        element = typing.get_args(kind)[0]
        for item in value:  # the type and the range apply to every element
            problem = field_problem(item, element, f)
            if problem:
                return f"list element {item!r}: {problem}"
        return None
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind in (int, float, str, bool) and not (type(value) is kind or (kind is float and numeric)):
        return f"expected {kind.__name__}, got {type(value).__name__}"
    if kind is float and not math.isfinite(value):
        return "not a finite number"
    lo, hi, choices = f.metadata.get("min"), f.metadata.get("max"), f.metadata.get("choices")
    if lo is not None and value < lo:
        return f"below the minimum {lo}"
    if hi is not None and value > hi:
        return f"above the maximum {hi}"
    if choices is not None and value not in choices:
        return f"not one of {list(choices)}"
    return None


def validate(cfg: Any, prefix: str = "") -> Any:
    """Check every field's type and range recursively; raises ValueError naming the key. Returns cfg."""
    types = _field_types(type(cfg))
    for f in dataclasses.fields(cfg):
        key = f"{prefix}{f.name}"
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(types[f.name]):
            validate(value, key + ".")
            continue
        problem = field_problem(value, types[f.name], f)
        if problem:
            raise ValueError(f"config {key} = {value!r}: {problem}")
        if types[f.name] is float and not isinstance(value, float):
            setattr(cfg, f.name, float(value))
        elif typing.get_origin(types[f.name]) is tuple:
            element = typing.get_args(types[f.name])[0]
            setattr(cfg, f.name, tuple(float(v) if element is float else v for v in value))
    return cfg


def from_dict(cls: type[T], data: dict | None, prefix: str = "") -> T:
    """Build config ``cls`` from nested plain data; unknown keys and bad values raise ValueError."""
    data = dict(data or {})
    types = _field_types(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"unknown config keys: {', '.join(prefix + k for k in unknown)}")
    kwargs = {}
    for name, value in data.items():
        if dataclasses.is_dataclass(types[name]):
            if not isinstance(value, dict):
                raise ValueError(f"config {prefix}{name}: expected a mapping, got {value!r}")
            kwargs[name] = from_dict(types[name], value, f"{prefix}{name}.")
        else:
            kwargs[name] = value
    return validate(cls(**kwargs), prefix)


def to_dict(cfg: Any) -> dict:
    """Nested plain data of a config (YAML/JSON-ready)."""
    return dataclasses.asdict(cfg)


def load_yaml(cls: type[T], path: str | os.PathLike, node_name: str = "mapping_node") -> T:
    """Load config ``cls`` from a YAML file; raises ValueError with the file name on any problem.

    Plain config files hold the nested sections directly. A ROS 2 params file (like
    ``config/mapping.yaml``: ``/**: ros__parameters: {...}``) works too: the
    ``ros__parameters`` of the sections for every node (``/**``) and for ``node_name``
    (``node_name``, ``/node_name``, ``/**/node_name``) are merged in file order, and
    top-level keys that ``cls`` does not have are skipped (they configure other parts,
    e.g. the node itself); unknown keys inside a section are still errors.
    """
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"cannot read config {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"config {path}: expected a mapping, got {type(data).__name__}")
    if any(isinstance(v, dict) and "ros__parameters" in v for v in data.values()):
        merged: dict = {}
        for key, section in data.items():
            if str(key) in ("/**", node_name, f"/{node_name}", f"/**/{node_name}") and isinstance(section, dict):
                _merge(merged, section.get("ros__parameters") or {})
        names = {f.name for f in dataclasses.fields(cls)}
        data = {k: v for k, v in merged.items() if k in names}
    try:
        return from_dict(cls, data)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{path}: {exc}") from exc


def _merge(into: dict, update: dict) -> None:
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def flatten(cfg: Any, prefix: str = "") -> dict[str, tuple[Any, dataclasses.Field]]:
    """Dotted key -> (value, field) for every leaf (the form ROS parameters and CLI overrides use)."""
    out: dict[str, tuple[Any, dataclasses.Field]] = {}
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            out.update(flatten(value, f"{prefix}{f.name}."))
        else:
            out[f"{prefix}{f.name}"] = (value, f)
    return out


def _leaf_type(cfg: Any, key: str) -> Any:
    """The annotated type of dotted leaf ``key`` of config instance ``cfg``."""
    *parents, leaf = key.split(".")
    for name in parents:
        cfg = getattr(cfg, name)
    return _field_types(type(cfg))[leaf]


def apply_overrides(cfg: T, overrides: dict[str, Any] | list[str]) -> T:
    """Return a copy of ``cfg`` with dotted-key overrides applied and validated.

    overrides: ``{"map.voxel_size": 0.02}`` or CLI strings ``["map.voxel_size=0.02"]``
    (values parsed as YAML scalars).
    """
    if isinstance(overrides, list):
        pairs = {}
        for item in overrides:
            if "=" not in item:
                raise ValueError(f"override {item!r} is not KEY=VALUE")
            key, text = item.split("=", 1)
            try:
                pairs[key.strip()] = yaml.safe_load(text)
            except yaml.YAMLError as exc:
                raise ValueError(f"override {item!r}: cannot parse the value: {exc}") from exc
        overrides = pairs
    data = to_dict(cfg)
    leaves = flatten(cfg)
    types = {key: _leaf_type(cfg, key) for key in leaves}
    for key, value in overrides.items():
        if key not in leaves:
            raise ValueError(f"unknown config key {key!r}")
        if types[key] is float and isinstance(value, str):
            # YAML 1.1 reads "5e-4" (no dot) as a string; a float field means a number.
            try:
                value = float(value)
            except ValueError:
                pass  # validation below names the problem
        node = data
        *parents, leaf = key.split(".")
        for p in parents:
            node = node[p]
        node[leaf] = value
    return from_dict(type(cfg), data)
