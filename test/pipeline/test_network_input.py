"""The 2D network input (pipeline/network_input.py): the numba kernels against the tensor ops."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from alster_mapping.core import jit
from alster_mapping.core.geometry import normals_from_depth
from alster_mapping.data.sequences import SyntheticSequence
from alster_mapping.nets.encoder2d import Encoder2D
from alster_mapping.pipeline.gravity import GravityReference
from alster_mapping.pipeline.network_input import camera_normals, network_image, stacked_image

pytestmark = pytest.mark.skipif(not jit.available(), reason="numba is not installed")


def frames():
    """Sensor-like depth (holes, flying pixels) plus NaN, inf and negative values."""
    out = list(SyntheticSequence(4, 2, 80, 60, style="shifted"))
    broken = out[-1].depth.copy()
    broken[::9, ::4] = np.nan
    broken[5, :] = np.inf
    broken[:, 7] = -2.0
    return out + [replace(out[-1], depth=broken)]


@pytest.mark.parametrize("max_range", [3.0, 0.8])
def test_numba_normals_match_the_tensor_normals(max_range):
    for frame in frames():
        expected = normals_from_depth(torch.from_numpy(frame.depth), frame.intrinsics, max_range)
        got = camera_normals(frame, max_range)
        assert torch.equal(got != 0, expected != 0)  # the same pixels have normals
        # torch's vectorized cross product and norm fuse multiply-adds; these do not
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("inputs", ["gravity", "camera"])
def test_numba_image_is_the_tensor_image_bit_for_bit(inputs):
    for frame in frames():
        normals = normals_from_depth(torch.from_numpy(frame.depth), frame.intrinsics, 3.0)
        gravity = None
        if inputs == "gravity":
            height = torch.from_numpy(np.random.default_rng(0).normal(size=frame.depth.shape).astype(np.float32))
            height[0, :3] = float("nan")
            gravity = (height, normals[..., 2].clone())
        fused = stacked_image(frame, normals, gravity, fused=True)
        reference = Encoder2D.prepare_input(frame.color, frame.depth, normals.numpy(), gravity=gravity)
        assert fused.shape == reference.shape == (1, 9 if gravity else 7, *frame.depth.shape)
        assert torch.equal(fused, reference)


def test_network_image_on_either_path_feeds_the_same_channels(monkeypatch):
    frame = frames()[0]
    fused, fused_gravity = network_image(frame, "gravity", GravityReference(), 3.0)
    monkeypatch.setattr(jit, "numba", None)  # as on a machine without numba
    plain, plain_gravity = network_image(frame, "gravity", GravityReference(), 3.0)
    torch.testing.assert_close(fused, plain, rtol=0, atol=1e-5)
    torch.testing.assert_close(fused_gravity, plain_gravity, rtol=0, atol=1e-5)


def test_downscaled_input_averages_colour_and_samples_geometry():
    image = torch.arange(2 * 9 * 4 * 6, dtype=torch.float32).view(2, 9, 4, 6)[:1]
    small = Encoder2D.downscale_input(image, 2)
    assert small.shape == (1, 9, 2, 3)
    assert torch.equal(small[:, :3], torch.nn.functional.avg_pool2d(image[:, :3], 2))
    assert torch.equal(small[:, 3:], image[:, 3:, 1::2, 1::2])
    assert Encoder2D.downscale_input(image, 1) is image
    with pytest.raises(ValueError):
        Encoder2D.downscale_input(image, 0)
