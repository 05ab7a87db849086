"""Scene-completion volumes (alster_mapping.data.completion_volumes): SSCNet's volume in front of
a camera, its visibility, flipped TSDF, complete-scene labels with solid objects, pixel -> voxel."""

import dataclasses

import numpy as np
import pytest

from alster_mapping.core.samples import FREE, OCCLUDED, OUTSIDE, SURFACE, VoxelVolume
from alster_mapping.data.completion_volumes import (
    CompletionVolumeConfig,
    VolumeError,
    completion_volume,
    nyu40_to_ssc,
    ssc_label_space,
)
from alster_mapping.data.sequences import SyntheticSequence


@pytest.fixture(scope="module")
def scene():
    world = SyntheticSequence(4, 6, 160, 120)
    truth = world.ground_truth()
    volumes = [completion_volume(world.frame(i), truth, 0.0, world.world.solid_labels) for i in (0, 5)]
    surfaces_only = completion_volume(world.frame(0), truth, 0.0)
    return world, volumes, surfaces_only


def test_label_space_and_mapping():
    space = ssc_label_space()
    assert space.ids == tuple(range(1, 12)) and space.names[:3] == ("ceiling", "floor", "wall") and space.names[-1] == "objects"
    lut = nyu40_to_ssc()
    assert lut.shape == (41,) and lut[0] == 0 and (lut[1:] > 0).all() and lut.max() == 11
    names = dict(zip(space.ids, space.names))
    assert [names[lut[i]] for i in (1, 2, 5, 7, 22, 25, 39)] == ["wall", "floor", "chair", "table", "ceiling", "tvs", "furniture"]


def test_the_volume_stands_in_front_of_the_camera_on_the_floor(scene):
    world, volumes, _ = scene
    volume = volumes[0]
    assert volume.shape == (60, 60, 36) and CompletionVolumeConfig().shape() == (60, 60, 36)
    T = volume.T_world_grid
    np.testing.assert_allclose(T[:3, 2], [0, 0, 1])  # z up
    camera = world.frame(0).T_world_camera
    local = T[:3, :3].T @ (camera[:3, 3] - T[:3, 3])
    np.testing.assert_allclose(local[:2], [2.4, 0.0], atol=1e-9)  # middle of the width, at the front face
    assert T[2, 3] == 0.0  # the floor in the bottom layer
    forward = camera[:3, 2].copy()
    forward[2] = 0
    assert T[:3, 1] @ forward / np.linalg.norm(forward) > 0.999  # y along the viewing direction


def test_labels_agree_with_the_rendered_depth(scene):
    world, volumes, surfaces_only = scene
    for volume in volumes:
        labels, visibility = volume.labels, volume.visibility
        assert labels.min() >= 0 and labels.max() <= 11
        counts = {code: int((visibility == code).sum()) for code in (OUTSIDE, FREE, SURFACE, OCCLUDED)}
        assert all(counts.values()), counts
        # What the depth image says is surface holds the scene; what it says is free space is
        # empty (not exactly: visibility is judged at the voxel centre from noisy depth, while
        # a surface point anywhere in a voxel labels it).
        assert (labels[visibility == SURFACE] > 0).mean() > 0.8
        assert (labels[visibility == FREE] == 0).mean() > 0.93
        # The complete scene: hidden voxels are labelled too, and most of a room is empty.
        assert (labels[visibility == OCCLUDED] > 0).sum() > 100
        assert 0.02 < (labels > 0).mean() < 0.5
    # Solid objects: the voxels deep inside a thick part (a mattress, a cabinet body) hold its
    # class, which the surface points alone leave empty.
    solid, hollow = volumes[0].labels, surfaces_only.labels
    assert np.array_equal(solid[hollow > 0], hollow[hollow > 0])  # surfaces win where both exist
    centres = volumes[0].centers()
    lut = nyu40_to_ssc()
    checked = 0
    for k, part in enumerate(world.world._parts):
        if part.kind != "box" or not part.occluder or part.half.min() < 0.12:
            continue
        local = (centres - part.center) @ part.R
        deep = (np.abs(local) < part.half - 0.08).all(-1)  # a voxel away from every face
        if deep.sum() < 3:
            continue
        assert (solid[deep] == lut[world.world._part_label[k]]).mean() > 0.9
        assert (hollow[deep] == 0).mean() > 0.9
        checked += 1
    assert checked >= 1


def test_flipped_tsdf_and_pixel_to_voxel_mapping(scene):
    _, volumes, _ = scene
    volume = volumes[0]
    tsdf, visibility = volume.tsdf, volume.visibility
    assert np.abs(tsdf[visibility == SURFACE]).min() > 0.5  # +-1 at the surface
    assert (tsdf[visibility == OUTSIDE] == -1).all()  # nothing known
    free = tsdf[visibility == FREE]
    assert (free >= 0).all() and (free < 0.1).mean() > 0.5  # seen empty space far from surfaces: ~0
    pixel_voxel = volume.pixel_voxel
    frame = volume.frame
    assert pixel_voxel.shape == frame.shape
    mapped = pixel_voxel[pixel_voxel >= 0]
    assert mapped.size > 0.3 * pixel_voxel.size
    # A pixel's point lies on the measured surface; its voxel's centre projects to a pixel
    # nearby, whose depth differs where the surface is steep or ends.
    assert (volume.visibility.reshape(-1)[mapped] == SURFACE).mean() > 0.7
    assert (pixel_voxel[~(frame.depth > 0)] == -1).all()


def test_bad_frames_raise_a_clear_error(scene):
    world, _, _ = scene
    frame = world.frame(0)
    truth = world.ground_truth()
    down = np.eye(4)
    down[:3, :3] = [[1, 0, 0], [0, -1, 0], [0, 0, -1]]  # optical axis = -z: looking at the floor
    down[:3, 3] = [1.0, 1.0, 1.5]
    with pytest.raises(VolumeError, match="straight up or down"):
        completion_volume(dataclasses.replace(frame, T_world_camera=down), truth, 0.0)
    with pytest.raises(VolumeError, match="no valid depth"):
        completion_volume(dataclasses.replace(frame, depth=np.zeros_like(frame.depth)), truth, 0.0)


def test_volume_validation():
    T = np.eye(4)
    VoxelVolume(np.zeros((2, 2, 2)), np.zeros((2, 2, 2), np.int64), T, 0.1)
    with pytest.raises(ValueError, match="within"):
        VoxelVolume(np.full((2, 2, 2), 2.0), np.zeros((2, 2, 2), np.int64), T, 0.1)
    with pytest.raises(ValueError, match="differ in shape"):
        VoxelVolume(np.zeros((2, 2, 2)), np.zeros((2, 2, 3), np.int64), T, 0.1)
    with pytest.raises(ValueError, match="rigid"):
        VoxelVolume(np.zeros((2, 2, 2)), np.zeros((2, 2, 2), np.int64), 2 * T, 0.1)
    with pytest.raises(ValueError, match="visibility"):
        VoxelVolume(np.zeros((2, 2, 2)), np.zeros((2, 2, 2), np.int64), T, 0.1, visibility=np.full((2, 2, 2), 7))
    with pytest.raises(ValueError, match="pixel_voxel"):
        VoxelVolume(np.zeros((2, 2, 2)), np.zeros((2, 2, 2), np.int64), T, 0.1, pixel_voxel=np.full((3, 3), 8))
    centres = VoxelVolume(np.zeros((2, 2, 2)), np.zeros((2, 2, 2), np.int64), T, 0.1).centers()
    np.testing.assert_allclose(centres[1, 0, 1], [0.15, 0.05, 0.15])
