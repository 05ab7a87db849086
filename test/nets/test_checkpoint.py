"""Model checkpoints: safetensors + model card; mismatches and corruption are refused clearly."""

import json

import pytest
import torch
from tiny_configs import TINY_ALSTER_NET

from alster_mapping.core.config import apply_overrides
from alster_mapping.core.labels import LabelSpace, nyu40, scannet20
from alster_mapping.nets.alster import AlsterModel
from alster_mapping.nets.alster.config import AlsterNetConfig
from alster_mapping.nets.checkpoint import CheckpointError, card_path, load_checkpoint, read_card, save_checkpoint, update_card
from alster_mapping.pipeline.mapping_config import MappingConfig
from alster_mapping.pipeline.online_mapper import OnlineMapper

SMALL = TINY_ALSTER_NET


@pytest.fixture()
def saved(tmp_path):
    torch.manual_seed(0)
    model = AlsterModel(apply_overrides(AlsterNetConfig(), SMALL))
    path = tmp_path / "model.safetensors"
    card = save_checkpoint(model, path, scannet20(), provenance={"command": "test"}, metrics={"miou": 0.5})
    return model, path, card


def test_round_trip_restores_every_weight_and_the_card(saved):
    model, path, card = saved
    loaded, loaded_card = load_checkpoint(path, scannet20(), feature_dim=40)
    assert not loaded.training
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), name
    assert loaded_card == card == json.loads(card_path(path).read_text()) == read_card(path)
    assert card["provenance"] == {"command": "test"} and card["metrics"] == {"miou": 0.5}
    assert card["config"]["unet3d"]["channels"] == [8, 16]
    assert (card["model"], card["task"], card["inputs"]) == ("alster", "semantic_mapping", "posed_rgbd_frames")
    assert card["arguments"] == {"num_classes": 20, "feature_dim": 40} and card["version"] == 2


def test_a_model_of_another_task_is_refused(saved):
    _, path, _ = saved
    with pytest.raises(CheckpointError, match="holds a 'semantic_mapping' model \\(alster\\), a 'point_semantics' model is needed"):
        load_checkpoint(path, task="point_semantics")


def test_a_version_1_card_is_upgraded_and_loads_the_same_weights(saved, tmp_path):
    model, path, card = saved
    old = {k: v for k, v in card.items() if k not in ("task", "inputs", "arguments")}
    old.update(version=1, config={"name": "alster", **card["config"]}, num_classes=20, feature_dim=40)
    from alster_mapping.core.tensor_file import write_tensor_file

    v1 = tmp_path / "v1.safetensors"
    write_tensor_file(v1, model.state_dict(), {"card": json.dumps(old)})
    loaded, upgraded = load_checkpoint(v1, scannet20(), task="semantic_mapping", feature_dim=40)
    assert upgraded == card
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor)


def test_a_card_from_before_the_gravity_inputs_builds_the_papers_layout(tmp_path):
    """Cards written before ``inputs`` existed meant RGB-D-N (the first shipped model's)."""
    torch.manual_seed(0)
    model = AlsterModel(apply_overrides(AlsterNetConfig(), {**SMALL, "inputs": "camera"}))
    card = save_checkpoint(model, tmp_path / "new.safetensors", scannet20())
    del card["config"]["inputs"]
    from alster_mapping.core.tensor_file import write_tensor_file

    path = tmp_path / "old.safetensors"
    write_tensor_file(path, model.state_dict(), {"card": json.dumps(card)})
    loaded, _ = load_checkpoint(path, scannet20(), feature_dim=40)
    assert loaded.config.inputs == "camera" and loaded.encoder2d.in_channels == 7
    assert AlsterNetConfig().inputs == "gravity"


def test_label_space_or_feature_size_mismatch_is_refused(saved):
    _, path, _ = saved
    with pytest.raises(CheckpointError, match="label space 'scannet20'.*'nyu40'"):
        load_checkpoint(path, nyu40(), feature_dim=40)
    with pytest.raises(CheckpointError, match="feature_dim = 40, the caller needs 32"):
        load_checkpoint(path, scannet20(), feature_dim=32)
    other = LabelSpace("scannet20", scannet20().ids, scannet20().names, ((1, 2, 3),) * 20, scannet20().ignore_ids)
    with pytest.raises(CheckpointError, match="label space"):
        load_checkpoint(path, other, feature_dim=40)


def test_shape_mismatch_names_the_tensor(saved, tmp_path):
    model, path, card = saved
    state = {k: v.clone() for k, v in model.state_dict().items()}
    name = "expert.head.weight"
    state[name] = torch.zeros(3, 3)
    from alster_mapping.core.tensor_file import write_tensor_file

    bad = tmp_path / "bad.safetensors"
    write_tensor_file(bad, state, {"card": json.dumps(card)})
    with pytest.raises(CheckpointError, match=f"{name} has shape \\(3, 3\\)"):
        load_checkpoint(bad)


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage", "missing"])
def test_corrupt_checkpoints_are_refused(saved, damage):
    _, path, _ = saved
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "flip":
        data[-100] ^= 0xFF
        path.write_bytes(bytes(data))
    elif damage == "garbage":
        path.write_bytes(b"not a checkpoint at all")
    else:
        path.unlink()
    with pytest.raises(CheckpointError, match="model.safetensors"):
        load_checkpoint(path)


def test_online_mapper_loads_the_configured_checkpoint(saved):
    model, path, _ = saved
    cfg = apply_overrides(MappingConfig(), {"alster.checkpoint": str(path), **{f"model.{k}": v for k, v in SMALL.items()}})
    mapper = OnlineMapper(cfg)
    for (name, a), (_, b) in zip(model.state_dict().items(), mapper.model.state_dict().items()):
        assert torch.equal(a, b), name
    with pytest.raises(CheckpointError):
        OnlineMapper(apply_overrides(cfg, {"label_space": "nyu40"}))


def test_update_card_adds_metrics_and_keeps_the_weights(saved):
    model, path, _ = saved
    update_card(path, metrics={"held_out": {"miou": 0.5}}, provenance={"note": "x"})
    loaded, card = load_checkpoint(path)
    assert card["metrics"]["held_out"] == {"miou": 0.5}
    assert card["provenance"]["note"] == "x"
    assert json.loads(card_path(path).read_text()) == card
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor)


def test_load_checkpoint_alone_knows_the_built_in_models():
    """A fresh interpreter that imports only the checkpoint module can load the shipped model."""
    import subprocess
    import sys
    from pathlib import Path

    shipped = Path(__file__).resolve().parents[2] / "models" / "alster_scannet20_synthetic.safetensors"
    code = f"from alster_mapping.nets.checkpoint import load_checkpoint; print(type(load_checkpoint({str(shipped)!r})[0]).__name__)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().endswith("AlsterModel")
