"""The gravity frame: floor estimation, the per-pixel channels, up modes, and resets."""

import numpy as np
import pytest
import torch

from alster_mapping.core.config import apply_overrides
from alster_mapping.core.geometry import backproject, normals_from_depth, transform_points
from alster_mapping.data.procedural_room import ProceduralRoom
from alster_mapping.nets.alster import AlsterModel
from alster_mapping.nets.alster.config import AlsterNetConfig
from alster_mapping.pipeline.gravity import FloorEstimator, GravityConfig, GravityReference
from alster_mapping.pipeline.mapping_config import MappingConfig
from alster_mapping.pipeline.online_mapper import OnlineMapper


def _plane(height: float, n: int, rng) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.from_numpy(height + rng.normal(0, 0.005, n)), torch.ones(n)


def test_the_floor_is_the_lowest_well_supported_horizontal_surface():
    rng = np.random.default_rng(0)
    estimator = FloorEstimator()
    for height, n in ((0.31, 3000), (0.75, 8000), (1.1, 2000)):  # floor, a big table, a shelf
        estimator.observe(*_plane(height, n, rng))
    estimator.observe(torch.from_numpy(rng.uniform(-2, 0.2, 40)), torch.ones(40))  # stray points below
    estimator.observe(torch.zeros(5000), torch.zeros(5000))  # a wall's points: not upward-facing
    floor = estimator.floor(camera_elevation=1.7)
    assert floor == pytest.approx(0.31, abs=0.01)
    # Seen from a camera below the table top, only the floor counts.
    assert estimator.floor(camera_elevation=0.5) == pytest.approx(0.31, abs=0.01)
    estimator.reset()
    assert estimator.floor(camera_elevation=1.7) is None


def test_a_floor_needs_enough_points():
    estimator = FloorEstimator()
    estimator.observe(torch.full((FloorEstimator.MIN_POINTS // 4,), 0.2), torch.ones(FloorEstimator.MIN_POINTS // 4))
    assert estimator.floor(camera_elevation=1.5) is None


@pytest.fixture(scope="module")
def room():
    return ProceduralRoom(width=80, height=64)


def _channels(reference, frame):
    depth = torch.from_numpy(frame.depth)
    points, mask = backproject(depth, frame.intrinsics, 3.0)
    normals = normals_from_depth(depth, frame.intrinsics)
    return reference.channels(transform_points(frame.T_world_camera, points), mask, normals, frame.T_world_camera)


def test_height_and_up_component_on_a_rendered_room(room):
    frame = room.render(room.pose(0, 3))
    reference = GravityReference()
    height, normal_up = _channels(reference, frame)
    assert reference.floor_elevation == pytest.approx(0.0, abs=0.02)  # the room's floor top is z = 0
    floor = frame.labels == 2
    valid = torch.from_numpy((frame.depth > 0) & (frame.depth <= 3.0))
    assert height[torch.from_numpy(floor) & valid].abs().median() < 0.02
    assert normal_up[torch.from_numpy(floor) & valid].median() > 0.99
    walls = torch.from_numpy(frame.labels == 1) & valid
    assert normal_up[walls].abs().median() < 0.05
    # Heights agree with the world z of the points (floor at 0).
    assert float(height[valid].max()) < 3.0 and float(height[valid].min()) > -0.05


def test_given_floor_none_up_and_the_camera_height_prior(room):
    frame = room.render(room.pose(1, 3))
    given = GravityReference(GravityConfig(floor="given", floor_height=-0.5))
    height_given, _ = _channels(given, frame)
    height_estimated, _ = _channels(GravityReference(), frame)
    valid = torch.from_numpy((frame.depth > 0) & (frame.depth <= 3.0))  # heights are zero beyond max_range
    assert torch.allclose(height_given[valid], height_estimated[valid] + 0.5, atol=0.03)
    none = GravityReference(GravityConfig(up="none"))
    assert all(bool((c == 0).all()) for c in _channels(none, frame))
    # Without any upward-facing surface the floor is assumed camera_height below the camera.
    reference = GravityReference(GravityConfig(camera_height=1.0))
    assert reference._floor(torch.zeros(0), torch.zeros(0), camera_elevation=1.4) == pytest.approx(0.4)


def test_first_camera_up_follows_the_first_pose_and_resets(room):
    frames = room.frames(2)
    reference = GravityReference(GravityConfig(up="first_camera"))
    _channels(reference, frames[0])
    np.testing.assert_allclose(reference.up, -frames[0].T_world_camera[:3, 1])
    _channels(reference, frames[1])
    np.testing.assert_allclose(reference.up, -frames[0].T_world_camera[:3, 1])  # kept for the map's life
    reference.reset()
    assert reference.up is None and reference.floor_elevation is None


def test_the_mapper_feeds_the_gravity_inputs_and_forgets_the_floor_with_the_map(room):
    net = apply_overrides(
        AlsterNetConfig(),
        {"encoder2d.pretrained": False, "encoder2d.aspp_channels": 16, "encoder2d.decoder_channels": 16,
         "unet3d.channels": [8, 16], "expert.layers": 1},
    )
    config = apply_overrides(MappingConfig(), {"map.voxel_size": 0.08})
    mapper = OnlineMapper(config, model=AlsterModel(net))
    frames = room.frames(2)
    inputs = mapper.prepare(frames[0])
    assert inputs.image.shape[1] == 9 and inputs.geometry.shape == (inputs.lifted.num_voxels, 2)
    mapper.step(frames[0])
    assert mapper.gravity.floor_elevation == pytest.approx(0.0, abs=0.02)
    mapper.map.clear()
    mapper.gravity.floor_elevation = 5.0  # stale: a clear must make the mapper start over
    mapper.prepare(frames[1])
    assert mapper.gravity.floor_elevation == pytest.approx(0.0, abs=0.02)


def test_new_settings_start_over_and_the_state_says_where_the_floor_comes_from(room):
    reference = GravityReference()
    assert reference.state()["floor"].startswith("not seen yet")
    _channels(reference, room.render(room.pose(0, 3)))
    state = reference.state()
    assert state["floor"] == "estimated" and state["floor_height_m"] == pytest.approx(0.0, abs=0.02)
    reference.configure(GravityConfig())  # the same settings: nothing forgotten
    assert reference.floor_elevation is not None
    reference.configure(GravityConfig(floor="given", floor_height=0.2))
    assert reference.floor_elevation is None and reference.state() == {"up": "z", "floor": "given", "floor_height_m": 0.2}
    reference.configure(GravityConfig(up="first_camera"))
    assert reference.up is None and GravityReference(GravityConfig(up="none")).state() == {"up": "none", "floor": "unused"}
