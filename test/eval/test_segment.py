"""``alster segment`` (alster_mapping.eval.segment): a map file in, instances, objects and metrics out."""

import json
from pathlib import Path

import open3d as o3d

from alster_mapping.cli import main


def test_segment_writes_instances_objects_and_metrics(tiny_instance_model, tmp_path, capsys):
    checkpoint, map_file, (seed, frames, width, height) = tiny_instance_model
    argv = ["segment", str(map_file), "--model", str(checkpoint), "--out", str(tmp_path), "--gt", f"synthetic:{seed}:{frames}"]
    argv += ["--width", str(width), "--height", str(height), "--set", "points=256"]
    assert main(argv) == 0
    assert "objects in" in capsys.readouterr().out
    cloud = o3d.t.io.read_point_cloud(str(tmp_path / "instances.ply"))
    assert len(cloud.point.positions) > 100 and "instance" in cloud.point
    assert (tmp_path / "instances.png").stat().st_size > 1000
    objects = json.loads((tmp_path / "objects.json").read_text())
    assert objects and set(objects[0]) == {"id", "class", "class_index", "score", "centroid", "center", "extent", "points"}
    metrics = json.loads((tmp_path / "metrics.json").read_text())["metrics"]
    assert 0.0 <= metrics["semantic"]["miou"] <= 1.0 and 0.0 <= metrics["instance"]["mcov"] <= 1.0
    assert set(metrics["ap"]) == {"ap", "ap50", "ap25"}


def test_a_checkpoint_of_another_task_is_refused(tiny_instance_model, tmp_path, capsys):
    _, map_file, _ = tiny_instance_model
    shipped = Path(__file__).resolve().parents[2] / "models" / "alster_scannet20_synthetic.safetensors"
    assert main(["segment", str(map_file), "--model", str(shipped), "--out", str(tmp_path)]) == 1
    assert "'semantic_mapping' model" in capsys.readouterr().err


def test_segment_maps_a_sequence_first_and_scores_it_against_its_ground_truth(tiny_instance_model, tmp_path, capsys):
    checkpoint, _, (seed, frames, width, height) = tiny_instance_model
    argv = ["segment", f"synthetic:{seed}:{frames}", "--model", str(checkpoint), "--out", str(tmp_path)]
    argv += ["--width", str(width), "--height", str(height), "--set", "points=256"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert f"{frames} frames mapped" in out and "mCov" in out
    assert (tmp_path / "map.safetensors").exists()
    metrics = json.loads((tmp_path / "metrics.json").read_text())["metrics"]
    assert 0 < metrics["coverage"] <= 1


def test_a_missing_map_file_is_a_clear_error(tmp_path, capsys):
    assert main(["segment", str(tmp_path / "absent.safetensors"), "--out", str(tmp_path)]) == 1
    assert "map file not found" in capsys.readouterr().err
