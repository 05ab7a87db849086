"""The floor grid (``map/semantic_grid.py``) against hand-built maps, and its incremental upkeep."""

import numpy as np
import pytest
import torch

from alster_mapping.core.grid_config import SemanticGridConfig
from alster_mapping.core.labels import scannet20
from alster_mapping.map.semantic_grid import (
    FREE,
    OCCUPIED,
    UNKNOWN,
    FloorGrid,
    GridTooLarge,
    class_mask,
    height_keys,
    parse_groups,
    semantic_grid,
)
from alster_mapping.map.voxel_map import SemanticVoxelMap
from alster_mapping.pipeline.mapping_config import MappingConfig

SPACE = scannet20()
FLOOR, CHAIR, TABLE = (SPACE.names.index(n) for n in ("floor", "chair", "table"))
NAV = class_mask(SPACE, ["floor"], invert=True)  # every class but the floor blocks; unlabelled too
VS = 0.1


def test_cells_by_hand():
    # Column (0, 0): floor only -> free. (1, 0): a chair at 0.55 m -> occupied. (2, 0): a chair
    # at 2.05 m (above max_height 1.8) -> nothing seen -> unknown. (3, 0): an unlabelled voxel
    # in the band -> occupied. (0, 2): a chair at 0.05 m (below min_height 0.1) -> free.
    keys = np.array([[0, 0, 0], [1, 0, 0], [1, 0, 5], [2, 0, 20], [3, 0, 3], [0, 2, 0]])
    labels = np.array([FLOOR, FLOOR, CHAIR, CHAIR, -1, CHAIR])
    grid = semantic_grid(keys, labels, VS, NAV)
    assert grid.corner == (0, 0) and grid.resolution == VS and grid.shape == (3, 4)  # rows y 0..2, columns x 0..3
    want = np.full((3, 4), UNKNOWN, np.int8)
    want[0, 0], want[0, 1], want[0, 3], want[2, 0] = FREE, OCCUPIED, OCCUPIED, FREE
    np.testing.assert_array_equal(grid.cells, want)

    # Obstacles listed explicitly: only tables block; unlabelled voxels free when asked.
    tables = class_mask(SPACE, ["table"], unlabelled_blocks=False)
    assert semantic_grid(keys, labels, VS, tables).cells.max() == FREE
    # A coarser grid: 2 x 2 voxel columns per cell; the origin follows negative keys.
    coarse = semantic_grid(keys - [4, 0, 0], labels, VS, NAV, SemanticGridConfig(resolution=0.2))
    assert coarse.corner == (-2, 0) and coarse.origin == pytest.approx((-0.4, 0.0)) and coarse.shape == (2, 2)
    np.testing.assert_array_equal(coarse.cells, [[OCCUPIED, OCCUPIED], [FREE, UNKNOWN]])


def test_height_band_borders_are_exact_and_limits_are_enforced():
    # A voxel centre exactly on min_height counts (the same integer bound in every path).
    assert height_keys(0.04, 0.1, 1.8) == (2, 44)  # centres 0.10 .. 1.78 m
    keys, labels = np.array([[0, 0, 2]]), np.array([CHAIR])
    assert semantic_grid(keys, labels, 0.04, NAV, SemanticGridConfig(min_height=0.1)).cells[0, 0] == OCCUPIED
    assert semantic_grid(np.zeros((0, 3)), np.zeros(0), VS, NAV).shape == (0, 0)
    with pytest.raises(GridTooLarge, match="max_cells"):
        semantic_grid(np.array([[0, 0, 0], [3000, 3000, 0]]), np.array([FLOOR, FLOOR]), VS, NAV, SemanticGridConfig(max_cells=1_000_000))
    with pytest.raises(ValueError, match="above max_height"):
        semantic_grid(keys, labels, VS, NAV, SemanticGridConfig(min_height=2.0, max_height=1.0))
    with pytest.raises(ValueError, match="unknown class"):
        class_mask(SPACE, ["lava"])


def test_groups_parse_or_say_why():
    assert parse_groups("keep_out: bathtub, toilet; tables:table") == {"keep_out": ["bathtub", "toilet"], "tables": ["table"]}
    assert parse_groups("") == {}
    for bad, why in (("nogroup", "expected"), ("a:", "expected"), ("1x:table", "letters"), ("a:b;a:c", "twice")):
        with pytest.raises(ValueError, match=why):
            parse_groups(bad)


def live_map() -> SemanticVoxelMap:
    cfg = MappingConfig().map
    return SemanticVoxelMap(type(cfg)(voxel_size=0.04, block_size=4), SPACE)


def write_random(m: SemanticVoxelMap, rng, n: int, x0: int) -> None:
    keys = np.unique(np.stack([rng.integers(x0, x0 + 60, n), rng.integers(-30, 30, n), rng.integers(-3, 55, n)], 1), axis=0)
    m.write(keys.astype(np.int32), label=torch.as_tensor(rng.integers(-1, 20, len(keys))), confidence=torch.full((len(keys),), 0.5))


def full_grid(m: SemanticVoxelMap):
    keys, rows = m.items()
    return semantic_grid(keys.numpy(), m.read_column("label", rows).numpy(), m.voxel_size, NAV)


def test_incremental_upkeep_equals_a_full_build():
    rng = np.random.default_rng(0)
    m = live_map()
    write_random(m, rng, 4000, 0)
    floor = FloorGrid()
    first = floor.update(m, NAV)
    assert (floor.full_builds, floor.incremental_updates) == (1, 0)
    for step in range(4):  # new voxels, relabelled observed voxels, growth beyond the old extent
        write_random(m, rng, 500, 40 * step)
        got, want = floor.update(m, NAV), full_grid(m)
        assert got.corner == want.corner and np.array_equal(got.cells, want.cells)
    assert (floor.full_builds, floor.incremental_updates) == (1, 4) and got.shape != first.shape
    assert floor.update(m, NAV) is not None and floor.incremental_updates == 4  # nothing observed: nothing recomputed

    # Removal, relabelling without observation and other settings all rebuild from scratch.
    m.remove_box(np.array([0.0, -2.0, -1.0]), np.array([1.0, 2.0, 3.0]))
    got = floor.update(m, NAV)
    assert floor.full_builds == 2 and np.array_equal(got.cells, full_grid(m).cells)
    keys, _ = m.items()
    m.assign_labels(keys[:100], torch.full((100,), FLOOR), torch.full((100,), 0.9))
    assert np.array_equal(floor.update(m, NAV).cells, full_grid(m).cells) and floor.full_builds == 3
    floor.update(m, NAV, SemanticGridConfig(max_height=1.0))
    assert floor.full_builds == 4


def test_block_labels_match_lookup():
    rng = np.random.default_rng(1)
    m = live_map()
    write_random(m, rng, 2000, 0)
    keys, rows = m.items()
    block_keys = torch.unique(torch.div(keys, 4, rounding_mode="floor"), dim=0)[:50]
    cubes = m.block_labels(block_keys)
    b = torch.arange(4)
    z, y, x = torch.meshgrid(b, b, b, indexing="ij")
    voxel_keys = (block_keys[:, None, :] * 4 + torch.stack([x, y, z], -1).reshape(1, -1, 3)).reshape(-1, 3)
    found = m.lookup(voxel_keys)
    want = torch.where(found >= 0, m.read_column("label", found.clamp_min(0)).to(torch.int16), torch.tensor(-2, dtype=torch.int16))
    np.testing.assert_array_equal(cubes.reshape(-1).numpy(), want.numpy())
    assert (m.block_labels(torch.tensor([[999, 999, 999]])) == -2).all()


def test_remove_box_and_sphere_remove_exactly_their_voxels():
    rng = np.random.default_rng(2)
    m = live_map()
    write_random(m, rng, 3000, 0)
    arrays = m.to_arrays()
    lo, hi = np.array([0.5, -0.5, 0.0]), np.array([1.5, 0.5, 1.0])
    inside = ((arrays.xyz >= lo) & (arrays.xyz <= hi)).all(1)
    edits = m.edits
    assert m.remove_box(lo, hi) == int(inside.sum()) > 0 and len(m) == len(arrays) - int(inside.sum()) and m.edits > edits
    before = len(m)
    with pytest.raises(ValueError, match="above box max"):
        m.remove_box(hi, lo)
    with pytest.raises(ValueError, match="finite"):
        m.remove_sphere(np.array([np.nan, 0, 0]), 1.0)
    with pytest.raises(ValueError, match="radius"):
        m.remove_sphere(np.zeros(3), -1.0)
    assert len(m) == before
    centre = np.array([2.0, 0.0, 1.0])
    xyz = m.to_arrays().xyz
    near = np.linalg.norm(xyz - centre, axis=1) <= 0.5
    assert m.remove_sphere(centre, 0.5) == int(near.sum()) > 0
    assert m.remove_box(np.full(3, 100.0), np.full(3, 101.0)) == 0
