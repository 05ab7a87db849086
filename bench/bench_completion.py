#!/usr/bin/env python3
"""One scene completion (issue 13): the time of IMENet on a whole 60 x 60 x 36 volume.

    python bench/bench_completion.py [--out build/bench] [--variants A E] [--iterations 1 2 3 4]
        [--repeats 5] [--seed 7] [--frame 40] [--threads 0]

Times ``pipeline.scene_completion.complete_frame`` as the node's ``~/complete_scene`` job and
``alster complete`` run it — the observed volume from the frame (flipped TSDF, visibility,
pixel -> voxel map), both branches and T rounds of mutual refinement — on frame --frame of
synthetic world --seed (320 x 240, randomized look) at the SSCNet volume (4.8 x 4.8 x
2.88 m, 8 cm). Each variant of the paper's Table 3 is built with its default settings
(weights untrained: the cost does not depend on them); variants without DCP and DDA (A, B)
have no refinement rounds, so they are timed once (T = 0). One warm-up call, then --repeats timed calls per row; prints the median
and p90 and writes ``bench_completion.json`` into --out.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from ablation_runs import write_report  # noqa: E402

from alster_mapping.core.timing_stats import summarize  # noqa: E402
from alster_mapping.data.sequences import SyntheticSequence  # noqa: E402
from alster_mapping.nets.imenet import VARIANTS, ImenetConfig, ImenetModel  # noqa: E402
from alster_mapping.pipeline.scene_completion import complete_frame  # noqa: E402


def time_completion(model: ImenetModel, frame, iterations: int, repeats: int) -> tuple[dict, int]:
    """(seconds per completion summarised, the volume's voxel count) over ``repeats`` calls after one warm-up."""
    result = complete_frame(model, frame, 0.0, iterations=iterations)
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        complete_frame(model, frame, 0.0, iterations=iterations)
        seconds.append(time.perf_counter() - start)
    return summarize(seconds), int(result.labels.size)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("build/bench"))
    parser.add_argument("--variants", nargs="+", default=["A", "E"], choices=VARIANTS)
    parser.add_argument("--iterations", type=int, nargs="+", default=[1, 2, 3, 4], help="refinement rounds T timed for the variants that have them")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7, help="synthetic world")
    parser.add_argument("--frame", type=int, default=40)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    frame = SyntheticSequence(args.seed, args.frame + 1, 320, 240).frame(args.frame)
    rows = []
    for variant in args.variants:
        model = ImenetModel(ImenetConfig.variant(variant, pretrained=False)).eval()
        interacts = model.dcp is not None or model.dda is not None  # A and B have no rounds to time
        for t in args.iterations if interacts else [0]:
            stats, voxels = time_completion(model, frame, t, args.repeats)
            rows.append({"variant": variant, "iterations": t, "voxels": voxels, "seconds": stats})
    print(f"one completion of synthetic:{args.seed} frame {args.frame} (320x240), {torch.get_num_threads()} torch threads, {args.repeats} runs")
    print("| variant | refinement rounds T | voxels | median [s] | p90 [s] |")
    print("|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['variant']} | {row['iterations']} | {row['voxels']} | {row['seconds']['median']:.2f} | {row['seconds']['p90']:.2f} |")
    report = {
        "command": "python " + " ".join(sys.argv),
        "machine": {"processor": platform.processor(), "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__},
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "rows": rows,
    }
    write_report(args.out, "bench_completion.json", report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
