import numpy as np

from alster_mapping.pipeline.connected_components import semantic_components


def grid(cells):
    return np.array(cells, float) * 0.05


def test_touching_voxels_of_one_class_join_and_classes_separate():
    # Two chairs (class 4) touching diagonally form one instance; a table (class 6) touching them stays separate;
    # a chair two voxels away is its own instance; an unlabelled voxel gets none.
    xyz = grid([[0, 0, 0], [1, 1, 1], [2, 1, 1], [5, 0, 0], [3, 1, 1], [9, 9, 9]])
    semantic = np.array([4, 4, 6, 4, 6, -1])
    instance = semantic_components(xyz, semantic, 0.05)
    assert instance[0] == instance[1] and instance[2] == instance[4]
    assert len({instance[0], instance[2], instance[3]}) == 3
    assert instance[5] == -1
    assert sorted(set(instance[:5])) == [0, 1, 2]


def test_small_components_are_dropped():
    xyz = grid([[0, 0, 0], [1, 0, 0], [2, 0, 0], [8, 0, 0]])
    instance = semantic_components(xyz, np.array([3, 3, 3, 3]), 0.05, min_points=2)
    assert list(instance) == [0, 0, 0, -1]
    assert (semantic_components(xyz, np.full(4, -1), 0.05) == -1).all()
