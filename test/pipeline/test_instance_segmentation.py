"""Scene instances from a block model (alster_mapping.pipeline.instance_segmentation)."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from tiny_configs import tiny_asis_net

from alster_mapping.core.config import apply_overrides
from alster_mapping.core.samples import PointBlock
from alster_mapping.eval.instance_metrics import score_instances
from alster_mapping.nets.asis import AsisConfig, AsisModel
from alster_mapping.nets.points.branches import InstanceSizePrior
from alster_mapping.pipeline.instance_segmentation import (
    InstanceSegmentationConfig,
    drop_small_instances,
    in_order,
    scene_chunks,
    segment_instances,
    split_by_class,
)


class SideOracle(torch.nn.Module):
    """Embeds each point by the side of the scene it lies on (normalised x < 0.5: 0, else 3)
    and classifies the left side as class 1, the right as class 4."""

    def __init__(self):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))  # gives the model a device

    def forward(self, xyz, features):
        right = (features[..., 3] >= 0.5).float()
        logits = torch.stack([torch.zeros_like(right)] * 5, -1)
        logits[..., 1] = 10 * (1 - right)
        logits[..., 4] = 10 * right
        return SimpleNamespace(semantic_logits=logits, embeddings=3.0 * right.unsqueeze(-1))


@pytest.fixture(scope="module")
def scene():
    """Two 1.4 m x 3 m objects side by side with a 0.2 m gap, 6,000 points."""
    rng = np.random.default_rng(0)
    xyz = rng.uniform([0, 0, 0], [3.0, 3.0, 1.0], (6000, 3))
    xyz[:, 0] = np.where(xyz[:, 0] < 1.5, xyz[:, 0] * 1.4 / 1.5, 1.6 + (xyz[:, 0] - 1.5) * 1.4 / 1.5)
    right = xyz[:, 0] >= 1.5
    return PointBlock(xyz, np.where(right, 4, 1), np.where(right, 2, 1), rgb=np.full((6000, 3), 128)), right


def test_chunks_cover_every_point_with_full_chunks(scene):
    points, _ = scene
    cfg = InstanceSegmentationConfig(points=512)
    chunks = scene_chunks(points.xyz, cfg)
    assert all(len(c) == 512 for c in chunks)
    assert np.unique(np.concatenate(chunks)).size == len(points)


def test_blocks_are_clustered_and_merged_into_the_scenes_objects(scene):
    points, right = scene
    result = segment_instances(SideOracle(), points, InstanceSegmentationConfig(points=512))
    assert result.semantic.tolist() == np.where(right, 4, 1).tolist()
    # Two instances, one per side, across all the overlapping blocks.
    assert (result.instance >= 0).all() and len(np.unique(result.instance)) == 2
    assert len(np.unique(result.instance[right])) == 1 and len(np.unique(result.instance[~right])) == 1
    scores = score_instances([(np.where(right, 4, 1), np.where(right, 2, 1), result.semantic, result.instance)])
    assert scores.mcov == pytest.approx(1.0) and scores.mprec == 1.0 and scores.mrec == 1.0
    assert set(result.timings) == {"blocks", "network", "clustering", "merging"}


def test_a_real_model_runs_end_to_end(scene):
    points, _ = scene
    model = AsisModel(apply_overrides(AsisConfig(), tiny_asis_net()), num_classes=20).eval()
    result = segment_instances(model, points, InstanceSegmentationConfig(points=256, batch=4))
    assert result.semantic.shape == (len(points),) and 0 <= result.semantic.min() and result.semantic.max() < 20
    assert result.instance.shape == (len(points),) and result.instance.min() >= -1
    # Batches on threads: the same result as one after the other (the merging keeps their order).
    sequential = segment_instances(model, points, InstanceSegmentationConfig(points=256, batch=4, workers=1))
    assert np.array_equal(result.instance, sequential.instance) and np.array_equal(result.semantic, sequential.semantic)
    np.testing.assert_allclose(result.confidence, sequential.confidence, rtol=1e-6)
    with pytest.raises(ValueError, match="no points"):
        segment_instances(model, points.subset(np.zeros(len(points), bool)))


def test_in_order_yields_in_order_with_few_calls_in_flight_and_stops_early():
    import threading
    import time

    running, most, lock, started = [0], [0], threading.Lock(), []

    def slow(item):
        with lock:
            started.append(item)
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.02 * (item % 3))  # later items may finish first
        with lock:
            running[0] -= 1
        if item == 7:
            raise RuntimeError("item 7 failed")
        return item * 10

    assert list(in_order(slow, list(range(7)), workers=3)) == [0, 10, 20, 30, 40, 50, 60]
    assert most[0] <= 3
    started.clear()
    with pytest.raises(RuntimeError, match="item 7 failed"):
        list(in_order(slow, list(range(20)), workers=2))
    assert len(started) <= 11  # calls beyond the failure's window never started
    assert list(in_order(slow, [1, 2], workers=1)) == [10, 20]


def test_small_instances_are_dropped_by_their_class_threshold():
    instance = np.array([5, 5, 5, 7, 7, 9, -1, 9, 9, 9])
    semantic = np.array([1, 1, 2, 2, 2, 1, 0, 1, 1, 2])
    # Instance 5 (class 1 by mode, 3 points) and 9 (class 1, 4 points) pass class 1's
    # threshold of 2.5 points; 7 (class 2, 2 points) is not above class 2's 2.0.
    kept = drop_small_instances(instance, semantic, np.array([0.0, 2.5, 2.0]))
    assert kept.tolist() == [0, 0, 0, -1, -1, 1, -1, 1, 1, 1]
    assert drop_small_instances(instance, semantic, np.zeros(3), min_points=4).tolist() == [-1] * 5 + [0, -1, 0, 0, 0]


def test_the_models_class_sizes_drop_small_instances(scene):
    points, right = scene
    model = SideOracle()
    model.instance_sizes = InstanceSizePrior(5)
    model.instance_sizes.fit([(np.array([4] * 4000 + [1] * 10), np.array([0] * 4000 + [1] * 10))])
    assert model.instance_sizes.mean_points.tolist() == [0, 10, 0, 0, 4000]
    result = segment_instances(model, points, InstanceSegmentationConfig(points=512))
    # The right object (class 4, about 3,000 points) is below a quarter of 4,000? No: 1,000 < 3,000, kept;
    # with a fraction of 1 it is dropped, and its points keep their class.
    assert len(np.unique(result.instance[right])) == 1 and (result.instance[right] >= 0).all()
    result = segment_instances(model, points, InstanceSegmentationConfig(points=512, size_fraction=1.0))
    assert (result.instance[right] == -1).all() and (result.semantic[right] == 4).all()
    assert (result.instance[~right] == 0).all()


def test_the_maps_own_labels_replace_the_models_classes_where_known(scene):
    points, right = scene
    known = np.where(np.arange(len(points)) % 2 == 0, 3, -1)  # every other point labelled 3 by the map
    confidence = np.full(len(points), 0.6)
    result = segment_instances(SideOracle(), points, InstanceSegmentationConfig(points=512), map_labels=(known, confidence))
    assert (result.semantic[known == 3] == 3).all() and np.allclose(result.confidence[known == 3], 0.6)
    assert (result.semantic[known < 0] == np.where(right, 4, 1)[known < 0]).all()
    model_only = segment_instances(SideOracle(), points, InstanceSegmentationConfig(points=512, semantics="model"), map_labels=(known, confidence))
    assert model_only.semantic.tolist() == np.where(right, 4, 1).tolist()
    # The grouping is the model's either way.
    assert np.array_equal(result.instance >= 0, model_only.instance >= 0)


def test_split_by_class_gives_each_class_of_a_group_its_own_instance():
    instance = np.array([0, 0, 0, 1, 1, -1, 2])
    semantic = np.array([4, 4, 6, 4, 4, 4, 6])
    assert split_by_class(instance, semantic).tolist() == [0, 0, 1, 2, 2, -1, 3]
    assert split_by_class(np.array([-1, -1]), np.array([1, 2])).tolist() == [-1, -1]
