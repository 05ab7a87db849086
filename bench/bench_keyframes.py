#!/usr/bin/env python3
"""The keyframe store's cost in the live node (issue 12): memory per keyframe, how many the
default budget holds, and the time ``KeyframeStore.consider`` adds to each mapped frame.

    python bench/bench_keyframes.py [--out build/bench] [--frames 120] [--seeds 7 8]

Walks synthetic worlds (the ``make demo`` world and another held-out one) at 320x240 and
640x480 through a store with the node's defaults (``KeyframeConfig``), as the node offers
it every mapped frame. Reports per resolution: keyframes kept of the frames offered, MB per
keyframe, keyframes the default budget holds, and the median and 90th percentile of
``consider`` per frame. Prints a table and writes ``bench_keyframes.json`` into --out.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from alster_mapping.core.atomic_file import write_text_atomic  # noqa: E402
from alster_mapping.data.sequences import SyntheticSequence  # noqa: E402
from alster_mapping.pipeline.keyframes import KeyframeConfig, KeyframeStore  # noqa: E402

RESOLUTIONS = ((320, 240), (640, 480))


def measure(seeds: list[int], frames: int, width: int, height: int) -> dict:
    config = KeyframeConfig()
    kept, offered, times, sizes = 0, 0, [], []
    for seed in seeds:
        store = KeyframeStore(config)
        for frame in SyntheticSequence(seed, frames, width, height):
            start = time.perf_counter()
            store.consider(frame)
            times.append(time.perf_counter() - start)
        offered += frames
        kept += len(store)
        sizes += [k.nbytes for k in store.keyframes()]
    per_keyframe = float(np.mean(sizes)) / 1e6
    return {
        "resolution": f"{width}x{height}",
        "frames_offered": offered,
        "keyframes_kept": kept,
        "mb_per_keyframe": round(per_keyframe, 3),
        "budget_holds": int(min(config.max_count, config.max_megabytes // per_keyframe)),
        "consider_ms_median": round(1e3 * float(np.median(times)), 3),
        "consider_ms_p90": round(1e3 * float(np.percentile(times, 90)), 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("build/bench"))
    parser.add_argument("--frames", type=int, default=120, help="frames per world")
    parser.add_argument("--seeds", type=int, nargs="+", default=[7, 8], help="held-out synthetic worlds")
    args = parser.parse_args(argv)
    rows = [measure(args.seeds, args.frames, w, h) for w, h in RESOLUTIONS]
    config = KeyframeConfig()
    print(f"default budget: {config.max_count} keyframes, {config.max_megabytes:g} MB; new keyframe at >= {config.min_new_fraction:.0%} new cells")
    print("| resolution | kept / offered | MB per keyframe | budget holds | consider median [ms] | p90 [ms] |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['resolution']} | {r['keyframes_kept']} / {r['frames_offered']} | {r['mb_per_keyframe']:.2f} | {r['budget_holds']} "
            f"| {r['consider_ms_median']:.2f} | {r['consider_ms_p90']:.2f} |"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    report = {"command": "python " + " ".join(sys.argv), "machine": platform.processor() or platform.machine(), "rows": rows}
    write_text_atomic(args.out / "bench_keyframes.json", json.dumps(report, indent=2))
    print(f"wrote {args.out / 'bench_keyframes.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
