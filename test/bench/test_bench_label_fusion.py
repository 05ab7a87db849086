"""bench/bench_label_fusion.py --quick: both kernels and Open3D's VoxelBlockGrid on the same frames."""

import json

from alster_mapping.core import jit


def test_label_fusion_bench_times_every_kernel_and_compares_the_maps(tmp_path, bench_script):
    bench = bench_script("bench_label_fusion")
    out = tmp_path / "bench.json"
    assert bench.main(["--quick", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    entry = result["results"]["synthetic 80x60"]
    assert entry["frames"] == 6 and entry["map_voxels"] > 0
    assert set(entry["torch"]) == {"lift", "vote", "map", "total"}
    assert 0 < entry["torch"]["total"]["min"] <= entry["torch"]["total"]["median"]
    assert entry["open3d"]["total"]["median"] > 0
    if jit.available():
        assert all(entry["maps_equal_torch_vs_numba"].values()), entry["maps_equal_torch_vs_numba"]
