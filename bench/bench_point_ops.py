#!/usr/bin/env python3
"""Benchmark of PointNet++'s grouping operations (``nets/points/ops.py``) against their
plain torch formulations, at the sizes of ASIS's forward on a batch of chunks.

    python bench/bench_point_ops.py [--out build/bench] [--runs 5] [--batch 8]

Each row times one operation of the project and the straightforward torch expression it
replaces, on the same inputs, and checks that both give the same tensor:

* farthest point sampling: the torch loop (``farthest_point_sample_torch``, the GPU's
  path) against the compiled CPU loop (``fps_kernel``);
* gather: ``torch.gather`` with the index expanded over the channels, against rows
  copied with ``index_select`` (``gather_points``), for the groups of the set abstractions;
* ball query: the first K points within the radius by a top-k over all N points per
  centre, against the pairs found by ``nonzero`` ranked per centre (``ball_query``);
* instance fusion's K = 30 nearest points in the embedding space: an (N, N) L1 distance
  matrix and a top-k, against the compiled loop of ``nets/asis/neighbour_kernel.py``;
* instance fusion's max over K = 30 embedding neighbours: the grouped (B, N, K, C) tensor
  and its max, against one neighbour slot at a time (``group_max``).

The layout is the shipped ASIS's (``AsisTrainConfig``: 1,024 points, 256 / 64 / 16 / 4
centroids, 32 neighbours; 30 embedding neighbours of 128 channels); points uniform in
1 m x 1 m x 3 m columns. Median of --runs runs, 2 threads. Prints a table and writes bench_point_ops.json.
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

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from alster_mapping.core.atomic_file import write_text_atomic  # noqa: E402
from alster_mapping.nets.asis.model import embedding_neighbours, embedding_neighbours_torch  # noqa: E402
from alster_mapping.nets.points.ops import (  # noqa: E402
    ball_query,
    farthest_point_sample,
    farthest_point_sample_torch,
    gather_points,
    group_max,
    group_points,
)
from alster_mapping.train.recipes.asis import AsisTrainConfig  # noqa: E402


def gather_by_expanded_index(points: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    return torch.gather(points, 1, index.unsqueeze(-1).expand(-1, -1, points.shape[-1]))


def ball_query_by_topk(xyz: torch.Tensor, centres: torch.Tensor, radius: float, k: int) -> torch.Tensor:
    count = xyz.shape[1]
    inside = torch.cdist(centres, xyz).pow_(2) < radius * radius
    order = torch.arange(count).expand(inside.shape)
    ranked = torch.where(inside, order, torch.full_like(order, count))
    first = ranked.topk(min(k, count), dim=-1, largest=False, sorted=True).values
    first = torch.cat([first, first.new_full((*first.shape[:2], k - first.shape[-1]), count)], -1)
    fill = torch.where(first[..., :1] < count, first[..., :1], torch.zeros_like(first[..., :1]))
    return torch.where(first < count, first, fill.expand_as(first))


def max_of_grouped(points: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    return group_points(points, index).max(2).values


def median_seconds(function, runs: int) -> float:
    function()  # warm-up
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def cases(batch: int) -> list[tuple[str, object, object, tuple]]:
    """(name, plain formulation, ours, arguments) at the shipped ASIS's sizes for ``batch`` chunks."""
    config = AsisTrainConfig()
    backbone, points = config.model.backbone, config.data.points
    generator = torch.Generator().manual_seed(0)
    xyz = torch.rand(batch, points, 3, generator=generator) * torch.tensor([1.0, 1.0, 3.0])
    channels = config.model.in_channels
    out = []
    for centroids, radius, width in zip(backbone.centroids, backbone.radii, backbone.sa_channels):
        # Centroids as FPS leaves them, the first points of a random cloud (any subset will do).
        cloud, centres = xyz[:, :points], xyz[:, :centroids]
        index = ball_query(cloud, centres, radius, backbone.neighbours)
        features = torch.randn(batch, points, channels, generator=generator)
        grouped = f"{centroids}x{backbone.neighbours} of {points}"
        out.append((f"sampling {centroids} of {points}", farthest_point_sample_torch, farthest_point_sample, (cloud, centroids)))
        out.append((f"gather {grouped}, C={channels}", gather_by_expanded_index, gather_points, (features, index.reshape(batch, -1))))
        out.append((f"ball query {grouped}, r={radius}", ball_query_by_topk, ball_query, (cloud, centres, radius, backbone.neighbours)))
        points, channels = centroids, width
    width, k = config.model.feature_dim, config.model.neighbours
    neighbours = torch.randint(0, config.data.points, (batch, config.data.points, k), generator=generator)
    semantic = torch.randn(batch, config.data.points, width, generator=generator)
    embeddings = torch.randn(batch, config.data.points, config.model.embedding_dim, generator=generator)
    search = (embeddings, k, config.model.delta_v)
    out.append((f"{k} nearest in the embedding space", embedding_neighbours_torch, embedding_neighbours, search))
    out.append((f"max over {k} neighbours, C={width}", max_of_grouped, group_max, (semantic, neighbours)))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("build/bench"))
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--batch", type=int, default=8, help="chunks per forward (alster segment's default)")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    rows = []
    with torch.no_grad():
        for name, plain, ours, arguments in cases(args.batch):
            same = torch.equal(plain(*arguments), ours(*arguments))
            plain_s = median_seconds(lambda: plain(*arguments), args.runs)
            ours_s = median_seconds(lambda: ours(*arguments), args.runs)
            rows.append({"case": name, "plain_ms": plain_s * 1e3, "ours_ms": ours_s * 1e3, "speedup": plain_s / ours_s, "identical": same})
    print(f"{'case':40s} {'plain':>9s} {'ours':>9s} {'speed-up':>9s} identical")
    for r in rows:
        print(f"{r['case']:40s} {r['plain_ms']:7.2f}ms {r['ours_ms']:7.2f}ms {r['speedup']:8.1f}x {r['identical']}")
    args.out.mkdir(parents=True, exist_ok=True)
    result = {
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "torch_threads": torch.get_num_threads()},
        "batch": args.batch,
        "runs": args.runs,
        "cases": rows,
        "command": " ".join(["python", "bench/bench_point_ops.py", *(argv if argv is not None else sys.argv[1:])]),
    }
    write_text_atomic(args.out / "bench_point_ops.json", json.dumps(result, indent=2))
    return 0 if all(r["identical"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
