"""Logging for the nodes that can never raise, throttled per kind of message.

Why not ``node.get_logger().<level>(...)`` from one helper: rclpy's logger remembers the
severity of each call site (file, line, bytecode offset) and raises ``ValueError:
Logger severity cannot be changed between calls`` when the same line logs at another
severity later. A helper that forwards every severity through one line therefore
crashes the thread that logs second (a worker after a successful ``~/save_map``, a
service after a skipped frame). ``NodeLog`` gives every severity its own call site,
and whatever still goes wrong in logging (a shut-down context, a closed stream) falls
back to stderr and is swallowed: a log line is never worth a dead node.

No rclpy import: the logger is any object with ``debug/info/warning/error`` methods.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable
from typing import Any

from .worker import Throttle

LEVELS = ("debug", "info", "warning", "error")


class NodeLog:
    """A node's log that cannot raise: ``info(msg)``, ``warning(msg)``, ..., and ``throttled(kind, msg)``.

    logger: an rclpy ``RcutilsLogger`` (or anything with the four level methods).
    name: printed in the stderr fallback. usable: returns False once the rclpy context
    is shut down (messages then go to stderr, as /rosout is gone). throttle_period:
    seconds between two messages of the same kind in ``throttled``.
    """

    def __init__(self, logger: Any, name: str, usable: Callable[[], bool] = lambda: True, throttle_period: float = 5.0):
        self._logger = logger
        self._name = name
        self._usable = usable
        self.throttle = Throttle(throttle_period)

    def debug(self, message: str) -> None:
        self.log("debug", message)

    def info(self, message: str) -> None:
        self.log("info", message)

    def warning(self, message: str) -> None:
        self.log("warning", message)

    def error(self, message: str) -> None:
        self.log("error", message)

    def log(self, level: str, message: str) -> None:
        """Log ``message`` at ``level`` (one of ``LEVELS``; anything else logs as error). Never raises."""
        try:
            if not self._usable():
                raise RuntimeError("the ROS context is shut down")
            # One call site per severity: rclpy ties a call site to its first severity.
            if level == "debug":
                self._logger.debug(message)
            elif level == "info":
                self._logger.info(message)
            elif level == "warning":
                self._logger.warning(message)
            else:
                self._logger.error(message)
        except Exception:  # noqa: BLE001 - logging must never take the node down
            self._fallback(level, message)

    def throttled(self, kind: str, message: str, level: str = "warning") -> bool:
        """Log ``message`` at most once per throttle period per ``kind``, saying how many were held back.

        Returns whether it was logged. Never raises.
        """
        try:
            held = self.throttle(kind)
        except Exception:  # noqa: BLE001
            held = 0
        if held is None:
            return False
        suffix = f" ({held} more like it since the last report)" if held else ""
        self.log(level, message + suffix)
        return True

    def _fallback(self, level: str, message: str) -> None:
        with contextlib.suppress(Exception):  # stderr itself may be closed
            print(f"[{level.upper()}] [{self._name}]: {message}", file=sys.stderr, flush=True)
