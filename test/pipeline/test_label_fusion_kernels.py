"""Label fusion's numba kernels (pipeline/label_fusion_kernels.py) give the torch kernel's map, bit for bit."""

from dataclasses import replace

import numpy as np
import pytest
import torch
from map_snapshot import assert_same_snapshot, snapshot

from alster_mapping.core import jit
from alster_mapping.core.config import LabelFusionConfig, MapConfig
from alster_mapping.data.sequences import SyntheticSequence
from alster_mapping.map.voxel_map import SemanticVoxelMap
from alster_mapping.pipeline import label_fusion_kernels
from alster_mapping.pipeline.label_fusion import LabelFusion

pytestmark = pytest.mark.skipif(not jit.available(), reason="numba is not installed")


def fuse(frames, kernel: str, evidence_cap: int, color_cap: int, index: str = "auto") -> SemanticVoxelMap:
    voxel_map = SemanticVoxelMap(MapConfig(voxel_size=0.05, color_weight_cap=color_cap, index=index))
    fusion = LabelFusion(voxel_map, LabelFusionConfig(evidence_weight_cap=evidence_cap, kernel=kernel))
    for frame in frames:
        fusion.integrate(frame)
    return voxel_map


def noisy_frames():
    """A randomized world whose labels are partly wrong (ties and moving evidence) and partly
    ignored (id 0: voxels whose pixels carry no vote keep their evidence)."""
    rng = np.random.default_rng(5)
    frames = []
    for frame in SyntheticSequence(2, 10, 80, 60, style="randomized"):
        labels = frame.labels.copy()
        wrong = rng.random(labels.shape) < 0.3
        labels[wrong] = rng.choice([1, 2, 3, 5, 7], size=int(wrong.sum()))
        labels[rng.random(labels.shape) < 0.2] = 0
        frames.append(replace(frame, labels=labels))
    return frames


@pytest.mark.parametrize("evidence_cap, color_cap", [(255, 16), (2, 1), (1000, 10000)])
def test_numba_and_torch_kernels_build_the_same_map(evidence_cap, color_cap):
    frames = noisy_frames()
    expected = snapshot(fuse(frames, "torch", evidence_cap, color_cap))
    got = snapshot(fuse(frames, "numba", evidence_cap, color_cap))
    assert expected["keys"].shape[0] > 500
    assert_same_snapshot(got, expected)
    # the ignored pixels left some voxels without any vote: unknown label, zero evidence
    assert (expected["label"] == -1).any() and (expected["label"] >= 0).any()


def test_same_map_on_the_torch_index_backend():
    frames = noisy_frames()[:4]
    expected = snapshot(fuse(frames, "torch", 255, 16, index="open3d"))
    got = snapshot(fuse(frames, "numba", 255, 16, index="torch"))
    assert_same_snapshot(got, expected)


def test_float16_conversions_give_torchs_bits():
    # float16 -> float32 for every float16, NaNs and infinities included
    every = np.arange(1 << 16, dtype=np.uint16)
    expected = torch.from_numpy(every.view(np.int16)).view(torch.float16).to(torch.float32).numpy()
    np.testing.assert_array_equal(label_fusion_kernels.float_values(every).view(np.uint32), expected.view(np.uint32))
    # float32 -> float16: random magnitudes from far below the subnormals to beyond the
    # largest float16, every float16 and the midpoints between neighbours (the ties) with
    # their float32 neighbours, and the edges
    rng = np.random.default_rng(0)
    finite = expected[np.isfinite(expected)].astype(np.float64)
    finite = np.unique(finite)
    midpoints = ((finite[1:] + finite[:-1]) / 2).astype(np.float32)
    values = np.concatenate([
        rng.standard_normal(200000).astype(np.float32) * np.float32(10.0) ** rng.integers(-10, 7, 200000),
        finite.astype(np.float32), midpoints, np.nextafter(midpoints, np.float32(np.inf)),
        np.nextafter(midpoints, np.float32(-np.inf)), -midpoints,
        np.array([0.0, -0.0, 65504.0, 65519.99, 65520.0, 1e6, np.inf, -np.inf, 2.0**-25, 2.0**-24, 2.0**-14]),
    ]).astype(np.float32)  # fmt: skip
    expected = torch.from_numpy(values).to(torch.float16).view(torch.int16).numpy().view(np.uint16)
    np.testing.assert_array_equal(label_fusion_kernels.half_bits(values), expected)
    # NaN: a quiet NaN with its sign (the evidence is never NaN; torch keeps payload bits here)
    nan_bits = label_fusion_kernels.half_bits(np.array([np.nan, -np.nan], np.float32))
    assert np.isnan(nan_bits.view(np.float16)).all() and (nan_bits & 0x7E00 == 0x7E00).all()


def test_unlabelled_frames_keep_evidence_and_count_observations():
    frame = noisy_frames()[0]
    voxel_map = fuse([frame, replace(frame, labels=np.zeros_like(frame.labels))], "numba", 255, 16)
    once = fuse([frame], "numba", 255, 16)
    a, b = snapshot(voxel_map), snapshot(once)
    np.testing.assert_array_equal(a["feature"], b["feature"])
    np.testing.assert_array_equal(a["count"], b["count"] + 1)
