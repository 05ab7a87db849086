"""ROS parameters declared from the config dataclasses, and read back into validated configs.

One schema (``alster_mapping.core.config``) gives every parameter its name (the dotted
key, e.g. ``map.voxel_size``), default, description and valid range, so YAML files, the
CLI and ROS parameters never disagree.

- ``declare_config(node, cfg)``: declare every leaf of ``cfg`` and return the validated
  config built from the node's parameter values (command line / params file overrides
  included). Invalid values raise ``ParameterError`` (a ValueError) listing every bad
  parameter.
- ``parameters_to_config(node, cfg_cls)``: read already-declared parameters back.
- ``apply_parameters(cfg, parameters)``: a validated copy of ``cfg`` with changed
  ``rclpy.parameter.Parameter`` values applied (for on-set-parameters callbacks).
- ``read_params_file`` / ``config_from_params_file``: read a ROS 2 params file
  (``/**: ros__parameters: ...``) without ROS, e.g. to check ``config/mapping.yaml``.

A params file (or ``-p``) giving an integer for a float parameter (``voxel_size: 1``) is
accepted as that float, as the config YAML loader does.
"""

from __future__ import annotations

import dataclasses
import os
import re
import sys
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException
from rclpy.node import Node
from rclpy.parameter import Parameter

from ..core.config import apply_overrides, flatten, from_dict

T = TypeVar("T")

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
FLOAT_MAX = sys.float_info.max


def leaf_types(cls: type, prefix: str = "") -> dict[str, Any]:
    """Dotted key -> annotated type of every leaf field of config dataclass ``cls``."""
    out: dict[str, Any] = {}
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        t = hints[f.name]
        if dataclasses.is_dataclass(t):
            out.update(leaf_types(t, f"{prefix}{f.name}."))
        else:
            out[f"{prefix}{f.name}"] = t
    return out


def parameter_descriptor(field: dataclasses.Field, kind: type) -> ParameterDescriptor:
    """The ROS descriptor of one config field: description = help text, plus its range.

    ROS ranges need both bounds, so a missing one becomes the type's extreme. Integer
    ranges use step 1 (every integer), float ranges step 0.0 (continuous). Choices have
    no ROS equivalent; they are named in ``additional_constraints`` and enforced when
    the config is validated.
    """
    meta = field.metadata
    lo, hi, choices = meta.get("min"), meta.get("max"), meta.get("choices")
    desc = ParameterDescriptor(description=str(meta.get("help", "")))
    if kind is int and (lo is not None or hi is not None):
        desc.integer_range = [
            IntegerRange(
                from_value=INT64_MIN if lo is None else int(lo),
                to_value=INT64_MAX if hi is None else int(hi),
                step=1,
            )
        ]
    elif kind is float and (lo is not None or hi is not None):
        desc.floating_point_range = [
            FloatingPointRange(
                from_value=-FLOAT_MAX if lo is None else float(lo),
                to_value=FLOAT_MAX if hi is None else float(hi),
                step=0.0,
            )
        ]
    if choices:
        desc.additional_constraints = "one of: " + ", ".join(repr(c) for c in choices)
    return desc


def _probe_override(node: Node, name: str) -> Any:
    """The value given for ``name`` by ``-p`` or a params file (None if none).

    rclpy keeps overrides private, so declare the name dynamically typed (which takes
    the override as is), read it and undeclare it again.
    """
    value = node.declare_parameter(name, None, ParameterDescriptor(dynamic_typing=True)).value
    node.undeclare_parameter(name)
    return value


def _problem(value: Any, kind: type, field: dataclasses.Field) -> str | None:
    """Why ``value`` is invalid for a config field of type ``kind`` (None when it is valid)."""
    meta = field.metadata
    lo, hi, choices = meta.get("min"), meta.get("max"), meta.get("choices")
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind in (int, float, str, bool) and not (type(value) is kind or (kind is float and numeric)):
        return f"expected {kind.__name__}, got {type(value).__name__}"
    if lo is not None and value < lo:
        return f"below the minimum {lo}"
    if hi is not None and value > hi:
        return f"above the maximum {hi}"
    if choices is not None and value not in choices:
        return f"not one of {list(choices)}"
    return None


class ParameterError(ValueError):
    """Invalid parameter values; ``problems`` holds one line per bad parameter."""

    def __init__(self, problems: list[str]):
        super().__init__("invalid parameters:\n  " + "\n  ".join(problems))
        self.problems = list(problems)


def declare_config(node: Node, cfg: T, prefix: str = "") -> T:
    """Declare one ROS parameter per leaf of config ``cfg`` and return the validated result.

    Names are ``prefix`` + the dotted key, defaults the values of ``cfg``, descriptors
    from the field metadata (``parameter_descriptor``). Overrides from the command line
    or params files apply. Raises ``ParameterError`` (a ValueError) listing every
    invalid value; the names with invalid values stay undeclared.
    """
    types = leaf_types(type(cfg))
    problems: list[str] = []
    for key, (default, field) in flatten(cfg).items():
        name = prefix + key
        kind = types[key]
        help_text = field.metadata.get("help", "")
        if kind is float and isinstance(default, int) and not isinstance(default, bool):
            default = float(default)
        desc = parameter_descriptor(field, kind)
        try:
            value = node.declare_parameter(name, default, desc).value
        except (InvalidParameterTypeException, InvalidParameterValueException):
            value = _probe_override(node, name)
            if kind is float and type(value) is int:
                value = float(value)  # "voxel_size: 1" in a params file means 1.0
                if _problem(value, kind, field) is None:
                    try:
                        node.declare_parameter(name, value, desc, ignore_override=True)
                        continue
                    except InvalidParameterValueException:
                        pass
            why = _problem(value, kind, field) or "rejected by ROS"
            problems.append(f"{name} = {value!r}: {why} ({help_text})")
            continue
        why = _problem(value, kind, field)  # choices: ROS has no such constraint
        if why:
            node.undeclare_parameter(name)
            problems.append(f"{name} = {value!r}: {why} ({help_text})")
    if problems:
        raise ParameterError(problems)
    return parameters_to_config(node, type(cfg), prefix)


def parameters_to_config(node: Node, cfg_cls: type[T], prefix: str = "") -> T:
    """Build a validated ``cfg_cls`` from the node's declared parameters ``prefix`` + dotted key.

    Raises ValueError naming the parameter when a value is invalid (wrong type, out of
    range, not one of the choices).
    """
    data: dict[str, Any] = {}
    for key in flatten(cfg_cls()):
        value = node.get_parameter(prefix + key).value
        *parents, leaf = key.split(".")
        level = data
        for p in parents:
            level = level.setdefault(p, {})
        level[leaf] = value
    try:
        return from_dict(cfg_cls, data, prefix)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"invalid parameters: {exc}") from exc


def apply_parameters(cfg: T, parameters: list[Parameter], prefix: str = "") -> T:
    """A validated copy of ``cfg`` with the values of ``parameters`` whose names are its keys.

    Parameters outside the config are ignored. Raises ValueError naming the bad key.
    """
    leaves = flatten(cfg)
    changes = {}
    for p in parameters:
        if p.name.startswith(prefix) and p.name[len(prefix):] in leaves:
            changes[p.name[len(prefix):]] = p.value
    return apply_overrides(cfg, changes) if changes else cfg


# ---------------------------------------------------------------------------
# ROS 2 params files without ROS
# ---------------------------------------------------------------------------


def _node_pattern(key: str) -> re.Pattern:
    """A params-file node key as a regex on the node's full name ``/ns/node`` (rcl's rule).

    A key without a leading slash is relative to the root namespace; ``/**`` matches
    any number of namespace levels (none included), ``/*`` exactly one name.
    """
    if not key.startswith("/"):
        key = "/" + key
    out = ""
    for token in re.split(r"(/\*\*|/\*)", key):
        if token == "/**":
            out += "(/[^/]+)*"
        elif token == "/*":
            out += "/[^/]+"
        else:
            out += re.escape(token)
    return re.compile(out + "$")


def _flatten_yaml(data: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten_yaml(value, name + "."))
        else:
            out[name] = value
    return out


def read_params_file(path: str | os.PathLike, node_name: str = "mapping_node", namespace: str = "/") -> dict[str, Any]:
    """Flat ``{dotted name: value}`` that a ROS 2 params file gives node ``namespace/node_name``.

    Sections whose node key matches (``/**``, ``node_name``, ``/ns/node_name``, with
    ``*``/``**`` wildcards) are merged in file order, later values winning, as rcl does.
    Nested mappings under ``ros__parameters`` become dotted names. Raises ValueError on
    an unreadable or malformed file.
    """
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"cannot read params file {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"params file {path}: expected a mapping of node names")
    full_name = namespace.rstrip("/") + "/" + node_name
    out: dict[str, Any] = {}
    for key, section in _flatten_nodes(data):
        if not isinstance(section, dict) or "ros__parameters" not in section:
            raise ValueError(f"params file {path}: node {key!r} has no 'ros__parameters' mapping")
        if _node_pattern(key).match(full_name):
            params = section["ros__parameters"] or {}
            if not isinstance(params, dict):
                raise ValueError(f"params file {path}: 'ros__parameters' of {key!r} is not a mapping")
            out.update(_flatten_yaml(params))
    return out


def _flatten_nodes(data: dict, prefix: str = "") -> list[tuple[str, Any]]:
    """(node key, section) pairs; namespaces may nest as mappings (``/ns: node: ros__parameters``)."""
    out = []
    for key, value in data.items():
        name = f"{prefix}/{str(key).strip('/')}" if prefix else str(key)
        if isinstance(value, dict) and "ros__parameters" not in value and value:
            out.extend(_flatten_nodes(value, name))
        else:
            out.append((name, value))
    return out


def config_from_params_file(
    cfg_cls: type[T], path: str | os.PathLike, node_name: str = "mapping_node", namespace: str = "/"
) -> tuple[T, dict[str, Any]]:
    """Read config ``cfg_cls`` from a ROS 2 params file, like ``declare_config`` would.

    Returns (validated config, the file's other parameters for that node). Missing keys
    keep their defaults; invalid values raise ValueError naming the file and the key.
    """
    flat = read_params_file(path, node_name, namespace)
    leaves = flatten(cfg_cls())
    ours = {k: v for k, v in flat.items() if k in leaves}
    rest = {k: v for k, v in flat.items() if k not in leaves}
    try:
        return apply_overrides(cfg_cls(), ours), rest
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{path}: {exc}") from exc
