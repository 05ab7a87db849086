"""Training (``alster train``): schedule, resumable state, and a short run that beats chance."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from tiny_configs import as_set_arguments, tiny_alster_net

from alster_mapping.core.camera import CameraIntrinsics
from alster_mapping.core.config import apply_overrides
from alster_mapping.core.geometry import normals_from_depth
from alster_mapping.data.procedural_room import ProceduralRoom
from alster_mapping.data.sequences import FrameList, SyntheticSequence
from alster_mapping.eval.evaluate import evaluate
from alster_mapping.eval.metrics import SemanticScores, map_raw_labels
from alster_mapping.nets.checkpoint import load_checkpoint, read_card
from alster_mapping.nets.encoder2d import Encoder2D
from alster_mapping.train.loop import MODEL_FILE, STATE_FILE, TrainingLoop
from alster_mapping.train.recipes.alster import AlsterTrainConfig, mirror_input

TINY = [*as_set_arguments(tiny_alster_net("mapping.model.")), "checkpoint_every=2"]


def rooms(n: int = 2, frames: int = 4) -> list[FrameList]:
    return [FrameList(ProceduralRoom(48, 40, seed=s).frames(frames), f"room{s}") for s in range(n)]


def tiny_config(*overrides: str) -> AlsterTrainConfig:
    base = ["pretrain_2d.steps=3", "pretrain_2d.batch=2", "joint.steps=3", "joint.batch=2", "joint.accumulate=2"]
    return apply_overrides(AlsterTrainConfig(), TINY + base + list(overrides))


def test_two_stages_run_and_write_a_loadable_checkpoint_with_card(tmp_path):
    trainer = TrainingLoop("alster", tiny_config(), tmp_path, sequences=rooms(), progress=False, provenance={"command": "test"})
    card = trainer.run()
    phases = [r["phase"] for r in trainer.history]
    assert phases == ["pretrain_2d"] * 3 + ["joint"] * 3
    assert {"2d", "3d", "expert", "total"} <= set(trainer.history[-1])
    # OneCycle: warm-up to the peak, then annealed to ~0 at the last step.
    lrs = [r["lr"] for r in trainer.history if r["phase"] == "joint"]
    assert lrs[-1] < 1e-6 < max(lrs) <= 1e-3 + 1e-12
    assert (tmp_path / MODEL_FILE).exists() and (tmp_path / MODEL_FILE).with_suffix(".json").exists()
    assert card["provenance"]["command"] == "test"
    assert card["provenance"]["sequences"] == ["room0", "room1"]
    assert card["provenance"]["train_seconds"] > 0
    model, loaded_card = load_checkpoint(tmp_path / MODEL_FILE)
    assert loaded_card["metrics"]["final_losses"]["joint"]["total"] > 0
    assert json.loads((tmp_path / MODEL_FILE).with_suffix(".json").read_text()) == read_card(tmp_path / MODEL_FILE)


def test_same_seed_same_weights_and_different_seed_differs(tmp_path):
    weights = []
    for i, seed in enumerate((0, 0, 1)):
        trainer = TrainingLoop("alster", tiny_config(f"seed={seed}"), tmp_path / str(i), sequences=rooms(), progress=False)
        trainer.run()
        weights.append(torch.cat([p.detach().flatten() for p in trainer.model.parameters()]))
    assert torch.equal(weights[0], weights[1])
    assert not torch.equal(weights[0], weights[2])


def test_resume_continues_from_the_saved_state(tmp_path):
    cfg = tiny_config("joint.steps=4")
    first = TrainingLoop("alster", cfg, tmp_path, sequences=rooms(), progress=False)
    first.run()
    state = tmp_path / STATE_FILE
    assert state.exists()
    # A rerun of a finished training only rewrites the model.
    again = TrainingLoop("alster", cfg, tmp_path, sequences=rooms(), progress=False)
    again.run()
    assert again.history == first.history
    # Interrupt after the second joint step: a rerun picks up at step 2 and ends at 4.
    second_dir = tmp_path / "interrupted"
    interrupted = TrainingLoop("alster", cfg, second_dir, sequences=rooms(), progress=False)
    joint_calls = {"n": 0}
    original = interrupted._step

    def failing_step():
        if interrupted.phase == "joint":
            joint_calls["n"] += 1
            if joint_calls["n"] == 3:
                raise KeyboardInterrupt
        return original()

    interrupted._step = failing_step
    with pytest.raises(KeyboardInterrupt):
        interrupted.run()
    resumed = TrainingLoop("alster", cfg, second_dir, sequences=rooms(), progress=False)
    resumed.run()
    joint = [r["step"] for r in resumed.history if r["phase"] == "joint"]
    assert joint == [1, 2, 3, 4]


def test_resume_refuses_another_configuration_and_a_corrupt_state(tmp_path):
    TrainingLoop("alster", tiny_config(), tmp_path, sequences=rooms(), progress=False).run()
    with pytest.raises(ValueError, match="different training configuration"):
        TrainingLoop("alster", tiny_config("seed=5"), tmp_path, sequences=rooms(), progress=False).run()
    state = tmp_path / STATE_FILE
    data = bytearray(state.read_bytes())
    data[-100] ^= 0xFF
    state.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="cannot resume"):
        TrainingLoop("alster", tiny_config(), tmp_path, sequences=rooms(), progress=False).run()


def test_mirrored_input_is_the_input_of_the_mirrored_camera():
    """Pre-training's flip: mirroring the 7-channel input (and negating the normals' x)
    equals preparing the mirrored image with the mirrored intrinsics from scratch."""
    frame = ProceduralRoom(64, 48, seed=0).frames(1)[0]
    k = frame.intrinsics

    def prepared(color, depth, intrinsics):
        normals = normals_from_depth(torch.from_numpy(depth), intrinsics, 3.0).numpy()
        return Encoder2D.prepare_input(color, depth, normals)

    target = torch.arange(64 * 48).reshape(48, 64)
    image, flipped_target = mirror_input(prepared(frame.color, frame.depth, k), target)
    mirrored_k = CameraIntrinsics(k.fx, k.fy, k.width - 1 - k.cx, k.cy, k.width, k.height)
    expected = prepared(np.ascontiguousarray(frame.color[:, ::-1]), np.ascontiguousarray(frame.depth[:, ::-1]), mirrored_k)
    torch.testing.assert_close(image, expected, atol=1e-5, rtol=1e-5)
    assert torch.equal(flipped_target[:, 0], target[:, -1])


@pytest.mark.parametrize("max_lr_2d, changes", [(0.0, False), (1e-3, True)])
def test_joint_stage_freezes_the_2d_encoder_when_its_rate_is_zero(tmp_path, max_lr_2d, changes):
    trainer = TrainingLoop("alster", tiny_config("pretrain_2d.steps=0", f"joint.max_lr_2d={max_lr_2d}"), tmp_path, sequences=rooms(), progress=False)
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.run()
    after = trainer.model.state_dict()
    encoder_changed = any(not torch.equal(before[k], after[k]) for k in before if k.startswith("encoder2d."))
    assert encoder_changed == changes
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("expert."))


@pytest.mark.slow
def test_short_training_on_synthetic_worlds_beats_chance(tmp_path):
    """A few minutes of CPU: train on two worlds, evaluate on a held-out one; the map's
    mIoU must beat random labels drawn with the ground truth's class frequencies."""
    torch.manual_seed(0)
    train = [SyntheticSequence(seed, 24, 96, 72) for seed in (1000, 1001)]
    cfg = apply_overrides(
        AlsterTrainConfig(),
        [
            "pretrain_2d.steps=60",
            "pretrain_2d.batch=4",
            "pretrain_2d.max_lr=3e-3",
            "joint.steps=30",
            "joint.batch=2",
            "joint.accumulate=1",
            "joint.max_lr=3e-3",
            "checkpoint_every=1000",
        ],
    )
    trainer = TrainingLoop("alster", cfg, tmp_path / "train", sequences=train, progress=False)
    trainer.run()
    joint = [r["total"] for r in trainer.history if r["phase"] == "joint"]
    assert np.mean(joint[-5:]) < np.mean(joint[:5])
    held_out = SyntheticSequence(3, 24, 96, 72)
    results = evaluate([held_out], cfg.mapping, model=trainer.model, progress=False, plots=False)
    expert = results["methods"]["expert"]
    raw = held_out.ground_truth().labels
    space = trainer.recipe.label_space
    gt = map_raw_labels(raw, space)
    rng = np.random.default_rng(0)
    freq = np.bincount(gt[gt >= 0], minlength=space.num_classes) / (gt >= 0).sum()
    chance = SemanticScores.from_labels(gt, rng.choice(space.num_classes, size=gt.shape[0], p=freq), space.num_classes)
    # About a minute of training on two tiny worlds: well above chance, far from good.
    assert expert["miou"] > max(2 * chance.miou, chance.miou + 0.04), (expert["miou"], chance.miou)


def test_resume_may_change_stages_that_have_not_started(tmp_path):
    """A state saved at the end of pre-training resumes with a different joint schedule."""
    TrainingLoop("alster", tiny_config("joint.steps=0"), tmp_path, sequences=rooms(), progress=False).run()
    with pytest.raises(ValueError, match="pretrain_2d.steps"):
        TrainingLoop("alster", tiny_config("joint.steps=0", "pretrain_2d.steps=4"), tmp_path, sequences=rooms(), progress=False).run()
    # Let the run stop right after pre-training: its state says "joint, step 0".
    cfg = tiny_config("joint.steps=5")
    interrupted = TrainingLoop("alster", cfg, tmp_path / "b", sequences=rooms(), progress=False)

    original = interrupted._step

    def stop():
        if interrupted.phase == "joint":
            raise KeyboardInterrupt
        return original()

    interrupted._step = stop
    with pytest.raises(KeyboardInterrupt):
        interrupted.run()
    resumed = TrainingLoop("alster", tiny_config("joint.steps=2", "joint.max_lr=5e-4"), tmp_path / "b", sequences=rooms(), progress=False)
    resumed.run()
    joint = [r for r in resumed.history if r["phase"] == "joint"]
    assert [r["step"] for r in joint] == [1, 2]
    assert max(r["lr"] for r in joint) <= 5e-4 + 1e-12


def test_torchrun_trains_with_distributed_data_parallel(tmp_path):
    """Two CPU ranks (gloo) under torchrun: the same command as on a multi-GPU machine."""
    import os
    import socket
    import subprocess
    import sys
    from pathlib import Path

    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.exists():
        pytest.skip("torchrun not installed next to this interpreter")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    overrides = [
        "data.seeds=[1000, 1001]", "data.frames=4", "data.width=64", "data.height=48",
        "pretrain_2d.steps=2", "pretrain_2d.batch=2", "joint.steps=2", "joint.batch=2",
    ] + TINY  # fmt: skip
    cmd = [str(torchrun), "--nproc_per_node", "2", "--master_addr", "127.0.0.1", "--master_port", str(port),
           "-m", "alster_mapping.cli", "train", "--out", str(tmp_path), "--no-progress"]  # fmt: skip
    for item in overrides:
        cmd += ["--set", item]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    card = read_card(tmp_path / MODEL_FILE)
    assert card["provenance"]["world_size"] == 2


def test_every_recipe_has_its_config_file_and_it_holds_the_defaults():
    from pathlib import Path

    from alster_mapping.core.config import load_yaml, to_dict
    from alster_mapping.train.recipe import RECIPES

    root = Path(__file__).resolve().parents[2] / "config" / "train"
    for name in RECIPES.names():
        recipe = RECIPES.get(name)
        path = root / f"{name}.yaml"
        assert path.is_file(), f"recipe {name!r} has no {path}"
        assert to_dict(load_yaml(recipe.config_class, path)) == to_dict(recipe.config_class()), path


def test_train_refuses_an_unknown_model(tmp_path, capsys):
    from alster_mapping.cli import main

    assert main(["train", "--model", "nope", "--out", str(tmp_path)]) == 1
    assert "unknown training recipe 'nope'; known: alster" in capsys.readouterr().err


def test_parameters_added_after_a_state_was_written_count_as_their_default():
    from alster_mapping.train.loop import changed_keys

    old = {"a": 1, "section": {"b": 2}}
    defaults = {"a": 1, "section": {"b": 2, "added": "auto"}, "new_section": {"c": 0}}
    same = {"a": 1, "section": {"b": 2, "added": "auto"}, "new_section": {"c": 0}}
    assert changed_keys(old, same, defaults=defaults) == []
    moved = {"a": 1, "section": {"b": 2, "added": "torch"}, "new_section": {"c": 3}}
    assert changed_keys(old, moved, defaults=defaults) == ["new_section.c", "section.added"]
    assert changed_keys(old, same) == ["new_section", "section.added"]  # without defaults: every new key
