"""``/diagnostics`` of the mapping node: one ``diagnostic_msgs/DiagnosticStatus`` of flat key/values.

``diagnostic_status`` flattens nested dicts (``latency.total.mean_ms``) and formats numbers
compactly, so ``rqt_runtime_monitor`` and ``ros2 topic echo /diagnostics`` show every counter.
"""

from __future__ import annotations

import os
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

OK, WARN, ERROR = DiagnosticStatus.OK, DiagnosticStatus.WARN, DiagnosticStatus.ERROR


def flatten_values(values: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """Nested dict -> [(dotted key, text)]; floats with 4 significant digits."""
    out: list[tuple[str, str]] = []
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out += flatten_values(value, name + ".")
        elif isinstance(value, float):
            out.append((name, f"{value:.4g}"))
        else:
            out.append((name, str(value)))
    return out


def diagnostic_status(name: str, level: int, message: str, values: dict[str, Any], hardware_id: str = "") -> DiagnosticStatus:
    """A ``DiagnosticStatus`` (level: OK, WARN or ERROR as bytes) with ``values`` flattened to key/values."""
    return DiagnosticStatus(
        level=bytes([level]) if isinstance(level, int) else level,
        name=name,
        message=message,
        hardware_id=hardware_id,
        values=[KeyValue(key=k, value=v) for k, v in flatten_values(values)],
    )


def diagnostic_array(statuses: list[DiagnosticStatus], stamp=None) -> DiagnosticArray:
    """A ``DiagnosticArray`` of ``statuses`` stamped ``stamp`` (builtin_interfaces/Time)."""
    msg = DiagnosticArray(status=statuses)
    if stamp is not None:
        msg.header.stamp = stamp
    return msg


def process_memory_bytes() -> int:
    """Resident memory of this process [bytes] (psutil when importable, else /proc or the peak RSS)."""
    try:
        import psutil  # noqa: PLC0415

        return int(psutil.Process(os.getpid()).memory_info().rss)
    except ImportError:
        pass
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import resource  # noqa: PLC0415

        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024
