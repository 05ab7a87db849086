"""``alster segment`` (alster_mapping.eval.segment): a map file in, instances, objects and metrics out."""

import json
from pathlib import Path

import open3d as o3d
import pytest
from tiny_configs import tiny_asis_net

from alster_mapping.cli import main
from alster_mapping.core.config import MapConfig, apply_overrides
from alster_mapping.core.labels import scannet20
from alster_mapping.data.sequences import SyntheticSequence
from alster_mapping.map.map_file import save_map
from alster_mapping.map.voxel_map import SemanticVoxelMap
from alster_mapping.pipeline.label_fusion import LabelFusion
from alster_mapping.train.loop import MODEL_FILE, TrainingLoop
from alster_mapping.train.recipes.asis import AsisTrainConfig

WORLD = (1002, 6, 96, 72)  # seed, frames, width, height


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """A tiny ASIS trained briefly on one world, and that world's map as a file."""
    root = tmp_path_factory.mktemp("segment")
    world = SyntheticSequence(*WORLD)
    overrides = {"data.points": 256, "data.voxel_size": 0.08, "steps": 10, "batch": 4, **tiny_asis_net("model.")}
    TrainingLoop("asis", apply_overrides(AsisTrainConfig(), overrides), root / "train", sequences=[world], progress=False).run()
    voxel_map = SemanticVoxelMap(MapConfig(voxel_size=0.08, feature_dim=20), scannet20())
    fusion = LabelFusion(voxel_map)
    for frame in world:
        fusion.integrate(frame)
    save_map(voxel_map, root / "map.safetensors")
    return root / "train" / MODEL_FILE, root / "map.safetensors"


def test_segment_writes_instances_objects_and_metrics(inputs, tmp_path, capsys):
    checkpoint, map_file = inputs
    seed, frames, width, height = WORLD
    argv = ["segment", str(map_file), "--model", str(checkpoint), "--out", str(tmp_path), "--gt", f"synthetic:{seed}:{frames}"]
    argv += ["--width", str(width), "--height", str(height), "--set", "points=256"]
    assert main(argv) == 0
    assert "objects in" in capsys.readouterr().out
    cloud = o3d.t.io.read_point_cloud(str(tmp_path / "instances.ply"))
    assert len(cloud.point.positions) > 100 and "instance" in cloud.point
    objects = json.loads((tmp_path / "objects.json").read_text())
    assert objects and set(objects[0]) == {"id", "class", "class_index", "score", "centroid", "extent", "points"}
    metrics = json.loads((tmp_path / "metrics.json").read_text())["metrics"]
    assert 0.0 <= metrics["semantic"]["miou"] <= 1.0 and 0.0 <= metrics["instance"]["mcov"] <= 1.0
    assert set(metrics["ap"]) == {"ap", "ap50", "ap25"}


def test_a_checkpoint_of_another_task_is_refused(inputs, tmp_path, capsys):
    _, map_file = inputs
    shipped = Path(__file__).resolve().parents[2] / "models" / "alster_scannet20_synthetic.safetensors"
    assert main(["segment", str(map_file), "--model", str(shipped), "--out", str(tmp_path)]) == 1
    assert "'semantic_mapping' model" in capsys.readouterr().err
