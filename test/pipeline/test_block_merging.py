"""BlockMerging (alster_mapping.pipeline.block_merging): per-block groups joined into scene instances."""

import numpy as np

from alster_mapping.pipeline.block_merging import BlockMerger, group_classes


def test_overlapping_blocks_join_one_object_and_new_objects_get_new_ids():
    # Scene of 100 points: object A = 0..49 (class 2), object B = 50..99 (class 5).
    merger = BlockMerger(100, min_overlap=5, min_new_size=10)
    # Block 1 sees A's points 0..39 as group 0.
    merger.add_block(np.arange(40), np.zeros(40, np.int64), {0: 2})
    # Block 2 sees A's points 20..49 (group 3) and B's points 50..79 (group 4).
    rows = np.arange(20, 80)
    groups = np.where(rows < 50, 3, 4)
    merger.add_block(rows, groups, {3: 2, 4: 5})
    result = merger.result()
    assert (result.instance[:50] == 0).all() and (result.semantic[:50] == 2).all()  # A: one instance
    assert (result.instance[50:80] == 1).all() and (result.semantic[50:80] == 5).all()  # B: a new one
    assert (result.instance[80:] == -1).all()  # not seen yet


def test_a_group_of_another_class_does_not_join_and_small_strays_are_dropped():
    merger = BlockMerger(60, min_overlap=5, min_new_size=10)
    merger.add_block(np.arange(30), np.zeros(30, np.int64), {0: 1})
    # The same points called class 7 by another block: no join (other class); 30 > 10 points: a new
    # instance, but the points keep their first label (the first block to label a point wins).
    merger.add_block(np.arange(30), np.zeros(30, np.int64), {0: 7})
    # A stray group of 4 points overlapping nothing: dropped.
    merger.add_block(np.arange(40, 44), np.zeros(4, np.int64), {0: 1})
    result = merger.result()
    assert (result.instance[:30] == 0).all() and (result.semantic[:30] == 1).all()
    assert (result.instance[40:44] == -1).all()


def test_group_classes_take_the_mode_of_the_points():
    groups = np.array([0, 0, 0, 1, 1, -1])
    semantic = np.array([3, 3, 4, 5, -1, 3])
    assert group_classes(groups, semantic) == {0: 3, 1: 5}
