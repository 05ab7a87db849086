#!/usr/bin/env python3
"""Score an instance checkpoint (ASIS / BAN) on held-out synthetic worlds, as the ablation does.

    python bench/instance_eval.py --model build/train_asis/model.safetensors [--eval-worlds 0,1,2,3,4]
        [--maps fused|alster] [--record held_out_synthetic] [--out build/instance_eval]

The held-out worlds (seeds below 1000) are fused into maps exactly like the checkpoint's
training worlds (its card's ``data`` settings); each is segmented by the whole-scene
pipeline and scored on the ground-truth points the map covers (semantic mIoU, instance
mCov / mWCov / mPrec / mRec, ScanNet AP), together with the connected-components
baseline on the same classes. ``--maps alster`` scores what the node's service sees
instead: each world mapped by the shipped ALSTER model (320x240, 120 frames), the voxels
keeping the map's classes (``semantics = map``), and again with the instance model's
own classes (``model_semantics``). ``--record NAME`` stores the scores in the card
(``metrics.NAME``). Writes ``OUT/instance_eval.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from types import SimpleNamespace

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from instance_ablation import alster_scenes, evaluate, held_out_scenes

from alster_mapping.core.atomic_file import write_text_atomic
from alster_mapping.core.config import apply_overrides
from alster_mapping.core.labels import LabelSpace
from alster_mapping.nets.checkpoint import load_checkpoint, update_card
from alster_mapping.pipeline.instance_segmentation import InstanceSegmentationConfig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True, help="an instance_segmentation checkpoint")
    parser.add_argument("--eval-worlds", default="0,1,2,3,4", help="held-out synthetic worlds (seeds < 1000)")
    parser.add_argument("--maps", choices=("fused", "alster"), default="fused", help="fused like the training worlds, or mapped by ALSTER")
    parser.add_argument("--set", action="append", metavar="KEY=VALUE", help="override InstanceSegmentationConfig, e.g. chunk_overlap=0")
    parser.add_argument("--record", help="store the scores in the checkpoint's card under metrics.RECORD")
    parser.add_argument("--out", type=Path, default=Path("build/instance_eval"))
    args = parser.parse_args(argv)
    model, card = load_checkpoint(args.model, task="instance_segmentation")
    data = SimpleNamespace(**card["provenance"]["train_config"]["data"])
    worlds = [int(w) for w in args.eval_worlds.split(",")]
    label_space = LabelSpace.from_json(json.dumps(card["label_space"]))
    config = apply_overrides(InstanceSegmentationConfig(), args.set or [])
    if args.maps == "fused":
        scores = evaluate(model, held_out_scenes(worlds, data), label_space, data.voxel_size, config)
    else:
        scenes = alster_scenes(worlds, 120, 320, 240, cache=Path("build/alster_maps"))
        scores = evaluate(model, scenes, label_space, data.voxel_size, config)
        scores["model_semantics"] = evaluate(model, [(v, t, None) for v, t, _ in scenes], label_space, data.voxel_size, config)["model"]
    command = "python " + " ".join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])])
    report = {"command": command, "checkpoint": str(args.model), "eval_worlds": worlds, "maps": args.maps, "set": args.set or [], **scores}
    args.out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out / "instance_eval.json", json.dumps(report, indent=2))
    m = scores["model"]
    print(
        f"{args.model}: coverage {m['coverage']:.3f}  mIoU {m['semantic']['miou']:.3f}  mCov {m['instance']['mcov']:.3f}  "
        f"mWCov {m['instance']['mwcov']:.3f}  AP50 {m['ap']['ap50']:.3f}  (components mCov {scores['components']['instance']['mcov']:.3f})"
    )
    if args.record:
        update_card(args.model, metrics={args.record: {"worlds": worlds, "maps": args.maps, "command": command, **scores}})
        print(f"recorded under metrics.{args.record} in the card of {args.model}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
