"""``alster refine``: a saved map relabelled by SAFNet from keyframes, written for people and tools.

Runs the node's refinement job (``pipeline.refine_job``) synchronously on a map file and
writes into the output folder:

* ``map.safetensors``: the refined map (``map.keyframes.safetensors`` beside it: the
  keyframes used);
* ``map_labels.ply``: the refined voxels coloured by class;
* ``before.png`` / ``after.png``: oblique renders of the labels before and after;
* ``summary.json``: what the job did (voxels relabelled and changed, chunks, keyframes,
  stage times) and, with ground truth, the map's scores before and after (the voxels'
  labels transferred to the ground-truth points within one voxel edge, as ``alster eval``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..core.atomic_file import write_text_atomic
from ..core.samples import PointBlock
from ..map.export import export_ply, render_png
from ..map.map_file import load_map, save_map
from ..map.voxel_map import SemanticVoxelMap
from ..pipeline.keyframes import Keyframe, KeyframeConfig, KeyframeStore, keyframe_file, load_keyframes, save_keyframes
from ..pipeline.refine_job import RefineJobConfig, RefineJobs
from .metrics import evaluate_points, transfer_labels

SCORE_KEYS = ("miou", "miou_present", "wiou", "macc", "oacc", "coverage")
STATUS_KEYS = ("message", "voxels", "relabelled", "changed", "chunks", "unseen_voxels", "seconds", "stage_seconds")


def map_scores(voxel_map: SemanticVoxelMap, truth: PointBlock) -> dict:
    """The map's labels scored on ``truth`` (transferred within one voxel edge)."""
    arrays = voxel_map.to_arrays()
    predicted, covered = transfer_labels(arrays.xyz, arrays.label_index.astype(np.int64), truth.xyz, voxel_map.voxel_size)
    scores = evaluate_points(truth.labels, predicted, covered, voxel_map.label_space)
    return {key: scores[key] for key in SCORE_KEYS}


def render(voxel_map: SemanticVoxelMap, path: Path, outputs: list[str], problems: list[str]) -> None:
    """Render the labels to ``path`` (noting the file, or why there is none)."""
    try:
        render_png(voxel_map, path, "label")
        outputs.append(path.name)
    except (RuntimeError, ValueError) as exc:  # no rendering context
        problems.append(f"{path.name}: {exc}")


def refine_map(
    map_path: Path, keyframes: list[Keyframe], out: Path, config: RefineJobConfig, truth: PointBlock | None = None
) -> dict:
    """Refine the map at ``map_path`` from ``keyframes`` into ``out`` (see the module
    docstring). Returns the summary. Raises ValueError when the job refuses or fails
    (no keyframes, none observes the map, a bad checkpoint)."""
    voxel_map = load_map(map_path)
    out.mkdir(parents=True, exist_ok=True)
    outputs: list[str] = []
    problems: list[str] = []
    before = map_scores(voxel_map, truth) if truth is not None else None
    render(voxel_map, out / "before.png", outputs, problems)
    jobs = RefineJobs()
    jobs.start(voxel_map, keyframes, config)
    status = jobs.wait()
    if status.state != "done":
        raise ValueError(f"refinement {status.state}: {status.message}")
    save_map(voxel_map, out / "map.safetensors")
    save_keyframes(keyframes, keyframe_file(out / "map.safetensors"))
    outputs += ["map.safetensors", "map.keyframes.safetensors"]
    export_ply(voxel_map, out / "map_labels.ply", color_by="label")
    outputs.append("map_labels.ply")
    render(voxel_map, out / "after.png", outputs, problems)
    summary = {
        "map": str(map_path),
        "keyframes": len(keyframes),
        "keyframes_used": status.keyframes,
        **{key: getattr(status, key) for key in STATUS_KEYS},
        "outputs": outputs,
        "problems": problems,
    }
    if truth is not None:
        summary["before"], summary["after"] = before, map_scores(voxel_map, truth)
    write_text_atomic(out / "summary.json", json.dumps(summary, indent=2))
    return summary


def map_keyframes(map_path: Path) -> tuple[list[Keyframe], dict[str, int]]:
    """The keyframes saved beside a map file (``MAP.keyframes.safetensors``) and the invalid
    ones skipped (by reason). ValueError when there is no keyframe file."""
    path = keyframe_file(map_path)
    if not path.is_file():
        raise ValueError(f"{map_path} has no keyframes beside it ({path.name}); pass --frames SEQUENCE")
    return load_keyframes(path)


def sequence_keyframes(sequence, config: KeyframeConfig) -> list[Keyframe]:
    """The keyframes the node would keep from ``sequence``'s frames (unreadable frames are
    counted in ``sequence.skipped``)."""
    store = KeyframeStore(config)
    for frame in sequence:
        store.consider(frame)
    return store.keyframes()
