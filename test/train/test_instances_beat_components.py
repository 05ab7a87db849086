"""A short ASIS training beats the trivial instance baseline (connected components of the
semantic labels) where that baseline must fail: objects of one class that touch.

Each scene is a floor with rows of touching boxes, all of class chair, each box in its own
colour. Connected components of even the true semantic labels join each row into one
instance; the discriminative loss can learn to tell the boxes apart. The test trains a
tiny ASIS through the one training loop on such scenes and segments a scene it has not
seen with the whole-scene pipeline (chunks, mean-shift, BlockMerging).
"""

import numpy as np
import pytest
from tiny_configs import tiny_asis_net

from alster_mapping.core.config import apply_overrides
from alster_mapping.core.labels import scannet20
from alster_mapping.core.samples import PointBlock
from alster_mapping.eval.instance_metrics import score_instances
from alster_mapping.pipeline.connected_components import semantic_components
from alster_mapping.pipeline.instance_segmentation import InstanceSegmentationConfig, segment_instances
from alster_mapping.train.loop import TrainingLoop
from alster_mapping.train.recipes.asis import AsisTrainConfig

VOXEL = 0.04
FLOOR, CHAIR = 2, 5  # raw NYU40 ids


def box_surface(low: np.ndarray, size: np.ndarray) -> np.ndarray:
    """Voxel centres on the surface of an axis-aligned box (all but its bottom face)."""
    axes = [np.arange(low[i], low[i] + size[i] + 1e-9, VOXEL) for i in range(3)]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    top = low + size
    on_side = (np.isclose(grid[:, 0], low[0]) | np.isclose(grid[:, 0], axes[0][-1]) | np.isclose(grid[:, 1], low[1]))
    on_side |= np.isclose(grid[:, 1], axes[1][-1]) | np.isclose(grid[:, 2], axes[2][-1])
    return grid[on_side & (grid[:, 2] <= top[2] + 1e-9)]


def scene(seed: int) -> PointBlock:
    """A 3 m x 3 m floor with three rows of 3-4 touching boxes (0.32-0.44 m), each its own instance and colour."""
    rng = np.random.default_rng(seed)
    axes = np.arange(0.0, 3.0, VOXEL)
    floor = np.stack(np.meshgrid(axes, axes, [0.0], indexing="ij"), -1).reshape(-1, 3)
    parts = [(floor, FLOOR, 1, np.array([150, 150, 150]))]
    for row in range(3):
        x = 0.2
        for _ in range(rng.integers(3, 5)):
            size = np.array([rng.choice([0.32, 0.36, 0.4, 0.44]), 0.4, rng.choice([0.4, 0.48, 0.56])])
            # Boxes of one row share faces: their surfaces are one voxel apart.
            parts.append((box_surface(np.array([x, 0.3 + row, VOXEL]), size), CHAIR, len(parts) + 1, rng.integers(30, 226, 3)))
            x += size[0] + VOXEL
    xyz = np.concatenate([p for p, *_ in parts])
    labels = np.concatenate([np.full(len(p), label) for p, label, *_ in parts])
    instances = np.concatenate([np.full(len(p), ident) for p, _, ident, _ in parts])
    rgb = np.concatenate([np.tile(color, (len(p), 1)) for p, *_, color in parts]).astype(np.uint8)
    rgb = np.clip(rgb + rng.integers(-8, 9, rgb.shape), 0, 255).astype(np.uint8)  # sensor noise
    return PointBlock(xyz + rng.normal(0, 0.002, xyz.shape), labels, instances, rgb=rgb, name=f"boxes {seed}")


@pytest.mark.slow
def test_a_short_training_beats_connected_components_on_touching_objects(tmp_path):
    overrides = {"data.points": 512, "steps": 300, "batch": 4, "max_lr": 3e-3, **tiny_asis_net("model.")}
    loop = TrainingLoop("asis", apply_overrides(AsisTrainConfig(), overrides), tmp_path, sequences=[scene(s) for s in range(6)], progress=False)
    loop.run()
    model = loop.model.eval()
    test = scene(100)
    space = scannet20()
    truth = space.encode(test.labels, "test labels").numpy()
    truth_instances = test.instances
    result = segment_instances(model, test, InstanceSegmentationConfig(points=512))
    learned = score_instances([(truth, truth_instances, result.semantic, result.instance)])
    # The baseline groups the model's own classes, so both differ only in the grouping.
    components = semantic_components(test.xyz, result.semantic, VOXEL)
    baseline = score_instances([(truth, truth_instances, result.semantic, components)])
    chair = space.names.index("chair")
    assert (result.semantic == truth).mean() > 0.9  # the classes are easy; the instances are the test
    # The baseline joins each row: a chair's best match covers a third or a quarter of it.
    assert baseline.cov[chair] < 0.45, baseline.cov
    assert learned.cov[chair] > baseline.cov[chair] + 0.15, (learned.cov, baseline.cov)
    assert learned.mcov > baseline.mcov, (learned.cov, baseline.cov)
