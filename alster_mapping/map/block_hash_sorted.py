"""Block hash in pure torch: sorted packed block keys searched with ``torch.searchsorted``.

Why: GPU machines have torch with CUDA but often no Open3D (and Open3D's pip wheels
are not built for every CUDA); this backend runs wherever torch runs, on the map's
device. It is the kernel-map style of the sparse network backend
(nets/sparse/torch_backend.py): keys packed into int64 codes, one sort, then batched
binary searches instead of a hash.

Layout: per-block storage arrays indexed by a buffer index (keys (capacity, 3) int32,
row tables (capacity, B^3) int32, ticks (capacity,) int64); slots below a high-water
mark that were freed by erasures are reused first (a free list). The lookup structure
is the ascending array of the stored blocks' packed codes (``core.geometry.pack_keys``)
with the buffer index of each. Finding M blocks costs O(M log N); inserting or erasing
rewrites the sorted arrays, O(N + M log N), in a few vectorized passes.
"""

from __future__ import annotations

import torch

from ..core.geometry import pack_keys
from .block_hash import BLOCK_KEY_TICK_BYTES

# Resident bytes per block of the lookup arrays: its packed code and its buffer index
# (int64 each). Rebuilt to their exact size on every change, so no slack.
SORTED_ENTRY_BYTES = 16


class SortedBlockHash:
    """``BlockHash`` (block_hash.py) on sorted int64 block codes.

    voxels_per_block: B^3, the row-table length. device: torch device of everything.
    capacity: blocks allocated up front (grows by doubling).
    """

    backend = "torch"

    def __init__(self, voxels_per_block: int, device: torch.device, capacity: int):
        self.voxels_per_block = int(voxels_per_block)
        self.device = torch.device(device)
        block_storage = 4 * self.voxels_per_block + BLOCK_KEY_TICK_BYTES
        # Capacity doubling leaves between 0 and 1 unused block storage per block; count
        # the middle, 1/2. (Unused slots are torch.empty: on CUDA they are resident, on
        # CPU their pages stay untouched until used, so this errs high there.)
        self.entry_overhead_bytes = SORTED_ENTRY_BYTES + block_storage // 2
        self._keys = torch.empty((0, 3), dtype=torch.int32, device=self.device)
        self._tables = torch.empty((0, self.voxels_per_block), dtype=torch.int32, device=self.device)
        self._ticks = torch.empty(0, dtype=torch.int64, device=self.device)
        self._codes = torch.empty(0, dtype=torch.int64, device=self.device)  # ascending packed keys
        self._buffer = torch.empty(0, dtype=torch.int64, device=self.device)  # buffer index of each code
        self._free = torch.empty(0, dtype=torch.int64, device=self.device)  # freed slots below high water
        self._high_water = 0  # slots at or above it were never used since the last time the hash emptied
        self.reserve(max(int(capacity), 1))

    def size(self) -> int:
        return int(self._codes.shape[0])

    def capacity(self) -> int:
        return int(self._ticks.shape[0])

    def reserve(self, n: int) -> None:
        if n <= self.capacity():
            return
        used = self._high_water  # only slots below it hold anything worth copying
        keys = torch.empty((n, 3), dtype=torch.int32, device=self.device)
        tables = torch.empty((n, self.voxels_per_block), dtype=torch.int32, device=self.device)
        ticks = torch.empty(n, dtype=torch.int64, device=self.device)
        keys[:used], tables[:used], ticks[:used] = self._keys[:used], self._tables[:used], self._ticks[:used]
        self._keys, self._tables, self._ticks = keys, tables, ticks

    def _locate(self, codes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Packed codes (M,) -> (positions in the sorted arrays (M,) int64, valid where found; found (M,) bool)."""
        n = self.size()
        if n == 0:
            return torch.zeros_like(codes), torch.zeros(codes.shape, dtype=torch.bool, device=self.device)
        position = torch.searchsorted(self._codes, codes).clamp_max(n - 1)
        return position, self._codes[position] == codes

    def find(self, block_keys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        position, found = self._locate(pack_keys(block_keys))
        if self.size() == 0:
            return torch.full_like(position, -1), found
        return torch.where(found, self._buffer[position], -1), found

    def insert(self, block_keys: torch.Tensor, tables: torch.Tensor, ticks: torch.Tensor) -> torch.Tensor:
        n = block_keys.shape[0]
        if n == 0:
            return torch.empty(0, dtype=torch.int64, device=self.device)
        if self.size() + n > self.capacity():
            self.reserve(max(2 * self.capacity(), self.size() + n))
        reuse = min(n, self._free.shape[0])
        kept = self._free.shape[0] - reuse
        fresh = torch.arange(self._high_water, self._high_water + n - reuse, dtype=torch.int64, device=self.device)
        slots = torch.cat([self._free[kept:], fresh])
        self._free = self._free[:kept]
        self._high_water += n - reuse
        self._keys[slots] = block_keys.to(torch.int32)
        self._tables[slots] = tables.to(torch.int32)
        self._ticks[slots] = ticks.to(torch.int64)
        self._merge(pack_keys(block_keys), slots)
        return slots

    def _merge(self, codes: torch.Tensor, slots: torch.Tensor) -> None:
        """Merge new codes (K,), absent from the sorted array, and their slots (K,) into it."""
        order = torch.argsort(codes)
        codes, slots = codes[order], slots[order]
        # A new code's place in the merged array: the old codes below it (none equal it)
        # plus the new codes below it. The old codes keep their order in the other places.
        place = torch.searchsorted(self._codes, codes) + torch.arange(codes.shape[0], device=self.device)
        total = self.size() + codes.shape[0]
        is_new = torch.zeros(total, dtype=torch.bool, device=self.device)
        is_new[place] = True
        merged_codes = torch.empty(total, dtype=torch.int64, device=self.device)
        merged_buffer = torch.empty(total, dtype=torch.int64, device=self.device)
        merged_codes[place], merged_buffer[place] = codes, slots
        merged_codes[~is_new], merged_buffer[~is_new] = self._codes, self._buffer
        self._codes, self._buffer = merged_codes, merged_buffer

    def erase(self, block_keys: torch.Tensor) -> None:
        if block_keys.shape[0] == 0:
            return
        position, found = self._locate(pack_keys(block_keys))
        position = torch.unique(position[found])  # a repeated key must free its slot once
        keep = torch.ones(self.size(), dtype=torch.bool, device=self.device)
        keep[position] = False
        freed = self._buffer[position]
        self._codes, self._buffer = self._codes[keep], self._buffer[keep]
        if self.size() == 0:
            # Empty again: hand out slots from zero so the storage in use stays compact.
            self._free, self._high_water = self._free[:0], 0
        else:
            self._free = torch.cat([self._free, freed])

    def active(self) -> torch.Tensor:
        return self._buffer

    def active_unordered(self) -> torch.Tensor:
        return self._buffer

    def keys(self) -> torch.Tensor:
        return self._keys

    def tables(self) -> torch.Tensor:
        return self._tables

    def ticks(self) -> torch.Tensor:
        return self._ticks
