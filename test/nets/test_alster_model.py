"""AlsterModel: the three stages composed, their losses, gradients and a short fit."""

import dataclasses

import pytest
import torch

from alster_mapping.core.config import apply_overrides
from alster_mapping.core.labels import scannet20
from alster_mapping.data.procedural_room import ProceduralRoom
from alster_mapping.nets.alster import AlsterModel
from alster_mapping.nets.alster.config import AlsterNetConfig
from alster_mapping.nets.registry import MODELS
from alster_mapping.pipeline.gravity import GravityReference
from alster_mapping.pipeline.lifting import lift_frame
from alster_mapping.pipeline.network_input import network_image

SPACE = scannet20()


def small_config(**overrides) -> AlsterNetConfig:
    cfg = apply_overrides(
        AlsterNetConfig(),
        {
            "encoder2d.pretrained": False,
            "encoder2d.aspp_channels": 32,
            "encoder2d.decoder_channels": 32,
            "unet3d.channels": [16, 24, 32],
            "expert.layers": 2,
            **overrides,
        },
    )
    return cfg


def frame_inputs(frame, voxel_size=0.08, inputs="gravity"):
    """Model inputs and labels of one frame (what the online mapper and trainer prepare):
    (image, pixels, inverse, keys, geometry, pixel_labels, voxel_labels)."""
    lifted = lift_frame(frame, voxel_size, max_range=3.0)
    image, gravity = network_image(frame, inputs, GravityReference(), max_range=3.0)
    geometry = None if gravity is None else lifted.voxel_mean(lifted.pixel_values(gravity))
    pixels = lifted.pixel_mask.reshape(-1).nonzero().squeeze(1)
    classes = SPACE.encode(frame.labels).reshape(-1)
    pixel_labels = classes[pixels]
    hist = lifted.voxel_histogram(pixel_labels, SPACE.num_classes)
    voxel_labels = torch.where(hist.sum(1) > 0, hist.argmax(1), torch.full((hist.shape[0],), -1))
    return image, pixels, lifted.inverse, lifted.keys, geometry, pixel_labels, voxel_labels


@pytest.fixture(scope="module")
def frames():
    return ProceduralRoom(width=80, height=64).frames(3)


def test_built_by_name_from_the_registry():
    model = MODELS.build("alster", small_config(), num_classes=20, feature_dim=40)
    assert isinstance(model, AlsterModel)
    counts = model.parameter_counts()
    assert counts["total"] == sum(p.numel() for p in model.parameters())
    assert set(counts) == {"encoder2d", "unet3d", "expert", "total"}


def test_outputs_have_the_documented_shapes(frames):
    torch.manual_seed(0)
    model = AlsterModel(small_config()).eval()
    image, pixels, inverse, keys, geometry, _, _ = frame_inputs(frames[0])
    v, p = keys.shape[0], pixels.shape[0]
    with torch.no_grad():
        out = model(image, pixels, inverse, keys, torch.zeros(v, 40), torch.zeros(v, dtype=torch.long), geometry)
    assert out.feature.shape == out.feature_2d.shape == out.feature_3d.shape == (v, 40)
    assert out.logits_expert.shape == out.logits_3d.shape == (v, 20)
    assert out.logits_2d.shape == (p, 20)
    assert all(t.dtype == torch.float32 for t in dataclasses.astuple(out))


def test_gradients_reach_every_parameter(frames):
    torch.manual_seed(0)
    model = AlsterModel(small_config()).train()
    image, pixels, inverse, keys, geometry, pixel_labels, voxel_labels = frame_inputs(frames[0])
    v = keys.shape[0]
    count = torch.randint(0, 3, (v,))
    out = model(image, pixels, inverse, keys, torch.randn(v, 40), count, geometry)
    losses = model.losses(out, pixel_labels, voxel_labels)
    losses["total"].backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all() or p.grad.abs().sum() == 0]
    assert not missing


def test_eval_outputs_are_deterministic_for_a_seed(frames):
    image, pixels, inverse, keys, geometry, _, _ = frame_inputs(frames[1])
    v = keys.shape[0]
    results = []
    for _ in range(2):
        torch.manual_seed(3)
        model = AlsterModel(small_config()).eval()
        with torch.no_grad():
            results.append(model(image, pixels, inverse, keys, torch.zeros(v, 40), torch.zeros(v, dtype=torch.long), geometry))
    torch.testing.assert_close(results[0].feature, results[1].feature)
    torch.testing.assert_close(results[0].logits_2d, results[1].logits_2d)


def test_a_short_fit_lowers_every_loss(frames):
    torch.manual_seed(0)
    model = AlsterModel(small_config()).train()
    batch = [frame_inputs(f) for f in frames]
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    history = []
    for step in range(40):
        image, pixels, inverse, keys, geometry, pixel_labels, voxel_labels = batch[step % len(batch)]
        v = keys.shape[0]
        out = model(image, pixels, inverse, keys, torch.zeros(v, 40), torch.zeros(v, dtype=torch.long), geometry)
        losses = model.losses(out, pixel_labels, voxel_labels)
        optimizer.zero_grad()
        losses["total"].backward()
        optimizer.step()
        history.append({k: x.detach().item() for k, x in losses.items()})
    first = {k: sum(h[k] for h in history[:3]) / 3 for k in history[0]}
    last = {k: sum(h[k] for h in history[-3:]) / 3 for k in history[0]}
    for key in ("2d", "3d", "expert", "total"):
        assert last[key] < 0.5 * first[key], (key, first[key], last[key])


def test_the_camera_layout_is_the_papers_seven_channels_without_3d_geometry(frames):
    torch.manual_seed(0)
    model = AlsterModel(small_config(inputs="camera")).eval()
    image, pixels, inverse, keys, geometry, _, _ = frame_inputs(frames[0], inputs="camera")
    assert image.shape[1] == 7 and geometry is None
    assert model.encoder2d.in_channels == 7 and model.geometry_channels == 0
    v = keys.shape[0]
    with torch.no_grad():
        out = model(image, pixels, inverse, keys, torch.zeros(v, 40), torch.zeros(v, dtype=torch.long))
    assert out.logits_expert.shape == (v, 20)


def test_the_gravity_layout_needs_the_voxels_geometry(frames):
    model = AlsterModel(small_config()).eval()
    image, pixels, inverse, keys, geometry, _, _ = frame_inputs(frames[0])
    assert image.shape[1] == 9 and geometry.shape == (keys.shape[0], 2)
    v = keys.shape[0]
    with pytest.raises(ValueError, match="voxel geometry"):
        model(image, pixels, inverse, keys, torch.zeros(v, 40), torch.zeros(v, dtype=torch.long))
    # The height channel: the procedural room's floor is seen, so floor pixels sit near 0 m.
    floor = SPACE.encode(frames[0].labels) == SPACE.names.index("floor")
    height = image[0, 7] * 3.0
    assert floor.any() and height[floor].abs().median() < 0.05
