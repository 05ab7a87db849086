"""bench/bench_online_mapper.py runs (--quick) and reports every stage of OnlineMapper.step."""

import json


def test_online_mapper_bench_reports_every_stage(tmp_path, bench_script):
    bench = bench_script("bench_online_mapper")
    out = tmp_path / "bench.json"
    assert bench.main(["--quick", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    stages = {"lift", "2d", "3d", "crop", "expert", "write", "total"}
    assert set(result["stages"]) == stages
    assert set(result["parameters"]) == {"encoder2d", "unet3d", "expert", "total"}
    assert result["parameters"]["total"] == sum(v for k, v in result["parameters"].items() if k != "total")
    (size,) = result["sizes"]
    assert (size["width"], size["height"]) == (80, 64)
    expected_runs = {"default"} if result["minkowski_skipped"] else {"default", "minkowski"}
    assert set(size["runs"]) == expected_runs
    for run in size["runs"].values():
        assert run["frames_timed"] == 3
        assert set(run["ms"]) == stages
        for stage in stages:
            ms = run["ms"][stage]
            assert len(ms["runs"]) == 3 and 0 < ms["min"] <= ms["median"] <= ms["p90"] <= ms["max"]
        assert run["ms"]["total"]["median"] >= run["ms"]["2d"]["median"]
        assert run["voxels_per_frame"]["median"] > 0 and run["map_voxels_at_end"] > 0
