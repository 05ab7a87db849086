"""Label consistency on frames without labels: hand-computed tallies and a replay."""

import numpy as np
import pytest
from tiny_configs import TINY_ALSTER_NET

from alster_mapping.core.config import apply_overrides
from alster_mapping.data.procedural_room import ProceduralRoom
from alster_mapping.data.sequences import FrameList
from alster_mapping.eval.consistency import LabelConsistency, measure_consistency
from alster_mapping.pipeline.mapping_config import MappingConfig
from alster_mapping.pipeline.online_mapper import OnlineMapper

FLOOR, WALL, TABLE = 1, 0, 6


def test_agreement_and_plausibility_by_hand():
    tally = LabelConsistency(20, floor=FLOOR, wall=WALL)
    floor_geometry, wall_geometry = [0.0, 1.0], [2.2, 0.0]
    # Row 0: floor seen 3 times, labelled floor, floor, table. Row 1: a high wall, wall twice.
    # Row 2: a table top (0.75 m, flat) labelled floor once.
    tally.add(np.array([0, 1, 2]), np.array([FLOOR, WALL, FLOOR]), np.array([floor_geometry, wall_geometry, [0.75, 1.0]]))
    tally.add(np.array([0, 1]), np.array([FLOOR, WALL]), np.array([floor_geometry, wall_geometry]))
    tally.add(np.array([0]), np.array([TABLE]), np.array([floor_geometry]))
    s = tally.summary()
    assert s["frames"] == 3 and s["voxels"] == 3 and s["voxels_seen_twice"] == 2
    assert s["agreement"] == pytest.approx((2 + 2) / (3 + 2))
    assert s["floor_labels_on_low_flat_surfaces"] == pytest.approx(1 / 2)  # row 0 yes, row 2 (a table) no
    assert s["low_flat_surfaces_labelled_floor"] == pytest.approx(1.0)
    assert s["wall_labels_on_vertical_surfaces"] == pytest.approx(1.0)
    assert s["high_vertical_surfaces_labelled_wall"] == pytest.approx(1.0)


def test_a_replay_is_measured_and_bad_frames_are_counted():
    room = ProceduralRoom(width=64, height=48)
    frames = room.frames(3)
    frames[1].depth[:] = 0  # no valid depth: the mapper refuses it
    config = apply_overrides(MappingConfig(), {**{f"model.{k}": v for k, v in TINY_ALSTER_NET.items()}, "alster.label_update": "latest"})
    summary = measure_consistency(FrameList(frames), OnlineMapper(config))
    assert summary["frames"] == 2 and sum(summary["skipped"].values()) == 1
    assert 0.0 <= summary["agreement"] <= 1.0
    assert summary["floor_elevation_m"] == pytest.approx(0.0, abs=0.03)
