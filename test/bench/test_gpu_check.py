"""bench/gpu_check.py on the CPU (--quick): every run of the GPU check works on a machine
without a GPU, frames travel through an .npz, and the reference runs agree."""

import json

import numpy as np
import pytest


def test_gpu_check_runs_every_stage_on_the_cpu(tmp_path, bench_script):
    check = bench_script("gpu_check")
    out = tmp_path / "gpu_check.json"
    assert check.main(["--device", "cpu", "--quick", "--reference", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["device"] == "cpu" and set(report["results"]) == {"80x60", "160x120"}
    for entry in report["results"].values():
        for run in ("alster", "alster_mixed", "alster_cpu", "unet3d", "label_fusion", "label_fusion_cpu"):
            assert entry[run]["total"]["median"] > 0 and entry[run]["fps_median"] > 0, run
        assert {"lift", "2d", "3d", "crop", "expert", "write"} <= set(entry["alster"])
        # the same device twice: identical labels; mixed precision (bfloat16 here) mostly agrees
        assert entry["alster_cpu"]["labels_equal_to_device"] == 1.0
        assert entry["label_fusion_cpu"]["map_labels_equal_to_device"] == 1.0
        assert entry["alster_mixed"]["labels_equal_to_float32"] > 0.9


def test_frames_survive_the_npz_round_trip(tmp_path, bench_script):
    check = bench_script("gpu_check")
    frames = check.render_frames(2, (80, 60))
    check.save_frames(tmp_path / "frames.npz", frames)
    loaded = check.load_frames(tmp_path / "frames.npz")
    for a, b in zip(frames, loaded):
        for name in ("color", "depth", "labels", "T_world_camera"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
        assert a.intrinsics == b.intrinsics and a.stamp_ns == b.stamp_ns
    small = check.frames_at(loaded, (40, 30))
    assert small[0].depth.shape == (30, 40) and small[0].intrinsics.width == 40
    with pytest.raises(ValueError, match="integer downscale"):
        check.frames_at(loaded, (30, 20))


def test_gpu_check_runs_where_only_torch_is(tmp_path, bench_script):
    """The GPU machines have no Open3D, numba or MinkowskiEngine: the check must import and
    run there (map.index falls back to torch, the lift to tensor ops), from saved frames."""
    import subprocess
    import sys
    from pathlib import Path

    check = bench_script("gpu_check")
    check.save_frames(tmp_path / "frames.npz", check.render_frames(3, (80, 60)))
    script = (
        "import sys\n"
        "for name in ('open3d', 'open3d.core', 'MinkowskiEngine', 'numba'):\n"
        "    sys.modules[name] = None\n"
        f"sys.path.insert(0, {str(Path(check.__file__).parent)!r})\n"
        "import gpu_check\n"
        f"sys.exit(gpu_check.main(['--device', 'cpu', '--frames-file', {str(tmp_path / 'frames.npz')!r},"
        f" '--sizes', '80x60', '--passes', '1', '--out', {str(tmp_path / 'out.json')!r}]))\n"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    report = json.loads((tmp_path / "out.json").read_text())
    assert report["results"]["80x60"]["alster"]["fps_median"] > 0
    assert report["frames_source"].endswith("frames.npz")
