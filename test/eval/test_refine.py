"""``alster refine`` (alster_mapping.eval.refine): a map and its keyframes in, the map
relabelled by SAFNet, renders and scores before and after out."""

import json

from alster_mapping.cli import main
from alster_mapping.map.map_file import load_map
from alster_mapping.nets.shipped import shipped_alster_checkpoint
from alster_mapping.pipeline.keyframes import keyframe_file


def refine_args(checkpoint, tmp_path, width, height) -> list[str]:
    sets = ["min_voxels=20", "chunks.points=256", "chunks.min_points=10"]
    return ["--model", str(checkpoint), "--out", str(tmp_path), "--width", str(width), "--height", str(height)] + [
        arg for s in sets for arg in ("--set", s)
    ]


def test_refine_a_map_with_its_keyframes_and_score_it(tiny_safnet_model, tmp_path, capsys):
    checkpoint, map_file, (seed, frames, width, height) = tiny_safnet_model
    argv = ["refine", str(map_file), "--gt", f"synthetic:{seed}:{frames}", *refine_args(checkpoint, tmp_path, width, height)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "relabelled" in out and "mIoU" in out and "->" in out
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["relabelled"] > 0 and summary["keyframes"] >= summary["keyframes_used"] > 0
    assert set(summary["before"]) == set(summary["after"]) and 0 <= summary["after"]["miou"] <= 1
    refined = load_map(tmp_path / "map.safetensors")
    assert len(refined) == len(load_map(map_file))
    assert keyframe_file(tmp_path / "map.safetensors").is_file()
    assert {"map_labels.ply", "map.safetensors", "map.keyframes.safetensors"} <= set(summary["outputs"])


def test_refine_maps_a_sequence_first_or_takes_keyframes_from_one(tiny_safnet_model, tmp_path, capsys):
    checkpoint, map_file, (seed, frames, width, height) = tiny_safnet_model
    argv = ["refine", f"synthetic:{seed}", "--synthetic-frames", str(frames), *refine_args(checkpoint, tmp_path / "a", width, height)]
    argv += ["--config", str(write_config(tmp_path))]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert f"{frames} frames mapped" in out and "keyframes" in out and "mIoU" in out  # a synthetic sequence scores itself
    assert (tmp_path / "a" / "online_map.safetensors").is_file()
    argv = ["refine", str(map_file), "--frames", f"synthetic:{seed}", "--synthetic-frames", str(frames)]
    argv += refine_args(checkpoint, tmp_path / "b", width, height)
    assert main(argv) == 0
    assert "keyframes of" in capsys.readouterr().out


def write_config(tmp_path):
    """Map with label fusion at 8 cm (fast; the ground-truth label images drive it)."""
    path = tmp_path / "mapping.yaml"
    path.write_text("mode: label_fusion\nmap: {voxel_size: 0.08}\n")
    return path


def test_a_map_without_keyframes_or_a_wrong_checkpoint_is_refused(tiny_safnet_model, tmp_path, capsys):
    checkpoint, map_file, (_, _, width, height) = tiny_safnet_model
    bare = tmp_path / "bare.safetensors"
    bare.write_bytes(map_file.read_bytes())  # a copy without its keyframes beside it
    assert main(["refine", str(bare), *refine_args(checkpoint, tmp_path / "out", width, height)]) == 1
    assert "has no keyframes beside it" in capsys.readouterr().err
    shipped_alster = shipped_alster_checkpoint()
    assert main(["refine", str(map_file), *refine_args(shipped_alster, tmp_path / "out", width, height)]) == 1
    assert "semantic_mapping" in capsys.readouterr().err
