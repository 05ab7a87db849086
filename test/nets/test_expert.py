"""Temporal expert (ALSTER eq. 2-3), focal loss (eq. 4-5) and the model registry."""

import math

import torch
import torch.nn.functional as F

from alster_mapping.nets.alster.expert import ExpertLayer, TemporalExpert
from alster_mapping.nets.losses import alster_loss, focal_loss


def inputs(n=64, d=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(n, d, generator=g),
        torch.randint(0, 5, (n,), generator=g),
        torch.randn(n, d, generator=g),
        torch.randn(n, d, generator=g),
    )


def test_shapes_and_parameter_count_match_the_paper_scale():
    expert = TemporalExpert(dim=40, num_classes=20, layers=5, hidden=128)
    feature, logits = expert(*inputs())
    assert feature.shape == (64, 40) and logits.shape == (64, 20)
    assert feature.dtype == logits.dtype == torch.float32
    # The paper reports 92 k parameters for its expert; ours differs only by the
    # count embedding, source embeddings and empty token.
    assert 80_000 < sum(p.numel() for p in expert.parameters()) < 100_000


def test_attention_weights_are_a_distribution_over_the_three_sources():
    expert = TemporalExpert(heads=4)
    _, _, weights = expert(*inputs(), return_attention=True)
    assert weights.shape == (64, 4, 3)
    torch.testing.assert_close(weights.sum(-1), torch.ones(64, 4))


def test_new_voxels_use_the_empty_token_not_their_old_feature():
    expert = TemporalExpert().eval()
    old, count, f3d, f2d = inputs()
    count = torch.zeros_like(count)
    a, _ = expert(old, count, f3d, f2d)
    b, _ = expert(torch.randn_like(old) * 100, count, f3d, f2d)
    torch.testing.assert_close(a, b)


def test_old_feature_and_count_matter_for_seen_voxels():
    expert = TemporalExpert().eval()
    old, count, f3d, f2d = inputs()
    count = count + 1
    a, _ = expert(old, count, f3d, f2d)
    assert not torch.allclose(a, expert(old + 1.0, count, f3d, f2d)[0])
    assert not torch.allclose(a, expert(old, count * 50, f3d, f2d)[0])


def test_layer_matches_a_hand_written_single_head_attention():
    torch.manual_seed(0)
    layer = ExpertLayer(dim=8, heads=1, hidden=16).eval()
    query, tokens = torch.randn(5, 8), torch.randn(5, 3, 8)
    out, weights = layer(query, tokens)
    q, k, v = layer.q(query), layer.k(tokens), layer.v(tokens)
    w = torch.softmax((q.unsqueeze(1) * k).sum(-1) / math.sqrt(8), dim=-1)  # eq. 3
    x = layer.norm1(query + layer.out((w.unsqueeze(-1) * v).sum(1)))
    x = layer.norm2(x + layer.ffn(x))
    torch.testing.assert_close(weights[:, 0], w)
    torch.testing.assert_close(out, x)


def test_gradients_reach_every_parameter_and_outputs_are_deterministic():
    torch.manual_seed(1)
    expert = TemporalExpert()
    old, count, f3d, f2d = inputs()
    count[:10] = 0
    feature, logits = expert(old, count, f3d, f2d)
    (feature.square().mean() + logits.square().mean()).backward()
    for name, p in expert.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    torch.manual_seed(1)
    again = TemporalExpert()
    torch.testing.assert_close(again(old, count, f3d, f2d)[0], feature)


def test_expert_learns_to_pick_the_informative_source():
    """The 2D token carries the label, the 3D token is noise: the expert must learn to use 2D."""
    torch.manual_seed(0)
    n, d, c = 512, 16, 4
    labels = torch.randint(0, c, (n,))
    prototypes = torch.randn(c, d) * 3
    f2d = prototypes[labels] + 0.3 * torch.randn(n, d)
    f3d = torch.randn(n, d)
    expert = TemporalExpert(dim=d, num_classes=c, layers=2, heads=2, hidden=32)
    optimizer = torch.optim.Adam(expert.parameters(), lr=3e-3)
    for _ in range(150):
        _, logits = expert(torch.zeros(n, d), torch.zeros(n, dtype=torch.long), f3d, f2d)
        loss = focal_loss(logits, labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    _, logits = expert(torch.zeros(n, d), torch.zeros(n, dtype=torch.long), f3d, f2d)
    assert (logits.argmax(1) == labels).float().mean() > 0.95


def test_focal_loss_is_cross_entropy_weighted_by_one_minus_p():
    torch.manual_seed(0)
    logits, target = torch.randn(50, 6), torch.randint(0, 6, (50,))
    p = torch.softmax(logits, 1).gather(1, target[:, None]).squeeze(1)
    ce = F.cross_entropy(logits, target, reduction="none")
    torch.testing.assert_close(focal_loss(logits, target, gamma=1.0), ((1 - p) * ce).mean())
    torch.testing.assert_close(focal_loss(logits, target, gamma=0.0), ce.mean())
    torch.testing.assert_close(focal_loss(logits, target, gamma=2.0), ((1 - p) ** 2 * ce).mean())


def test_focal_loss_ignores_unlabelled_and_handles_images():
    torch.manual_seed(0)
    logits, target = torch.randn(2, 5, 4, 3), torch.randint(-1, 5, (2, 4, 3))
    flat_logits = logits.permute(0, 2, 3, 1).reshape(-1, 5)
    flat_target = target.reshape(-1)
    keep = flat_target >= 0
    torch.testing.assert_close(focal_loss(logits, target), focal_loss(flat_logits[keep], flat_target[keep]))
    empty = focal_loss(logits.requires_grad_(), torch.full((2, 4, 3), -1))
    assert empty.item() == 0.0
    empty.backward()  # still differentiable


def test_total_loss_weights_the_heads():
    losses = {"2d": torch.tensor(1.0), "3d": torch.tensor(2.0), "expert": torch.tensor(3.0)}
    assert alster_loss(losses).item() == 6.0
    assert alster_loss(losses, {"2d": 0.0, "expert": 2.0}).item() == 8.0
