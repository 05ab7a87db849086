"""A node's configs as ROS parameters: declared once, checked and applied at run time.

``NodeParameters`` declares one parameter per leaf of each config section (``ros/params.py``),
keeps the current, validated config objects (``parameters.config``, ``.server_config``, ...),
refuses changes of fixed parameters (with the reason why each is fixed), invalid values and
values a component rejects (``add_check``) before they happen, and tells the components
after a change (``on_change``). Components read the configs through it, so they always see
the current values.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rcl_interfaces.msg import SetParametersResult
from rclpy.node import Node
from rclpy.parameter import Parameter

from .node_runtime import NodeRuntime
from .params import ParameterError, apply_parameters, declare_config


class NodeParameters:
    """node: the rclpy node; runtime: its ``NodeRuntime``. sections: attribute name ->
    default config (e.g. ``{"config": MappingConfig(), "server_config": MapServerConfig()}``);
    each becomes an attribute holding the current values. fixed: why a parameter name may
    not change while the node runs (None: it may). Raises ``ParameterError`` listing every
    invalid value of every section.
    """

    def __init__(self, node: Node, runtime: NodeRuntime, sections: dict[str, Any], fixed: Callable[[str], str | None]):
        self._node = node
        self._sections = list(sections)
        self._fixed = fixed
        self._listeners: list[Callable[[dict[str, Any]], None]] = []
        self._checks: list[Callable[[dict[str, Any]], str | None]] = []
        problems = []
        for attr, defaults in sections.items():
            try:
                setattr(self, attr, declare_config(node, defaults))
            except ParameterError as exc:
                problems += exc.problems
        if problems:
            raise ParameterError(problems)
        self._runtime = runtime

    def watch(self) -> None:
        """From now on check every change and apply accepted ones (call once the node's
        components exist; until then ``set`` may publish start-up values of fixed parameters)."""
        self._node.add_on_set_parameters_callback(self._check)
        self._node.add_post_set_parameters_callback(self._runtime.guarded_callback("apply_parameters", self._apply))

    def add_check(self, check: Callable[[dict[str, Any]], str | None]) -> None:
        """Before a change applies, ``check(proposed)`` (section -> config with the change) may
        return why it cannot (e.g. a class name the label space lacks); the change is then refused."""
        self._checks.append(check)

    def on_change(self, listener: Callable[[dict[str, Any]], None]) -> None:
        """Call ``listener(old)`` after every accepted change; ``old``: section -> its previous config."""
        self._listeners.append(listener)

    def set(self, section: str, config: Any, parameters: list[Parameter]) -> None:
        """Replace ``section`` with ``config`` and publish the matching ``parameters`` (at
        start-up, before ``watch``: a loaded map's geometry wins over the parameters)."""
        setattr(self, section, config)
        self._node.set_parameters(parameters)

    def _check(self, parameters: list[Parameter]) -> SetParametersResult:
        reasons = [f"{p.name}: {reason}" for p in parameters if (reason := self._fixed(p.name))]
        if reasons:
            reason = "fixed while the node runs: " + "; ".join(reasons) + " (restart the node to change it)"
            return SetParametersResult(successful=False, reason=reason)
        try:
            proposed = {attr: apply_parameters(getattr(self, attr), parameters) for attr in self._sections}
        except ValueError as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        problems = [problem for check in self._checks if (problem := check(proposed))]
        if problems:
            return SetParametersResult(successful=False, reason="; ".join(problems))
        return SetParametersResult(successful=True)

    def _apply(self, parameters: list[Parameter]) -> None:
        old = {attr: getattr(self, attr) for attr in self._sections}
        for attr in self._sections:
            setattr(self, attr, apply_parameters(getattr(self, attr), parameters))
        for listener in self._listeners:
            listener(old)
