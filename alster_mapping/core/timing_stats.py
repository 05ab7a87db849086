"""Small helpers the benchmarks in ``bench/`` share: latency summaries and image sizes."""

from __future__ import annotations

import argparse
import statistics

import numpy as np


def parse_size(text: str) -> tuple[int, int]:
    """'320x240' -> (320, 240) (an argparse type: bad text raises ArgumentTypeError)."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"size must be WIDTHxHEIGHT, got {text!r}") from exc
    if w < 8 or h < 8:
        raise argparse.ArgumentTypeError(f"size {text!r} is too small")
    return w, h


def summarize(values: list[float]) -> dict[str, float]:
    """median / p90 / min / max / mean of a non-empty list of numbers."""
    return {
        "median": float(statistics.median(values)),
        "p90": float(np.percentile(values, 90)),
        "min": float(min(values)),
        "max": float(max(values)),
        "mean": float(statistics.fmean(values)),
    }
