"""BlockMerging: per-block instance groups merged into instances of the whole scene.

Point models see one 1 m column at a time, and overlapping columns cluster the same object
independently; SGPN's BlockMerging (Wang et al., CVPR 2018, used unchanged by ASIS and BAN)
joins them. Blocks are visited in order; a block's group is compared with the labels the
scene already holds at the group's points:

* if it overlaps an existing instance of the same semantic class on at least
  ``min_overlap`` points, it takes the label of the instance it overlaps most;
* else, if it has more than ``min_new_size`` points, it becomes a new instance;
* else it is dropped (deviation: SGPN's code gives such a group label 0, i.e. merges it
  into whatever instance was created first, a side effect of ``argmax`` over zeros).

Only points the scene has not labelled yet take the group's label, so the first block to
label a point wins. SGPN quantises coordinates into a volume (5 mm cells) to find the
same point in two blocks; here the points carry their index in the scene (a map voxel
row), which identifies them exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class MergedInstances:
    """instance: (N,) int64 scene instance ids (-1 = none); semantic: (N,) int64 class of
    each point's instance (-1 = none)."""

    instance: np.ndarray
    semantic: np.ndarray


class BlockMerger:
    """Accumulates blocks of a scene of ``num_points`` points.

    min_overlap: points a group must share with an existing instance to join it (SGPN: 7,
    for 4,096-point blocks). min_new_size: points a non-overlapping group needs to become
    a new instance (SGPN: 30).
    """

    def __init__(self, num_points: int, min_overlap: int = 7, min_new_size: int = 30):
        self.instance = np.full(num_points, -1, np.int64)
        self.semantic = np.full(num_points, -1, np.int64)
        self.min_overlap, self.min_new_size = int(min_overlap), int(min_new_size)
        self._next = 0

    def add_block(self, rows: np.ndarray, groups: np.ndarray, group_classes: dict[int, int]) -> None:
        """rows: (M,) scene indices of the block's points (repeats allowed). groups: (M,)
        group id of each point in the block (-1 = none). group_classes: group id -> class."""
        rows = np.asarray(rows, np.int64)
        groups = np.asarray(groups, np.int64)
        assigned: dict[int, int] = {}
        members_of = {int(group): np.unique(rows[groups == group]) for group in np.unique(groups[groups >= 0])}
        for group, members in members_of.items():
            label_class = group_classes[group]
            existing = self.instance[members]
            same_class = (existing >= 0) & (self.semantic[members] == label_class)
            if same_class.any():
                labels, counts = np.unique(existing[same_class], return_counts=True)
                if counts.max() >= self.min_overlap:
                    assigned[group] = int(labels[counts.argmax()])
                    continue
            if len(members) > self.min_new_size:
                assigned[group] = self._next
                self._next += 1
        for group, label in assigned.items():
            members = members_of[group]
            free = members[self.instance[members] < 0]
            self.instance[free] = label
            self.semantic[free] = group_classes[group]

    def result(self) -> MergedInstances:
        """The scene's instances so far."""
        return MergedInstances(self.instance.copy(), self.semantic.copy())


def group_classes(groups: np.ndarray, semantic: np.ndarray) -> dict[int, int]:
    """group id -> the most frequent class of its points (ASIS: an instance's class is the
    mode of its points' semantic labels); classes < 0 are not counted."""
    classes = {}
    for group in np.unique(groups[groups >= 0]):
        labels = semantic[(groups == group) & (semantic >= 0)]
        classes[int(group)] = int(np.bincount(labels).argmax()) if labels.size else -1
    return classes
