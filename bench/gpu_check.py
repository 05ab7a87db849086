#!/usr/bin/env python3
"""The GPU check: the whole mapping step, the sparse U-Net and label fusion on a device, next
to the CPU reference, in one run of a few minutes on a machine that has only torch.

    python bench/gpu_check.py [--device cuda] [--out build/bench/gpu_check.json]
        [--frames-file build/gpu_check/frames.npz] [--frames 16] [--passes 3]
        [--sizes 320x240 640x480] [--cpu-threads 0] [--quick]

The GPU machines have PyTorch with CUDA but no Open3D (which renders the synthetic worlds),
MinkowskiEngine or ROS. So frames come from --frames-file, an .npz written on a machine with
Open3D (``python bench/gpu_check.py --save-frames build/gpu_check/frames.npz``, or any first
run: a missing file is rendered and saved when Open3D imports). The frames are
``synthetic:0`` in the randomized style at the largest size; smaller sizes are integer
downscales of them (``core/downscale``), and every run replays them --passes times.

What runs, each on --device and on the CPU (the reference, same frames, same process):

    alster        OnlineMapper.step with the shipped model (models/*.safetensors, loaded
                  without the ImageNet wheels; an untrained network when absent), the map
                  on the device (``map.index = torch`` where Open3D is missing) -- per stage
    alster mixed  the same with ``alster.precision = mixed`` (float16 autocast on CUDA),
                  and the fraction of voxel labels equal to the float32 run
    unet3d        the sparse U-Net alone on each frame's lifted voxels
    label fusion  LabelFusion.integrate (the torch kernel on the device, auto on the CPU),
                  and the fraction of map labels equal between device and CPU

CUDA timings synchronise before each clock read. Issue 17's goals on an H100: ALSTER at
640x480 >= 60 frames/s (median), label fusion >= 1000 frames/s. Prints a table, writes JSON
to --out (a .json path or a directory). --quick: 160x120 and 80x60, 3 frames, 1 pass (the
CI smoke run, with ``--device cpu``).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from alster_mapping.core.atomic_file import atomic_path, write_text_atomic  # noqa: E402
from alster_mapping.core.camera import CameraIntrinsics  # noqa: E402
from alster_mapping.core.config import apply_overrides  # noqa: E402
from alster_mapping.core.downscale import downscale_frame  # noqa: E402
from alster_mapping.core.frame import RGBDFrame  # noqa: E402
from alster_mapping.core.timing_stats import parse_size, summarize  # noqa: E402
from alster_mapping.pipeline.lifting import lift_frame  # noqa: E402
from alster_mapping.pipeline.mapping_config import MappingConfig  # noqa: E402
from alster_mapping.pipeline.online_mapper import OnlineMapper  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHIPPED_MODEL = ROOT / "models" / "alster_scannet20_synthetic.safetensors"
GOALS = {"alster_640x480_fps_median_at_least": 60.0, "label_fusion_fps_median_at_least": 1000.0}
WARMUP_FRAMES = 2


# -- frames ------------------------------------------------------------------------------


def render_frames(count: int, size: tuple[int, int]) -> list[RGBDFrame]:
    """``synthetic:0`` in the randomized style (needs Open3D)."""
    from alster_mapping.data.sequences import SyntheticSequence

    return list(SyntheticSequence(0, count, size[0], size[1], style="randomized"))


def save_frames(path: Path, frames: list[RGBDFrame]) -> None:
    """Frames as one compressed .npz (no pickles): stacked images, poses and intrinsics."""
    first = frames[0]
    arrays = {
        "color": np.stack([f.color for f in frames]),
        "depth": np.stack([f.depth for f in frames]).astype(np.float32),
        "labels": np.stack([f.labels for f in frames]).astype(np.uint16),
        "poses": np.stack([f.T_world_camera for f in frames]),
        "stamps": np.array([f.stamp_ns for f in frames], dtype=np.int64),
        "intrinsics": np.array([first.intrinsics.fx, first.intrinsics.fy, first.intrinsics.cx, first.intrinsics.cy]),
    }
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:  # a handle: savez would append ".npz" to a name
        np.savez_compressed(handle, **arrays)


def load_frames(path: Path) -> list[RGBDFrame]:
    """Frames written by ``save_frames``."""
    with np.load(path, allow_pickle=False) as data:
        color, depth, labels, poses, stamps = (data[k] for k in ("color", "depth", "labels", "poses", "stamps"))
        fx, fy, cx, cy = (float(v) for v in data["intrinsics"])
    height, width = depth.shape[1:3]
    intrinsics = CameraIntrinsics(fx, fy, cx, cy, width, height)
    return [
        RGBDFrame(color=color[i], depth=depth[i], intrinsics=intrinsics, T_world_camera=poses[i], stamp_ns=int(stamps[i]), labels=labels[i])
        for i in range(len(depth))
    ]


def frames_at(frames: list[RGBDFrame], size: tuple[int, int]) -> list[RGBDFrame]:
    """The frames downscaled by the integer factor that gives ``size``."""
    width = frames[0].shape[1]
    factor = width // size[0]
    if factor < 1 or width != factor * size[0] or frames[0].shape[0] != factor * size[1]:
        raise ValueError(f"{size[0]}x{size[1]} is not an integer downscale of {width}x{frames[0].shape[0]}")
    return [downscale_frame(frame, factor) for frame in frames]


# -- runs --------------------------------------------------------------------------------------


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def mapping_config(device: torch.device, precision: str = "float32", mode: str = "alster") -> MappingConfig:
    overrides = [f"map.device={device}", f"alster.precision={precision}", f"mode={mode}"]
    if SHIPPED_MODEL.exists():
        overrides.append(f"alster.checkpoint={SHIPPED_MODEL}")
    else:
        overrides.append("model.encoder2d.pretrained=false")  # the cost does not depend on the weights
    return apply_overrides(MappingConfig(), overrides)


def run_mapper(config: MappingConfig, frames: list[RGBDFrame], passes: int) -> tuple[dict, list[torch.Tensor], OnlineMapper]:
    """Step through ``frames`` ``passes`` times; per-stage ms of all but the warm-up frames."""
    mapper = OnlineMapper(config)
    stages: dict[str, list[float]] = {}
    labels = []
    for i, frame in enumerate(frames * passes):
        result = mapper.step(frame)
        labels.append(result.labels.cpu())
        if i < WARMUP_FRAMES:
            continue
        for stage, seconds in result.timings.items():
            stages.setdefault(stage, []).append(seconds * 1e3)
    summary = {stage: summarize(ms) for stage, ms in stages.items()}
    summary["fps_median"] = 1e3 / summary["total"]["median"]
    return summary, labels, mapper


def agreement(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    """Fraction of equal labels over all frames' voxels."""
    same = sum(int((x == y).sum()) for x, y in zip(a, b))
    return same / max(1, sum(int(x.numel()) for x in a))


def run_unet(mapper: OnlineMapper, frames: list[RGBDFrame], passes: int) -> dict:
    """The sparse U-Net alone on each frame's voxels (inputs prepared untimed)."""
    model, device = mapper.model, mapper.device
    cfg = mapper.config.alster
    times = []
    with torch.inference_mode():
        for i, frame in enumerate(frames * passes):
            lifted = lift_frame(frame, mapper.map.voxel_size, cfg.max_range, cfg.min_range, device)
            features = torch.randn(lifted.num_voxels, model.feature_dim + model.geometry_channels, device=device)
            synchronize(device)
            start = time.perf_counter()
            model.unet3d(lifted.keys, features)
            synchronize(device)
            if i >= WARMUP_FRAMES:
                times.append((time.perf_counter() - start) * 1e3)
    return {"total": summarize(times), "fps_median": 1e3 / summarize(times)["median"]}


def run_label_fusion(device: torch.device, frames: list[RGBDFrame], passes: int) -> tuple[dict, OnlineMapper]:
    summary, _, mapper = run_mapper(mapping_config(device, mode="label_fusion"), frames, passes)
    return summary, mapper


def map_label_agreement(a: OnlineMapper, b: OnlineMapper) -> float:
    """Fraction of a's voxels that b holds with the same label."""
    keys, rows = a.map.items()
    mine = a.map.read(rows).label.cpu()
    theirs = b.map.crop(keys.to(b.map.device))
    same = theirs.found.cpu() & (theirs.label.cpu() == mine)
    return float(same.float().mean()) if len(mine) else 1.0


def check_size(frames: list[RGBDFrame], device: torch.device, passes: int, reference: bool) -> dict:
    cpu = torch.device("cpu")
    entry: dict = {"frames": len(frames) * passes, "warmup_frames": WARMUP_FRAMES}
    entry["alster"], labels, mapper = run_mapper(mapping_config(device), frames, passes)
    entry["alster_mixed"], mixed_labels, _ = run_mapper(mapping_config(device, "mixed"), frames, passes)
    entry["alster_mixed"]["labels_equal_to_float32"] = agreement(labels, mixed_labels)
    entry["unet3d"] = run_unet(mapper, frames, passes)
    entry["label_fusion"], fusion = run_label_fusion(device, frames, passes)
    if reference:
        entry["alster_cpu"], cpu_labels, _ = run_mapper(mapping_config(cpu), frames, passes)
        entry["alster_cpu"]["labels_equal_to_device"] = agreement(labels, cpu_labels)
        entry["label_fusion_cpu"], cpu_fusion = run_label_fusion(cpu, frames, passes)
        entry["label_fusion_cpu"]["map_labels_equal_to_device"] = map_label_agreement(fusion, cpu_fusion)
    return entry


def main(argv: list[str] | None = None) -> int:
    """Run the check (arguments as on the command line); returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "bench" / "gpu_check.json")
    parser.add_argument("--frames-file", type=Path, default=ROOT / "build" / "gpu_check" / "frames.npz")
    parser.add_argument("--save-frames", type=Path, help="render the frames, save them here and stop")
    parser.add_argument("--frames", type=int, default=16, help="frames rendered at the largest size")
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--sizes", type=parse_size, nargs="+", default=[(320, 240), (640, 480)])
    parser.add_argument("--cpu-threads", type=int, default=0, help="torch threads for the CPU runs (0 = torch's default)")
    parser.add_argument(
        "--reference", action=argparse.BooleanOptionalAction, default=None,
        help="also run everything on the CPU (default: when --device is not the CPU)",
    )
    parser.add_argument("--quick", action="store_true", help="160x120 and 80x60, 3 frames, 1 pass (a smoke run)")
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.frames, args.passes = [(80, 60), (160, 120)], 3 + WARMUP_FRAMES, 1
    if args.cpu_threads:
        torch.set_num_threads(args.cpu_threads)
    device = torch.device(args.device)
    largest = max(args.sizes, key=lambda s: s[0] * s[1])
    reference = device.type != "cpu" if args.reference is None else args.reference

    if args.save_frames:
        save_frames(args.save_frames, render_frames(args.frames, largest))
        print(f"wrote {args.frames} frames at {largest[0]}x{largest[1]} to {args.save_frames}")
        return 0
    if not args.quick and args.frames_file.exists():
        frames = load_frames(args.frames_file)
        source = str(args.frames_file)
    else:
        frames = render_frames(args.frames, largest)  # needs Open3D
        source = f"synthetic:0:{args.frames}@randomized rendered at {largest[0]}x{largest[1]}"
        if not args.quick:
            save_frames(args.frames_file, frames)

    started = time.perf_counter()
    results = {}
    for size in sorted(args.sizes, key=lambda s: s[0] * s[1]):
        results[f"{size[0]}x{size[1]}"] = check_size(frames_at(frames, size), device, args.passes, reference)
    report = {
        "check": "gpu_check",
        "command": "python bench/gpu_check.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "cpu_threads": torch.get_num_threads(),
        "frames_source": source,
        "model": str(SHIPPED_MODEL.relative_to(ROOT)) if SHIPPED_MODEL.exists() else "untrained",
        "goals": GOALS,
        "seconds": time.perf_counter() - started,
        "results": results,
    }
    out = args.out if args.out.suffix == ".json" else args.out / "gpu_check.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out, json.dumps(report, indent=2))
    print_table(report)
    print(f"wrote {out}")
    return 0


def print_table(report: dict) -> None:
    runs = ("alster", "alster_mixed", "alster_cpu", "unet3d", "label_fusion", "label_fusion_cpu")
    print(f"device {report['device']} ({report['device_name']}), torch {report['torch']}, {report['seconds']:.0f} s")
    print(f"{'size':<9} {'run':<17} {'median ms':>10} {'p90 ms':>8} {'frames/s':>9}  stages (median ms) / agreement")
    for size, entry in report["results"].items():
        for run in runs:
            if run not in entry:
                continue
            r = entry[run]
            stages = " ".join(f"{k} {v['median']:.1f}" for k, v in r.items() if isinstance(v, dict) and k != "total")
            extra = " ".join(f"{k} {v:.3f}" for k, v in r.items() if k.startswith(("labels_equal", "map_labels")))
            print(f"{size:<9} {run:<17} {r['total']['median']:>10.2f} {r['total']['p90']:>8.2f} {r['fps_median']:>9.1f}  {stages} {extra}")


if __name__ == "__main__":
    sys.exit(main())
