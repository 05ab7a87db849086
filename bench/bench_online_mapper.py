#!/usr/bin/env python3
"""Benchmark of OnlineMapper.step: per-stage latency of one ALSTER frame at 320x240 and 640x480.

    python bench/bench_online_mapper.py [--out build/bench/bench_online_mapper.json]
                                        [--frames 20] [--warmup 3] [--sizes 320x240 640x480]
                                        [--threads 2] [--profile 0] [--quick]

Input: ``alster_mapping.data.procedural_room.ProceduralRoom`` frames (floor, two walls, a
table and a chair; ~80 % of the pixels with depth within 3 m) from a camera moving on an
arc (~1.6 m of travel over the sequence), rendered before timing. The mapper runs the
DEFAULT configuration (``MappingConfig()``: 4 cm voxels, max range 3 m, EfficientNet-Lite0
DeepLabV3+ with ImageNet weights, sparse U-Net channels 16-32-48-64 on the PyTorch backend,
temporal expert with 5 layers) with untrained heads — the cost does not depend on the
weights. Every frame is integrated into the map; the first --warmup frames are not timed,
so the timed frames revisit voxels as a moving camera does.

Per stage (``StepResult.timings``: lift, 2d, 3d, crop, expert, write, total) the median,
p90, min and max over the timed frames, and the voxels per frame. At the first size the
same model on the MinkowskiEngine U-Net backend (same weights) runs too, when
MinkowskiEngine imports; the two mappers are interleaved frame by frame (order alternating)
so both see the same machine load. Goal (the issue): median total <= 250 ms at 320x240 in
the default configuration. --compare-inputs adds the paper's camera-only input layout
(``model.inputs = camera``, the first shipped model's) at the first size, interleaved the
same way: the cost of the gravity channels (issue 16: at most +10 %).

Threads: torch.set_num_threads(--threads), OMP_WAIT_POLICY=PASSIVE and
OPENBLAS_NUM_THREADS=2 (MinkowskiEngine's CPU products use OpenBLAS) unless set.
--profile N prints the N most expensive operators (torch.profiler, self CPU time) of the
default mapper over the timed frames at the first size, in a separate untimed pass.
Prints a table and writes JSON to --out (a .json path, or a directory to hold
bench_online_mapper.json). --quick: one 80x64 size, 3 timed frames (a smoke run).
"""

from __future__ import annotations

import os

# Thread pools read these when they start: before torch (and MinkowskiEngine) load.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "2")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

from alster_mapping.core.config import apply_overrides  # noqa: E402
from alster_mapping.core.timing_stats import parse_size, summarize  # noqa: E402
from alster_mapping.data.procedural_room import ProceduralRoom  # noqa: E402
from alster_mapping.nets import sparse as sp  # noqa: E402
from alster_mapping.pipeline.mapping_config import MappingConfig  # noqa: E402
from alster_mapping.pipeline.online_mapper import OnlineMapper  # noqa: E402

STAGES = ("lift", "2d", "3d", "crop", "expert", "write", "total")
GOAL_TOTAL_MS = 250.0
GOAL_SIZE = (320, 240)


class Run:
    """One mapper's timings over a frame sequence."""

    def __init__(self, name: str, mapper: OnlineMapper):
        self.name = name
        self.mapper = mapper
        self.ms: dict[str, list[float]] = {s: [] for s in STAGES}
        self.voxels: list[int] = []
        self.labels: list[torch.Tensor] = []

    def step(self, frame, timed: bool) -> None:
        result = self.mapper.step(frame)
        if timed:
            for stage in STAGES:
                self.ms[stage].append(result.timings[stage] * 1e3)
            self.voxels.append(int(result.keys.shape[0]))
            self.labels.append(result.labels)

    def report(self) -> dict:
        return {
            "backend": self.mapper.config.model.unet3d.backend,
            "frames_timed": len(self.voxels),
            "ms": {stage: summarize(v) | {"runs": v} for stage, v in self.ms.items()},
            "voxels_per_frame": summarize(self.voxels),
            "map_voxels_at_end": len(self.mapper.map),
        }


def profile_ops(mapper: OnlineMapper, frames: list, top: int) -> list[dict]:
    """The ``top`` operators by self CPU time over ``frames`` (torch.profiler), ms per frame."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for frame in frames:
            mapper.step(frame)
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)[:top]
    n = len(frames)
    return [
        {"op": e.key, "self_ms_per_frame": e.self_cpu_time_total / 1e3 / n, "calls_per_frame": e.count / n}
        for e in events
    ]


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (arguments as on the command line); returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("build/bench/bench_online_mapper.json"))
    parser.add_argument("--sizes", type=parse_size, nargs="+", default=[(320, 240), (640, 480)], help="WIDTHxHEIGHT ...")
    parser.add_argument("--frames", type=int, default=20, help="timed frames per size (>= 20 for the report)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed frames first (integrated into the map)")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--profile", type=int, default=0, metavar="N", help="print the N most expensive operators")
    parser.add_argument("--no-minkowski", action="store_true", help="skip the MinkowskiEngine comparison")
    parser.add_argument(
        "--compare-inputs", action="store_true", help="at the first size also run the paper's camera-only input layout (model.inputs=camera)"
    )
    parser.add_argument("--quick", action="store_true", help="80x64, 3 timed frames (a smoke run)")
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.frames, args.warmup = [(80, 64)], 3, 1
    if args.frames < 1 or args.warmup < 0:
        parser.error("--frames must be >= 1 and --warmup >= 0")
    torch.set_num_threads(args.threads)
    out_path = args.out / "bench_online_mapper.json" if args.out.suffix != ".json" else args.out

    minkowski_skipped = None
    if args.no_minkowski:
        minkowski_skipped = "--no-minkowski"
    elif not sp.minkowski_available():
        minkowski_skipped = sp.minkowski_unavailable_reason() or "MinkowskiEngine does not import"

    config = MappingConfig()
    torch.manual_seed(0)
    build_start = time.perf_counter()
    reference = OnlineMapper(config)
    build_s = time.perf_counter() - build_start
    parameters = reference.model.parameter_counts()

    sizes = []
    profile = None
    for index, (width, height) in enumerate(args.sizes):
        room = ProceduralRoom(width=width, height=height, seed=0)
        frames = room.frames(args.warmup + args.frames)
        valid = [float(((f.depth > config.alster.min_range) & (f.depth <= config.alster.max_range)).mean()) for f in frames]
        runs = [Run("default", OnlineMapper(config, model=reference.model))]
        if index == 0 and minkowski_skipped is None:
            me_config = apply_overrides(config, {"model.unet3d.backend": "minkowski"})
            me_mapper = OnlineMapper(me_config)
            me_mapper.model.load_state_dict(reference.model.state_dict())  # same weights, other U-Net backend
            runs.append(Run("minkowski", me_mapper))
        if index == 0 and args.compare_inputs and config.model.inputs != "camera":
            torch.manual_seed(0)
            runs.append(Run("camera_inputs", OnlineMapper(apply_overrides(config, {"model.inputs": "camera"}))))
        for i, frame in enumerate(frames):
            for run in runs if i % 2 == 0 else runs[::-1]:
                run.step(frame, timed=i >= args.warmup)
        entry = {
            "width": width,
            "height": height,
            "frames_rendered": len(frames),
            "valid_depth_fraction": summarize(valid),
            "runs": {run.name: run.report() for run in runs},
        }
        named = {run.name: run for run in runs}
        if "minkowski" in named:
            same = [float((a == b).float().mean()) for a, b in zip(runs[0].labels, named["minkowski"].labels)]
            entry["labels_equal_fraction_torch_vs_minkowski"] = min(same)
        if "camera_inputs" in named:
            # The gravity channels' cost: the same frames, interleaved, against the paper's inputs.
            medians = {name: entry["runs"][name]["ms"]["total"]["median"] for name in ("default", "camera_inputs")}
            entry["gravity_inputs_over_camera_inputs"] = medians["default"] / medians["camera_inputs"]
        if (width, height) == GOAL_SIZE:
            total = entry["runs"]["default"]["ms"]["total"]
            entry["goal"] = {"total_ms_max": GOAL_TOTAL_MS, "median_met": total["median"] <= GOAL_TOTAL_MS, "p90_met": total["p90"] <= GOAL_TOTAL_MS}
        sizes.append(entry)
        if index == 0 and args.profile > 0:
            fresh = OnlineMapper(config, model=reference.model)
            for frame in frames[: args.warmup]:
                fresh.step(frame)
            profile = {"width": width, "height": height, "ops": profile_ops(fresh, frames[args.warmup :], args.profile)}

    result = {
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY"),
            "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS"),
            "minkowski_engine": None if minkowski_skipped else sp.import_minkowski().__version__,
        },
        "config": {
            "voxel_size_m": config.map.voxel_size,
            "max_range_m": config.alster.max_range,
            "encoder2d": config.model.encoder2d.backbone,
            "pretrained": config.model.encoder2d.pretrained,
            "unet3d_channels": list(config.model.unet3d.channels),
            "unet3d_backend": config.model.unet3d.backend,
            "expert_layers": config.model.expert.layers,
        },
        "parameters": parameters,
        "model_build_s": build_s,
        "stages": list(STAGES),
        "frames_timed": args.frames,
        "warmup_frames": args.warmup,
        "minkowski_skipped": minkowski_skipped,
        "sizes": sizes,
        "profile": profile,
        "command": "python bench/bench_online_mapper.py " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(result, indent=2))

    columns = [(f"{e['width']}x{e['height']} {name}", e, run) for e in sizes for name, run in e["runs"].items()]
    print(
        f"OnlineMapper.step, default configuration, threads={torch.get_num_threads()}, "
        f"{args.frames} timed frames after {args.warmup} warm-up; median / p90 ms"
    )
    header = f"{'stage':<8}" + "".join(f"  {c[0]:>22}" for c in columns)
    print(header)
    print("-" * len(header))
    for stage in STAGES:
        cells = "".join(f"  {r['ms'][stage]['median']:>10.1f} / {r['ms'][stage]['p90']:>7.1f}" for _, _, r in columns)
        print(f"{stage:<8}{cells}")
    print(f"{'voxels':<8}" + "".join(f"  {int(r['voxels_per_frame']['median']):>22,}" for _, _, r in columns))
    for e in sizes:
        if "goal" in e:
            g, t = e["goal"], e["runs"]["default"]["ms"]["total"]
            print(
                f"goal at {e['width']}x{e['height']}: total <= {g['total_ms_max']:.0f} ms -> median {t['median']:.1f} ms "
                f"({'met' if g['median_met'] else 'NOT met'}), p90 {t['p90']:.1f} ms ({'met' if g['p90_met'] else 'NOT met'})"
            )
        if "labels_equal_fraction_torch_vs_minkowski" in e:
            print(f"labels equal torch vs minkowski (worst frame): {e['labels_equal_fraction_torch_vs_minkowski']:.4f}")
        if "gravity_inputs_over_camera_inputs" in e:
            ratio = e["gravity_inputs_over_camera_inputs"]
            print(f"gravity inputs / camera inputs, median total: {ratio:.3f} (goal <= 1.10: {'met' if ratio <= 1.10 else 'NOT met'})")
    print("parameters: " + ", ".join(f"{k} {v:,}" for k, v in parameters.items()))
    if minkowski_skipped:
        print(f"minkowski skipped: {minkowski_skipped}")
    if profile:
        print(f"top operators at {profile['width']}x{profile['height']} (self CPU ms per frame, calls per frame):")
        for op in profile["ops"]:
            print(f"  {op['op']:<36} {op['self_ms_per_frame']:>8.2f}  {op['calls_per_frame']:>7.1f}")
    print(f"wrote {out_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
