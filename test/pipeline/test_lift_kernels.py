"""The fused numba lift (pipeline/lift_kernels.py) against the torch lift it replaces on the CPU."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from alster_mapping.core import jit
from alster_mapping.data.procedural_room import ProceduralRoom
from alster_mapping.data.sequences import SyntheticSequence
from alster_mapping.pipeline.lifting import lift_frame, use_numba

pytestmark = pytest.mark.skipif(not jit.available(), reason="numba is not installed")


def frames_with_artefacts():
    """Clean, sensor-like and broken depth: NaN, inf, negative, beyond range."""
    frames = ProceduralRoom(80, 64, seed=1).frames(3)
    frames += list(SyntheticSequence(3, 3, 80, 60, style="shifted"))
    broken = frames[-1].depth.copy()
    broken[::7, ::5] = np.nan
    broken[3, :] = np.inf
    broken[:, 2] = -1.0
    broken[10, 10:20] = 50.0
    frames.append(replace(frames[-1], depth=broken))
    return frames


def assert_same_lift(a, b):
    # bit for bit: the same float32 and float64 arithmetic, the same voxel order
    for name in ("keys", "inverse", "pixel_mask", "points"):
        assert getattr(a, name).dtype == getattr(b, name).dtype, name
        assert torch.equal(getattr(a, name), getattr(b, name)), name


@pytest.mark.parametrize("min_range, max_range, voxel", [(0.1, 3.0, 0.04), (0.0, 8.0, 0.013), (0.5, 2.0, 0.2)])
def test_numba_lift_equals_the_torch_lift(min_range, max_range, voxel):
    for frame in frames_with_artefacts():
        torch_lift = lift_frame(frame, voxel, max_range, min_range, kernel="torch")
        numba_lift = lift_frame(frame, voxel, max_range, min_range, kernel="numba")
        assert_same_lift(torch_lift, numba_lift)


def test_a_full_hash_table_is_retried_with_a_bigger_one(monkeypatch):
    frame = ProceduralRoom(80, 64, seed=1).frames(1)[0]
    expected = lift_frame(frame, 0.01, 3.0, 0.1, kernel="torch")
    assert expected.num_voxels > 512  # more than half of the smallest table below
    monkeypatch.setattr(jit, "table_size", lambda pixels: (1024, np.uint64(64 - 10)))
    assert_same_lift(expected, lift_frame(frame, 0.01, 3.0, 0.1, kernel="numba"))


def test_bad_poses_and_far_points_raise_like_the_torch_lift():
    frame = ProceduralRoom(80, 64, seed=1).frames(1)[0]
    far = frame.T_world_camera.copy()
    far[0, 3] = 1e6  # beyond +-2^20 voxels of 4 cm
    for kernel in ("torch", "numba"):
        with pytest.raises(ValueError, match="cannot be voxelized"):
            lift_frame(replace(frame, T_world_camera=far), 0.04, 3.0, 0.1, kernel=kernel)
        with pytest.raises(ValueError, match="no valid pixel"):
            lift_frame(replace(frame, depth=np.zeros_like(frame.depth)), 0.04, 3.0, 0.1, kernel=kernel)
        with pytest.raises(ValueError, match="voxel_size must be positive"):
            lift_frame(frame, 0.0, 3.0, 0.1, kernel=kernel)


def test_kernel_choice():
    assert use_numba("auto", "cpu") and use_numba("numba", "cpu")
    assert not use_numba("torch", "cpu") and not use_numba("auto", "cuda")
    with pytest.raises(ValueError, match="CPU only"):
        use_numba("numba", "cuda")
    with pytest.raises(ValueError, match="must be one of"):
        use_numba("fast", "cpu")


def test_without_numba_auto_falls_back_to_torch(monkeypatch):
    monkeypatch.setattr(jit, "numba", None)  # as on a machine without numba
    assert not use_numba("auto", "cpu")
    with pytest.raises(ValueError, match="not installed"):
        use_numba("numba", "cpu")


def test_image_mean_equals_the_scatter_mean():
    for frame in frames_with_artefacts():
        lifted = lift_frame(frame, 0.04, 3.0, 0.1)
        noise = torch.from_numpy(np.random.default_rng(0).normal(size=(*frame.depth.shape, 2)).astype(np.float32))
        for image in (frame.color, noise):
            expected = lifted.voxel_mean(lifted.pixel_values(torch.as_tensor(image)))
            assert torch.equal(lifted.image_mean(image), expected)  # same float32 sums in the same order


def test_warm_up_compiles_every_kernel_without_touching_a_map():
    from alster_mapping.pipeline.kernel_warm_up import warm_up_kernels

    assert warm_up_kernels() > 0


def test_kernels_still_compile_where_numba_cannot_cache():
    """A read-only install run by a user without a writable home leaves numba no place for
    its cache, which it refuses with a RuntimeError at decoration; the kernels must then
    compile uncached instead of breaking the import. Forced here through numba's
    NUMBA_CACHE_LOCATOR_CLASSES (a locator it cannot use)."""
    import os
    import subprocess
    import sys

    script = (
        "from alster_mapping.pipeline import lift_kernels\n"
        "from alster_mapping.pipeline.kernel_warm_up import warm_up_kernels\n"
        "assert type(lift_kernels.pixel_codes._cache).__name__ == 'NullCache'\n"
        "assert warm_up_kernels() > 0\n"
    )
    env = {**os.environ, "NUMBA_CACHE_LOCATOR_CLASSES": "_NoSuchLocator"}
    run = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
