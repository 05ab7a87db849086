"""A node's configs as ROS parameters: declared once, checked and applied at run time.

``NodeParameters`` declares one parameter per leaf of each config section (``ros/params.py``),
keeps the current, validated config objects (``parameters.config``, ``.server_config``, ...),
refuses changes of fixed parameters and invalid values before they happen, and tells the
components after a change (``on_change``). Components read the configs through it, so
they always see the current values.
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
    each becomes an attribute holding the current values. fixed: whether a parameter name
    may not change while the node runs. Raises ``ParameterError`` listing every invalid
    value of every section.
    """

    def __init__(self, node: Node, runtime: NodeRuntime, sections: dict[str, Any], fixed: Callable[[str], bool]):
        self._node = node
        self._sections = list(sections)
        self._fixed = fixed
        self._listeners: list[Callable[[dict[str, Any]], None]] = []
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

    def on_change(self, listener: Callable[[dict[str, Any]], None]) -> None:
        """Call ``listener(old)`` after every accepted change; ``old``: section -> its previous config."""
        self._listeners.append(listener)

    def set(self, section: str, config: Any, parameters: list[Parameter]) -> None:
        """Replace ``section`` with ``config`` and publish the matching ``parameters`` (at
        start-up, before ``watch``: a loaded map's geometry wins over the parameters)."""
        setattr(self, section, config)
        self._node.set_parameters(parameters)

    def _check(self, parameters: list[Parameter]) -> SetParametersResult:
        fixed = [p.name for p in parameters if self._fixed(p.name)]
        if fixed:
            return SetParametersResult(
                successful=False,
                reason=f"{', '.join(fixed)} fixed while the node runs (the live map's geometry); restart the node",
            )
        try:
            for attr in self._sections:
                apply_parameters(getattr(self, attr), parameters)
        except ValueError as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        return SetParametersResult(successful=True)

    def _apply(self, parameters: list[Parameter]) -> None:
        old = {attr: getattr(self, attr) for attr in self._sections}
        for attr in self._sections:
            setattr(self, attr, apply_parameters(getattr(self, attr), parameters))
        for listener in self._listeners:
            listener(old)
