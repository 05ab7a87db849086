"""Block hash on an Open3D ``core.HashMap`` (CPU: TBB; CUDA: stdgpu in CUDA builds of Open3D).

The hash map owns the per-block storage (its key buffer and two value buffers: the
B^3 int32 row table and the int64 tick); torch sees them through DLPack without
copies. The only module of the package that imports ``open3d.core`` for the map, so
the map runs without Open3D on the torch backend (block_hash_sorted.py).
"""

from __future__ import annotations

import open3d.core as o3c
import torch
from torch.utils.dlpack import from_dlpack, to_dlpack

from ..core.geometry import pack_keys

# Resident bytes per block beyond its key, table and tick, measured with
# bench/bench_map.py (5M voxels, B = 4): the TBB node and buckets (~100 B) plus Open3D's
# key/value buffers, which it touches for the whole capacity (about 2x the blocks
# after doubling). Used only by the estimate ``SemanticVoxelMap.nbytes``.
HASH_ENTRY_OVERHEAD_BYTES = 360


def cuda_available() -> bool:
    """Whether this Open3D build can put a hash map on a CUDA device."""
    return bool(o3c.cuda.is_available())


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


class Open3DBlockHash:
    """``BlockHash`` (block_hash.py) on an Open3D hash map.

    voxels_per_block: B^3, the row-table length. device: torch device (CPU or CUDA).
    capacity: blocks allocated up front.
    """

    backend = "open3d"
    entry_overhead_bytes = HASH_ENTRY_OVERHEAD_BYTES

    def __init__(self, voxels_per_block: int, device: torch.device, capacity: int):
        self.voxels_per_block = int(voxels_per_block)
        self.device = torch.device(device)
        self._hash = o3c.HashMap(
            int(capacity),
            o3c.int32,
            (3,),
            [o3c.int32, o3c.int64],
            [(self.voxels_per_block,), (1,)],
            _o3d_device(self.device),
        )

    def size(self) -> int:
        return int(self._hash.size())

    def capacity(self) -> int:
        return int(self._hash.capacity())

    def reserve(self, n: int) -> None:
        if n > self.capacity():
            self._hash.reserve(int(n))

    def find(self, block_keys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if block_keys.shape[0] == 0:
            return self._empty_find()
        buf, found = self._hash.find(_to_o3d(block_keys.to(torch.int32)))
        found = _to_torch(found).to(torch.bool)
        # Open3D leaves the index of an absent key unspecified; the interface says -1.
        buf = torch.where(found, _to_torch(buf).to(torch.int64), -1)
        return buf, found

    def _empty_find(self) -> tuple[torch.Tensor, torch.Tensor]:
        return (
            torch.empty(0, dtype=torch.int64, device=self.device),
            torch.empty(0, dtype=torch.bool, device=self.device),
        )

    def insert(self, block_keys: torch.Tensor, tables: torch.Tensor, ticks: torch.Tensor) -> torch.Tensor:
        n = block_keys.shape[0]
        if n == 0:
            return torch.empty(0, dtype=torch.int64, device=self.device)
        capacity = self.capacity()
        if self.size() + n > capacity:
            self._hash.reserve(max(2 * capacity, self.size() + n))
        buf, _ = self._hash.insert(
            _to_o3d(block_keys.to(torch.int32)),
            [_to_o3d(tables.to(torch.int32)), _to_o3d(ticks.to(torch.int64).reshape(n, 1))],
        )
        return _to_torch(buf).to(torch.int64)

    def erase(self, block_keys: torch.Tensor) -> None:
        if block_keys.shape[0]:
            self._hash.erase(_to_o3d(block_keys.to(torch.int32)))

    def active_unordered(self) -> torch.Tensor:
        return _to_torch(self._hash.active_buf_indices()).to(torch.int64)

    def active(self) -> torch.Tensor:
        active = self.active_unordered()
        # Open3D's order depends on its buckets and threads; sort by packed key so that
        # items(), compaction and eviction ties come out the same on both backends.
        return active[torch.argsort(pack_keys(self.keys()[active]))]

    def keys(self) -> torch.Tensor:
        return _to_torch(self._hash.key_tensor())

    def tables(self) -> torch.Tensor:
        # A fresh view every time: a rehash moves the buffer.
        return _to_torch(self._hash.value_tensor(0))

    def ticks(self) -> torch.Tensor:
        return _to_torch(self._hash.value_tensor(1)).view(-1)
