"""The semantic map projected on the floor: a 2D occupancy grid a navigation stack can use.

A cell of the grid is a column of the map above a square of the floor plane (the map
frame's x-y plane; z is up, as REP 103 asks of a map frame):

- **occupied** (100) when a voxel of an obstacle class has its centre in the column within
  the height band ``[min_height, max_height]`` metres;
- **free** (0) when the column holds seen voxels up to ``max_height`` (the floor, or
  voxels of free classes in the band) but no obstacle in the band;
- **unknown** (-1) where nothing at or below ``max_height`` was seen.

Which classes are obstacles is a boolean per class index (``class_mask``), so the same
function makes the Nav2 grid (everything but the floor) and a grid per class group (e.g.
keep-out classes). Voxels without a label count as obstacles or not (``unlabelled``).
Everything is vectorized over the voxels: one pass of numpy on (V, 3) keys.

The node's parameters of the grid are ``ros.node_config.SemanticGridConfig`` (``grid.*``).
The grid's extent follows the seen voxels; a grid of more than ``max_cells`` cells raises
``GridTooLarge`` (a huge or corrupted map must not allocate gigabytes per update).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.grid_config import SemanticGridConfig
from ..core.labels import LabelSpace

FREE, OCCUPIED, UNKNOWN = 0, 100, -1
"""Cell values of nav_msgs/OccupancyGrid (occupancy probability in percent; -1 unknown)."""

MAIN_GRID = ""
"""Key of the main grid (``~/semantic_grid``) among the grids of ``grid_masks`` (groups go by name)."""


class GridTooLarge(ValueError):
    """The grid would have more cells than allowed."""


@dataclass(frozen=True)
class Grid:
    """cells: (H, W) int8, row j = y, column i = x (nav_msgs/OccupancyGrid's order).
    corner: (i, j) cell index of cells[0, 0] on the infinite grid of ``resolution`` [m] cells
    whose cell (0, 0) starts at the map frame's origin."""

    cells: np.ndarray
    corner: tuple[int, int]
    resolution: float

    @property
    def origin(self) -> tuple[float, float]:
        """(x, y) [m] of the corner of cells[0, 0] in the map frame."""
        return self.corner[0] * self.resolution, self.corner[1] * self.resolution

    @property
    def shape(self) -> tuple[int, int]:
        return self.cells.shape

    def cropped(self) -> Grid:
        """The grid without its all-unknown border rows and columns (a (0, 0) grid when all unknown)."""
        known = self.cells != UNKNOWN
        rows, cols = np.flatnonzero(known.any(1)), np.flatnonzero(known.any(0))
        if rows.size == 0:
            return Grid(np.empty((0, 0), np.int8), (0, 0), self.resolution)
        j0, j1, i0, i1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
        return Grid(self.cells[j0:j1, i0:i1].copy(), (self.corner[0] + i0, self.corner[1] + j0), self.resolution)


def class_names(text: str) -> list[str]:
    """'chair, table' -> ['chair', 'table'] (empty entries dropped)."""
    return [name.strip() for name in text.split(",") if name.strip()]


def class_mask(label_space: LabelSpace, names: list[str], *, invert: bool = False, unlabelled_blocks: bool = True) -> np.ndarray:
    """(C + 1,) bool, indexed by class index + 1 (entry 0: voxels without a label): whether a
    voxel of that class blocks a cell. names: the classes listed; invert: every class *not*
    listed blocks. Raises ValueError naming unknown classes and the label space's classes."""
    unknown = [n for n in names if n not in label_space.names]
    if unknown:
        raise ValueError(f"unknown class(es) {unknown} in label space {label_space.name!r} (classes: {list(label_space.names)})")
    listed = np.array([n in names for n in label_space.names], dtype=bool)
    mask = np.empty(label_space.num_classes + 1, dtype=bool)
    mask[0] = unlabelled_blocks
    mask[1:] = ~listed if invert else listed
    return mask


def parse_groups(text: str) -> dict[str, list[str]]:
    """'keep_out:stairs,bathtub;tables:table' -> {'keep_out': ['stairs', 'bathtub'], 'tables': ['table']}.

    Raises ValueError for an entry without a name or classes, a name that is not a valid
    topic token, or a name given twice."""
    groups: dict[str, list[str]] = {}
    for entry in (e.strip() for e in text.split(";")):
        if not entry:
            continue
        name, sep, classes = entry.partition(":")
        name = name.strip()
        if not sep or not name or not class_names(classes):
            raise ValueError(f"grid group {entry!r}: expected 'name:class,class'")
        if not (name.replace("_", "a").isalnum() and name[0].isalpha() and name.isascii()):
            raise ValueError(f"grid group name {name!r}: letters, digits and '_' only, starting with a letter")
        if name in groups:
            raise ValueError(f"grid group {name!r} is given twice")
        groups[name] = class_names(classes)
    return groups


def grid_masks(cfg: SemanticGridConfig, label_space: LabelSpace) -> dict[str, np.ndarray]:
    """Which classes block a cell, per grid: {'' (the Nav2 grid) or group name: (C + 1,) bool}.
    Raises ValueError naming unknown classes or malformed groups."""
    unlabelled = cfg.unlabelled == "obstacle"
    obstacles = class_names(cfg.obstacle_classes)
    if obstacles:
        masks = {MAIN_GRID: class_mask(label_space, obstacles, unlabelled_blocks=unlabelled)}
    else:
        masks = {MAIN_GRID: class_mask(label_space, class_names(cfg.free_classes), invert=True, unlabelled_blocks=unlabelled)}
    for name, classes in parse_groups(cfg.groups).items():
        masks[name] = class_mask(label_space, classes, unlabelled_blocks=False)
    return masks


def height_keys(voxel_size: float, min_height: float, max_height: float) -> tuple[int, int]:
    """The voxel z keys (lowest, highest) whose centres (key + 0.5) * voxel_size lie in
    [min_height, max_height] metres: integer bounds, so every path agrees on border voxels."""
    return int(np.ceil(min_height / voxel_size - 0.5)), int(np.floor(max_height / voxel_size - 0.5))


def semantic_grid(keys: np.ndarray, labels: np.ndarray, voxel_size: float, blocks: np.ndarray, settings: SemanticGridConfig | None = None) -> Grid:
    """The floor grid of a map.

    keys: (V, 3) int voxel keys (voxel centre = (key + 0.5) * voxel_size, metres).
    labels: (V,) int class indices, -1 without a label. blocks: (C + 1,) bool from
    ``class_mask``. settings: ``resolution`` (cell edge [m], 0: voxel_size), ``min_height``
    / ``max_height`` (voxel-centre z [m] in the map frame) and ``max_cells`` (default: the
    node's defaults). Returns an empty (0, 0) grid when nothing at or below ``max_height``
    was seen. Raises GridTooLarge above ``max_cells`` cells, ValueError for inconsistent inputs.
    """
    settings = settings or SemanticGridConfig()
    resolution, min_height, max_height = settings.resolution, settings.min_height, settings.max_height
    keys = np.asarray(keys)
    labels = np.asarray(labels)
    if keys.ndim != 2 or keys.shape[1] != 3 or labels.shape != (keys.shape[0],):
        raise ValueError(f"keys must be (V, 3) and labels (V,), got {keys.shape} and {labels.shape}")
    if not (voxel_size > 0) or resolution < 0:
        raise ValueError(f"voxel_size must be > 0 and resolution >= 0, got {voxel_size} and {resolution}")
    if min_height > max_height:
        raise ValueError(f"min_height {min_height} is above max_height {max_height}")
    resolution = float(resolution or voxel_size)
    low, high = height_keys(voxel_size, min_height, max_height)
    z = keys[:, 2]
    seen = z <= high
    keys, labels, z = keys[seen], labels[seen], z[seen]
    if keys.shape[0] == 0:
        return Grid(np.empty((0, 0), np.int8), (0, 0), resolution)
    if resolution == voxel_size:
        # The common case: a cell is a voxel column, so cell indices are the keys themselves.
        ix, iy = keys[:, 0].astype(np.int64), keys[:, 1].astype(np.int64)
    else:
        scale = voxel_size / resolution
        ix = np.floor((keys[:, 0] + 0.5) * scale).astype(np.int64)
        iy = np.floor((keys[:, 1] + 0.5) * scale).astype(np.int64)
    x0, y0 = int(ix.min()), int(iy.min())
    width, height = int(ix.max()) - x0 + 1, int(iy.max()) - y0 + 1
    if width * height > settings.max_cells:
        raise GridTooLarge(
            f"the grid would be {width} x {height} cells ({width * resolution:.1f} x {height * resolution:.1f} m at "
            f"{resolution} m), more than max_cells {settings.max_cells}"
        )
    flat = (iy - y0) * width + (ix - x0)
    occupied = blocks[labels.astype(np.int64) + 1] & (z >= low)
    cells = np.full(width * height, UNKNOWN, dtype=np.int8)
    cells[flat] = FREE
    cells[flat[occupied]] = OCCUPIED
    return Grid(cells.reshape(height, width), (x0, y0), resolution)


def _grid_settings(voxel_map, blocks: np.ndarray, settings: SemanticGridConfig) -> tuple:
    """What a kept grid depends on besides observations: the map's identity and edits, the classes, the settings."""
    geometry = (settings.resolution, settings.min_height, settings.max_height, settings.max_cells)
    return (id(voxel_map), voxel_map.generation, voxel_map.edits, blocks.tobytes(), geometry)


class FloorGrid:
    """The floor grid of a live map, kept up to date from the blocks observed since the last update.

    A full build (``semantic_grid`` over every voxel) costs about 0.1 s per million voxels,
    mostly listing the voxels; a mapped frame touches a few hundred blocks. So after the
    first build ``update`` recomputes only the columns of blocks observed since (their
    ``tick``), each over every block of the column up to ``max_height``, and writes them
    into the kept grid, which grows as the map does. Anything else that changes the map
    (removal, pruning, eviction, relabelling, clear, load: ``voxel_map.edits``) or the
    settings triggers a full build. A resolution other than the voxel size always builds
    fully (cells are then not block columns).
    """

    def __init__(self) -> None:
        self._depends_on: tuple | None = None
        self._tick = 0
        self._cells: np.ndarray | None = None  # (H, W) int8
        self._origin = (0, 0)  # cell index (x, y) of cells[0, 0]
        self._lowest_block = 0  # lowest block z key seen: the bottom of every column
        self.full_builds = 0
        self.incremental_updates = 0

    def update(self, voxel_map, blocks: np.ndarray, settings: SemanticGridConfig | None = None) -> Grid:
        """The grid of ``voxel_map`` (a ``SemanticVoxelMap``) now; arguments as ``semantic_grid``.
        Raises GridTooLarge (the kept grid is dropped) or ValueError."""
        settings = settings or SemanticGridConfig()
        with voxel_map.lock:  # a consistent snapshot of the counters; blocks observed later are caught next time
            tick = voxel_map.tick
            depends_on = _grid_settings(voxel_map, blocks, settings)
        try:
            per_voxel = settings.resolution in (0.0, voxel_map.voxel_size)
            if depends_on != self._depends_on or not per_voxel or self._cells is None:
                return self._full(voxel_map, blocks, tick, depends_on, settings)
            return self._incremental(voxel_map, blocks, tick, settings)
        except ValueError:
            self._depends_on, self._cells = None, None
            raise

    def _full(self, voxel_map, blocks, tick, depends_on, settings: SemanticGridConfig) -> Grid:
        keys, rows = voxel_map.items()
        labels = voxel_map.read_column("label", rows)
        keys_np = keys.cpu().numpy()
        grid = semantic_grid(keys_np, labels.cpu().numpy(), voxel_map.voxel_size, blocks, settings)
        self.full_builds += 1
        self._depends_on, self._tick = depends_on, tick
        if keys_np.shape[0]:
            self._lowest_block = int(keys_np[:, 2].min()) // voxel_map.config.block_size
        self._cells = grid.cells.copy() if grid.cells.size else None
        self._origin = grid.corner
        return grid

    def _incremental(self, voxel_map, blocks, tick, settings: SemanticGridConfig) -> Grid:
        voxel_size, b = voxel_map.voxel_size, voxel_map.config.block_size
        observed = voxel_map.blocks_observed_after(self._tick).cpu().numpy()
        self._tick = tick
        if observed.shape[0]:
            self.incremental_updates += 1
            self._lowest_block = min(self._lowest_block, int(observed[:, 2].min()))
            # Block z range of a column: from the lowest block of the map to the one holding max_height.
            top = height_keys(voxel_size, settings.min_height, settings.max_height)[1] // b
            columns = np.unique(observed[:, :2], axis=0)
            if top >= self._lowest_block and columns.shape[0]:
                self._write_columns(voxel_map, blocks, columns, top, settings)
        return Grid(self._cells, self._origin, voxel_size).cropped()

    def _write_columns(self, voxel_map, blocks, columns, top, settings: SemanticGridConfig) -> None:
        """Recompute the cells of block columns (N, 2) from all their blocks up to block z ``top``."""
        voxel_size, b = voxel_map.voxel_size, voxel_map.config.block_size
        bz = np.arange(self._lowest_block, top + 1)
        n, nz = columns.shape[0], bz.shape[0]
        block_keys = np.concatenate([np.repeat(columns, nz, axis=0), np.tile(bz, n)[:, None]], axis=1).astype(np.int32)
        labels = voxel_map.block_labels(block_keys).cpu().numpy().reshape(n, nz * b, b, b)  # [column, z, y, x]
        low, high = height_keys(voxel_size, settings.min_height, settings.max_height)
        z = self._lowest_block * b + np.arange(nz * b)  # voxel z keys of a column
        present = labels > -2
        seen = (present & (z <= high)[None, :, None, None]).any(axis=1)
        band = ((z >= low) & (z <= high))[None, :, None, None]
        occupied = (present & blocks[np.maximum(labels, -1).astype(np.int64) + 1] & band).any(axis=1)
        tiles = np.where(occupied, OCCUPIED, np.where(seen, FREE, UNKNOWN)).astype(np.int8)  # (N, B, B) [y, x]
        self._grow(columns.min(0) * b, (columns.max(0) + 1) * b, settings.max_cells)
        x0, y0 = self._origin
        local = np.arange(b)
        ys = (columns[:, 1, None] * b - y0 + local[None, :])[:, :, None]  # (N, B, 1)
        xs = (columns[:, 0, None] * b - x0 + local[None, :])[:, None, :]  # (N, 1, B)
        self._cells[ys, xs] = tiles

    def _grow(self, lo: np.ndarray, hi: np.ndarray, max_cells: int) -> None:
        """Make the kept grid cover cell indices [lo, hi) (x, y), padding with unknown cells."""
        if self._cells is None:
            new_lo, new_hi = lo, hi
        else:
            h, w = self._cells.shape
            old_lo = np.array(self._origin)
            old_hi = old_lo + (w, h)
            if (lo >= old_lo).all() and (hi <= old_hi).all():
                return
            new_lo, new_hi = np.minimum(lo, old_lo), np.maximum(hi, old_hi)
        width, height = (int(v) for v in new_hi - new_lo)
        if width * height > max_cells:
            raise GridTooLarge(f"the grid would be {width} x {height} cells, more than max_cells {max_cells}")
        cells = np.full((height, width), UNKNOWN, dtype=np.int8)
        if self._cells is not None:
            ox, oy = (int(v) for v in np.array(self._origin) - new_lo)
            h, w = self._cells.shape
            cells[oy : oy + h, ox : ox + w] = self._cells
        self._cells, self._origin = cells, (int(new_lo[0]), int(new_lo[1]))
