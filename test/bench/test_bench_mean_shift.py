"""bench/bench_mean_shift.py runs (--quick) and reports time and agreement with scikit-learn."""

import json


def test_mean_shift_bench_reports_time_and_agreement(tmp_path, bench_script):
    bench = bench_script("bench_mean_shift")
    assert bench.main(["--quick", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "bench_mean_shift.json").read_text())
    (case,) = result["cases"]
    assert case["points"] > 1000 and case["clusters_torch"] == case["clusters_scikit_learn"]
    assert case["adjusted_rand_index"] >= 0.99 and case["scikit_learn_s"] > 0 and case["torch_s"] > 0


def test_mean_shift_bench_clusters_a_trained_models_embeddings(tmp_path, bench_script, tiny_instance_model):
    checkpoint, map_file, _ = tiny_instance_model
    bench = bench_script("bench_mean_shift")
    assert bench.main(["--quick", "--out", str(tmp_path), "--model", str(checkpoint), "--map", str(map_file), "--chunks", "3"]) == 0
    result = json.loads((tmp_path / "bench_mean_shift.json").read_text())
    case = result["cases"][-1]
    assert case["case"] == "trained model, 3 chunks" and case["points"] == 3 * 1024
    assert case["adjusted_rand_index"] >= 0.99 and case["clusters_torch"] == case["clusters_scikit_learn"]
