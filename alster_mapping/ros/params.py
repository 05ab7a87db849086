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

ROS 2 params files (``config/mapping.yaml``) also load without ROS through
``alster_mapping.core.config.load_yaml``.

A params file (or ``-p``) giving an integer for a float parameter (``voxel_size: 1``) is
accepted as that float, as the config YAML loader does.
"""

from __future__ import annotations

import array
import dataclasses
import sys
import typing
from typing import Any, TypeVar

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException
from rclpy.node import Node
from rclpy.parameter import Parameter

from ..core.config import apply_overrides, field_problem, flatten, from_dict
from ..pipeline.mapping_config import MappingConfig
from .node_config import MappingNodeConfig, MapServerConfig

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
                if field_problem(value, kind, field) is None:
                    try:
                        node.declare_parameter(name, value, desc, ignore_override=True)
                        continue
                    except InvalidParameterValueException:
                        pass
            why = field_problem(value, kind, field) or "rejected by ROS"
            problems.append(f"{name} = {value!r}: {why} ({help_text})")
            continue
        why = field_problem(value, kind, field)  # choices: ROS has no such constraint
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
            value = p.value
            # Arrays set over the parameter services (``ros2 param set``) arrive as array.array.
            changes[p.name[len(prefix):]] = value.tolist() if isinstance(value, array.array) else value
    return apply_overrides(cfg, changes) if changes else cfg


def parameters_markdown(configs: dict[str, Any]) -> str:
    """A Markdown table per config: parameter, type, default, range or choices, description.

    configs: heading -> config dataclass instance (its values are the defaults shown).
    """
    lines = [
        "# Parameters",
        "",
        "Generated by `python -m alster_mapping.ros.params > docs/PARAMETERS.md` from the config",
        "dataclasses (the one schema behind YAML files, ROS parameters and the CLI); do not edit by hand.",
        "",
    ]
    for heading, cfg in configs.items():
        types = leaf_types(type(cfg))
        lines += [f"## {heading}", "", "| parameter | type | default | valid | description |", "|---|---|---|---|---|"]
        for key, (value, field) in flatten(cfg).items():
            meta = field.metadata
            lo, hi, choices = meta.get("min"), meta.get("max"), meta.get("choices")
            if choices:
                valid = ", ".join(map(str, choices))
            elif lo is not None or hi is not None:
                valid = f"{'' if lo is None else lo} .. {'' if hi is None else hi}"
            else:
                valid = ""
            lines.append(f"| `{key}` | {types[key].__name__} | `{value!r}` | {valid} | {meta.get('help', '')} |")
        lines.append("")
    return "\n".join(lines)


def documented_configs() -> dict[str, Any]:
    """The configs whose parameters ``mapping_node`` declares, by heading."""
    return {
        "Mapping engine (`MappingConfig`)": MappingConfig(),
        "Map server (`MapServerConfig`)": MapServerConfig(),
        "Live pipeline (`MappingNodeConfig`)": MappingNodeConfig(),
    }


def main() -> None:
    """Print docs/PARAMETERS.md: every parameter of ``mapping_node``."""
    print(parameters_markdown(documented_configs()), end="")


if __name__ == "__main__":
    main()
