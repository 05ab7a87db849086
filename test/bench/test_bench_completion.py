"""bench/bench_completion.py times whole completions of a frame per variant and number of rounds."""

import json


def test_bench_completion_times_each_variant_and_round(tmp_path, bench_script, capsys):
    bench = bench_script("bench_completion")
    assert bench.main(["--out", str(tmp_path), "--variants", "A", "E", "--iterations", "1", "2", "--repeats", "1", "--frame", "2"]) == 0
    rows = json.loads((tmp_path / "bench_completion.json").read_text())["rows"]
    assert [(r["variant"], r["iterations"]) for r in rows] == [("A", 0), ("E", 1), ("E", 2)]
    assert all(r["voxels"] == 60 * 60 * 36 and r["seconds"]["median"] > 0 for r in rows)
    assert "| E | 2 |" in capsys.readouterr().out
