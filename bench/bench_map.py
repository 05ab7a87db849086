#!/usr/bin/env python3
"""Benchmark of SemanticVoxelMap: per-frame update cost vs. map size, memory per voxel, save/load.

    python bench/bench_map.py [--out build/bench] [--voxels 5000000] [--quick]

Scene: a procedural building of box rooms (6 x 5 x 3 m, surfaces sampled every 2 cm
with 1 cm normal noise, like fused depth) voxelized at 4 cm. A 320x240 depth camera
(fx = fy = 277, ~60 degrees wide) walks a circle in the first room.

1. Per-frame update = ``insert`` (lookup, create new voxels) + ``read`` + ``write_rows``
   of every column for the voxels one frame touches. Both maps already hold those
   voxels (the steady state of a robot revisiting); the small map is filled up to 50k
   voxels from the first room, the large one with whole rooms up to 5M. Timed frame by
   frame interleaved so both see the same machine load; median and ratio reported.
2. Memory: process RSS before and after building the large map (after gc and
   ``malloc_trim``), divided by its voxel count.
3. Save and load of the large map (median of 3).

Prints a table and writes ``bench_map.json`` into --out.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import psutil
import torch

from alster_mapping.core.camera import CameraIntrinsics
from alster_mapping.core.config import MapConfig
from alster_mapping.core.geometry import observed_voxels, pack_keys, unpack_keys, voxel_keys
from alster_mapping.data.procedural_room import look_at
from alster_mapping.map.map_file import load_map, save_map
from alster_mapping.map.voxel_map import SemanticVoxelMap

VOXEL = 0.04
ROOM = np.array([6.0, 5.0, 3.0])
ROOM_PITCH = np.array([6.5, 5.5])  # rooms on a grid, 0.5 m walls apart
INTRINSICS = CameraIntrinsics(277.0, 277.0, 159.5, 119.5, 320, 240)


def rss_bytes() -> int:
    """Resident memory of this process after returning freed heap pages to the OS."""
    gc.collect()
    with contextlib.suppress(OSError):  # not glibc: RSS then includes freed heap pages
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    return psutil.Process().memory_info().rss


def room_surface_keys(origin: np.ndarray, rng: np.random.Generator, spacing: float = 0.02) -> torch.Tensor:
    """Voxel keys (V, 3) int32 of one room's six faces, sampled with normal noise."""
    points = []
    for axis in range(3):
        u, v = [a for a in range(3) if a != axis]
        gu = np.arange(0.0, ROOM[u], spacing)
        gv = np.arange(0.0, ROOM[v], spacing)
        uu, vv = np.meshgrid(gu, gv, indexing="ij")
        for side in (0.0, ROOM[axis]):
            p = np.zeros((uu.size, 3))
            p[:, u], p[:, v] = uu.ravel(), vv.ravel()
            p[:, axis] = side + rng.normal(0.0, 0.01, uu.size)
            points.append(p)
    pts = np.concatenate(points) + origin
    codes = torch.unique(pack_keys(voxel_keys(torch.from_numpy(pts), VOXEL)))
    return unpack_keys(codes)


def room_depth(T_world_camera: np.ndarray) -> np.ndarray:
    """(240, 320) float32 depth of the inside of the room at the origin, by ray-box exit distance."""
    h, w = INTRINSICS.height, INTRINSICS.width
    v, u = np.mgrid[0:h, 0:w]
    rays = np.stack([(u - INTRINSICS.cx) / INTRINSICS.fx, (v - INTRINSICS.cy) / INTRINSICS.fy, np.ones((h, w))], -1)
    d = rays.reshape(-1, 3) @ T_world_camera[:3, :3].T
    o = T_world_camera[:3, 3]
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(d > 0, (ROOM - o) / d, np.where(d < 0, -o / d, np.inf))
    return t.min(1).reshape(h, w).astype(np.float32)  # z = 1 rays: t is the depth


def camera_poses(n: int) -> list[np.ndarray]:
    """A camera at 1.5 m height walking a circle in the room and turning around."""
    poses = []
    for i in range(n):
        a = 2 * np.pi * i / n
        yaw = a + np.pi / 2
        eye = np.array([3.0 + 1.2 * np.cos(a), 2.5 + 1.0 * np.sin(a), 1.5])
        poses.append(look_at(eye, eye + np.array([np.cos(yaw), np.sin(yaw), -0.15])))
    return poses


def frame_update(voxel_map: SemanticVoxelMap, keys: torch.Tensor, feature: torch.Tensor) -> float:
    """One frame's map work (lookup + create + read + write every column); returns seconds."""
    start = time.perf_counter()
    with voxel_map.lock:
        rows = voxel_map.insert(keys)
        old = voxel_map.read(rows)
        voxel_map.write_rows(
            rows,
            feature=feature,
            count=old.count.to(torch.int64) + 1,
            label=torch.remainder(old.label.to(torch.int64) + 1, 20),
            confidence=torch.full((keys.shape[0],), 0.5),
            color=old.color,
        )
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("build/bench"))
    parser.add_argument("--voxels", type=int, default=5_000_000, help="size of the large map")
    parser.add_argument("--small", type=int, default=50_000, help="size of the small map")
    parser.add_argument("--frames", type=int, default=30, help="frames timed per map size")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a smoke run for tests)")
    args = parser.parse_args(argv)
    if args.quick:
        args.voxels, args.small, args.frames = 300_000, 20_000, 6
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    rng = np.random.default_rng(0)

    # -- the frames: voxel keys one 320x240 frame touches ------------------------------------
    frames = []
    for T in camera_poses(args.frames):
        keys, _, _ = observed_voxels(torch.from_numpy(room_depth(T)), INTRINSICS, T, VOXEL, max_range=3.0)
        frames.append(unpack_keys(torch.unique(pack_keys(keys))))
    frame_voxels = [int(k.shape[0]) for k in frames]
    features = [torch.randn(k.shape[0], 40) for k in frames]

    # -- the maps: both hold every voxel the frames touch (steady state: revisiting) ---------------
    frame_union = unpack_keys(torch.unique(pack_keys(torch.cat(frames))))
    first_room = room_surface_keys(np.zeros(3), rng)
    fill = first_room[torch.from_numpy(rng.permutation(first_room.shape[0]))[: max(args.small - frame_union.shape[0], 0)]]
    small_keys = unpack_keys(torch.unique(pack_keys(torch.cat([frame_union, fill]))))
    small = SemanticVoxelMap(MapConfig(voxel_size=VOXEL))
    small.write(small_keys, feature=torch.randn(small_keys.shape[0], 40))

    rooms_per_row = 8
    room_keys = [unpack_keys(torch.unique(pack_keys(torch.cat([frame_union, first_room]))))]
    n_total = room_keys[0].shape[0]
    i = 1
    while n_total < args.voxels:
        gx, gy = i % rooms_per_row, i // rooms_per_row
        k = room_surface_keys(np.array([gx * ROOM_PITCH[0], gy * ROOM_PITCH[1], 0.0]), rng)
        room_keys.append(k)
        n_total += k.shape[0]
        i += 1
    rss_before = rss_bytes()
    large = SemanticVoxelMap(MapConfig(voxel_size=VOXEL))
    build_start = time.perf_counter()
    for k in room_keys:  # one room at a time, as a robot would add them
        large.write(k, feature=torch.randn(k.shape[0], 40, dtype=torch.float16), color=torch.full((k.shape[0], 3), 128, dtype=torch.uint8))
    build_s = time.perf_counter() - build_start
    rss_after = rss_bytes()
    n_large = len(large)
    bytes_per_voxel = (rss_after - rss_before) / n_large

    # -- per-frame update, interleaved -------------------------------------------------------------
    for k, f in zip(frames[:3], features[:3]):  # warm-up
        frame_update(small, k, f)
        frame_update(large, k, f)
    t_small, t_large = [], []
    for j, (k, f) in enumerate(zip(frames, features)):
        order = [(small, t_small), (large, t_large)]
        for m, times in order if j % 2 == 0 else order[::-1]:
            times.append(frame_update(m, k, f))
    med_small, med_large = statistics.median(t_small), statistics.median(t_large)

    # -- save / load -------------------------------------------------------------------------------
    save_s, load_s = [], []
    with tempfile.TemporaryDirectory(dir=args.out if args.out.exists() else None) as tmp:
        path = Path(tmp) / "large.safetensors"
        for _ in range(3):
            t0 = time.perf_counter()
            save_map(large, path)
            save_s.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            loaded = load_map(path)
            load_s.append(time.perf_counter() - t0)
            assert len(loaded) == len(large)
            del loaded
        file_bytes = path.stat().st_size

    result = {
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "torch_threads": torch.get_num_threads()},
        "voxel_size_m": VOXEL,
        "feature_dim": 40,
        "frame": {"width": 320, "height": 240, "voxels_median": int(statistics.median(frame_voxels))},
        "small_map_voxels": len(small),
        "large_map_voxels": n_large,
        "large_map_blocks": large.num_blocks,
        "voxels_per_block": n_large / large.num_blocks,
        "frame_update_ms": {
            "small_median": med_small * 1e3,
            "large_median": med_large * 1e3,
            "small_p90": float(np.percentile(t_small, 90) * 1e3),
            "large_p90": float(np.percentile(t_large, 90) * 1e3),
            "ratio_large_to_small": med_large / med_small,
            "goal_ratio_max": 1.3,
        },
        "memory": {
            "rss_delta_bytes": rss_after - rss_before,
            "bytes_per_voxel": bytes_per_voxel,
            "estimate_bytes_per_voxel": large.nbytes() / n_large,
            "goal_bytes_per_voxel_max": 128,
        },
        "build_s": build_s,
        "save_s_median": statistics.median(save_s),
        "load_s_median": statistics.median(load_s),
        "file_bytes": file_bytes,
        "command": "python bench/bench_map.py " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_map.json").write_text(json.dumps(result, indent=2))

    fu = result["frame_update_ms"]
    rows = [
        ("voxels touched per 320x240 frame (median)", f"{result['frame']['voxels_median']}"),
        (f"frame update, map of {len(small):,} voxels (median / p90)", f"{fu['small_median']:.2f} / {fu['small_p90']:.2f} ms"),
        (f"frame update, map of {n_large:,} voxels (median / p90)", f"{fu['large_median']:.2f} / {fu['large_p90']:.2f} ms"),
        ("ratio large / small (goal <= 1.3)", f"{fu['ratio_large_to_small']:.2f}"),
        ("memory per voxel incl. index, RSS (goal <= 128 B)", f"{bytes_per_voxel:.1f} B"),
        ("voxels per index block", f"{result['voxels_per_block']:.1f}"),
        (f"build {n_large:,} voxels (room by room)", f"{build_s:.2f} s"),
        (f"save {n_large:,} voxels (median of 3)", f"{result['save_s_median']:.2f} s ({file_bytes / 2**20:.0f} MiB)"),
        (f"load {n_large:,} voxels (median of 3)", f"{result['load_s_median']:.2f} s"),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"{'SemanticVoxelMap benchmark':<{width}}  result")
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    print(f"wrote {args.out / 'bench_map.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
