"""bench/instance_eval.py (and the ablation's evaluation) scores a checkpoint on held-out worlds and records it."""

import json
import shutil

from alster_mapping.nets.checkpoint import read_card


def test_instance_eval_scores_held_out_worlds_and_records_them(tmp_path, bench_script, tiny_instance_model):
    checkpoint, _, _ = tiny_instance_model
    copy = tmp_path / "model.safetensors"
    shutil.copy(checkpoint, copy)
    shutil.copy(checkpoint.with_suffix(".json"), copy.with_suffix(".json"))
    bench = bench_script("instance_eval")
    assert bench.main(["--model", str(copy), "--eval-worlds", "3", "--record", "held_out", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "instance_eval.json").read_text())
    for method in ("model", "components"):
        scores = report[method]
        assert 0 < scores["coverage"] <= 1 and 0 <= scores["semantic"]["miou"] <= 1 and 0 <= scores["instance"]["mcov"] <= 1
    recorded = read_card(copy)["metrics"]["held_out"]
    assert recorded["worlds"] == [3] and recorded["model"] == report["model"]


def test_instance_eval_on_maps_of_the_alster_mapper(tmp_path, bench_script, tiny_instance_model, monkeypatch):
    checkpoint, _, _ = tiny_instance_model
    bench = bench_script("instance_eval")
    ablation = bench_script("instance_ablation")
    real = ablation.alster_scenes
    # A short walk keeps the test fast; the bench maps 120 frames.
    monkeypatch.setattr(bench, "alster_scenes", lambda worlds, frames, width, height, cache: real(worlds, 4, 96, 72, tmp_path / "maps"))
    assert bench.main(["--model", str(checkpoint), "--eval-worlds", "3", "--maps", "alster", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "instance_eval.json").read_text())
    assert report["maps"] == "alster" and 0 < report["model"]["coverage"] <= 1
    assert set(report["model_semantics"]) == set(report["model"])
    assert list((tmp_path / "maps").iterdir())  # the maps are kept for the next run
