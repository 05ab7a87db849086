"""The discriminative loss of instance embeddings (ASIS eq. 1-4) on cases checked by hand."""

import pytest
import torch

from alster_mapping.nets.losses import discriminative_loss


def test_each_term_by_hand():
    # Two instances in 1-d: A = {0, 2} (mean 1), B = {10} (mean 10); one ignored point.
    e = torch.tensor([[[0.0], [2.0], [10.0], [99.0]]])
    ids = torch.tensor([[0, 0, 1, -1]])
    parts = discriminative_loss(e, ids, delta_v=0.5, delta_d=6.0)
    # L_var: A's points are 1 from the mean: (1 - 0.5)^2 = 0.25 each -> 0.25; B: 0 -> mean 0.125.
    assert parts["var"].item() == pytest.approx(0.125)
    # L_dist: |1 - 10| = 9 < 2 * 6 = 12: (12 - 9)^2 = 9 for each ordered pair, / (2 * 1) -> 9.
    assert parts["dist"].item() == pytest.approx(9.0)
    # L_reg: (|1| + |10|) / 2 = 5.5; total = 0.125 + 9 + 0.001 * 5.5.
    assert parts["reg"].item() == pytest.approx(5.5)
    assert parts["total"].item() == pytest.approx(0.125 + 9.0 + 0.0055)


def test_tight_separated_instances_cost_only_the_regulariser_and_gradients_pull_and_push():
    e = torch.tensor([[[0.0, 0.0], [0.1, 0.0], [5.0, 5.0], [5.0, 5.1]]], requires_grad=True)
    ids = torch.tensor([[3, 3, 7, 7]])
    parts = discriminative_loss(e, ids)
    assert parts["var"].item() == 0.0 and parts["dist"].item() == 0.0 and parts["reg"].item() > 0
    # Two overlapping instances: the loss pushes their points apart.
    close = torch.tensor([[[0.0], [0.2], [0.4], [0.6]]], requires_grad=True)
    loss = discriminative_loss(close, torch.tensor([[0, 0, 1, 1]]))["total"]
    loss.backward()
    assert close.grad[0, :2].sum() > 0 > close.grad[0, 2:].sum()  # instance 0 moves down, instance 1 up


def test_batches_average_and_edge_cases():
    single = discriminative_loss(torch.zeros(1, 3, 2), torch.tensor([[0, 0, 0]]))
    assert single["dist"].item() == 0.0 and single["total"].item() == 0.0
    nothing = discriminative_loss(torch.zeros(2, 3, 2, requires_grad=True), torch.full((2, 3), -1))
    assert nothing["total"].item() == 0.0 and nothing["total"].requires_grad
    a = discriminative_loss(torch.tensor([[[0.0], [2.0]]]), torch.tensor([[0, 0]]))["var"]
    both = discriminative_loss(torch.tensor([[[0.0], [2.0]], [[0.0], [0.0]]]), torch.tensor([[0, 0], [0, 0]]))["var"]
    assert both.item() == pytest.approx(a.item() / 2)
    with pytest.raises(ValueError, match="do not fit"):
        discriminative_loss(torch.zeros(2, 3), torch.zeros(2, 3, dtype=torch.int64))
