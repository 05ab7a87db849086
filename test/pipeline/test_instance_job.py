"""Background instance segmentation of a live map (alster_mapping.pipeline.instance_job)."""

from pathlib import Path

import numpy as np
import pytest

from alster_mapping.core.config import MapConfig, apply_overrides
from alster_mapping.map.map_file import load_map
from alster_mapping.map.voxel_map import SemanticVoxelMap
from alster_mapping.pipeline import instance_job
from alster_mapping.pipeline.background_job import JobBusy
from alster_mapping.pipeline.instance_job import InstanceJobConfig, InstanceJobs

SHIPPED_ALSTER = Path(__file__).resolve().parents[2] / "models" / "alster_scannet20_synthetic.safetensors"


@pytest.fixture
def setup(tiny_instance_model):
    checkpoint, map_file, _ = tiny_instance_model
    config = apply_overrides(InstanceJobConfig(), {"checkpoint": str(checkpoint), "segmentation.points": 256, "min_voxels": 50})
    return load_map(map_file), config


def test_a_job_segments_the_map_and_fills_its_instance_layer(setup):
    voxel_map, config = setup
    jobs = InstanceJobs()
    started = jobs.start(voxel_map, config)
    assert started.state == "running" and started.job == 1 and started.voxels == len(voxel_map)
    status = jobs.wait(60)
    assert status.state == "done", status.message
    assert status.progress == 1.0 and {"model", "network", "clustering", "merging"} <= set(status.stage_seconds)
    result = jobs.take_result()
    assert result is not None and jobs.take_result() is None  # handed out once
    assert len(result.xyz) == len(voxel_map) and result.objects == status.objects
    layer = voxel_map.to_arrays().instance
    assert sorted(set(layer[layer >= 0].tolist())) == sorted({o["id"] for o in status.objects})
    # The next job gets the next id.
    assert jobs.start(voxel_map, config).job == 2
    jobs.wait(60)


def test_a_second_request_while_a_job_runs_is_busy(setup, held_instance_jobs):
    voxel_map, config = setup
    release = held_instance_jobs
    jobs = InstanceJobs()
    jobs.start(voxel_map, config)
    with pytest.raises(JobBusy, match="busy: job 1 is running"):
        jobs.start(voxel_map, config)
    release.set()
    assert jobs.wait(60).state == "done"


def test_a_map_cleared_during_the_job_drops_the_result(setup, monkeypatch):
    voxel_map, config = setup
    real = instance_job.segment_instances

    def clear_meanwhile(*args, **kwargs):
        out = real(*args, **kwargs)
        voxel_map.clear()
        voxel_map.write(np.array([[0, 0, 0]], np.int32), color=np.array([[9, 9, 9]], np.uint8))
        return out

    monkeypatch.setattr(instance_job, "segment_instances", clear_meanwhile)
    jobs = InstanceJobs()
    jobs.start(voxel_map, config)
    status = jobs.wait(60)
    assert status.state == "dropped" and "cleared or replaced" in status.message
    assert jobs.take_result() is None
    assert len(voxel_map) == 1 and voxel_map.to_arrays().instance.tolist() == [-1]


@pytest.mark.parametrize(
    "change, fragment",
    [
        ({"model": "ban"}, "holds a 'asis' model, but instances.model is 'ban'"),
        ({"checkpoint": str(SHIPPED_ALSTER)}, "'semantic_mapping' model"),
        ({"checkpoint": "/nonexistent/asis.safetensors"}, "nonexistent"),
    ],
)
def test_a_wrong_checkpoint_fails_the_job_and_leaves_the_map(setup, change, fragment):
    voxel_map, config = setup
    before = voxel_map.to_arrays()
    jobs = InstanceJobs()
    jobs.start(voxel_map, apply_overrides(config, change))
    status = jobs.wait(60)
    assert status.state == "failed" and fragment in status.message, status.message
    after = voxel_map.to_arrays()
    assert np.array_equal(before.instance, after.instance) and np.array_equal(before.label_index, after.label_index)
    # The service is usable again at once.
    jobs.start(voxel_map, config)
    assert jobs.wait(60).state == "done"


def test_bad_maps_and_regions_are_refused_before_a_job_starts(setup):
    voxel_map, config = setup
    jobs = InstanceJobs()
    empty = SemanticVoxelMap(MapConfig(voxel_size=0.08, feature_dim=20))
    with pytest.raises(ValueError, match="has 0 voxels; at least 50"):
        jobs.start(empty, config)
    regional = apply_overrides(config, {"region_radius": 0.5})
    with pytest.raises(ValueError, match="no camera pose"):
        jobs.start(voxel_map, regional)
    with pytest.raises(ValueError, match="finite"):
        jobs.start(voxel_map, regional, center=np.array([np.nan, 0.0, 1.0]))
    with pytest.raises(ValueError, match="region within 0.5 m of .* has"):
        jobs.start(voxel_map, regional, center=np.array([100.0, 100.0, 1.0]))
    grey = SemanticVoxelMap(MapConfig(voxel_size=0.08, feature_dim=20))
    grey.write(np.stack([np.arange(60), np.zeros(60), np.zeros(60)], 1).astype(np.int32))
    with pytest.raises(ValueError, match="no colour"):
        jobs.start(grey, config)
    assert jobs.status().state == "idle"


def test_a_region_segments_only_the_voxels_near_the_camera(setup):
    voxel_map, config = setup
    xyz = voxel_map.to_arrays().xyz
    center = np.array([*np.median(xyz[:, :2], 0), 1.5])
    near = np.linalg.norm(xyz[:, :2] - center[:2], axis=1) <= 1.0
    jobs = InstanceJobs()
    started = jobs.start(voxel_map, apply_overrides(config, {"region_radius": 1.0}), center)
    assert started.voxels == int(near.sum()) < len(xyz)
    assert jobs.wait(60).state == "done"
    arrays = voxel_map.to_arrays()
    far = np.linalg.norm(arrays.xyz[:, :2] - center[:2], axis=1) > 1.0
    assert (arrays.instance[far] == -1).all()
