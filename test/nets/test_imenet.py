"""IMENet (alster_mapping.nets.imenet): the projections, depth attention, the variants' structure."""

import pytest
import torch

from alster_mapping.nets.imenet import VARIANTS, ImenetConfig, ImenetModel
from alster_mapping.nets.imenet.model import depth_attention, one_hot_of, project_to_voxels, reproject_to_pixels
from alster_mapping.nets.registry import MODELS


def test_reprojection_and_projection_by_hand():
    volume = torch.arange(2 * 8, dtype=torch.float32).view(1, 2, 2, 2, 2)  # channel c, flat voxel v: 8c + v
    pixel_voxel = torch.tensor([[[3, -1], [7, 3]]])
    pixels = reproject_to_pixels(volume, pixel_voxel)
    torch.testing.assert_close(pixels[0, 0], torch.tensor([[3.0, 0.0], [7.0, 3.0]]))
    torch.testing.assert_close(pixels[0, 1], torch.tensor([[11.0, 0.0], [15.0, 11.0]]))
    image = torch.tensor([[[[1.0, 9.0], [4.0, 3.0]]]])  # one channel
    voxels = project_to_voxels(image, pixel_voxel, (2, 2, 2)).view(-1)
    want = torch.zeros(8)
    want[3], want[7] = (1.0 + 3.0) / 2, 4.0  # voxel 3: the mean of its two pixels; pixel -1 is dropped
    torch.testing.assert_close(voxels, want)
    hot = one_hot_of(torch.tensor([[[0.2]], [[0.7]], [[0.1]]]).view(1, 3, 1, 1))
    assert hot.view(-1).tolist() == [0.0, 1.0, 0.0]
    assert one_hot_of(torch.zeros(1, 3, 1, 1)).sum() == 0  # nothing projected: no one-hot


def test_depth_attention_follows_equation_2():
    torch.manual_seed(0)
    features = torch.randn(1, 4, 2, 5, 3)  # (B, C, X, Y = depth, Z)
    out = depth_attention(features, axis=3)
    x, z = 1, 2
    column = features[0, :, x, :, z]  # (C, D)
    for j in range(5):
        weights = torch.softmax(torch.stack([column[:, i] @ column[:, j] for i in range(5)]), 0)
        want = (weights * column).sum(1) + column[:, j]
        torch.testing.assert_close(out[0, :, x, j, z], want, atol=1e-5, rtol=1e-5)


def batch(size=(2, 24, 32), volume=(12, 12, 8)):
    torch.manual_seed(1)
    b, h, w = size
    return {
        "color": torch.randn(b, 3, h, w),
        "tsdf": torch.rand(b, 1, *volume) * 2 - 1,
        "pixel_voxel": torch.randint(-1, volume[0] * volume[1] * volume[2], (b, h, w)),
    }


@pytest.mark.parametrize("variant", VARIANTS)
def test_variants_build_run_and_learn(variant):
    config = ImenetConfig.variant(variant, pretrained=False, width_3d=8, iterations=2)
    assert config.variant_name == variant
    model = MODELS.build("imenet", config, num_classes=11)
    assert isinstance(model, ImenetModel) and (model.dcp is not None) == config.dcp and (model.dda is not None) == config.dda
    data = batch()
    out = model(data)
    assert out.logits_2d.shape == (2, 12, 24, 32) and out.logits_3d.shape == (2, 12, 12, 12, 8)
    if not config.dcp:
        assert torch.equal(out.logits_2d, out.coarse_2d)
    if not config.dda:
        assert torch.equal(out.logits_3d, out.coarse_3d)
    loss = out.logits_2d.logsumexp(1).mean() + out.logits_3d.logsumexp(1).mean()
    loss.backward()
    assert model.branch_3d.stem[0].weight.grad.abs().sum() > 0 and model.branch_2d.head.weight.grad.abs().sum() > 0
    if config.dcp and config.dda:  # each branch's refinement reaches into the other branch
        assert model.dcp.fuse.weight.grad.abs().sum() > 0 and model.dda.fuse.weight.grad.abs().sum() > 0


def test_the_refinements_use_the_other_branch():
    torch.manual_seed(2)
    model = ImenetModel(ImenetConfig.variant("E", pretrained=False, width_3d=8, iterations=1)).eval()
    data = batch(size=(1, 24, 32))
    with torch.no_grad():
        first = model(data)
        moved = dict(data, tsdf=-data["tsdf"])  # another depth: the 2D refinement must change
        second = model(moved)
    assert torch.equal(first.coarse_2d, second.coarse_2d) and not torch.allclose(first.logits_2d, second.logits_2d)
    with pytest.raises(ValueError, match="11"):
        ImenetModel(ImenetConfig(pretrained=False), num_classes=20)
    with pytest.raises(ValueError, match="variant"):
        ImenetConfig.variant("F")
