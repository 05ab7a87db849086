"""scatter_mean: group means, identical in both memory layouts."""

import pytest
import torch

from alster_mapping.core.scatter import scatter_mean


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_scatter_mean_is_bitwise_equal_in_both_layouts_and_matches_a_loop(dtype):
    gen = torch.Generator().manual_seed(0)
    inverse = torch.randint(0, 50, (2_000,), generator=gen)
    inverse[:3] = 59  # groups past the last used one, and empty groups in between
    channels_first = torch.randn(7, 2_000, generator=gen, dtype=dtype)
    row_major = scatter_mean(channels_first.t().contiguous(), inverse, 60)
    transposed = scatter_mean(channels_first.t(), inverse, 60)
    assert transposed.is_contiguous() and transposed.dtype == dtype
    assert torch.equal(transposed, row_major)
    for group in (0, 17, 59):
        torch.testing.assert_close(row_major[group], channels_first.t()[inverse == group].mean(0))
    assert (row_major[55] == 0).all()  # no rows


def test_scatter_mean_of_integer_values_is_float():
    out = scatter_mean(torch.tensor([[0, 10], [2, 20], [5, 5]], dtype=torch.uint8), torch.tensor([0, 0, 1]), 2)
    torch.testing.assert_close(out, torch.tensor([[1.0, 15.0], [5.0, 5.0]]))
