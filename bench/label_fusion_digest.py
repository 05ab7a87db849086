#!/usr/bin/env python3
"""The SHA-256 of the map that label fusion builds from fixed frames: run it on two revisions
to check that they build the same map, bit for bit.

    python bench/label_fusion_digest.py [--out build/bench/label_fusion_digest.json] [--frames 60]
    python bench/compare_revisions.py --baseline 857fa1b --rounds 1 --script-from-current \\
        -- label_fusion_digest.py

Frames: ``synthetic:0`` in the randomized style (320x240, its sensor artefacts) with its
ScanNet-20 labels, fused by ``LabelFusion`` with the defaults of the revision that runs.
The digest covers every voxel's key and columns (evidence, count, label, confidence,
colour), sorted by key, so it does not depend on how rows are numbered. Uses only APIs
that every revision since issue 16 has.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import torch

from alster_mapping.core.atomic_file import write_text_atomic
from alster_mapping.core.config import MapConfig
from alster_mapping.core.geometry import pack_keys
from alster_mapping.data.sequences import SyntheticSequence
from alster_mapping.map.voxel_map import SemanticVoxelMap
from alster_mapping.pipeline.label_fusion import LabelFusion

ROOT = Path(__file__).resolve().parents[1]


def map_digest(voxel_map: SemanticVoxelMap) -> str:
    """SHA-256 over the voxels' keys and columns in key order."""
    keys, rows = voxel_map.items()
    order = torch.argsort(pack_keys(keys))
    data = voxel_map.read(rows[order])
    digest = hashlib.sha256(keys[order].numpy().tobytes())
    for column in (data.feature, data.count, data.label, data.confidence, data.color):
        digest.update(column.numpy().tobytes())
    return digest.hexdigest()


def main(argv: list[str] | None = None) -> int:
    """Fuse the frames and write the digest (arguments as on the command line)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "bench" / "label_fusion_digest.json")
    parser.add_argument("--frames", type=int, default=60)
    args = parser.parse_args(argv)
    voxel_map = SemanticVoxelMap(MapConfig())
    fusion = LabelFusion(voxel_map)
    for frame in SyntheticSequence(0, args.frames, 320, 240, style="randomized"):
        fusion.integrate(frame)
    report = {"frames": args.frames, "voxels": len(voxel_map), "map_sha256": map_digest(voxel_map)}
    write_text_atomic(args.out, json.dumps(report, indent=2))
    print(f"{report['voxels']} voxels after {args.frames} frames, map sha256 {report['map_sha256']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
