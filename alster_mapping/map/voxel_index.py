"""Voxel key -> storage row index: an Open3D hash map over blocks of B^3 voxels.

Why blocks: Open3D's CPU hash map (TBB) costs ~100 bytes per entry, as much as a voxel's
whole payload. Hashing blocks of B^3 voxels (as Open3D's VoxelBlockGrid, voxblox and
nvblox do) divides that by the block occupancy; each block stores a dense table of B^3
int32 row ids (-1 = empty) into compact per-voxel columns owned by the map. Every
operation is vectorized: one hash call per batch on the unique blocks, then tensor
gathers. The hash map and its tables live on the map's device (CPU or CUDA) and are
viewed as torch tensors through DLPack without copies.
"""

from __future__ import annotations

import open3d.core as o3c
import torch
from torch.utils.dlpack import from_dlpack, to_dlpack

from ..core.geometry import pack_keys, unpack_keys

# Resident bytes per block beyond its key, table and tick, measured with
# bench/bench_map.py (5M voxels): the TBB node and buckets (~100 B) plus Open3D's
# key/value buffers, which it touches for the whole capacity (about 2x the blocks
# after doubling). Used only by the estimate ``SemanticVoxelMap.nbytes``.
HASH_ENTRY_OVERHEAD_BYTES = 360


def _o3d_device(device: torch.device) -> o3c.Device:
    if device.type == "cuda":
        return o3c.Device(f"CUDA:{device.index or 0}")
    if device.type != "cpu":
        raise ValueError(f"unsupported map device {device}")
    return o3c.Device("CPU:0")


def _to_o3d(t: torch.Tensor) -> o3c.Tensor:
    return o3c.Tensor.from_dlpack(to_dlpack(t.contiguous()))


def _to_torch(t: o3c.Tensor) -> torch.Tensor:
    return from_dlpack(t.to_dlpack())


class VoxelBlockIndex:
    """Sparse index from int32 voxel keys to int64 row ids, with a row allocator.

    block_size: B, voxels per block edge. device: torch device of the tables.
    Row ids are dense in [0, high_water) with recycled holes after erasures.
    Not thread-safe: the owning map serialises access.
    """

    def __init__(self, block_size: int = 4, device: torch.device | str = "cpu", initial_blocks: int = 1024):
        if block_size < 1:
            raise ValueError(f"block_size must be >= 1, got {block_size}")
        self.block_size = int(block_size)
        self.device = torch.device(device)
        self.voxels_per_block = self.block_size**3
        self._initial_blocks = max(int(initial_blocks), 16)
        b = torch.arange(self.block_size, device=self.device)
        z, y, x = torch.meshgrid(b, b, b, indexing="ij")
        # Local voxel offsets in table order: index = x + B * (y + B * z).
        self._local_offsets = torch.stack([x.reshape(-1), y.reshape(-1), z.reshape(-1)], -1).to(torch.int32)
        self.clear()

    # -- bookkeeping -----------------------------------------------------------------

    def clear(self) -> None:
        """Remove every key and forget all rows."""
        self._hash = o3c.HashMap(
            self._initial_blocks,
            o3c.int32,
            (3,),
            [o3c.int32, o3c.int64],
            [(self.voxels_per_block,), (1,)],
            _o3d_device(self.device),
        )
        self._free_rows = torch.empty(0, dtype=torch.int64, device=self.device)
        self.high_water = 0
        self.num_voxels = 0

    @property
    def num_blocks(self) -> int:
        """Number of allocated blocks."""
        return int(self._hash.size())

    def reserve_blocks(self, n: int) -> None:
        """Grow the hash map to hold at least ``n`` blocks without rehashing later."""
        if n > self._hash.capacity():
            self._hash.reserve(int(n))

    def _tables(self) -> torch.Tensor:
        # A fresh view every time: a rehash moves the buffer.
        return _to_torch(self._hash.value_tensor(0))

    def _ticks(self) -> torch.Tensor:
        return _to_torch(self._hash.value_tensor(1)).view(-1)

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
        buf, found = self._hash.find(_to_o3d(ublocks))
        return _to_torch(buf).to(torch.int64), _to_torch(found).to(torch.bool)

    # -- queries ---------------------------------------------------------------------------

    def find(self, keys: torch.Tensor) -> torch.Tensor:
        """Rows of voxel keys (N, 3) int32 -> (N,) int64, -1 where absent."""
        if keys.shape[0] == 0:
            return torch.empty(0, dtype=torch.int64, device=self.device)
        blocks, local = self._split(keys)
        ublocks, inverse = self._unique_blocks(blocks)
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
        blocks, local = self._split(keys)
        ublocks, inverse = self._unique_blocks(blocks)
        buf, found = self._find_blocks(ublocks)
        if not bool(found.all()):
            missing = ublocks[~found]
            capacity = self._hash.capacity()
            if self._hash.size() + missing.shape[0] > capacity:
                self._hash.reserve(max(2 * capacity, self._hash.size() + missing.shape[0]))
            n = missing.shape[0]
            init_rows = torch.full((n, self.voxels_per_block), -1, dtype=torch.int32, device=self.device)
            init_ticks = torch.zeros((n, 1), dtype=torch.int64, device=self.device)
            self._hash.insert(_to_o3d(missing), [_to_o3d(init_rows), _to_o3d(init_ticks)])
            buf, found = self._find_blocks(ublocks)
        tables = self._tables()
        self._ticks()[buf] = tick
        vbuf = buf[inverse]
        rows = tables[vbuf, local].to(torch.int64)
        new = rows < 0
        allocated = empty
        if bool(new.any()):
            slot = vbuf[new] * self.voxels_per_block + local[new]
            uslot, slot_inverse = torch.unique(slot, return_inverse=True)
            allocated = self._allocate(uslot.shape[0])
            tables.view(-1)[uslot] = allocated.to(torch.int32)
            rows[new] = allocated[slot_inverse]
        return rows, allocated

    def _allocate(self, n: int) -> torch.Tensor:
        reuse = min(n, self._free_rows.shape[0])
        rows = self._free_rows[self._free_rows.shape[0] - reuse :]
        self._free_rows = self._free_rows[: self._free_rows.shape[0] - reuse]
        fresh = torch.arange(self.high_water, self.high_water + n - reuse, device=self.device, dtype=torch.int64)
        self.high_water += n - reuse
        self.num_voxels += n
        return torch.cat([rows, fresh])

    def items(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Every voxel: (keys (V, 3) int32, rows (V,) int64), ordered by block then local index."""
        active = _to_torch(self._hash.active_buf_indices()).to(torch.int64)
        return self._voxels_of(_to_torch(self._hash.key_tensor())[active], active)

    def _voxels_of(self, block_keys: torch.Tensor, buf: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Occupied voxels of blocks (M, 3) at buffer indices (M,): (keys (V, 3) int32, rows (V,) int64)."""
        tables = self._tables()[buf]
        block_idx, local_idx = (tables >= 0).nonzero(as_tuple=True)
        keys = block_keys[block_idx].to(torch.int32) * self.block_size + self._local_offsets[local_idx]
        return keys.to(torch.int32), tables[block_idx, local_idx].to(torch.int64)

    def blocks(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Every block: (block keys (M, 3) int32, last observation ticks (M,) int64, voxel counts (M,) int64)."""
        active = _to_torch(self._hash.active_buf_indices()).to(torch.int64)
        block_keys = _to_torch(self._hash.key_tensor())[active].to(torch.int32)
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
        blocks, local = self._split(keys)
        ublocks, inverse = self._unique_blocks(blocks)
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
            self._hash.erase(_to_o3d(ublocks[emptied]))
        self._release(freed)
        return freed

    def erase_blocks(self, block_keys: torch.Tensor) -> torch.Tensor:
        """Remove whole blocks (M, 3) int32; returns the freed rows (K,) int64."""
        if block_keys.shape[0] == 0:
            return torch.empty(0, dtype=torch.int64, device=self.device)
        buf, found = self._find_blocks(block_keys.to(torch.int32))
        tables = self._tables()[buf[found]]
        freed = tables[tables >= 0].to(torch.int64)
        self._hash.erase(_to_o3d(block_keys[found].to(torch.int32)))
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
