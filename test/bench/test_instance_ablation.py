"""bench/instance_ablation.py trains each variant, scores it on a held-out world and tabulates the runs."""

import json


def test_ablation_runs_variants_resumes_and_tabulates(tmp_path, bench_script, capsys):
    bench = bench_script("instance_ablation")
    tiny = ["--set", "data.seeds=[1000,1000]", "--set", "data.frames=4", "--set", "data.width=96", "--set", "data.height=72"]
    argv = ["--out", str(tmp_path), "--steps", "2", "--seeds", "0", "--variants", "asis_vanilla,ban", "--eval-worlds", "3", *tiny]
    assert bench.main(argv) == 0
    report = json.loads((tmp_path / "instance_ablation.json").read_text())
    assert set(report["table"]) == {"asis_vanilla", "ban"}
    for run in report["runs"]:
        assert {"model", "components"} <= set(run) and 0 < run["model"]["coverage"] <= 1
    assert "| asis_vanilla | 1 |" in capsys.readouterr().out
    # A rerun finds the finished runs and trains nothing.
    stamp = (tmp_path / "ban_seed0" / "result.json").stat().st_mtime
    assert bench.main(argv) == 0
    assert (tmp_path / "ban_seed0" / "result.json").stat().st_mtime == stamp
