"""OnlineMapper: the ALSTER step on the map, the label-fusion mode, bad input, and an overfit."""

import numpy as np
import pytest
import torch

from alster_mapping.core.config import MappingConfig, apply_overrides
from alster_mapping.core.frame import RGBDFrame
from alster_mapping.data.procedural_room import ProceduralRoom
from alster_mapping.map.voxel_map import SemanticVoxelMap
from alster_mapping.pipeline.online_mapper import OnlineMapper, frame_targets
from map_snapshot import assert_same_snapshot, snapshot

SMALL = {
    "map.voxel_size": 0.08,
    "model.encoder2d.pretrained": True,
    "model.encoder2d.aspp_channels": 32,
    "model.encoder2d.decoder_channels": 32,
    "model.unet3d.channels": [16, 24, 32],
    "model.expert.layers": 2,
}


def small_config(**overrides) -> MappingConfig:
    return apply_overrides(MappingConfig(), {**SMALL, **overrides})


@pytest.fixture(scope="module")
def frames():
    return ProceduralRoom(width=80, height=64).frames(4)


def test_step_writes_the_frame_voxels_with_labels_and_stage_timings(frames):
    torch.manual_seed(0)
    mapper = OnlineMapper(small_config())
    result = mapper.step(frames[0])
    v = result.keys.shape[0]
    assert v > 50 and len(mapper.map) == v and mapper.map.feature_kind == "learned"
    data = mapper.map.read(result.rows)
    assert (data.count == 1).all()
    assert torch.equal(data.label.long(), result.labels)
    torch.testing.assert_close(data.confidence.float(), result.confidence, atol=1e-3, rtol=1e-3)
    assert set(result.timings) == {"lift", "2d", "3d", "crop", "expert", "write", "total"}
    assert result.timings["total"] >= sum(t for k, t in result.timings.items() if k != "total") * 0.99
    second = mapper.step(frames[1])
    overlap = torch.isin(mapper.map.lookup(result.keys), second.rows)
    assert overlap.any()  # revisited voxels
    assert (mapper.map.read(mapper.map.lookup(result.keys[overlap])).count == 2).all()


def test_label_fusion_is_a_mode_of_the_same_mapper(frames):
    mapper = OnlineMapper(small_config(mode="label_fusion"))
    assert mapper.model is None
    for frame in frames:
        result = mapper.step(frame)
    assert mapper.map.feature_kind == "label_evidence"
    targets = mapper.map.label_space.encode(frames[-1].labels)
    assert result.labels.shape == result.confidence.shape == (result.keys.shape[0],)
    assert (result.labels >= 0).float().mean() > 0.9 and targets.max() >= 0


def test_frame_without_valid_depth_raises_and_leaves_the_map_unchanged(frames):
    mapper = OnlineMapper(small_config())
    mapper.step(frames[0])
    before = snapshot(mapper.map)
    f = frames[1]
    bad = RGBDFrame(f.color, np.full_like(f.depth, np.nan), f.intrinsics, f.T_world_camera, f.stamp_ns)
    with pytest.raises(ValueError, match="no valid pixel"):
        mapper.step(bad)
    assert_same_snapshot(snapshot(mapper.map), before)


def test_model_and_map_must_agree(frames):
    cfg = small_config()
    evidence_map = SemanticVoxelMap(cfg.map)
    evidence_map.feature_kind = "label_evidence"
    with pytest.raises(ValueError, match="label-fusion evidence"):
        OnlineMapper(cfg, voxel_map=evidence_map)
    other = OnlineMapper(small_config(**{"map.feature_dim": 32, "model.expert.heads": 4}))
    with pytest.raises(ValueError, match="does not fit the map"):
        OnlineMapper(cfg, model=other.model)


@pytest.mark.slow
def test_overfit_a_small_scene_lowers_the_loss_10x_and_labels_95_percent(frames):
    """Sequential training as in the paper (random frame order, random map resets):
    the total loss falls at least 10x and the expert labels >= 95 % of the voxels."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    cfg = small_config()
    mapper = OnlineMapper(cfg)
    model = mapper.model.train()
    space = mapper.map.label_space
    prepared = [mapper.prepare(f) for f in frames]
    targets = [frame_targets(p, space.encode(f.labels), space.num_classes) for p, f in zip(prepared, frames)]
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)

    def run(index: int) -> torch.Tensor:
        inputs = prepared[index]
        rows, old = mapper.crop(inputs)
        out = model(inputs.image, inputs.pixels, inputs.lifted.inverse, inputs.lifted.keys, old.feature.float(), old.count)
        losses = model.losses(out, *targets[index])
        mapper.commit(rows, old, inputs, out)
        return losses["total"]

    initial = float(np.mean([run(i).item() for i in range(len(frames))]))
    mapper.map.clear()
    history = []
    for epoch in range(25):
        if rng.random() < 0.3:
            mapper.map.clear()  # random resets: scenes at every stage of reconstruction
        for index in rng.permutation(len(frames)):
            loss = run(int(index))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            history.append(loss.item())
    final = float(np.mean(history[-8:]))
    assert final < initial / 10, (initial, final)

    model.eval()
    mapper.map.clear()
    for frame in frames:
        mapper.step(frame)
    correct = total = 0
    for inputs, (_, voxel_targets) in zip(prepared, targets):
        labels = mapper.map.crop(inputs.lifted.keys).label.long()
        ok = voxel_targets >= 0
        correct += int((labels[ok] == voxel_targets[ok]).sum())
        total += int(ok.sum())
    assert correct / total >= 0.95, correct / total
