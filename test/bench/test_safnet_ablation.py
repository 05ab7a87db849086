"""bench/safnet_ablation.py trains each variant, scores it on a held-out world at clean and
misregistered poses, resumes finished runs, scores them later under harder conditions
without training again, and tabulates them."""

import json

from tiny_configs import as_set_arguments, tiny_safnet_net


def test_ablation_runs_variants_resumes_and_tabulates(tmp_path, bench_script, capsys):
    bench = bench_script("safnet_ablation")
    tiny = ["data.seeds=[1000,1000]", "data.frames=6", "data.width=96", "data.height=72", "data.chunks_per_world=4", "chunks.points=128",
            "chunks.min_points=10", "batch=2", *as_set_arguments(tiny_safnet_net("model."))]
    argv = ["--out", str(tmp_path), "--steps", "2", "--seeds", "0", "--variants", "points,full", "--eval-worlds", "3"]
    argv += [arg for setting in tiny for arg in ("--set", setting)]
    assert bench.main(argv) == 0
    report = json.loads((tmp_path / "safnet_ablation.json").read_text())
    assert set(report["table"]) == {"points", "full"}
    for run in report["runs"]:
        assert set(run["miou"]) == {"clean", "misregistered"}
        assert all(0 <= value <= 1 for value in run["miou"].values())
    assert "| full | 1 |" in capsys.readouterr().out
    # A rerun finds the finished runs and trains nothing.
    stamp = (tmp_path / "full_seed0" / "result.json").stat().st_mtime
    assert bench.main(argv) == 0
    assert (tmp_path / "full_seed0" / "result.json").stat().st_mtime == stamp
    # Harder conditions are scored from the saved models; the training state is not touched.
    state = (tmp_path / "full_seed0" / "model.safetensors").stat().st_mtime
    harder = ["--conditions", "clean,all_misregistered,one_chunk"]
    assert bench.main(argv + harder) == 0
    report = json.loads((tmp_path / "safnet_ablation.json").read_text())
    for run in report["runs"]:
        assert set(run["miou"]) == {"clean", "misregistered", "all_misregistered", "one_chunk"}
        assert all(0 <= value <= 1 for value in run["miou"].values())
        # One chunk per voxel: the columns no longer overlap.
        assert run["scores"]["one_chunk"]["chunks"] < run["scores"]["all_misregistered"]["chunks"]
    assert set(report["table"]["full"]) >= {"clean", "all_misregistered", "one_chunk"}
    assert (tmp_path / "full_seed0" / "model.safetensors").stat().st_mtime == state
    # A trained checkpoint is scored the same way, and --record writes the scores into its card.
    checkpoint = tmp_path / "full_seed0" / "model.safetensors"
    assert bench.main(["--out", str(tmp_path), "--eval-worlds", "3", "--checkpoint", str(checkpoint), "--record"]) == 0
    card = json.loads((tmp_path / "full_seed0" / "model.json").read_text())
    recorded = card["metrics"]["held_out_synthetic"]
    assert recorded["worlds"] == [3] and 0 <= recorded["clean"] <= 1 and 0 <= recorded["misregistered"] <= 1
