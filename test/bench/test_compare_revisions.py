"""bench/compare_revisions.py: medians and digests of two runs side by side (the worktree
step is replaced by the working tree itself, so the test leaves git alone)."""

import json


def test_medians_and_digests_are_collected_by_path(bench_script):
    compare = bench_script("compare_revisions")
    report = {"a": {"median": 2.0, "p90": 3.0}, "runs": [{"ms": {"median": 1}}], "map_sha256": "x", "n": 5}
    assert compare.medians(report) == {"a": 2.0, "runs/0/ms": 1.0}
    assert compare.digests(report) == {"map_sha256": "x"}


def test_the_same_tree_twice_gives_equal_digests_and_no_change(tmp_path, bench_script, monkeypatch, capsys):
    compare = bench_script("compare_revisions")
    monkeypatch.setattr(compare, "worktree", lambda commit: compare.ROOT)
    out = tmp_path / "compare"
    assert compare.main(["--baseline", "HEAD", "--rounds", "1", "--out", str(out), "--", "label_fusion_digest.py", "--frames", "2"]) == 0
    summary = json.loads((out / "compare.json").read_text())
    assert summary["digests_equal"] == {"map_sha256": True}
    assert "map_sha256: equal" in capsys.readouterr().out
