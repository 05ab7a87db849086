"""The block-level hash table under ``VoxelBlockIndex``: the interface both backends implement.

A block hash maps int32 block keys (3,) to a "buffer index", a slot in three storage
arrays indexed alike: the block's key (3,) int32, its dense table of B^3 int32 voxel
row ids (-1 = empty; their meaning is ``VoxelBlockIndex``'s business) and its int64
tick (last observation). Everything lives on the map's torch device.

Backends: ``Open3DBlockHash`` (block_hash_open3d.py, an Open3D ``core.HashMap``) and
``SortedBlockHash`` (block_hash_sorted.py, sorted packed keys searched with
``torch.searchsorted``; pure torch).
"""

from __future__ import annotations

from typing import Protocol

import torch

# Bytes of one block's own storage beyond its row table: the key (3 x int32) and the tick (int64).
BLOCK_KEY_TICK_BYTES = 12 + 8


class BlockHash(Protocol):
    """Block keys (M, 3) int32 -> buffer indices (M,) int64 into per-block storage.

    When the capacity grows (``reserve``, or ``insert`` past the capacity) the storage
    moves, so views from ``keys``, ``tables`` and ``ticks`` must be fetched again, and
    Open3D also renumbers the stored blocks (a rehash): buffer indices found before
    are then stale. Without growth, buffer indices stay valid until their block is erased.
    """

    backend: str
    """Name of the implementation: 'open3d' or 'torch'."""

    entry_overhead_bytes: int
    """Estimated resident bytes per block beyond its key, table and tick (for ``nbytes``)."""

    def size(self) -> int:
        """Number of stored blocks."""
        ...

    def capacity(self) -> int:
        """Blocks the storage holds before it has to grow (the length of the storage views)."""
        ...

    def reserve(self, n: int) -> None:
        """Grow the storage to hold at least ``n`` blocks; never shrinks."""
        ...

    def find(self, block_keys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Block keys (M, 3) int32 -> (buffer indices (M,) int64, -1 where absent; found (M,) bool)."""
        ...

    def insert(self, block_keys: torch.Tensor, tables: torch.Tensor, ticks: torch.Tensor) -> torch.Tensor:
        """Add blocks: keys (M, 3) int32, unique and absent; tables (M, B^3) int32; ticks (M,) int64.

        Grows the capacity (doubling) as needed. Returns their buffer indices (M,) int64.
        """
        ...

    def erase(self, block_keys: torch.Tensor) -> None:
        """Remove blocks (M, 3) int32; absent and repeated keys are ignored. Frees their slots."""
        ...

    def active(self) -> torch.Tensor:
        """Buffer indices (M,) int64 of every stored block, in ascending packed-key order
        (``core.geometry.pack_keys``), so whole-map views come out in the same order on
        every backend. Do not modify."""
        ...

    def active_unordered(self) -> torch.Tensor:
        """Buffer indices (M,) int64 of every stored block in the backend's own order: for
        views that do not need ``active``'s order and should not pay for its sort."""
        ...

    def keys(self) -> torch.Tensor:
        """Block keys by buffer index: (capacity, 3) int32 view; rows not in ``active`` are garbage."""
        ...

    def tables(self) -> torch.Tensor:
        """Row tables by buffer index: (capacity, B^3) int32 view, writable."""
        ...

    def ticks(self) -> torch.Tensor:
        """Last-observation ticks by buffer index: (capacity,) int64 view, writable."""
        ...
