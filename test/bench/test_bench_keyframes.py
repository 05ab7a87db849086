"""bench/bench_keyframes.py measures keyframe memory and the per-frame cost of the store."""

import json


def test_bench_keyframes_reports_both_resolutions(tmp_path, bench_script, capsys):
    bench = bench_script("bench_keyframes")
    assert bench.main(["--out", str(tmp_path), "--frames", "4", "--seeds", "3"]) == 0
    rows = json.loads((tmp_path / "bench_keyframes.json").read_text())["rows"]
    assert [r["resolution"] for r in rows] == ["320x240", "640x480"]
    for r in rows:
        assert 1 <= r["keyframes_kept"] <= r["frames_offered"] == 4 and r["mb_per_keyframe"] > 0
    assert rows[1]["mb_per_keyframe"] == 4 * rows[0]["mb_per_keyframe"]
    assert "| 320x240 |" in capsys.readouterr().out
