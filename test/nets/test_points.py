"""PointNet++ operations and layers (alster_mapping.nets.points) against brute-force references."""

import numpy as np
import pytest
import torch

from alster_mapping.core.config import apply_overrides
from alster_mapping.nets.points.ops import (
    ball_query,
    farthest_point_sample,
    farthest_point_sample_torch,
    gather_points,
    group_max,
    group_points,
    three_nn_interpolate,
)
from alster_mapping.nets.points.pointnet2 import PointNet2Backbone, PointNet2Config, SetAbstraction


def brute_force_fps(xyz: np.ndarray, m: int) -> list[int]:
    chosen, nearest = [0], np.full(len(xyz), np.inf)
    for _ in range(m - 1):
        nearest = np.minimum(nearest, ((xyz - xyz[chosen[-1]]) ** 2).sum(1))
        chosen.append(int(nearest.argmax()))
    return chosen


def brute_force_ball_query(xyz: np.ndarray, centre: np.ndarray, radius: float, k: int) -> list[int]:
    found = [i for i in range(len(xyz)) if ((xyz[i] - centre) ** 2).sum() < radius * radius][:k]
    return found + [found[0]] * (k - len(found)) if found else [0] * k


@pytest.fixture(scope="module")
def clouds():
    return torch.from_numpy(np.random.default_rng(0).uniform(0, 1, (2, 300, 3))).float()


def test_farthest_point_sampling_matches_the_reference_loop(clouds):
    index = farthest_point_sample(clouds, 40)
    assert index.shape == (2, 40) and index.dtype == torch.int64
    for b in range(2):
        assert index[b].tolist() == brute_force_fps(clouds[b].double().numpy(), 40)
    with pytest.raises(ValueError, match="cannot sample 301 of 300"):
        farthest_point_sample(clouds, 301)


def test_the_compiled_sampling_picks_the_torch_loops_points():
    pytest.importorskip("numba")
    generator = torch.Generator().manual_seed(1)
    for count, samples in ((1024, 256), (64, 16), (16, 16), (5, 1)):
        xyz = torch.rand(3, count, 3, generator=generator) * torch.tensor([1.0, 1.0, 3.0])
        assert torch.equal(farthest_point_sample(xyz, samples), farthest_point_sample_torch(xyz, samples))
    # Equal distances (a grid with repeated points): both take the first of the farthest.
    grid = torch.stack(torch.meshgrid(*[torch.arange(4.0)] * 3, indexing="ij"), -1).reshape(1, -1, 3).repeat(2, 2, 1)
    assert torch.equal(farthest_point_sample(grid, 100), farthest_point_sample_torch(grid, 100))
    assert torch.equal(farthest_point_sample(grid.double(), 100), farthest_point_sample_torch(grid, 100))


def test_ball_query_takes_the_first_points_in_index_order_and_pads_with_the_first(clouds):
    centres = clouds[:, :25]
    for radius, k in ((0.15, 8), (0.3, 16), (0.05, 4)):
        index = ball_query(clouds, centres, radius, k)
        assert index.shape == (2, 25, k)
        for b in range(2):
            for m in range(25):
                expected = brute_force_ball_query(clouds[b].numpy(), centres[b, m].numpy(), radius, k)
                assert index[b, m].tolist() == expected, (radius, k, b, m)
    # A centre far from every point: index 0 throughout (the reference operator's zeros).
    assert ball_query(clouds, torch.full((2, 1, 3), 10.0), 0.1, 4).eq(0).all()


def test_three_nn_interpolation_matches_inverse_squared_distance_weights(clouds):
    known, target = clouds[:, :20], clouds[:, 20:60]
    features = torch.randn(2, 20, 5)
    out = three_nn_interpolate(target, known, features)
    for b in range(2):
        for n in range(40):
            d2 = ((known[b] - target[b, n]) ** 2).sum(1)
            nearest = d2.argsort()[:3]
            w = 1.0 / d2[nearest].clamp_min(1e-10)
            expected = (features[b, nearest] * (w / w.sum())[:, None]).sum(0)
            torch.testing.assert_close(out[b, n], expected, rtol=1e-4, atol=1e-5)
    # A target on a known point gets (almost exactly) that point's features.
    torch.testing.assert_close(three_nn_interpolate(known[:, :1], known, features)[:, 0], features[:, 0], rtol=1e-4, atol=1e-4)


def test_grouping_gathers_per_neighbour():
    points = torch.arange(2 * 5 * 2, dtype=torch.float32).reshape(2, 5, 2)
    index = torch.tensor([[[4, 0]], [[1, 1]]])
    assert group_points(points, index).tolist() == [[[[8.0, 9.0], [0.0, 1.0]]], [[[12.0, 13.0], [12.0, 13.0]]]]


def test_gathering_copies_the_rows_of_each_batch_element():
    points = torch.randn(3, 7, 4)
    index = torch.randint(0, 7, (3, 5))
    expected = torch.stack([points[b, index[b]] for b in range(3)])
    assert torch.equal(gather_points(points, index), expected)
    assert torch.equal(gather_points(points.transpose(1, 2).contiguous().transpose(1, 2), index), expected)


def test_group_max_equals_the_max_over_the_grouped_tensor_with_its_gradient():
    points = torch.randn(2, 50, 6, requires_grad=True)
    index = torch.randint(0, 50, (2, 40, 9))
    expected = group_points(points, index).max(2).values
    with torch.no_grad():
        assert torch.equal(group_max(points, index), expected)
    out = group_max(points, index)
    assert torch.equal(out, expected)
    weights = torch.randn_like(out)
    (gradient,) = torch.autograd.grad((out * weights).sum(), points)
    (reference,) = torch.autograd.grad((expected * weights).sum(), points)
    torch.testing.assert_close(gradient, reference)


def test_set_abstraction_pools_the_relative_geometry_of_each_ball(clouds):
    layer = SetAbstraction(16, 0.3, 8, in_channels=4, widths=[8, 16]).eval()
    centres, features = layer(clouds, torch.randn(2, 300, 4))
    assert centres.shape == (2, 16, 3) and features.shape == (2, 16, 16)
    # Translating the whole cloud changes nothing: the grouped xyz are relative to the centroid.
    with torch.no_grad():
        shifted = layer(clouds + 5.0, torch.zeros(2, 300, 4))[1]
        again = layer(clouds, torch.zeros(2, 300, 4))[1]
    torch.testing.assert_close(shifted, again, rtol=1e-4, atol=1e-5)


def small_config(**overrides) -> PointNet2Config:
    base = {"centroids": [64, 16], "radii": [0.2, 0.4], "neighbours": 8, "sa_channels": [16, 32], "fp_channels": [32, 16]}
    return apply_overrides(PointNet2Config(), {**base, **overrides})


def test_the_config_checks_one_entry_per_level_and_float_lists():
    assert small_config().radii == (0.2, 0.4)
    with pytest.raises(ValueError, match="one entry per level"):
        small_config(radii=[0.2])
    with pytest.raises(ValueError, match="list element -1.0: below the minimum"):
        small_config(radii=[0.2, -1.0])


def test_the_backbone_gives_per_point_features_and_learns_a_labelling(clouds):
    torch.manual_seed(0)
    backbone = PointNet2Backbone(small_config(), in_channels=3)
    head = torch.nn.Linear(backbone.out_channels, 2)
    out = backbone(clouds, clouds)
    assert out.shape == (2, 300, 16) and backbone.out_channels == 16
    # Points above z = 0.5 are class 1: a few steps of Adam must fit it.
    target = (clouds[..., 2] > 0.5).long()
    optimizer = torch.optim.Adam([*backbone.parameters(), *head.parameters()], lr=1e-2)
    losses = []
    for _ in range(40):
        loss = torch.nn.functional.cross_entropy(head(backbone(clouds, clouds)).reshape(-1, 2), target.reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses
    with pytest.raises(ValueError, match="takes 3 feature channels"):
        backbone(clouds)


def test_the_default_config_is_the_asis_layout():
    cfg = PointNet2Config()
    assert cfg.centroids == (1024, 256, 64, 16) and cfg.radii == (0.1, 0.2, 0.4, 0.8) and cfg.neighbours == 32
    backbone = PointNet2Backbone(cfg, in_channels=6)
    widths = [[m.out_channels for m in a.mlp if isinstance(m, torch.nn.Conv2d)] for a in backbone.encoder.abstractions]
    assert widths == [[32, 32, 64], [64, 64, 128], [128, 128, 256], [256, 256, 512]]
