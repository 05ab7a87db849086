"""bench/transfer_ablation.py trains each variant, scores it in every style and tabulates the runs;
bench/style_shift.py scores checkpoints in every style; bench/label_consistency.py measures real frames."""

import json

import torch
from tiny_configs import TINY_ALSTER_NET

from alster_mapping.core.config import apply_overrides
from alster_mapping.core.labels import scannet20
from alster_mapping.nets.alster import AlsterModel
from alster_mapping.nets.alster.config import AlsterNetConfig
from alster_mapping.nets.checkpoint import save_checkpoint

TINY_TRAINING = [
    *(arg for key, value in TINY_ALSTER_NET.items() for arg in ("--set", f"mapping.model.{key}={json.dumps(value)}")),
    "--set", "data.width=64", "--set", "data.height=48", "--set", "pretrain_2d.batch=1", "--set", "joint.batch=1",
]  # fmt: skip


def test_transfer_ablation_runs_variants_resumes_and_tabulates(tmp_path, bench_script, capsys):
    bench = bench_script("transfer_ablation")
    argv = [
        "--out", str(tmp_path), "--seeds", "0", "--variants", "paper,full", "--pretrain-steps", "1", "--joint-steps", "1",
        "--train-worlds", "1000,1000", "--frames", "3", "--eval-worlds", "3", "--eval-frames", "2",
        "--styles", "classic,shifted", *TINY_TRAINING,
    ]  # fmt: skip
    assert bench.main(argv) == 0
    report = json.loads((tmp_path / "transfer_ablation.json").read_text())
    assert set(report["table"]) == {"paper", "full"}
    runs = {run["variant"]: run for run in report["runs"]}
    assert runs["paper"]["trained_style"] == "classic" and runs["full"]["trained_style"] == "randomized"
    assert "mapping.model.inputs=camera" in runs["paper"]["overrides"]
    assert runs["paper"]["drop_to_shifted"] == runs["paper"]["miou"]["classic"] - runs["paper"]["miou"]["shifted"]
    assert runs["full"]["drop_to_shifted"] is None  # its training style was not scored
    assert "| paper | 1 |" in capsys.readouterr().out
    stamp = (tmp_path / "full_seed0" / "result.json").stat().st_mtime
    assert bench.main(argv) == 0
    assert (tmp_path / "full_seed0" / "result.json").stat().st_mtime == stamp


def test_style_shift_scores_a_checkpoint_in_each_style(tmp_path, bench_script, capsys):
    torch.manual_seed(0)
    model = AlsterModel(apply_overrides(AlsterNetConfig(), TINY_ALSTER_NET))
    path = tmp_path / "tiny.safetensors"
    save_checkpoint(model, path, scannet20())
    bench = bench_script("style_shift")
    argv = ["--models", str(path), "--worlds", "3", "--frames", "2", "--styles", "classic,shifted", "--out", str(tmp_path)]
    assert bench.main(argv) == 0
    report = json.loads((tmp_path / "style_shift.json").read_text())
    entry = report["models"]["tiny.safetensors"]
    assert entry["trained_style"] == "classic" and set(entry["styles"]) == {"classic", "shifted"}
    assert all(0.0 <= scores["miou"] <= 1.0 for scores in entry["styles"].values())
    assert "drop" in capsys.readouterr().out
    assert bench.main([*argv[:-2], "--worlds", "4", "--out", str(tmp_path)]) == 2  # another setup in the same file


def test_label_consistency_measures_real_frames(tmp_path, bench_script, label_fusion_dir, capsys):
    torch.manual_seed(0)
    model = AlsterModel(apply_overrides(AlsterNetConfig(), TINY_ALSTER_NET))
    path = tmp_path / "tiny.safetensors"
    save_checkpoint(model, path, scannet20())
    bench = bench_script("label_consistency")
    argv = ["--models", str(path), "--label-fusion", str(label_fusion_dir), "--frames", "3", "--out", str(tmp_path)]
    assert bench.main(argv) == 0
    summary = json.loads((tmp_path / "label_consistency.json").read_text())["models"]["tiny.safetensors"]["label-fusion"]
    assert summary["frames"] == 3 and 0.0 <= summary["agreement"] <= 1.0
    assert "label-fusion" in capsys.readouterr().out
