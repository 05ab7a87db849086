"""bench/bench_segment.py builds a map of held-out worlds and times every stage of segmenting it."""

import json


def test_segment_bench_reports_every_stage(tmp_path, bench_script, tiny_instance_model):
    checkpoint, _, _ = tiny_instance_model
    bench = bench_script("bench_segment")
    argv = ["--models", str(checkpoint), "--voxels", "3000", "--frames", "4", "--repeats", "1", "--out", str(tmp_path)]
    assert bench.main(argv) == 0
    result = json.loads((tmp_path / "bench_segment.json").read_text())
    assert result["voxels"] >= 3000
    (model,) = result["models"].values()
    stages = model["median_seconds"]
    assert set(stages) == set(bench.STAGES) and stages["network"] > 0 and stages["clustering"] > 0
    # The total is wall time; network and clustering are summed over the worker threads and may exceed it.
    assert stages["total"] >= stages["load_map"] + stages["load_model"] + stages["objects"]
