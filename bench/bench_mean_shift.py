#!/usr/bin/env python3
"""Benchmark of the instance clustering: torch mean-shift against scikit-learn's MeanShift.

    python bench/bench_mean_shift.py [--out build/bench] [--runs 3] [--quick] [--model CKPT --map MAP [--chunks 20]]

Embeddings like those of the discriminative loss (ASIS: 5 dimensions, instances pulled
within delta_v = 0.5 of their mean, means pushed 2 delta_d = 3 apart): Gaussian blobs of
random sizes in 5-d, for one 4,096-point block and for a merged region of four blocks,
tight (sd 0.15) and loose (sd 0.3, closer means), and for one 1,024-point chunk as
``alster segment`` clusters them (fixed costs per call weigh most there). Both
clusterers use bandwidth 0.6 with bin seeding. Reported per case: median time of --runs runs each, the speed-up, the
number of clusters and the adjusted Rand index of the two labellings (goal: >= 0.99 and
at least 10x faster). With ``--model`` and ``--map``, one more case: the embeddings a
trained instance checkpoint gives for the first ``--chunks`` chunks of a map (as
``alster segment`` cuts it), each chunk clustered on its own as the pipeline does; the
times are summed over the chunks and the smallest ARI of any chunk is reported. Prints a
table and writes ``bench_mean_shift.json`` into --out.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from sklearn.cluster import MeanShift  # noqa: E402
from sklearn.metrics import adjusted_rand_score  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from alster_mapping.core.atomic_file import write_text_atomic  # noqa: E402
from alster_mapping.nets.points.mean_shift import mean_shift  # noqa: E402

BANDWIDTH = 0.6
CASES = {
    # name: (points, instances, spread of an instance, spread of the instance means)
    "chunk 1024, tight": (1024, 8, 0.15, 1.5),
    "block 4096, tight": (4096, 20, 0.15, 1.5),
    "block 4096, loose": (4096, 20, 0.30, 1.2),
    "4 blocks 16384, tight": (16384, 60, 0.15, 1.5),
    "4 blocks 16384, loose": (16384, 60, 0.30, 1.2),
}


def embeddings(seed: int, points: int, instances: int, spread: float, separation: float, dims: int = 5) -> np.ndarray:
    """(N, dims) float64 blobs of random sizes (at least 10 points each)."""
    rng = np.random.default_rng(seed)
    means = rng.normal(0.0, separation, (instances, dims))
    sizes = np.maximum((rng.dirichlet(np.ones(instances)) * points).astype(int), 10)
    return np.concatenate([m + rng.normal(0.0, spread, (s, dims)) for m, s in zip(means, sizes)])


def model_chunk_embeddings(checkpoint: Path, map_path: Path, chunks: int) -> list[np.ndarray]:
    """(1024, N_E) float64 embeddings of the first ``chunks`` chunks of a map, from a trained model."""
    from alster_mapping.data.map_samples import voxel_points
    from alster_mapping.map.map_file import load_map
    from alster_mapping.nets.checkpoint import load_checkpoint
    from alster_mapping.nets.points.inputs import block_inputs
    from alster_mapping.pipeline.instance_segmentation import InstanceSegmentationConfig, scene_chunks

    voxel_map = load_map(map_path)
    model, _ = load_checkpoint(checkpoint, voxel_map.label_space, task="instance_segmentation")
    points = voxel_points(voxel_map)
    low, extent = points.xyz.min(0), np.ptp(points.xyz, 0)
    out = []
    for rows in scene_chunks(points.xyz, InstanceSegmentationConfig())[:chunks]:
        xyz, features = block_inputs(points.subset(rows), low, extent)
        with torch.no_grad():
            embedding = model.eval()(torch.from_numpy(xyz)[None], torch.from_numpy(features)[None]).embeddings[0]
        out.append(embedding.double().numpy())
    return out


def compare_chunks(chunks: list[np.ndarray], runs: int) -> dict:
    """Both clusterers on each chunk; times summed, the smallest ARI."""
    reference_total = ours_total = 0.0
    aris, clusters = [], [0, 0]
    for x in chunks:
        reference_seconds, reference = timed(lambda x=x: MeanShift(bandwidth=BANDWIDTH, bin_seeding=True).fit(x), runs)
        ours_seconds, (labels, centres) = timed(lambda x=x: mean_shift(torch.from_numpy(x), BANDWIDTH), runs)
        reference_total += reference_seconds
        ours_total += ours_seconds
        aris.append(float(adjusted_rand_score(reference.labels_, labels.numpy())))
        clusters[0] += len(reference.cluster_centers_)
        clusters[1] += int(centres.shape[0])
    return {
        "case": f"trained model, {len(chunks)} chunks",
        "points": int(sum(len(x) for x in chunks)),
        "scikit_learn_s": reference_total,
        "torch_s": ours_total,
        "speedup": reference_total / ours_total,
        "clusters_scikit_learn": clusters[0],
        "clusters_torch": clusters[1],
        "adjusted_rand_index": min(aris),
    }


def timed(function, runs: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(runs):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("build/bench"))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="only the smallest case, one run (for the tests)")
    parser.add_argument("--model", type=Path, help="an instance checkpoint whose embeddings of --map are clustered too")
    parser.add_argument("--map", type=Path, help="a map file (with --model)")
    parser.add_argument("--chunks", type=int, default=20, help="chunks of the map to cluster (with --model)")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    cases = dict(list(CASES.items())[:1]) if args.quick else CASES
    runs = 1 if args.quick else args.runs
    rows = []
    for seed, (name, spec) in enumerate(cases.items()):
        x = embeddings(seed, *spec)
        reference_seconds, reference = timed(lambda x=x: MeanShift(bandwidth=BANDWIDTH, bin_seeding=True).fit(x), runs)
        ours_seconds, (labels, centres) = timed(lambda x=x: mean_shift(torch.from_numpy(x), BANDWIDTH), runs)
        rows.append(
            {
                "case": name,
                "points": len(x),
                "scikit_learn_s": reference_seconds,
                "torch_s": ours_seconds,
                "speedup": reference_seconds / ours_seconds,
                "clusters_scikit_learn": len(reference.cluster_centers_),
                "clusters_torch": int(centres.shape[0]),
                "adjusted_rand_index": float(adjusted_rand_score(reference.labels_, labels.numpy())),
            }
        )
    if args.model is not None:
        if args.map is None:
            parser.error("--model needs --map")
        rows.append(compare_chunks(model_chunk_embeddings(args.model, args.map, args.chunks), runs))
    print(f"{'case':24s} {'points':>7s} {'sklearn':>9s} {'torch':>9s} {'speed-up':>9s} {'clusters':>10s} {'ARI':>7s}")
    for r in rows:
        clusters = f"{r['clusters_scikit_learn']}/{r['clusters_torch']}"
        print(
            f"{r['case']:24s} {r['points']:7d} {r['scikit_learn_s'] * 1e3:7.0f}ms {r['torch_s'] * 1e3:7.0f}ms "
            f"{r['speedup']:8.1f}x {clusters:>10s} {r['adjusted_rand_index']:7.4f}"
        )
    goals = {"adjusted_rand_index_min": 0.99, "speedup_min": 10.0}
    met = all(r["adjusted_rand_index"] >= goals["adjusted_rand_index_min"] and r["speedup"] >= goals["speedup_min"] for r in rows)
    print(f"goals (ARI >= 0.99, >= 10x faster) {'met' if met else 'NOT met'} in every case")
    args.out.mkdir(parents=True, exist_ok=True)
    result = {
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "torch_threads": torch.get_num_threads()},
        "bandwidth": BANDWIDTH,
        "runs": runs,
        "cases": rows,
        "goals": goals,
        "goals_met": met,
        "command": " ".join(["python", "bench/bench_mean_shift.py", *(argv if argv is not None else sys.argv[1:])]),
    }
    write_text_atomic(args.out / "bench_mean_shift.json", json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
