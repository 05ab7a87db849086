#!/usr/bin/env python3
"""What the ALSTER step labels, for comparing revisions: held-out mIoU and every voxel's label.

    python bench/step_labels.py [--out build/bench/step_labels.json] [--worlds 0 1 2] [--frames 60]
    python bench/compare_revisions.py --baseline 857fa1b --rounds 1 --script-from-current \\
        -- step_labels.py

The shipped model (models/alster_scannet20_synthetic.safetensors) maps held-out synthetic
worlds (classic style, 320x240) with the defaults of the revision that runs; the script
writes the expert's mIoU (scored like ``alster eval``), each map's labels sorted by voxel
key (OUT with .npz: ``world_<seed>_keys``, ``world_<seed>_labels``) and their digest.
Two revisions' label files give the fraction of voxels labelled alike (``--compare A B``).
Uses only APIs that every revision since issue 16 has.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import torch

from alster_mapping.core.atomic_file import atomic_path, write_text_atomic
from alster_mapping.core.config import apply_overrides
from alster_mapping.core.geometry import pack_keys
from alster_mapping.data.sequences import SyntheticSequence
from alster_mapping.eval.evaluate import evaluate
from alster_mapping.pipeline.mapping_config import MappingConfig
from alster_mapping.pipeline.online_mapper import OnlineMapper

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "models" / "alster_scannet20_synthetic.safetensors"


def compare(a: Path, b: Path) -> int:
    """Print the fraction of voxels of each world that two label files label alike."""
    with np.load(a, allow_pickle=False) as first, np.load(b, allow_pickle=False) as second:
        for name in sorted(k for k in first.files if k.endswith("_labels")):
            keys = name.replace("_labels", "_keys")
            if not np.array_equal(first[keys], second[keys]):
                print(f"{name}: the maps hold different voxels ({len(first[keys])} vs {len(second[keys])})")
                continue
            same = float((first[name] == second[name]).mean())
            print(f"{name}: {len(first[name])} voxels, {100 * same:.2f} % labelled alike")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Map the worlds and write the labels (arguments as on the command line)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "bench" / "step_labels.json")
    parser.add_argument("--worlds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--compare", type=Path, nargs=2, metavar=("A.npz", "B.npz"), help="compare two label files and stop")
    args = parser.parse_args(argv)
    if args.compare:
        return compare(*args.compare)
    config = apply_overrides(MappingConfig(), [f"alster.checkpoint={SHIPPED}"])
    arrays, digest = {}, hashlib.sha256()
    for seed in args.worlds:
        torch.manual_seed(0)
        mapper = OnlineMapper(config)
        for frame in SyntheticSequence(seed, args.frames):
            mapper.step(frame)
        keys, rows = mapper.map.items()
        order = torch.argsort(pack_keys(keys))
        arrays[f"world_{seed}_keys"] = keys[order].numpy()
        arrays[f"world_{seed}_labels"] = mapper.map.read(rows[order]).label.numpy()
        digest.update(arrays[f"world_{seed}_keys"].tobytes() + arrays[f"world_{seed}_labels"].tobytes())
    sequences = [SyntheticSequence(seed, args.frames) for seed in args.worlds]
    results = evaluate(sequences, config, stages=False, progress=False, plots=False)
    report = {
        "worlds": args.worlds,
        "frames": args.frames,
        "expert_miou": results["methods"]["expert"]["miou"],
        "labels_sha256": digest.hexdigest(),
    }
    with atomic_path(args.out.with_suffix(".npz")) as tmp, open(tmp, "wb") as handle:
        np.savez_compressed(handle, **arrays)
    write_text_atomic(args.out, json.dumps(report, indent=2))
    print(f"expert mIoU {report['expert_miou']:.4f} on worlds {args.worlds}; labels {args.out.with_suffix('.npz')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
