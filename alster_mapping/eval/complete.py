"""``alster complete``: the scene behind one frame completed by IMENet, written as files.

Outputs in the folder: ``completion.ply`` (the occupied voxels' centres in the world frame,
coloured by class — predicted voxels, those the camera did not see on a surface, in a
lighter tint — with vertex properties ``label`` (ssc11 id), ``confidence`` and ``observed``
(1 on the measured surface, 0 predicted)), ``completion.png`` (a headless render of them),
``labels_2d.png`` (the refined 2D segmentation in class colours, at the frame's size) and
``summary.json`` (counts per class observed / predicted, time, floor, model; with a ground
truth the SC / SSC / SS scores of this frame, and ``truth.png``: the true classes of the
voxels the completion is scored on — surface and occluded, in the same colours and view
direction).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..core.atomic_file import write_text_atomic
from ..core.downscale import resize_nearest
from ..core.frame import RGBDFrame
from ..core.labels import LabelSpace
from ..core.samples import OCCLUDED, SURFACE, VoxelVolume
from ..map.export import render_points_png, save_png, write_point_ply
from ..pipeline.scene_completion import SceneCompletion, complete_frame, completion_colors, completion_points
from .completion_metrics import CompletionMeter, segmentation_scores


def write_completion(result: SceneCompletion, points: tuple, space: LabelSpace, out: Path, frame: RGBDFrame) -> list[str]:
    """Write the PLY, the render and the 2D label image of ``result`` (``points``: its
    ``completion_points``); returns the files written (the render is left out, and said so,
    where no rendering context exists)."""
    out.mkdir(parents=True, exist_ok=True)
    xyz, ids, confidence, observed = points
    colors = completion_colors(space, ids, observed)
    written = []
    write_point_ply(out / "completion.ply", xyz, colors, label=ids.astype(np.uint16), confidence=confidence, observed=observed.astype(np.uint8))
    written.append("completion.ply")
    save_png(out / "labels_2d.png", space.colorize(resize_nearest(result.label_image, frame.shape) - 1))
    written.append("labels_2d.png")
    if len(xyz):
        written.append(render_voxels(xyz, colors, out / "completion.png", result.volume.voxel_size))
    return written


def render_voxels(xyz: np.ndarray, colors: np.ndarray, path: Path, voxel_size: float) -> str:
    """Render voxel centres (N, 3) [m] with colours (N, 3) uint8 to ``path``; returns its name,
    or why there is none where no rendering context exists (no EGL / Mesa on this machine)."""
    try:
        render_points_png(xyz, colors, path, voxel_size)
        return path.name
    except RuntimeError as exc:
        return f"(no {path.name}: {exc})"


def write_truth(truth: VoxelVolume, space: LabelSpace, out: Path) -> list[str]:
    """``truth.png``: the labelled voxels of ``truth`` a completion is scored on (on the surface,
    in the colours of observed voxels, and occluded, in the lighter ones)."""
    scored = (truth.labels > 0) & np.isin(truth.visibility, (SURFACE, OCCLUDED))
    if not scored.any():
        return []
    ids = truth.labels[scored]
    colors = completion_colors(space, ids, truth.visibility[scored] == SURFACE)
    return [render_voxels(truth.centers()[scored], colors, out / "truth.png", truth.voxel_size)]


def frame_scores(result: SceneCompletion, truth: VoxelVolume, truth_image: np.ndarray | None) -> dict:
    """SC / SSC scores of one completion against a labelled volume of the same frame (and SS against its 2D labels)."""
    meter = CompletionMeter()
    meter.add(truth.labels, result.labels, truth.visibility)
    report = meter.scores().to_dict([str(i) for i in range(1, 12)])
    if truth_image is not None:
        report["ss"] = {"miou": float(segmentation_scores(resize_nearest(truth_image, result.label_image.shape), result.label_image).miou)}
    return report


def complete_to_files(
    model, space: LabelSpace, frame: RGBDFrame, floor_z: float, out: Path, iterations: int | None = None, truth=None, model_name: str = ""
) -> dict:
    """Complete ``frame`` and write the outputs (module docstring); returns the summary.
    truth: (labelled ``VoxelVolume`` of the frame, its 2D labels (H, W) ssc11 or None) to score against."""
    result = complete_frame(model, frame, floor_z, iterations=iterations)
    points = completion_points(result)
    files = write_completion(result, points, space, out, frame)
    _, ids, _, observed = points
    per_class = {
        name: {"observed": int(((ids == k) & observed).sum()), "predicted": int(((ids == k) & ~observed).sum())}
        for k, name in zip(space.ids, space.names)
    }
    summary = {
        "model": model_name,
        "frame_stamp_ns": int(frame.stamp_ns),
        "floor_z": floor_z,
        "seconds": round(result.seconds, 3),
        "voxels": {"observed": int(observed.sum()), "predicted": int((~observed).sum())},
        "per_class": per_class,
        "outputs": files,
    }
    if truth is not None:
        summary["scores"] = frame_scores(result, *truth)
        summary["outputs"] += write_truth(truth[0], space, out)
    write_text_atomic(out / "summary.json", json.dumps(summary, indent=2))
    return summary
