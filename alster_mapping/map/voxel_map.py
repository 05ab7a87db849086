"""SemanticVoxelMap: the sparse semantic voxel map every mapper writes into.

Each voxel (int32 key = floor(position / voxel_size)) owns one row of compact
columns: a learned feature (D_F float16), the observation count (int16, saturating),
the class index (int16, -1 = unknown), the label confidence (float16) and the mean
colour (3 x uint8) and the instance id of the latest instance segmentation (int16, -1 =
none; ``assign_instances``). Keys map to rows through ``VoxelBlockIndex``, a hash table over
voxel blocks, so the cost of a frame's lookup and write depends on the voxels that frame
touches, not on the size of the map. ``config.index`` picks the block table's backend:
an Open3D hash map ('open3d'), or sorted block keys searched with ``torch.searchsorted``
('torch', for machines where torch runs but Open3D does not, e.g. GPU machines); 'auto'
takes Open3D when it imports. Both give the same rows and the same results.

Rows returned by ``lookup``/``insert`` stay valid until the next ``remove``, ``prune_*``,
``compact``, ``clear`` or ``replace_with``. Every public method takes ``lock`` (a
re-entrant lock), so a publisher thread may read while a mapping thread writes; hold
``lock`` yourself across an insert -> read -> write_rows sequence when another thread
may remove voxels in between.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import torch

from ..core.camera import CameraIntrinsics
from ..core.config import MapConfig, validate
from ..core.geometry import check_key_range, frustum_corners, in_frustum, pack_keys, voxel_centers
from ..core.labels import LabelSpace, scannet20
from .voxel_index import VoxelBlockIndex

COUNT_MAX = torch.iinfo(torch.int16).max
INSTANCE_LIMIT = torch.iinfo(torch.int16).max  # instance ids are int16: 0 .. 32766


def storable_instance_ids(instance: np.ndarray) -> np.ndarray:
    """Instance ids (N,) as the map can hold them: ids beyond the int16 range become -1."""
    return np.where(instance < INSTANCE_LIMIT, instance, -1)

FLOAT16_EXPONENT_BITS = 0x7C00  # all ones: inf or NaN


def all_finite_float16(value: torch.Tensor) -> bool:
    """Whether a float16 tensor holds no inf or NaN: a bit test, ~20x faster than
    ``torch.isfinite`` on float16 on the CPU (which has no vectorized half arithmetic)."""
    if value.numel() == 0:
        return True
    return int((value.view(torch.int16) & FLOAT16_EXPONENT_BITS).max()) < FLOAT16_EXPONENT_BITS


# What the feature columns hold; recorded in map files so a map is never read with the
# wrong meaning (learned ALSTER features vs. per-class label evidence).
FEATURE_KINDS = ("none", "learned", "label_evidence")


@dataclass
class VoxelData:
    """Per-voxel values of N voxels, on the map's device.

    feature: (N, D_F) float16. count: (N,) int16 observations. label: (N,) int16 class
    index (-1 unknown). confidence: (N,) float16 in [0, 1]. color: (N, 3) uint8 RGB.
    instance: (N,) int16 instance id (-1 none). found: (N,) bool, False for voxels absent from the map (their values are defaults).
    """

    feature: torch.Tensor
    count: torch.Tensor
    label: torch.Tensor
    confidence: torch.Tensor
    color: torch.Tensor
    instance: torch.Tensor
    found: torch.Tensor


@dataclass
class MapArrays:
    """The whole map as flat numpy arrays, ready to publish or export.

    xyz: (N, 3) float32 voxel centres [m]. color: (N, 3) uint8 mean observed colour.
    label_color: (N, 3) uint8 colour of the label. label: (N,) uint16 raw label id
    (the label space's ``unknown_id``, usually 0, when unknown). label_index: (N,) int16
    class index (-1 unknown). confidence: (N,) float32. count: (N,) int32 observations.
    instance: (N,) int16 instance id of the latest instance segmentation (-1 none).
    """

    xyz: np.ndarray
    color: np.ndarray
    label_color: np.ndarray
    label: np.ndarray
    label_index: np.ndarray
    confidence: np.ndarray
    count: np.ndarray
    instance: np.ndarray

    def __len__(self) -> int:
        return int(self.xyz.shape[0])


class SemanticVoxelMap:
    """Sparse voxel hash map with learned features and semantic labels.

    config: ``MapConfig`` (voxel size, D_F, block size, memory budget, device, index backend).
    label_space: the classes that ``label`` indexes (default ScanNet-20). Raises ValueError
    for an invalid config, e.g. index 'open3d' where Open3D cannot be imported.
    """

    def __init__(self, config: MapConfig | None = None, label_space: LabelSpace | None = None):
        self.config = validate(config or MapConfig())
        self.label_space = label_space or scannet20()
        self.device = torch.device(self.config.device)
        self.voxel_size = float(self.config.voxel_size)
        self.feature_dim = int(self.config.feature_dim)
        self.feature_kind = "none"
        self.lock = threading.RLock()
        self._index = VoxelBlockIndex(self.config.block_size, self.device, backend=self.config.index)
        self._capacity = 0
        self._columns: dict[str, torch.Tensor] = {}
        self._tick = 0
        # Bumped whenever the whole contents change (clear, replace_with): a result computed
        # from an earlier snapshot (an instance segmentation job) no longer fits the map.
        self.generation = 0
        # Bumped whenever voxels disappear or change labels other than by observation (removal,
        # pruning, eviction, relabelling, clear, replace_with): views kept up to date from the
        # blocks observed since a tick (the floor grid) must then be rebuilt.
        self.edits = 0
        self._allocate_columns(min(self.config.initial_capacity, 1 << 20))

    # -- storage -------------------------------------------------------------------------

    def column_spec(self) -> dict[str, tuple[torch.dtype, tuple[int, ...], int]]:
        """Per-voxel columns: name -> (dtype, per-voxel shape, default value)."""
        return {
            "feature": (torch.float16, (self.feature_dim,), 0),
            "count": (torch.int16, (), 0),
            "label": (torch.int16, (), -1),
            "confidence": (torch.float16, (), 0),
            "color": (torch.uint8, (3,), 0),
            "instance": (torch.int16, (), -1),
        }

    def _empty_columns(self, n: int) -> dict[str, torch.Tensor]:
        # torch.empty does not touch the pages, so unused capacity costs no resident memory.
        return {
            name: torch.empty((n, *shape), dtype=dtype, device=self.device)
            for name, (dtype, shape, _) in self.column_spec().items()
        }

    def _allocate_columns(self, capacity: int) -> None:
        fresh = self._empty_columns(capacity)
        used = self._index.high_water
        for name, column in self._columns.items():
            n = min(used, column.shape[0])  # rows past the old capacity are new: reset by the caller
            fresh[name][:n] = column[:n]
        self._columns = fresh
        self._capacity = capacity

    def _ensure_capacity(self) -> None:
        if self._index.high_water > self._capacity:
            self._allocate_columns(max(self._index.high_water, 2 * self._capacity))

    def _reset_rows(self, rows: torch.Tensor) -> None:
        if rows.numel() == 0:
            return
        for name, (_, _, default) in self.column_spec().items():
            self._columns[name][rows] = default

    @property
    def row_bytes(self) -> int:
        """Bytes of one voxel's columns (91 at D_F = 40)."""
        return sum(
            dtype.itemsize * int(np.prod(shape, dtype=np.int64)) for dtype, shape, _ in self.column_spec().values()
        )

    @property
    def block_bytes(self) -> int:
        """Estimated bytes of one index block (row table, tick, key, the index backend's per-block overhead)."""
        return self._index.block_bytes

    @property
    def index_backend(self) -> str:
        """The block index's backend: 'open3d' or 'torch' (``config.index`` resolved)."""
        return self._index.backend

    def nbytes(self) -> int:
        """Estimated resident bytes of the map's live voxels and blocks (what ``max_bytes`` budgets)."""
        with self.lock:
            return self.row_bytes * len(self) + self.block_bytes * self._index.num_blocks

    def __len__(self) -> int:
        return self._index.num_voxels

    @property
    def num_blocks(self) -> int:
        """Number of index blocks."""
        return self._index.num_blocks

    # -- keys and rows ---------------------------------------------------------------------

    def _as_keys(self, keys: torch.Tensor | np.ndarray) -> torch.Tensor:
        keys = torch.as_tensor(keys, device=self.device)
        if keys.ndim != 2 or keys.shape[1] != 3:
            raise ValueError(f"voxel keys must be (N, 3), got shape {tuple(keys.shape)}")
        if keys.dtype.is_floating_point or keys.dtype == torch.bool:
            raise ValueError(f"voxel keys must be integers, got {keys.dtype}")
        check_key_range(keys)  # before the int32 cast, which would wrap int64 keys too
        return keys.to(torch.int32)

    def lookup(self, keys: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Rows of voxel keys (N, 3) int32 -> (N,) int64, -1 where the voxel is absent."""
        keys = self._as_keys(keys)
        with self.lock:
            return self._index.find(keys)

    def insert(self, keys: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Rows for voxel keys (N, 3) int32, creating absent voxels with default values.

        Marks the touched blocks as observed now (for least-recently-observed eviction)
        and enforces ``config.max_bytes``. Returns (N,) int64 rows.
        """
        keys = self._as_keys(keys)
        with self.lock:
            self._tick += 1
            rows, allocated = self._index.insert(keys, self._tick)
            self._ensure_capacity()
            self._reset_rows(allocated)
            if self.config.max_bytes and self.nbytes() > self.config.max_bytes:
                # Evict to 90 % of the budget so eviction (a sort over blocks) runs rarely.
                self._evict_to(int(0.9 * self.config.max_bytes), keep_tick=self._tick)
            return rows

    def column_arrays(self) -> dict[str, np.ndarray]:
        """The per-voxel columns as writable numpy views, for fused CPU kernels that update
        rows in place (``pipeline/label_fusion_kernels``); float16 columns come as their
        uint16 bits (numba has no float16). Row r of every array is the voxel at row r.

        CPU maps only (ValueError otherwise). Hold ``lock`` while using them; they go stale
        at the next call that can grow or rebuild the storage (``insert``, ``compact``, ...).
        Nothing is validated: the caller writes only values ``write_rows`` would accept.
        """
        if self.device.type != "cpu":
            raise ValueError(f"column_arrays needs a CPU map, this one is on {self.device}")
        arrays = {}
        for name, column in self._columns.items():
            if column.dtype == torch.float16:
                arrays[name] = column.view(torch.int16).numpy().view(np.uint16)
            else:
                arrays[name] = column.numpy()
        return arrays

    def read_column(self, name: str, rows: torch.Tensor) -> torch.Tensor:
        """One column's values at existing rows (N,) int64 (from ``insert``): a copy, (N, ...)."""
        with self.lock:
            return self._columns[name][rows]

    def read(self, rows: torch.Tensor) -> VoxelData:
        """Values at rows (N,) int64 (-1 gives defaults) as a ``VoxelData`` of copies."""
        rows = torch.as_tensor(rows, device=self.device, dtype=torch.int64)
        with self.lock:
            found = rows >= 0
            safe = torch.where(found, rows, torch.zeros_like(rows))
            values = {name: column[safe] for name, column in self._columns.items()}
            if not bool(found.all()):
                for name, (_, _, default) in self.column_spec().items():
                    values[name][~found] = default
            data = VoxelData(**values, found=found)
            return data

    def crop(self, keys: torch.Tensor | np.ndarray) -> VoxelData:
        """Values of voxel keys (N, 3) int32; absent voxels read as defaults with found = False."""
        return self.read(self.lookup(keys))

    def write_rows(self, rows: torch.Tensor, **columns: torch.Tensor | None) -> None:
        """Store values at existing rows (N,) int64 (from ``insert``). Only given columns change.

        Columns: feature (N, D_F) float; count (N,) int (saturated to 0..32767); label (N,)
        int in [-1, C); confidence (N,) float in [0, 1]; color (N, 3) uint8; instance (N,)
        int in [-1, 32767). Everything is
        validated before anything is written, so a ValueError leaves the map unchanged.
        """
        rows = torch.as_tensor(rows, device=self.device, dtype=torch.int64)
        values = self._prepare_columns(rows.shape[0], columns)
        with self.lock:
            if rows.numel() and (int(rows.min()) < 0 or int(rows.max()) >= self._index.high_water):
                raise ValueError("rows out of range: pass rows returned by insert()")
            for name, value in values.items():
                self._columns[name][rows] = value

    def write(self, keys: torch.Tensor | np.ndarray, **columns: torch.Tensor | None) -> torch.Tensor:
        """Insert unique voxel keys (N, 3) int32 and store the given columns (see ``write_rows``).

        Returns the (N,) int64 rows. Duplicate keys or any invalid value raise ValueError
        before the map changes.
        """
        keys = self._as_keys(keys)
        if keys.shape[0] and torch.unique(pack_keys(keys)).shape[0] != keys.shape[0]:
            raise ValueError("write() needs unique voxel keys")
        values = self._prepare_columns(keys.shape[0], columns)
        with self.lock:
            rows = self.insert(keys)
            for name, value in values.items():
                self._columns[name][rows] = value
            return rows

    def _prepare_columns(self, n: int, columns: dict) -> dict[str, torch.Tensor]:
        """Validate and convert column values for n voxels to their storage dtypes."""
        unknown = set(columns) - set(self.column_spec())
        if unknown:
            raise ValueError(f"unknown voxel columns {sorted(unknown)}")
        out = {}
        for name, value in columns.items():
            if value is None:
                continue
            shape = {"feature": (n, self.feature_dim), "color": (n, 3)}.get(name, (n,))
            value = torch.as_tensor(value, device=self.device)
            if tuple(value.shape) != shape:
                raise ValueError(f"{name} must have shape {shape}, got {tuple(value.shape)}")
            if name == "feature":
                value = value.to(torch.float16)
                if not all_finite_float16(value):
                    raise ValueError("feature has non-finite values (or values beyond float16's +-65504)")
            elif name == "count":
                value = value.to(torch.int64).clamp(0, COUNT_MAX).to(torch.int16)
            elif name == "label":
                value = value.to(torch.int64)
                if n and (int(value.min()) < -1 or int(value.max()) >= self.label_space.num_classes):
                    raise ValueError(
                        f"label indices must be in [-1, {self.label_space.num_classes}) for {self.label_space.name!r}"
                    )
                value = value.to(torch.int16)
            elif name == "instance":
                value = value.to(torch.int64)
                if n and (int(value.min()) < -1 or int(value.max()) >= INSTANCE_LIMIT):
                    raise ValueError(f"instance ids must be in [-1, {INSTANCE_LIMIT})")
                value = value.to(torch.int16)
            elif name == "confidence":
                value = value.to(torch.float32)
                if n and not bool(((value >= 0) & (value <= 1)).all()):
                    raise ValueError("confidence must be finite and in [0, 1]")
                value = value.to(torch.float16)
            elif value.dtype != torch.uint8:
                raise ValueError(f"color must be uint8, got {value.dtype}")
            out[name] = value
        return out

    # -- whole-map views ---------------------------------------------------------------------

    def items(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Every voxel: (keys (V, 3) int32, rows (V,) int64)."""
        with self.lock:
            return self._index.items()

    def keys(self) -> torch.Tensor:
        """All voxel keys (V, 3) int32."""
        return self.items()[0]

    def crop_frustum(
        self, intrinsics: CameraIntrinsics, T_world_camera: np.ndarray, max_range: float, min_range: float = 0.0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Voxels whose centres lie in a camera frustum: (keys (V, 3) int32, rows (V,) int64).

        Candidate blocks come from the frustum's bounding box, so the cost follows the
        frustum volume (or the map size when that is smaller).
        """
        corners = torch.as_tensor(frustum_corners(intrinsics, T_world_camera, max_range))
        block_edge = self.voxel_size * self._index.block_size
        lo = torch.floor(corners.min(0).values / block_edge).to(torch.int64)
        hi = torch.floor(corners.max(0).values / block_edge).to(torch.int64)
        extent = hi - lo + 1
        with self.lock:
            if int(extent.prod()) <= 4 * max(self._index.num_blocks, 1):
                axes = [torch.arange(int(lo[i]), int(hi[i]) + 1, device=self.device) for i in range(3)]
                candidates = torch.stack(torch.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3).to(torch.int32)
                keys, rows = self._index.block_voxels(candidates)
            else:
                keys, rows = self._index.items()
        centers = voxel_centers(keys, self.voxel_size)
        inside = in_frustum(centers, intrinsics, T_world_camera, max_range, min_range)
        return keys[inside], rows[inside]

    @property
    def tick(self) -> int:
        """The observation counter: bumped by every ``insert`` (and ``write``), stored per block."""
        return self._tick

    def blocks_observed_after(self, tick: int) -> torch.Tensor:
        """Keys (K, 3) int32 of the blocks observed after ``tick`` (a former ``self.tick``), in no order."""
        with self.lock:
            return self._index.blocks_observed_after(tick)

    def block_labels(self, block_keys: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Class indices of every voxel of blocks (K, 3) int32 (block key = voxel key // block_size):
        (K, B, B, B) int16 indexed [block, z, y, x] of the voxel in its block; -1 for a voxel
        without a label, -2 where there is no voxel (or no block)."""
        block_keys = self._as_keys(block_keys)
        b = self.config.block_size
        if block_keys.shape[0] == 0:
            return torch.empty((0, b, b, b), dtype=torch.int16, device=self.device)
        with self.lock:
            _, rows = self._index.block_tables(block_keys)
            present = rows >= 0
            labels = self._columns["label"][rows.clamp_min(0)].to(torch.int16)
        labels[~present] = -2
        return labels.view(-1, b, b, b)

    def to_arrays(self) -> MapArrays:
        """The whole map as numpy arrays (see ``MapArrays``)."""
        with self.lock:
            keys, rows = self._index.items()
            data = self.read(rows)
        label_index = data.label.cpu().numpy()
        return MapArrays(
            xyz=voxel_centers(keys, self.voxel_size).cpu().numpy(),
            color=data.color.cpu().numpy(),
            label_color=self.label_space.colorize(label_index),
            label=self.label_space.decode(label_index),
            label_index=label_index,
            confidence=data.confidence.float().cpu().numpy(),
            count=data.count.to(torch.int32).cpu().numpy(),
            instance=data.instance.cpu().numpy(),
        )

    def assign_instances(self, keys: torch.Tensor | np.ndarray, instance: torch.Tensor | np.ndarray) -> int:
        """Replace the map's instance layer with one segmentation's result: voxel keys (N, 3)
        int32 and their instance ids (N,) int in [-1, 32767). Every other voxel's id becomes
        -1; keys no longer in the map (evicted or pruned since) are skipped. Returns the voxels
        written. Validation happens first, so a ValueError leaves the map unchanged."""
        keys = self._as_keys(keys)
        values = self._prepare_columns(keys.shape[0], {"instance": instance})["instance"]
        with self.lock:
            rows = self._index.find(keys)
            found = rows >= 0
            self._columns["instance"][: self._index.high_water] = -1
            self._columns["instance"][rows[found]] = values[found]
            return int(found.sum())

    def assign_labels(self, keys: torch.Tensor | np.ndarray, label: torch.Tensor | np.ndarray, confidence: torch.Tensor | np.ndarray) -> int:
        """Relabel voxels (an offline refinement's result): voxel keys (N, 3) int32, their
        class indices (N,) in [-1, C) and confidences (N,) in [0, 1]. Keys no longer in the
        map (evicted or pruned since) are skipped; every other voxel keeps its label. Returns
        the voxels written. Validation happens first, so a ValueError leaves the map unchanged."""
        keys = self._as_keys(keys)
        values = self._prepare_columns(keys.shape[0], {"label": label, "confidence": confidence})
        with self.lock:
            rows = self._index.find(keys)
            found = rows >= 0
            self.edits += 1
            for name, value in values.items():
                self._columns[name][rows[found]] = value[found]
            return int(found.sum())

    def label_counts(self) -> tuple[np.ndarray, int]:
        """Voxels per class: (counts (C,) int64 in class order, voxels without a label)."""
        with self.lock:
            _, rows = self._index.items()
            labels = self._columns["label"][rows].to(torch.int64)
        counts = torch.bincount(labels + 1, minlength=self.label_space.num_classes + 1).cpu().numpy()
        return counts[1:], int(counts[0])

    def blend_color(self, old: VoxelData, observed: torch.Tensor) -> torch.Tensor:
        """Mean colour after one more observation: old colours/counts (``read``) and this
        frame's (V, 3) float colours -> (V, 3) uint8. A running mean until
        ``config.color_weight_cap`` observations, a moving average after."""
        weight = old.count.to(torch.float32).clamp_max(self.config.color_weight_cap).unsqueeze(1)
        mean = (weight * old.color.to(torch.float32) + observed.to(torch.float32)) / (weight + 1)
        return mean.round().clamp(0, 255).to(torch.uint8)

    # -- removal ---------------------------------------------------------------------------------

    def remove(self, keys: torch.Tensor | np.ndarray) -> int:
        """Remove voxel keys (N, 3) int32 (absent keys are ignored); returns how many were removed."""
        keys = self._as_keys(keys)
        with self.lock:
            self.edits += 1
            return int(self._index.erase(keys).shape[0])

    def prune_radius(self, center: np.ndarray | torch.Tensor, radius: float) -> int:
        """Remove voxels whose centres are farther than ``radius`` metres from ``center`` (3,) metres.

        Returns the number removed; storage is compacted when most rows become free.
        """
        center_t = self._finite_point(center, "prune center")
        if not (radius >= 0):
            raise ValueError(f"prune radius must be >= 0, got {radius}")
        return self._remove_where(lambda c: (c - center_t).norm(dim=1) > radius)

    def remove_box(self, lo: np.ndarray, hi: np.ndarray) -> int:
        """Remove the voxels whose centres lie in the axis-aligned box [lo, hi] ((3,) metres each,
        lo <= hi in every coordinate; ValueError otherwise, nothing removed). Returns how many."""
        lo_t, hi_t = (self._finite_point(p, name) for p, name in ((lo, "box min"), (hi, "box max")))
        if bool((lo_t > hi_t).any()):
            raise ValueError(f"box min {lo_t.tolist()} is above box max {hi_t.tolist()} in some coordinate")
        return self._remove_where(lambda c: ((c >= lo_t) & (c <= hi_t)).all(dim=1))

    def remove_sphere(self, center: np.ndarray, radius: float) -> int:
        """Remove the voxels whose centres lie within ``radius`` metres (>= 0) of ``center`` (3,) metres. Returns how many."""
        center_t = self._finite_point(center, "sphere center")
        if not (radius >= 0 and np.isfinite(radius)):
            raise ValueError(f"sphere radius must be finite and >= 0, got {radius}")
        return self._remove_where(lambda c: (c - center_t).norm(dim=1) <= radius)

    def _finite_point(self, point, name: str) -> torch.Tensor:
        t = torch.as_tensor(np.asarray(point.cpu() if isinstance(point, torch.Tensor) else point, dtype=np.float32), device=self.device)
        if t.shape != (3,) or not bool(torch.isfinite(t).all()):
            raise ValueError(f"{name} must be a finite (x, y, z) point, got {np.asarray(point).tolist()}")
        return t

    def _remove_where(self, inside) -> int:
        """Remove voxels whose centres (V, 3) pass ``inside`` -> (V,) bool; compacts when most rows are free."""
        with self.lock:
            keys, _ = self._index.items()
            hit = inside(voxel_centers(keys, self.voxel_size))
            if not bool(hit.any()):
                return 0
            self.edits += 1
            removed = int(self._index.erase(keys[hit]).shape[0])
            self._maybe_compact()
            return removed

    def prune_bytes(self, max_bytes: int) -> int:
        """Evict the least recently observed blocks until ``nbytes() <= max_bytes``; returns voxels removed."""
        if max_bytes < 0:
            raise ValueError("max_bytes must be >= 0")
        with self.lock:
            removed = self._evict_to(max_bytes, keep_tick=None)
            self._maybe_compact()
            return removed

    def _evict_to(self, max_bytes: int, keep_tick: int | None) -> int:
        excess = self.nbytes() - max_bytes
        if excess <= 0:
            return 0
        block_keys, ticks, counts = self._index.blocks()
        order = torch.argsort(ticks, stable=True)
        if keep_tick is not None:
            order = order[ticks[order] != keep_tick]
        freed_bytes = torch.cumsum(counts[order] * self.row_bytes + self.block_bytes, 0)
        n_evict = int(torch.searchsorted(freed_bytes, torch.tensor([excess], device=freed_bytes.device)).item()) + 1
        victims = block_keys[order[: min(n_evict, order.shape[0])]]
        self.edits += 1
        return int(self._index.erase_blocks(victims).shape[0])

    def _maybe_compact(self) -> None:
        if self._index.num_free_rows > max(len(self), 1 << 16):
            self.compact()

    def compact(self) -> None:
        """Renumber rows densely and shrink storage to the live voxels (cost follows the map size)."""
        with self.lock:
            keys, rows = self._index.items()
            block_keys, ticks, _ = self._index.blocks()
            values = {name: col[rows] for name, col in self._columns.items()}
            self._rebuild(keys, values, block_keys, ticks)

    def _rebuild(self, keys: torch.Tensor, values: dict[str, torch.Tensor], block_keys=None, ticks=None) -> None:
        """Replace the contents with voxels ``keys`` (V, 3) and their column ``values`` (V, ...)."""
        self._index.clear()
        self._index.reserve_blocks(max(int(block_keys.shape[0]) if block_keys is not None else 0, 16) * 2)
        self._columns = {}
        self._capacity = 0
        rows, _ = self._index.insert(keys, self._tick)
        self._allocate_columns(max(self._index.high_water, 1024))
        for name, value in values.items():
            self._columns[name][rows] = value.to(self.device)
        if block_keys is not None and block_keys.shape[0]:
            self._index.set_block_ticks(block_keys, ticks)

    def clear(self) -> None:
        """Remove every voxel and release the storage."""
        with self.lock:
            self._index.clear()
            self._columns = {}
            self._capacity = 0
            self.feature_kind = "none"
            self.generation += 1
            self.edits += 1
            self._allocate_columns(min(self.config.initial_capacity, 1 << 20))

    def replace_with(self, other: SemanticVoxelMap) -> None:
        """Take over the contents of ``other`` (e.g. a freshly loaded map) in one step under the lock.

        Geometry and label space must match (ValueError otherwise, nothing changes);
        ``other`` must not be used afterwards. The map takes over ``other``'s index as it
        is, so its index backend (and device) become ``other``'s.
        """
        mine = (self.voxel_size, self.feature_dim, self.config.block_size)
        theirs = (other.voxel_size, other.feature_dim, other.config.block_size)
        if mine != theirs:
            raise ValueError(f"map geometry differs: (voxel size, D_F, block size) {theirs} vs {mine}")
        if other.label_space != self.label_space:
            raise ValueError(f"label space differs: {other.label_space.name!r} vs {self.label_space.name!r}")
        with self.lock, other.lock:
            self._index, self._columns, self._capacity = other._index, other._columns, other._capacity
            self._tick, self.feature_kind = other._tick, other.feature_kind
            self.generation += 1
            self.edits += 1
