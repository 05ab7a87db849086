"""Voxel key -> storage row index: a hash table over blocks of B^3 voxels, with a row allocator.

Why blocks: a hash entry costs about as much as a voxel's whole payload (Open3D's CPU
hash map: ~100 bytes). Hashing blocks of B^3 voxels (as Open3D's VoxelBlockGrid, voxblox
and nvblox do) divides that by the block occupancy; each block stores a dense table of
B^3 int32 row ids (-1 = empty) into compact per-voxel columns owned by the map. Every
operation is vectorized: one block-hash call per batch on the unique blocks, then tensor
gathers.

The block hash has two backends behind one interface (block_hash.py), both on the map's
device (CPU or CUDA): 'open3d', an Open3D hash map viewed through DLPack without copies
(block_hash_open3d.py), and 'torch', sorted packed block keys searched with
``torch.searchsorted`` (block_hash_sorted.py) - the kernel-map style of the sparse
network's torch backend - for machines where torch runs but Open3D does not (GPU machines
without Open3D). Everything above the block level is shared, and rows come out the same
on both: whole-map views list blocks in packed-key order and new voxels get rows in the
order they first appear in a batch.
"""

from __future__ import annotations

import importlib

import numpy as np
import torch

from ..core import jit
from ..core.geometry import pack_keys, unpack_keys
from .block_hash import BLOCK_KEY_TICK_BYTES, BlockHash
from .block_hash_sorted import SortedBlockHash
from .index_kernels import assign_rows, mark_new_voxels, split_blocks

INDEX_BACKENDS = ("auto", "open3d", "torch")


def _open3d_problem(device: torch.device) -> str | None:
    """Why Open3D cannot hold a block hash on ``device``; None when it can."""
    try:
        block_hash_open3d = importlib.import_module(".block_hash_open3d", __package__)
    except (ImportError, OSError) as exc:  # OSError: a shared library Open3D needs is missing
        return f"open3d cannot be imported ({type(exc).__name__}: {exc})"
    if device.type == "cuda" and not block_hash_open3d.cuda_available():
        return "this open3d build has no CUDA support (or sees no GPU)"
    return None


def resolve_index_backend(name: str, device: torch.device | str = "cpu") -> str:
    """The block-hash backend that ``MapConfig.index`` = ``name`` means on ``device``: 'open3d' or 'torch'.

    'auto' is 'open3d' when Open3D imports (and, for a CUDA device, has CUDA), else 'torch'.
    Raises ValueError for an unknown name, or for 'open3d' where Open3D is unusable.
    """
    if name not in INDEX_BACKENDS:
        raise ValueError(f"map index backend must be one of {list(INDEX_BACKENDS)}, got {name!r}")
    if name == "torch":
        return "torch"
    problem = _open3d_problem(torch.device(device))
    if name == "auto":
        return "torch" if problem else "open3d"
    if problem:
        raise ValueError(f"map index 'open3d' is not usable: {problem}; use index 'torch' (or 'auto')")
    return "open3d"


def make_block_hash(backend: str, voxels_per_block: int, device: torch.device, capacity: int) -> BlockHash:
    """A new, empty block hash of ``backend`` ('open3d' or 'torch'; see ``resolve_index_backend``)."""
    if backend == "torch":
        return SortedBlockHash(voxels_per_block, device, capacity)
    if backend == "open3d":
        # Imported here, not at the top: the map must import on machines without Open3D.
        from .block_hash_open3d import Open3DBlockHash

        return Open3DBlockHash(voxels_per_block, device, capacity)
    raise ValueError(f"unknown block hash backend {backend!r}")


class VoxelBlockIndex:
    """Sparse index from int32 voxel keys to int64 row ids, with a row allocator.

    block_size: B, voxels per block edge. device: torch device of the tables.
    initial_blocks: block capacity allocated up front. backend: the block hash, 'open3d',
    'torch' or 'auto' (``resolve_index_backend``; raises ValueError if unusable).
    kernels: on the CPU with numba, batches go through the fused loops of
    ``index_kernels`` (the same rows as the tensor path; False forces the tensor path).
    Row ids are dense in [0, high_water) with recycled holes after erasures.
    Not thread-safe: the owning map serialises access.
    """

    def __init__(
        self,
        block_size: int = 4,
        device: torch.device | str = "cpu",
        initial_blocks: int = 1024,
        backend: str = "auto",
        kernels: bool = True,
    ):
        if block_size < 1:
            raise ValueError(f"block_size must be >= 1, got {block_size}")
        self.block_size = int(block_size)
        self.device = torch.device(device)
        self.backend = resolve_index_backend(backend, self.device)
        self.voxels_per_block = self.block_size**3
        self._fused = bool(kernels) and self.device.type == "cpu" and jit.available()
        self._initial_blocks = max(int(initial_blocks), 16)
        b = torch.arange(self.block_size, device=self.device)
        z, y, x = torch.meshgrid(b, b, b, indexing="ij")
        # Local voxel offsets in table order: index = x + B * (y + B * z).
        self._local_offsets = torch.stack([x.reshape(-1), y.reshape(-1), z.reshape(-1)], -1).to(torch.int32)
        self.clear()

    # -- bookkeeping -----------------------------------------------------------------

    def clear(self) -> None:
        """Remove every key and forget all rows."""
        self._blocks = make_block_hash(self.backend, self.voxels_per_block, self.device, self._initial_blocks)
        self._free_rows = torch.empty(0, dtype=torch.int64, device=self.device)
        self.high_water = 0
        self.num_voxels = 0

    @property
    def num_blocks(self) -> int:
        """Number of allocated blocks."""
        return self._blocks.size()

    @property
    def block_bytes(self) -> int:
        """Estimated resident bytes of one block: row table, key, tick and the backend's overhead."""
        return 4 * self.voxels_per_block + BLOCK_KEY_TICK_BYTES + self._blocks.entry_overhead_bytes

    def reserve_blocks(self, n: int) -> None:
        """Grow the block hash to hold at least ``n`` blocks without growing later."""
        self._blocks.reserve(int(n))

    def _tables(self) -> torch.Tensor:
        # A fresh view every time: growing the block storage moves it.
        return self._blocks.tables()

    def _ticks(self) -> torch.Tensor:
        return self._blocks.ticks()

    def _split(self, keys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """keys (N, 3) int32 -> (block keys (N, 3) int32, local table index (N,) int64)."""
        B = self.block_size
        blocks = torch.div(keys, B, rounding_mode="floor")
        local = (keys - blocks * B).to(torch.int64)
        return blocks, local[:, 0] + B * (local[:, 1] + B * local[:, 2])

    def _unique_blocks(self, blocks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        codes, inverse = torch.unique(pack_keys(blocks), return_inverse=True)
        return unpack_keys(codes), inverse

    def _find_blocks(self, ublocks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Block keys (M, 3) int32 -> (buffer indices (M,) int64, -1 where absent; found (M,) bool)."""
        return self._blocks.find(ublocks.to(torch.int32))

    # -- queries ---------------------------------------------------------------------------

    def find(self, keys: torch.Tensor) -> torch.Tensor:
        """Rows of voxel keys (N, 3) int32 -> (N,) int64, -1 where absent."""
        if keys.shape[0] == 0:
            return torch.empty(0, dtype=torch.int64, device=self.device)
        ublocks, inverse, local = self._distinct_blocks(keys)
        buf, found = self._find_blocks(ublocks)
        rows = self._tables()[buf.clamp_min(0)[inverse], local].to(torch.int64)
        return torch.where(found[inverse], rows, torch.full_like(rows, -1))

    def insert(self, keys: torch.Tensor, tick: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Rows for voxel keys (N, 3) int32, allocating rows for absent keys.

        Duplicate keys share a row. Every touched block gets ``tick`` as its last
        observation. Returns (rows (N,) int64, newly allocated rows (K,) int64).
        """
        empty = torch.empty(0, dtype=torch.int64, device=self.device)
        if keys.shape[0] == 0:
            return empty, empty
        ublocks, inverse, local = self._distinct_blocks(keys)
        buf = self._ensure_blocks(ublocks)
        if self._fused:
            return self._assign_rows_fused(buf, inverse, local, tick)
        tables = self._tables()
        self._ticks()[buf] = tick
        vbuf = buf[inverse]
        rows = tables[vbuf, local].to(torch.int64)
        new = rows < 0
        allocated = empty
        if bool(new.any()):
            slot = vbuf[new] * self.voxels_per_block + local[new]
            uslot, slot_inverse = torch.unique(slot, return_inverse=True)
            # Hand out rows in the order the voxels first appear in ``keys``, not in table
            # slot order: slots differ between backends (and runs of Open3D), rows must not.
            positions = torch.arange(slot.shape[0], device=self.device)
            first = torch.full((uslot.shape[0],), slot.shape[0], dtype=torch.int64, device=self.device)
            first.scatter_reduce_(0, slot_inverse, positions, reduce="amin")
            allocated = self._allocate(uslot.shape[0])
            slot_rows = torch.empty_like(allocated)
            slot_rows[torch.argsort(first)] = allocated
            tables.view(-1)[uslot] = slot_rows.to(torch.int32)
            rows[new] = slot_rows[slot_inverse]
        return rows, allocated

    def _distinct_blocks(self, keys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Voxel keys (N, 3) int32 -> (distinct block keys (M, 3) int32 in ascending packed
        code, inverse (N,) int64 block of each voxel, local (N,) int64 table index)."""
        if self._fused:
            keys = np.ascontiguousarray(keys.numpy(), dtype=np.int32)
            return tuple(torch.from_numpy(a) for a in split_blocks(keys, self.block_size))
        blocks, local = self._split(keys)
        ublocks, inverse = self._unique_blocks(blocks)
        return ublocks, inverse, local

    def _ensure_blocks(self, ublocks: torch.Tensor) -> torch.Tensor:
        """Buffer indices (M,) int64 of distinct block keys (M, 3) int32, inserting absent
        blocks with empty tables."""
        buf, found = self._find_blocks(ublocks)
        if bool(found.all()):
            return buf
        missing = ~found
        n = int(missing.sum())
        init_rows = torch.full((n, self.voxels_per_block), -1, dtype=torch.int32, device=self.device)
        init_ticks = torch.zeros(n, dtype=torch.int64, device=self.device)
        capacity = self._blocks.capacity()
        inserted = self._blocks.insert(ublocks[missing], init_rows, init_ticks)
        if self._blocks.capacity() != capacity:  # growing renumbers the blocks already stored (an Open3D rehash)
            return self._find_blocks(ublocks)[0]
        buf = buf.clone()
        buf[missing] = inserted
        return buf

    def _assign_rows_fused(
        self, buf: torch.Tensor, inverse: torch.Tensor, local: torch.Tensor, tick: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``insert``'s tail in ``index_kernels``: stamp the blocks, allocate rows for new voxels."""
        tables, buffer = self._tables().numpy(), buf.numpy()
        inverse_np, local_np = inverse.numpy(), local.numpy()
        new_slots = np.empty(inverse_np.shape[0], np.int64)
        count = mark_new_voxels(tables, self._ticks().numpy(), buffer, inverse_np, local_np, np.int64(tick), new_slots)
        try:
            allocated = self._allocate(count)
        except BaseException:  # e.g. MemoryError: unmark the new voxels, the index stays as it was
            tables.flat[new_slots[:count]] = -1
            raise
        rows = np.empty(inverse_np.shape[0], np.int64)
        assign_rows(tables, buffer, inverse_np, local_np, new_slots[:count], allocated.numpy(), rows)
        return torch.from_numpy(rows), allocated

    def _allocate(self, n: int) -> torch.Tensor:
        reuse = min(n, self._free_rows.shape[0])
        rows = self._free_rows[self._free_rows.shape[0] - reuse :]
        self._free_rows = self._free_rows[: self._free_rows.shape[0] - reuse]
        fresh = torch.arange(self.high_water, self.high_water + n - reuse, device=self.device, dtype=torch.int64)
        self.high_water += n - reuse
        self.num_voxels += n
        return torch.cat([rows, fresh])

    def items(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Every voxel: (keys (V, 3) int32, rows (V,) int64), ordered by packed block key then local index."""
        active = self._blocks.active()
        return self._voxels_of(self._blocks.keys()[active], active)

    def _voxels_of(self, block_keys: torch.Tensor, buf: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Occupied voxels of blocks (M, 3) at buffer indices (M,): (keys (V, 3) int32, rows (V,) int64)."""
        tables = self._tables()[buf]
        block_idx, local_idx = (tables >= 0).nonzero(as_tuple=True)
        keys = block_keys[block_idx].to(torch.int32) * self.block_size + self._local_offsets[local_idx]
        return keys.to(torch.int32), tables[block_idx, local_idx].to(torch.int64)

    def blocks(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Every block, in packed-key order: (block keys (M, 3) int32, last observation ticks (M,) int64,
        voxel counts (M,) int64)."""
        active = self._blocks.active()
        block_keys = self._blocks.keys()[active].to(torch.int32)
        ticks = self._ticks()[active].clone()
        counts = (self._tables()[active] >= 0).sum(1)
        return block_keys, ticks, counts

    def find_blocks(self, block_keys: torch.Tensor) -> torch.Tensor:
        """Which of the given block keys (M, 3) int32 exist: (M,) bool."""
        if block_keys.shape[0] == 0:
            return torch.zeros(0, dtype=torch.bool, device=self.device)
        return self._find_blocks(block_keys.to(torch.int32))[1]

    def block_voxels(self, block_keys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """All voxels of existing blocks (M, 3) int32 -> (keys (V, 3) int32, rows (V,) int64)."""
        if block_keys.shape[0] == 0:
            return torch.empty((0, 3), dtype=torch.int32, device=self.device), torch.empty(0, dtype=torch.int64, device=self.device)
        buf, found = self._find_blocks(block_keys.to(torch.int32))
        return self._voxels_of(block_keys[found], buf[found])

    def blocks_observed_after(self, tick: int) -> torch.Tensor:
        """Keys (K, 3) int32 of the blocks last observed at a tick after ``tick``, in no particular order."""
        active = self._blocks.active_unordered()
        return self._blocks.keys()[active[self._ticks()[active] > tick]].to(torch.int32)

    def block_tables(self, block_keys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Row tables of blocks (K, 3) int32: (found (K,) bool, rows (K, B^3) int64, -1 where
        no voxel or no block). Table index = x + B * (y + B * z) of the voxel in its block."""
        buf, found = self._find_blocks(block_keys)
        tables = self._tables()[buf.clamp_min(0)].to(torch.int64)
        tables[~found] = -1
        return found, tables

    def set_block_ticks(self, block_keys: torch.Tensor, ticks: torch.Tensor) -> None:
        """Restore last-observation ticks (M,) int64 of existing blocks (M, 3) int32 (used by map loading)."""
        buf, found = self._find_blocks(block_keys.to(torch.int32))
        self._ticks()[buf[found]] = ticks.to(self.device, torch.int64)[found]

    # -- removal ---------------------------------------------------------------------------------

    def erase(self, keys: torch.Tensor) -> torch.Tensor:
        """Remove voxel keys (N, 3) int32 (absent keys are ignored); returns the freed rows (K,) int64.

        Blocks left empty are removed from the hash map.
        """
        if keys.shape[0] == 0:
            return torch.empty(0, dtype=torch.int64, device=self.device)
        ublocks, inverse, local = self._distinct_blocks(keys)
        buf, found = self._find_blocks(ublocks)
        hit = found[inverse]
        vbuf, vlocal = buf[inverse][hit], local[hit]
        tables = self._tables()
        rows = tables[vbuf, vlocal].to(torch.int64)
        present = rows >= 0
        # Duplicate keys would free a row twice.
        freed = torch.unique(rows[present])
        tables[vbuf, vlocal] = -1
        emptied = found & (tables[buf.clamp_min(0)] < 0).all(1)
        if bool(emptied.any()):
            self._blocks.erase(ublocks[emptied])
        self._release(freed)
        return freed

    def erase_blocks(self, block_keys: torch.Tensor) -> torch.Tensor:
        """Remove whole blocks (M, 3) int32 (absent and repeated keys are ignored); returns the freed rows (K,) int64."""
        if block_keys.shape[0] == 0:
            return torch.empty(0, dtype=torch.int64, device=self.device)
        # Unique first: a repeated block would free its rows twice.
        block_keys, _ = self._unique_blocks(block_keys.to(torch.int32))
        buf, found = self._find_blocks(block_keys)
        tables = self._tables()[buf[found]]
        freed = tables[tables >= 0].to(torch.int64)
        self._blocks.erase(block_keys[found])
        self._release(freed)
        return freed

    def _release(self, rows: torch.Tensor) -> None:
        self._free_rows = torch.cat([self._free_rows, rows])
        self.num_voxels -= int(rows.shape[0])
        if self.num_voxels == 0:
            # Nothing left: start rows from zero again so storage can shrink.
            self._free_rows = self._free_rows[:0]
            self.high_water = 0

    @property
    def num_free_rows(self) -> int:
        """Rows below ``high_water`` that are currently unused."""
        return int(self._free_rows.shape[0])
