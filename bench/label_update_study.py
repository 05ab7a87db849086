#!/usr/bin/env python3
"""Study: how should the expert's per-frame labels become a voxel's label in the map?

    python bench/label_update_study.py [--model M] [--worlds 0,1,2,3,4] [--frames 120] [--out build/bench]

Replays held-out synthetic worlds through ``OnlineMapper`` with ``alster.label_update =
latest`` (each step returns the expert's argmax and its probability for the frame's
voxels) and keeps, next to the map, the state of other rules fed with the same per-frame
labels:

- latest: the map itself (the paper's reading: the latest observation's label);
- vote: ``pipeline.online_mapper.vote_labels``, the streaming confidence-weighted majority
  the mapper uses by default, on shadow columns of the map's dtypes (int16 label,
  float16 confidence, int16 count), so it is exactly what ``label_update = vote`` stores;
- weighted histogram: the full per-class sum of confidences (C floats per voxel: the
  memory the streaming vote avoids);
- count histogram: one vote per observation;
- most confident: the label of the single most confident observation.

Each rule's labels are scored like ``alster eval`` (nearest voxel within one voxel edge,
ScanNet rules, all worlds together). Prints a table and writes ``label_update_study.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import torch

from alster_mapping.core.config import apply_overrides
from alster_mapping.core.geometry import voxel_centers
from alster_mapping.data.sequences import open_sequence
from alster_mapping.eval.metrics import evaluate_points, transfer_labels
from alster_mapping.map.voxel_map import VoxelData
from alster_mapping.pipeline.mapping_config import MappingConfig
from alster_mapping.pipeline.online_mapper import OnlineMapper, vote_labels

ROOT = Path(__file__).resolve().parents[1]
RULES = ("latest", "vote", "weighted_histogram", "count_histogram", "most_confident")


class ShadowLabels:
    """Per-row state of the alternative rules, grown with the map's rows."""

    def __init__(self, num_classes: int):
        self.C = num_classes
        self.n = 0
        self.label = torch.empty(0, dtype=torch.int16)
        self.confidence = torch.empty(0, dtype=torch.float16)
        self.count = torch.empty(0, dtype=torch.int16)
        self.weighted = torch.empty(0, num_classes)
        self.counts = torch.empty(0, num_classes)
        self.best = torch.empty(0)
        self.best_label = torch.empty(0, dtype=torch.int64)

    def _grow(self, rows: int) -> None:
        extra = rows - self.n
        if extra <= 0:
            return
        self.label = torch.cat([self.label, torch.full((extra,), -1, dtype=torch.int16)])
        self.confidence = torch.cat([self.confidence, torch.zeros(extra, dtype=torch.float16)])
        self.count = torch.cat([self.count, torch.zeros(extra, dtype=torch.int16)])
        self.weighted = torch.cat([self.weighted, torch.zeros(extra, self.C)])
        self.counts = torch.cat([self.counts, torch.zeros(extra, self.C)])
        self.best = torch.cat([self.best, torch.full((extra,), -1.0)])
        self.best_label = torch.cat([self.best_label, torch.full((extra,), -1, dtype=torch.int64)])
        self.n = rows

    def add(self, rows: torch.Tensor, labels: torch.Tensor, confidence: torch.Tensor) -> None:
        """rows: (V,) int64 map rows; labels: (V,) int64 expert argmax; confidence: (V,) float32."""
        self._grow(int(rows.max()) + 1)
        old = VoxelData(
            feature=torch.zeros(len(rows), 1), count=self.count[rows], label=self.label[rows], confidence=self.confidence[rows],
            color=torch.zeros(len(rows), 3, dtype=torch.uint8), instance=torch.full((len(rows),), -1, dtype=torch.int16),
            found=torch.ones(len(rows), dtype=torch.bool),
        )  # fmt: skip
        voted, voted_conf = vote_labels(old, labels, confidence)
        self.label[rows] = voted.to(torch.int16)
        self.confidence[rows] = voted_conf.to(torch.float16)
        self.count[rows] = (self.count[rows].to(torch.int32) + 1).clamp_max(32767).to(torch.int16)
        self.weighted[rows, labels] += confidence
        self.counts[rows, labels] += 1
        better = confidence > self.best[rows]
        self.best[rows] = torch.where(better, confidence, self.best[rows])
        self.best_label[rows] = torch.where(better, labels, self.best_label[rows])

    def labels(self, rule: str, rows: torch.Tensor, latest: torch.Tensor) -> torch.Tensor:
        """(V,) int64 labels of ``rule`` for map rows ``rows`` (``latest``: the map's own)."""
        if rule == "latest":
            return latest
        if rule == "vote":
            return self.label[rows].to(torch.int64)
        if rule == "weighted_histogram":
            return self.weighted[rows].argmax(1)
        if rule == "count_histogram":
            return self.counts[rows].argmax(1)
        return self.best_label[rows]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "alster_scannet20_synthetic.safetensors")
    parser.add_argument("--worlds", default="0,1,2,3,4", help="held-out synthetic seeds (below 1000)")
    parser.add_argument("--frames", type=int, default=120)
    parser.add_argument("--out", type=Path, default=Path("build/bench"))
    args = parser.parse_args(argv)
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    config = apply_overrides(MappingConfig(), {"alster.checkpoint": str(args.model), "alster.label_update": "latest"})
    first = OnlineMapper(config)
    space = first.map.label_space
    predictions: dict[str, list] = {rule: [] for rule in RULES}
    truths = []
    for seed in (int(s) for s in args.worlds.split(",")):
        sequence = open_sequence(f"synthetic:{seed}:{args.frames}")
        mapper = OnlineMapper(config, model=first.model)
        shadow = ShadowLabels(space.num_classes)
        for frame in sequence:
            result = mapper.step(frame)
            shadow.add(result.rows, result.labels, result.confidence)
        keys, rows = mapper.map.items()
        centres = voxel_centers(keys, mapper.map.voxel_size).numpy()
        latest = mapper.map.read(rows).label.to(torch.int64)
        truth = sequence.ground_truth()
        points, raw = truth.xyz, truth.labels
        truths.append(raw)
        for rule in RULES:
            predictions[rule].append(transfer_labels(centres, shadow.labels(rule, rows, latest).numpy(), points, mapper.map.voxel_size))
        print(f"world {seed}: {len(keys)} voxels", flush=True)
    gt = np.concatenate(truths)
    results = {}
    for rule in RULES:
        pred = np.concatenate([p for p, _ in predictions[rule]])
        covered = np.concatenate([c for _, c in predictions[rule]])
        scores = evaluate_points(gt, pred, covered, space)
        results[rule] = {k: scores[k] for k in ("miou", "wiou", "macc", "oacc", "coverage")}
    print(f"\n{'rule':20s} {'mIoU':>7s} {'wIoU':>7s} {'mAcc':>7s} {'oAcc':>7s}")
    for rule, r in results.items():
        print(f"{rule:20s} {r['miou']:7.4f} {r['wiou']:7.4f} {r['macc']:7.4f} {r['oacc']:7.4f}")
    args.out.mkdir(parents=True, exist_ok=True)
    out = {"model": str(args.model), "worlds": args.worlds, "frames": args.frames, "rules": results}
    (args.out / "label_update_study.json").write_text(json.dumps(out, indent=2))
    print(f"wrote {args.out / 'label_update_study.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
