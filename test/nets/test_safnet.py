"""SAFNet's parts against hand-computed cases: GSM (eq. 3-5), CSM's characters and cosine
(eq. 6-8), the precomputed neighbour searches against brute force, the variants and eq. 11."""

import math

import numpy as np
import pytest
import torch
from scipy.spatial import cKDTree
from tiny_configs import as_set_arguments, tiny_safnet_net

from alster_mapping.core.config import apply_overrides
from alster_mapping.core.labels import scannet20
from alster_mapping.nets.checkpoint import load_checkpoint, save_checkpoint
from alster_mapping.nets.registry import MODELS
from alster_mapping.nets.safnet import VARIANTS, SafnetConfig
from alster_mapping.nets.safnet.inputs import FAR_AWAY, make_chunk, octant_neighbours, similarity_distances, stack_chunks
from alster_mapping.nets.safnet.similarity import ContextualSimilarity, GeometricSimilarity, octant_characters


def tiny(variant: str) -> SafnetConfig:
    return apply_overrides(SafnetConfig.variant(variant), as_set_arguments(tiny_safnet_net()))


def test_gsm_is_equations_3_to_5():
    gsm = GeometricSimilarity(scale=0.1)
    with torch.no_grad():
        gsm.beta.copy_(torch.tensor([0.1, -0.2, 0.05]))
        gsm.mix.copy_(torch.tensor([2.0, 3.0]))
    d_f, d_b = torch.tensor([[0.0, 0.1]]), torch.tensor([[0.2, 0.0]])
    expected = [2 * (1 + 0.1) + 3 * (math.exp(-2) - 0.2) + 0.05, 2 * (math.exp(-1) + 0.1) + 3 * (1 - 0.2) + 0.05]
    assert gsm(d_f, d_b)[0].tolist() == pytest.approx(expected, abs=1e-6)
    # Starting values: 1 where Q lies on P, falling with distance, alphas positive and learnable.
    fresh = GeometricSimilarity()
    assert fresh(torch.zeros(1, 1), torch.zeros(1, 1)).item() == pytest.approx(1.0)
    assert fresh(torch.full((1, 1), 0.5), torch.full((1, 1), 0.5)).item() < 0.01
    fresh(torch.rand(1, 4), torch.rand(1, 4)).sum().backward()
    assert fresh.log_alpha.grad is not None and fresh.mix.grad is not None


def test_octant_characters_by_hand():
    centres = torch.tensor([[[0.0, 0.0, 0.0]]])
    points = torch.tensor([[[1.0, 2.0, 2.0], [-1.0, 0.0, 0.0]]])
    neighbours = torch.tensor([[[-1, -1, -1, -1, -1, -1, -1, 0]]])  # only octant 7 (+x +y +z) has one
    cells = octant_characters(centres, points, neighbours)[0, 0]
    assert cells[7].tolist() == [1.0, 2.0, 2.0, 9.0, 1.0]  # x_j - x_i, |x_i - x_j|^2, present
    assert cells[:7].abs().sum() == 0  # empty octants: all zero, flag 0


def test_csm_cosine_is_one_for_identical_neighbourhoods_and_bounded():
    torch.manual_seed(0)
    csm = ContextualSimilarity(context_dim=8).eval()
    xyz = torch.rand(2, 10, 3)
    neighbours = torch.randint(0, 10, (2, 10, 8))
    f_p, similarity = csm(xyz, neighbours, xyz, neighbours)  # Q = P, same neighbourhoods
    assert f_p.shape == (2, 10, 8)
    assert torch.allclose(similarity, torch.ones_like(similarity), atol=1e-5)
    _, other = csm(xyz, neighbours, xyz + 0.3, torch.full_like(neighbours, -1))
    assert (other <= 1 + 1e-6).all() and (other >= -1 - 1e-6).all() and other.mean() < 0.999


def test_octant_neighbours_match_brute_force():
    rng = np.random.default_rng(0)
    points = rng.uniform(0, 1, (200, 3))
    centres = rng.uniform(0, 1, (30, 3))
    got = octant_neighbours(centres, cKDTree(points), k=200, radius=0.3, exclude_self=False)
    for i, c in enumerate(centres):
        offset = points - c
        distance = np.linalg.norm(offset, axis=1)
        code = (offset[:, 0] > 0) * 4 + (offset[:, 1] > 0) * 2 + (offset[:, 2] > 0)
        for octant in range(8):
            members = np.flatnonzero((code == octant) & (distance <= 0.3))
            expected = members[np.argmin(distance[members])] if len(members) else -1
            assert got[i, octant] == expected
    own = octant_neighbours(points, cKDTree(points), k=16, radius=0.3, exclude_self=True)
    assert not (own == np.arange(200)[:, None]).any()


def test_similarity_distances_by_hand():
    # P: two points 0.1 m apart; Q: one point 0.03 m above the first, one far away.
    p = np.array([[0.0, 0.0, 0.0], [0.1, 0.0, 0.0]])
    q = np.array([[0.0, 0.0, 0.03], [5.0, 0.0, 0.0]])
    forward, backward = similarity_distances(p, q, k=4, radius=0.2)
    d_second = math.hypot(0.1, 0.03)  # the second point's nearest Q is the first Q point
    # N_P(i) = both points for either centre: forward = mean of the two nearest-Q distances.
    assert forward.tolist() == pytest.approx([(0.03 + d_second) / 2] * 2, abs=1e-6)
    # N_Q(0) = {q0}: its nearest of N_P is p0 (0.03). N_Q(1) = {q0} too (within 0.2 m).
    assert backward.tolist() == pytest.approx([0.03, 0.03], abs=1e-6)
    # A radius of 1 cm: N_P(i) = {p_i}, and no Q within reach, so the nearest point of Q
    # stands in for N_Q(i) (Fig. 3, case A): q0 for both, measured to p_i itself.
    forward, far = similarity_distances(p, q, k=4, radius=0.01)
    assert forward.tolist() == pytest.approx([0.03, d_second], abs=1e-6)
    assert far.tolist() == pytest.approx([0.03, d_second], abs=1e-6)


def test_make_chunk_without_image_points_and_batching():
    rng = np.random.default_rng(1)
    xyz = rng.uniform(0, 1, (64, 3))
    chunk = make_chunk(xyz, rng.uniform(0, 1, (64, 3)), np.empty((0, 3)), np.empty((0, 5)))
    assert chunk.q_xyz.tolist() == [[0.0, 0.0, FAR_AWAY]] and (chunk.forward_distance > 900).all()
    assert (chunk.unprojected == -1).all() and (chunk.q_neighbours == -1).all()
    assert make_chunk(xyz, np.zeros((64, 3)), np.empty((0, 3)), np.empty((0, 40))).q_features.shape == (1, 40)  # batches with others
    full = make_chunk(xyz, rng.uniform(0, 1, (64, 3)), xyz[:10] + 0.001, rng.normal(size=(10, 5)), unprojected_radius=0.01)
    assert (full.unprojected[:10] == np.arange(10)).all() and (full.nearest_weight.sum(1) == pytest.approx(1.0))
    batch = stack_chunks([chunk, full])
    assert batch["q_xyz"].shape == (2, 10, 3) and (batch["q_labels"][0, 1:] == -1).all()
    with pytest.raises(ValueError, match="same number of points"):
        stack_chunks([chunk, make_chunk(xyz[:10], np.zeros((10, 3)), xyz, np.zeros((64, 5)))])


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_variant_trains_one_step(variant):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    xyz = rng.uniform(0, 1.5, (256, 3))
    q_xyz, colour = xyz + 0.01, rng.uniform(0, 1, (256, 3))
    chunks = [make_chunk(xyz, colour, q_xyz, rng.normal(size=(256, 40)), rng.integers(0, 20, 256), rng.integers(-1, 20, 256)) for _ in range(2)]
    batch = stack_chunks(chunks)
    model = MODELS.build("safnet", tiny(variant), num_classes=20)
    out = model(batch)
    assert out.logits.shape == (2, 256, 20) and out.weight.shape == (2, 256)
    assert (out.q_logits is None) == (variant == "points")
    assert (out.geometric is None) == (variant in ("points", "concat"))
    losses = model.losses(out, batch)
    assert set(losses) == {"fusion", "3d", "2d", "unprojected", "total"}
    assert (losses["2d"].item() == 0) == (variant == "points")
    losses["total"].backward()
    assert all(p.grad is not None for name, p in model.named_parameters() if "backbone" not in name or "mlp" in name)
    assert model.config.variant_name == variant


def test_checkpoint_round_trip(tmp_path):
    model = MODELS.build("safnet", tiny("full"), num_classes=20).eval()
    save_checkpoint(model, tmp_path / "safnet.safetensors", scannet20())
    loaded, card = load_checkpoint(tmp_path / "safnet.safetensors", scannet20(), task="point_semantics")
    assert card["model"] == "safnet" and loaded.config == model.config
    for a, b in zip(model.state_dict().values(), loaded.state_dict().values()):
        assert torch.equal(a, b)


def test_the_map_prior_is_an_input_of_the_3d_branch():
    torch.manual_seed(0)
    rng = np.random.default_rng(2)
    xyz = rng.uniform(0, 1.5, (128, 3))
    label = rng.integers(-1, 20, 128)
    chunk = make_chunk(xyz, np.zeros((128, 3)), xyz + 0.01, rng.normal(size=(128, 40)), map_label=label, map_confidence=np.full(128, 0.9))
    batch = stack_chunks([chunk])
    assert batch["map_label"].tolist() == [label.tolist()] and batch["map_confidence"].shape == (1, 128)
    model = MODELS.build("safnet", apply_overrides(tiny("full"), ["map_prior=true"]), num_classes=20).eval()
    assert model.backbone.in_channels == 3 + 16 + 20  # colour, contextual features, the map's class
    with torch.no_grad():
        first = model(batch).logits
        batch["map_label"] = torch.roll(batch["map_label"], 1, dims=1)
        assert not torch.allclose(first, model(batch).logits)
        batch["map_label"][:] = -1  # unknown everywhere: the prior is all zeros
        assert torch.isfinite(model(batch).logits).all()
