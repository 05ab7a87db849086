"""Scene-completion volumes (alster_mapping.data.completion_volumes): TSDF from one frame, labels of the whole scene."""

import numpy as np
import pytest

from alster_mapping.core.samples import VoxelVolume
from alster_mapping.data.completion_volumes import completion_volume
from alster_mapping.data.sequences import SyntheticSequence


@pytest.fixture(scope="module")
def volume():
    world = SyntheticSequence(4, 2, 96, 72)
    return completion_volume(world.frame(0), world.ground_truth())  # 60 x 60 x 36 voxels of 8 cm


def test_the_tsdf_crosses_zero_at_labelled_surfaces(volume):
    assert volume.shape == (60, 60, 36) and volume.tsdf.dtype == np.float32 and volume.labels.dtype == np.int64
    assert (volume.tsdf > 0.5).any() and (volume.tsdf < -0.5).any()
    # Voxels the camera measured as surface (|tsdf| < 0.5: within 12 cm along the ray) hold
    # ground truth far more often than voxels in general: TSDF and labels are aligned.
    surface = np.abs(volume.tsdf) < 0.5
    assert surface.sum() > 100
    labelled = volume.labels > 0
    assert labelled[surface].mean() > 5 * labelled.mean(), (labelled[surface].mean(), labelled.mean())
    # The complete scene is labelled, also where the camera saw nothing (tsdf 1).
    assert labelled[volume.tsdf == 1.0].sum() > 0
    assert 0 < labelled.mean() < 0.5  # a room is mostly empty space


def test_voxel_centres_and_validation(volume):
    centres = volume.centers()
    np.testing.assert_allclose(centres[0, 0, 0], volume.origin + volume.voxel_size / 2)
    with pytest.raises(ValueError, match="within"):
        VoxelVolume(np.full((2, 2, 2), 2.0), np.zeros((2, 2, 2), np.int64), np.zeros(3), 0.1)
    with pytest.raises(ValueError, match="differ in shape"):
        VoxelVolume(np.zeros((2, 2, 2)), np.zeros((2, 2, 3), np.int64), np.zeros(3), 0.1)
