"""Completing one frame (alster_mapping.pipeline.scene_completion) and ``alster complete``, with a
tiny untrained IMENet checkpoint: the outputs, observed vs predicted voxels, bad frames and
checkpoints."""

import dataclasses
import json

import numpy as np
import open3d as o3d
import pytest
import torch
from PIL import Image

from alster_mapping.cli import main
from alster_mapping.core.samples import SURFACE
from alster_mapping.data.completion_volumes import ssc_label_space
from alster_mapping.data.sequences import SyntheticSequence
from alster_mapping.nets.checkpoint import save_checkpoint
from alster_mapping.nets.imenet import ImenetConfig, ImenetModel
from alster_mapping.nets.shipped import shipped_alster_checkpoint
from alster_mapping.pipeline.scene_completion import (
    VolumeError,
    complete_frame,
    completion_points,
    estimate_floor,
    load_completion_model,
)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = ImenetModel(ImenetConfig.variant("E", pretrained=False, width_3d=8, image_width=80, iterations=1))
    path = tmp_path_factory.mktemp("imenet") / "tiny.safetensors"
    save_checkpoint(model, path, ssc_label_space(), {"test": "untrained"}, {})
    return path


@pytest.fixture(scope="module")
def frame():
    return SyntheticSequence(2, 4, 160, 120).frame(0)


def test_a_frame_is_completed_with_observed_and_predicted_voxels_apart(checkpoint, frame):
    model, card = load_completion_model(checkpoint)
    assert card["model"] == "imenet"
    result = complete_frame(model, frame, 0.0)
    assert result.labels.shape == (60, 60, 36) and result.confidence.shape == (60, 60, 36)
    assert result.label_image.shape == (60, 80) and result.label_image.min() >= 1
    xyz, ids, confidence, observed = completion_points(result)
    assert len(xyz) == int((result.labels > 0).sum()) and (ids > 0).all() and ((confidence > 0) & (confidence <= 1)).all()
    surface = result.volume.visibility[result.labels > 0] == SURFACE
    assert np.array_equal(observed, surface)
    # A floor estimated from the frame sits near the synthetic world's floor (z = 0).
    assert abs(estimate_floor(frame)) < 0.1


def test_frames_without_a_volume_raise_a_clear_error(checkpoint, frame):
    model, _ = load_completion_model(checkpoint)
    sky = np.eye(4)
    sky[:3, :3] = [[1, 0, 0], [0, 1, 0], [0, 0, 1]]  # optical axis = +z: looking at the ceiling
    with pytest.raises(VolumeError, match="straight up or down"):
        complete_frame(model, dataclasses.replace(frame, T_world_camera=sky), 0.0)
    with pytest.raises(VolumeError, match="no valid depth"):
        complete_frame(model, dataclasses.replace(frame, depth=np.zeros_like(frame.depth)), 0.0)
    with pytest.raises(VolumeError, match="not finite"):
        complete_frame(model, frame, float("nan"))


def test_cli_complete_writes_its_outputs_and_scores(checkpoint, tmp_path, capsys):
    out = tmp_path / "complete"
    args = ["complete", "synthetic:2", "--frame", "1", "--synthetic-frames", "4", "--width", "160", "--height", "120", "--out", str(out)]
    assert main([*args, "--model", str(checkpoint)]) == 0
    printed = capsys.readouterr().out
    assert "observed and" in printed and "SSC mIoU" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["scores"]) == {"sc", "ssc", "ss"} and summary["floor_z"] == 0.0
    cloud = o3d.t.io.read_point_cloud(str(out / "completion.ply"))
    assert {"label", "confidence", "observed"} <= set(cloud.point)
    total = summary["voxels"]["observed"] + summary["voxels"]["predicted"]
    assert cloud.point.positions.shape[0] == total and int(cloud.point.observed.numpy().sum()) == summary["voxels"]["observed"]
    assert Image.open(out / "labels_2d.png").size == (160, 120)
    if "truth.png" in summary["outputs"]:  # rendered where an EGL / Mesa context exists
        assert Image.open(out / "truth.png").size == Image.open(out / "completion.png").size
    else:
        assert any(name.startswith("(no truth.png") for name in summary["outputs"]), summary["outputs"]
    # A checkpoint of another kind of model, and a frame outside the sequence: clear errors.
    assert main([*args, "--model", str(shipped_alster_checkpoint())]) == 1
    assert "'scene_completion' model is needed" in capsys.readouterr().err
    assert main([*args[:2], "--frame", "9", *args[4:], "--model", str(checkpoint)]) == 1
    assert "outside the sequence" in capsys.readouterr().err
