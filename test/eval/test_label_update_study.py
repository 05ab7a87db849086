"""bench/label_update_study.py: its shadow of the streaming vote is what the mapper stores."""

import json
from pathlib import Path

import torch

from alster_mapping.core.config import apply_overrides
from alster_mapping.data.sequences import open_sequence
from alster_mapping.pipeline.mapping_config import MappingConfig
from alster_mapping.pipeline.online_mapper import OnlineMapper

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "models" / "alster_scannet20_synthetic.safetensors"


def test_shadow_vote_equals_the_vote_mode_map(bench_script):
    study = bench_script("label_update_study")
    frames = list(open_sequence("synthetic:7:6", width=96, height=72))
    latest = OnlineMapper(apply_overrides(MappingConfig(), {"alster.checkpoint": str(MODEL), "alster.label_update": "latest"}))
    voting = OnlineMapper(apply_overrides(latest.config, {"alster.label_update": "vote"}), model=latest.model)
    shadow = study.ShadowLabels(latest.map.label_space.num_classes)
    for frame in frames:
        result = latest.step(frame)
        shadow.add(result.rows, result.labels, result.confidence)
        voting.step(frame)
    keys, rows = latest.map.items()
    vote_rows = voting.map.lookup(keys)
    assert torch.equal(shadow.labels("vote", rows, None), voting.map.read(vote_rows).label.to(torch.int64))
    torch.testing.assert_close(shadow.confidence[rows], voting.map.read(vote_rows).confidence)
    # With several views the vote and the latest label disagree somewhere.
    assert not torch.equal(shadow.labels("vote", rows, None), latest.map.read(rows).label.to(torch.int64))


def test_study_runs_and_scores_every_rule(tmp_path, bench_script):
    study = bench_script("label_update_study")
    assert study.main(["--worlds", "7", "--frames", "4", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "label_update_study.json").read_text())
    assert set(result["rules"]) == set(study.RULES)
    for scores in result["rules"].values():
        assert 0.0 < scores["miou"] <= 1.0 and scores["coverage"] > 0
