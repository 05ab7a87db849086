"""What every component of a node shares: its log, guarded callbacks and the way to exit.

``NodeRuntime`` is given the node and handed to each component (map server, live mapping,
later model services), so no component needs a base class or hooks of the node.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from rclpy.node import Node

from .node_log import NodeLog
from .worker import Counters

EXIT_WATCHDOG = 3
"""Exit code when the node gives up on a stuck or dying worker (``LiveMapping``'s watchdog)."""


class NodeRuntime:
    """node: the rclpy node. ``log`` never raises; ``counters`` hold every callback failure
    (``stats()["failures"]``); ``exit_code`` is what ``main`` returns after
    ``request_exit``."""

    def __init__(self, node: Node):
        self.node = node
        self.log = NodeLog(node.get_logger(), node.get_name(), node.context.ok)
        self.counters = Counters()
        self.exit_code = 0

    def guarded_service(self, name: str, handler: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
        """``handler`` for a service that never raises: an unexpected error answers ``success=false``.

        rclpy lets an exception in a service callback escape the executor, which ends the
        node; a failing request must only fail that request. Every failed request is
        counted as ``<name>.failed`` with its message, unexpected errors also as
        ``<name>.errors``, and logged.
        """

        @functools.wraps(handler)
        def callback(request, response):
            try:
                response = handler(request, response)
            except Exception as exc:  # noqa: BLE001 - a request must never take the node down
                self.counters.add(f"{name}.errors")
                response.success = False
                response.message = f"{name} failed: {type(exc).__name__}: {exc}"
                self.log.error(response.message)
            if not response.success:
                self.counters.add(f"{name}.failed", message=response.message)
            return response

        return callback

    def guarded_callback(self, name: str, callback: Callable[..., Any]) -> Callable[..., Any]:
        """``callback`` (a timer or subscription) that logs and counts unexpected errors instead of raising."""

        @functools.wraps(callback)
        def wrapper(*args):
            try:
                return callback(*args)
            except Exception as exc:  # noqa: BLE001 - an exception here would end the executor
                self.counters.add(f"{name}.errors", message=f"{type(exc).__name__}: {exc}")
                self.log.throttled(f"callback.{name}", f"{name} failed: {type(exc).__name__}: {exc}", "error")
                return None

        return wrapper

    def request_exit(self, code: int, reason: str) -> None:
        """End the node's spin with exit code ``code`` (``main`` returns it), logging ``reason``."""
        self.log.error(f"{reason}; exiting with code {code}")
        self.exit_code = code
        self.node.context.try_shutdown()
