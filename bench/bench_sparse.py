#!/usr/bin/env python3
"""Benchmark of the sparse 3D U-Net (ALSTER's 3D encoder) on both sparse backends.

    python bench/bench_sparse.py [--out build/bench/bench_sparse.json] [--sizes 10000 50000]
                                 [--repeats 15] [--quick]

One ``UNet3D`` (default configuration) runs on the pure-PyTorch backend and on
MinkowskiEngine with the same weights (the state_dict of one loaded into the other) and the
same input: the N voxels nearest to a camera inside its 70-degree view cone, from a
furnished room (walls, floor, ceiling and box furniture sampled every 1 cm with 5 mm
normal noise, voxelized at 4 cm) — a surface scene like a lifted depth frame (~10k) or a
small fused local volume (~50k); N = 10k and 50k by default.

Timed, interleaved backend by backend so both see the same machine load: forward
(eval mode, no autograd) and forward + backward (train mode, focal-free stand-in loss:
mean squared features + cross-entropy of the logits). Times include everything a frame
costs: building the coordinate manager, kernel maps and strided sets. 2 threads
(OMP_WAIT_POLICY=PASSIVE, OPENBLAS_NUM_THREADS=2 — MinkowskiEngine's CPU products use
OpenBLAS threads — and torch.set_num_threads(2)). Prints a table (min / median of
``--repeats`` runs) and writes JSON to --out (a .json path, or a directory to hold
bench_sparse.json).
"""

from __future__ import annotations

import os

# Thread pools read these when they start: before torch (and MinkowskiEngine) load.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "2")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from alster_mapping.nets import sparse as sp  # noqa: E402
from alster_mapping.nets.unet3d import UNet3D  # noqa: E402

VOXEL = 0.04
ROOM = (6.0, 5.0, 3.0)
CAMERA = np.array([0.4, 0.4, 1.4])
LOOK_AT = np.array([5.5, 4.5, 0.7])
HALF_ANGLE_DEG = 35.0


def _box_surface(lo: np.ndarray, hi: np.ndarray, rng: np.random.Generator, spacing: float = 0.01) -> np.ndarray:
    """Points (M, 3) on the six faces of an axis-aligned box, with 5 mm normal noise."""
    faces = []
    for axis in range(3):
        u, v = [a for a in range(3) if a != axis]
        gu = np.arange(lo[u], hi[u], spacing)
        gv = np.arange(lo[v], hi[v], spacing)
        uu, vv = np.meshgrid(gu, gv, indexing="ij")
        for side in (lo[axis], hi[axis]):
            p = np.empty((uu.size, 3))
            p[:, u], p[:, v] = uu.ravel(), vv.ravel()
            p[:, axis] = side + rng.normal(0.0, 0.005, uu.size)
            faces.append(p)
    return np.concatenate(faces)


def scene_voxels(n: int, seed: int = 0) -> torch.Tensor:
    """Voxel keys (n, 3) int32 (4 cm) of a furnished room nearest to the camera in its view
    cone, in random row order. Raises ValueError if the room has fewer than n such voxels."""
    rng = np.random.default_rng(seed)
    points = [_box_surface(np.zeros(3), np.array(ROOM), rng)]
    for _ in range(14):  # tables, cabinets, boxes, a few stacked
        size = rng.uniform([0.3, 0.3, 0.3], [1.6, 1.0, 1.2])
        lo = np.array([rng.uniform(0.2, ROOM[0] - size[0] - 0.2), rng.uniform(0.2, ROOM[1] - size[1] - 0.2), 0.0])
        if rng.random() < 0.3:
            lo[2] = rng.uniform(0.5, 1.2)
        points.append(_box_surface(lo, lo + size, rng))
    pts = np.concatenate(points)
    direction = (LOOK_AT - CAMERA) / np.linalg.norm(LOOK_AT - CAMERA)
    rel = pts - CAMERA
    dist = np.linalg.norm(rel, axis=1)
    pts = pts[rel @ direction > dist * np.cos(np.radians(HALF_ANGLE_DEG))]
    keys = np.unique(np.floor(pts / VOXEL).astype(np.int64), axis=0)
    if len(keys) < n:
        raise ValueError(f"the scene has only {len(keys)} voxels in view, {n} requested")
    centre_dist = np.linalg.norm((keys + 0.5) * VOXEL - CAMERA, axis=1)
    keys = keys[np.argsort(centre_dist, kind="stable")[:n]]
    return torch.from_numpy(keys[rng.permutation(n)]).to(torch.int32)


def neighbours_per_voxel(keys: torch.Tensor) -> float:
    """Mean number of occupied voxels in each voxel's 3x3x3 neighbourhood (itself included)."""
    coords = torch.cat([torch.zeros((len(keys), 1), dtype=torch.int32), keys - keys.min(0).values], 1)
    x = sp.sparse_tensor(coords, torch.zeros((len(keys), 1)))
    return x.manager.kernel_map(x.key, x.key, 3, 1).num_pairs / len(keys)


def time_call(fn) -> float:
    """Wall time of fn() in seconds."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (arguments as on the command line); returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("build/bench/bench_sparse.json"))
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 50_000], help="voxels per input")
    parser.add_argument("--repeats", type=int, default=15, help="timed runs per backend, size and mode (>= 10)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed runs first")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--quick", action="store_true", help="tiny sizes and 2 repeats (a smoke run)")
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.repeats, args.warmup = [1500], 2, 1
    torch.set_num_threads(args.threads)
    out_path = args.out / "bench_sparse.json" if args.out.suffix != ".json" else args.out

    backends = ["torch"]
    skipped = ""
    if sp.minkowski_available():
        backends.append("minkowski")
        me_version = sp.import_minkowski().__version__
    else:
        skipped = sp.minkowski_unavailable_reason()
        me_version = None

    torch.manual_seed(0)
    reference = UNet3D(backend="torch")
    state = reference.state_dict()
    nets = {}
    for backend in backends:
        net = UNet3D(backend=backend)
        net.load_state_dict(state)
        nets[backend] = net
    num_parameters = reference.num_parameters

    results = []
    for n in args.sizes:
        keys = scene_voxels(n)
        extent = (keys.max(0).values - keys.min(0).values + 1).tolist()
        gen = torch.Generator().manual_seed(n)
        features = torch.randn((n, reference.in_channels), generator=gen)
        labels = torch.randint(0, reference.num_classes, (n,), generator=gen)

        def forward(net):
            """Inference pass (eval mode, no autograd) -> (features, logits)."""
            net.eval()
            with torch.no_grad():
                return net(keys, features)

        def forward_backward(net):
            """Training pass: forward in train mode, stand-in loss, backward."""
            net.train()
            net.zero_grad(set_to_none=True)
            out, logits = net(keys, features)
            (out.square().mean() + F.cross_entropy(logits, labels)).backward()

        outputs = {b: forward(nets[b]) for b in backends}
        agreement = None
        if "minkowski" in outputs:
            a, b = outputs["torch"], outputs["minkowski"]
            agreement = max(float((a[i] - b[i]).abs().max() / b[i].abs().max()) for i in range(2))
        for _ in range(args.warmup):
            for b in backends:
                forward(nets[b])
                forward_backward(nets[b])
        times = {(b, mode): [] for b in backends for mode in ("forward", "forward_backward")}
        for r in range(args.repeats):
            order = backends if r % 2 == 0 else backends[::-1]
            for b in order:
                times[(b, "forward")].append(time_call(lambda: forward(nets[b])))
            for b in order:
                times[(b, "forward_backward")].append(time_call(lambda: forward_backward(nets[b])))
        entry = {
            "voxels": n,
            "extent_voxels": extent,
            "neighbours_per_voxel": neighbours_per_voxel(keys),
            "max_relative_difference_torch_vs_minkowski": agreement,
            "ms": {
                f"{b}/{mode}": {
                    "min": min(v) * 1e3,
                    "median": statistics.median(v) * 1e3,
                    "runs": [t * 1e3 for t in v],
                }
                for (b, mode), v in times.items()
            },
        }
        results.append(entry)

    result = {
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "torch": torch.__version__,
            "minkowski_engine": me_version,
            "torch_threads": torch.get_num_threads(),
            "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY"),
            "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS"),
        },
        "model": {
            "class": "UNet3D",
            "channels": list(reference.channels),
            "blocks": list(reference.blocks),
            "in_channels": reference.in_channels,
            "feature_dim": reference.feature_dim,
            "num_classes": reference.num_classes,
            "parameters": num_parameters,
        },
        "voxel_size_m": VOXEL,
        "repeats": args.repeats,
        "backends": backends,
        "minkowski_skipped": skipped or None,
        "results": results,
        "command": "python bench/bench_sparse.py " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(result, indent=2))

    print(f"UNet3D channels={list(reference.channels)} parameters={num_parameters:,}  "
          f"threads={torch.get_num_threads()}  min / median of {args.repeats} runs, ms")
    header = f"{'voxels':>7}  {'nbrs':>5}  {'backend':<10} {'forward':>17} {'forward+backward':>19}"
    print(header)
    print("-" * len(header))
    for entry in results:
        for b in backends:
            f = entry["ms"][f"{b}/forward"]
            fb = entry["ms"][f"{b}/forward_backward"]
            print(
                f"{entry['voxels']:>7}  {entry['neighbours_per_voxel']:>5.1f}  {b:<10} "
                f"{f['min']:>7.1f} / {f['median']:>7.1f} {fb['min']:>9.1f} / {fb['median']:>7.1f}"
            )
        if len(backends) == 2:
            ratio_f = entry["ms"]["minkowski/forward"]["median"] / entry["ms"]["torch/forward"]["median"]
            ms = entry["ms"]
            ratio_fb = ms["minkowski/forward_backward"]["median"] / ms["torch/forward_backward"]["median"]
            print(
                f"{'':>7}  {'':>5}  {'ME/torch':<10} {ratio_f:>17.2f} {ratio_fb:>19.2f}   "
                f"(outputs agree to {entry['max_relative_difference_torch_vs_minkowski']:.1e})"
            )
    if skipped:
        print(f"minkowski skipped: {skipped}")
    print(f"wrote {out_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
