"""Background refinement of a live map with SAFNet from its keyframes (alster_mapping.pipeline.refine_job)."""

import dataclasses

import numpy as np
import pytest

from alster_mapping.core.config import apply_overrides
from alster_mapping.map.map_file import load_map
from alster_mapping.nets.checkpoint import update_card
from alster_mapping.nets.shipped import shipped_alster_checkpoint
from alster_mapping.pipeline import refine_job
from alster_mapping.pipeline.background_job import JobBusy
from alster_mapping.pipeline.keyframes import KeyframeStore, keyframe_file
from alster_mapping.pipeline.refine_job import RefineJobConfig, RefineJobs
from alster_mapping.pipeline.view_features import image_encoder_digest

SHIPPED_ALSTER = shipped_alster_checkpoint()


@pytest.fixture
def setup(tiny_safnet_model):
    checkpoint, map_file, _ = tiny_safnet_model
    store = KeyframeStore()
    assert store.load(keyframe_file(map_file)) == {}
    config = apply_overrides(RefineJobConfig(), {"checkpoint": str(checkpoint), "chunks.points": 256, "min_voxels": 50})
    return load_map(map_file), store.keyframes(), config


def test_a_job_relabels_the_voted_voxels(setup):
    voxel_map, keyframes, config = setup
    before = voxel_map.to_arrays()
    jobs = RefineJobs()
    started = jobs.start(voxel_map, keyframes, config)
    assert started.state == "running" and started.job == 1 and started.voxels == len(voxel_map)
    status = jobs.wait(120)
    assert status.state == "done", status.message
    assert status.progress == 1.0 and {"model", "plan", "views", "network", "write"} <= set(status.stage_seconds)
    assert status.chunks > 0 and 0 < status.keyframes <= len(keyframes)
    assert status.relabelled + status.unseen_voxels <= len(voxel_map) and status.relabelled > 0.5 * len(voxel_map)
    result = jobs.take_result()
    assert result is not None and jobs.take_result() is None  # handed out once
    after = voxel_map.to_arrays()
    rows = voxel_map.lookup(result.keys).numpy()
    assert np.array_equal(voxel_map.read(voxel_map.lookup(result.keys)).label.numpy(), result.labels)
    assert status.changed == int((before.label_index[rows] != result.labels).sum())
    assert ((result.confidence > 0) & (result.confidence <= 1)).all()
    assert np.array_equal(before.xyz, after.xyz) and np.array_equal(before.color, after.color)  # only labels change


def test_refusals_leave_the_map_alone(setup, monkeypatch):
    voxel_map, keyframes, config = setup
    jobs = RefineJobs()
    with pytest.raises(ValueError, match="no keyframes"):
        jobs.start(voxel_map, [], config)
    with pytest.raises(ValueError, match="at least 100000 are needed .refine.min_voxels."):
        jobs.start(voxel_map, keyframes, dataclasses.replace(config, min_voxels=100000))
    with pytest.raises(ValueError, match="refine.region_radius is set but no camera pose"):
        jobs.start(voxel_map, keyframes, dataclasses.replace(config, region_radius=1.0))
    # A second request while one runs is busy.
    real = refine_job.label_map
    monkeypatch.setattr(refine_job, "label_map", lambda *a, **k: (jobs._stopping.wait(0.5), real(*a, **k))[1])
    jobs.start(voxel_map, keyframes, config)
    with pytest.raises(JobBusy, match="busy: job 1 is running"):
        jobs.start(voxel_map, keyframes, config)
    assert jobs.wait(120).state == "done"


def test_keyframes_that_see_nothing_fail_the_job_and_the_map_stays(setup):
    voxel_map, keyframes, config = setup
    away = [dataclasses.replace(k, T_world_camera=k.T_world_camera + np.pad(np.full((3, 1), 100.0), ((0, 1), (3, 0)))) for k in keyframes]
    before = voxel_map.to_arrays()
    jobs = RefineJobs()
    jobs.start(voxel_map, away, config)
    status = jobs.wait(120)
    assert status.state == "failed" and f"none of the {len(away)} keyframes observes" in status.message
    assert np.array_equal(before.label_index, voxel_map.to_arrays().label_index)


def test_a_map_cleared_during_the_job_drops_the_result(setup, monkeypatch):
    voxel_map, keyframes, config = setup
    real = refine_job.label_map

    def clear_meanwhile(*args, **kwargs):
        out = real(*args, **kwargs)
        voxel_map.clear()
        return out

    monkeypatch.setattr(refine_job, "label_map", clear_meanwhile)
    jobs = RefineJobs()
    jobs.start(voxel_map, keyframes, config)
    status = jobs.wait(120)
    assert status.state == "dropped" and "cleared or replaced" in status.message
    assert jobs.take_result() is None and len(voxel_map) == 0


def test_a_checkpoint_of_another_model_fails_the_job(setup):
    voxel_map, keyframes, config = setup
    jobs = RefineJobs()
    jobs.start(voxel_map, keyframes, dataclasses.replace(config, checkpoint=str(SHIPPED_ALSTER)))
    status = jobs.wait(60)
    assert status.state == "failed" and "semantic_mapping" in status.message


def test_a_safnet_trained_on_another_image_encoder_is_refused(setup, tmp_path):
    voxel_map, keyframes, config = setup
    other = tmp_path / "safnet.safetensors"
    other.write_bytes(open(config.checkpoint, "rb").read())
    (tmp_path / "safnet.json").write_text(open(config.checkpoint.replace(".safetensors", ".json")).read())
    update_card(other, provenance={"image_encoder_digest": "0123456789abcdef"})
    jobs = RefineJobs()
    jobs.start(voxel_map, keyframes, dataclasses.replace(config, checkpoint=str(other)))
    status = jobs.wait(60)
    assert status.state == "failed" and "another 2D encoder (digest 0123456789abcdef)" in status.message
    assert image_encoder_digest(SHIPPED_ALSTER) in status.message
