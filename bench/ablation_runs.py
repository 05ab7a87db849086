"""What the ablation benches share (``instance_ablation.py``, ``transfer_ablation.py``,
``safnet_ablation.py``): runs go seed-major, each one timed and printed as it ends (a long
ablation shows its progress, and a rerun skips the finished runs), and a variant's spread
over seeds is its mean and sample standard deviation."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from alster_mapping.core.atomic_file import write_text_atomic


def mean_std(values: Iterable[float]) -> dict:
    """{"mean", "std"} of ``values`` (std with ddof 1; 0 for a single value)."""
    array = np.array(list(values), float)
    return {"mean": float(array.mean()), "std": float(array.std(ddof=1)) if len(array) > 1 else 0.0}


def run_seed_major(
    seeds: list[int], variants: list[str], run: Callable[[str, int], dict], describe: Callable[[dict], str]
) -> list[dict]:
    """``run(variant, seed)`` for every seed, then every variant; after each run one line
    ``VARIANT seed SEED: describe(result) [SECONDS s]``. Returns the results in run order."""
    results = []
    for seed in seeds:
        for variant in variants:
            start = time.perf_counter()
            result = run(variant, seed)
            results.append(result)
            print(f"{variant} seed {seed}: {describe(result)} [{time.perf_counter() - start:.0f} s]", flush=True)
    return results


def write_report(out: Path, name: str, report: dict) -> Path:
    """Write ``report`` as ``out/name`` (JSON, atomically) and say where."""
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / name, json.dumps(report, indent=2))
    print(f"wrote {out / name}")
    return out / name
