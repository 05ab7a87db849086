"""Mean-shift clustering (alster_mapping.nets.points.mean_shift) against scikit-learn's MeanShift."""

import numpy as np
import pytest
import torch
from sklearn.cluster import MeanShift
from sklearn.metrics import adjusted_rand_score

from alster_mapping.nets.points import mean_shift as mean_shift_module
from alster_mapping.nets.points.mean_shift import bin_seeds, mean_shift, unique_rows


def blobs(seed: int, points: int = 1500, instances: int = 12, spread: float = 0.2, separation: float = 1.4) -> np.ndarray:
    rng = np.random.default_rng(seed)
    means = rng.normal(0.0, separation, (instances, 5))
    sizes = np.maximum((rng.dirichlet(np.ones(instances)) * points).astype(int), 10)
    return np.concatenate([m + rng.normal(0.0, spread, (s, 5)) for m, s in zip(means, sizes)])


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("dense_pairs", [1 << 30, 0])  # the dense step and the two-pass pair search
def test_the_clusters_and_centres_are_scikit_learns(seed, dense_pairs, monkeypatch):
    monkeypatch.setattr(mean_shift_module, "DENSE_PAIRS", dense_pairs)
    x = blobs(seed)
    reference = MeanShift(bandwidth=0.6, bin_seeding=True).fit(x)
    labels, centres = mean_shift(torch.from_numpy(x), 0.6)
    assert adjusted_rand_score(reference.labels_, labels.numpy()) >= 0.99
    assert centres.shape == reference.cluster_centers_.shape
    # Same centres, same order (strongest first).
    np.testing.assert_allclose(centres.numpy(), reference.cluster_centers_, atol=1e-9)


@pytest.mark.parametrize("dtype", [torch.float64, torch.int64])
def test_unique_rows_are_torch_uniques(dtype):
    # Few distinct values per column: many duplicate rows and ties in every column.
    rows = torch.from_numpy(np.random.default_rng(3).integers(-2, 3, (500, 5))).to(dtype)
    unique, inverse = unique_rows(rows)
    expected, expected_inverse = torch.unique(rows, dim=0, return_inverse=True)
    assert torch.equal(unique, expected) and torch.equal(inverse, expected_inverse)
    assert torch.equal(unique[inverse], rows)
    single = unique_rows(torch.tensor([[1.0, 2.0]]))
    assert single[0].tolist() == [[1.0, 2.0]] and single[1].tolist() == [0]


def test_seeds_are_the_occupied_grid_cells():
    points = torch.tensor([[0.1, 0.0], [0.2, 0.1], [1.0, 1.0]], dtype=torch.float64)
    assert bin_seeds(points, 0.5).tolist() == [[0.0, 0.0], [1.0, 1.0]]


def test_one_point_and_bad_input():
    labels, centres = mean_shift(torch.tensor([[1.0, 2.0]]), 0.6)
    assert labels.tolist() == [0] and centres.tolist() == [[1.0, 2.0]]
    with pytest.raises(ValueError, match="non-empty"):
        mean_shift(torch.zeros(0, 5), 0.6)
    with pytest.raises(ValueError, match="bandwidth"):
        mean_shift(torch.zeros(3, 5), 0.0)
