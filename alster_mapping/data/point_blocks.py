"""Point blocks for point networks: a scene's labelled points cut into vertical columns.

The protocol of PointNet-style indoor segmentation (used by ASIS and BAN, ../papers/asis.md,
section 4): the floor plan is tiled with ``block_size`` x ``block_size`` m columns every
``stride`` m (full height), and each column with enough points is sampled to exactly
``num_points`` points (without replacement where it has that many, else with). The result
is a list of ``PointBlock`` samples that keep every column of the source (labels,
instances, colour, normals) aligned.
"""

from __future__ import annotations

import numpy as np

from ..core.geometry import block_columns
from ..core.samples import PointBlock


def cut_blocks(
    points: PointBlock,
    rng: np.random.Generator,
    block_size: float = 1.0,
    stride: float = 0.5,
    num_points: int = 4096,
    min_points: int = 100,
    up_axis: int = 2,
) -> list[PointBlock]:
    """Columns of ``points`` (see the module docstring), each sampled to ``num_points``.

    block_size, stride: metres in the plane orthogonal to ``up_axis`` (0, 1 or 2; z = 2).
    min_points: columns with fewer source points are dropped. rng: draws the samples.
    Blocks are named ``"<source> block (i, j)"`` by their grid cell. Raises ValueError on
    non-positive sizes.
    """
    if block_size <= 0 or stride <= 0 or num_points < 1 or min_points < 1:
        raise ValueError(f"block_size, stride, num_points and min_points must be positive, got {block_size}, {stride}, {num_points}, {min_points}")
    if up_axis not in (0, 1, 2):
        raise ValueError(f"up_axis must be 0, 1 or 2, got {up_axis}")
    if len(points) == 0:
        return []
    plane = points.xyz[:, [axis for axis in range(3) if axis != up_axis]]
    blocks = []
    for (i, j), rows in block_columns(plane, block_size, stride):
        if rows.size < min_points:
            continue
        picked = rng.choice(rows, num_points, replace=rows.size < num_points)
        blocks.append(points.subset(picked, f"{points.name} block ({i}, {j})"))
    return blocks
