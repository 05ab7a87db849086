"""The BAN family (alster_mapping.nets.ban): attention (eq. 2), both directions, training, checkpoints."""

import pytest
import torch
from test_asis import fit, two_objects
from tiny_configs import tiny_asis_net

from alster_mapping.core.config import apply_overrides
from alster_mapping.core.labels import scannet20
from alster_mapping.nets.ban import BanConfig, BanModel
from alster_mapping.nets.ban.model import Attention
from alster_mapping.nets.checkpoint import load_checkpoint, save_checkpoint


def small(**overrides) -> BanConfig:
    shared = {k: v for k, v in tiny_asis_net().items() if k != "neighbours"}  # the same tiny backbone and width
    return apply_overrides(BanConfig(), {"in_channels": 3, "attention_dim": 16, **shared, **overrides})


def test_attention_is_eq_2_written_out():
    torch.manual_seed(0)
    attention = Attention(4, 3, 2)
    x, y = torch.randn(1, 4, 5), torch.randn(1, 3, 5)
    out = attention(x, y)
    theta, phi, g = attention.theta(x)[0].T, attention.phi(x)[0].T, attention.g(y)[0].T  # (N, A), (N, A), (N, A)
    p = torch.softmax(theta @ phi.T, dim=1)
    expected = torch.cat([y[0].T, p @ g], 1).T
    torch.testing.assert_close(out[0], expected)
    assert torch.allclose(attention.similarity(x).sum(-1), torch.ones(1, 5))


def test_forward_shapes_and_the_ablation_switches():
    xyz, colour, _, _ = two_objects()
    full = BanModel(small(), num_classes=20).eval()
    out = full(xyz, colour)
    assert out.semantic_logits.shape == (2, 256, 20) and out.embeddings.shape == (2, 256, 5)
    for stoi, itos in ((True, False), (False, True), (False, False)):
        model = BanModel(small(semantic_to_instance=stoi, instance_to_semantic=itos), num_classes=20).eval()
        assert (model.stoi is not None, model.itos is not None) == (stoi, itos)
        assert model(xyz, colour).embeddings.shape == (2, 256, 5)


def test_a_few_steps_fit_semantics_and_separate_the_instances():
    torch.manual_seed(0)
    fit(BanModel(small(), num_classes=20))


def test_the_card_alone_rebuilds_ban(tmp_path):
    model = BanModel(small(), num_classes=20).eval()
    save_checkpoint(model, tmp_path / "ban.safetensors", scannet20())
    loaded, card = load_checkpoint(tmp_path / "ban.safetensors", scannet20(), task="instance_segmentation")
    assert isinstance(loaded, BanModel) and card["model"] == "ban"
    xyz, colour, _, _ = two_objects()
    with torch.no_grad():
        torch.testing.assert_close(loaded(xyz, colour).semantic_logits, model(xyz, colour).semantic_logits)
    with pytest.raises(ValueError, match="attention_dim"):
        small(attention_dim=0)
