"""Fused CPU kernels (numba) for ``VoxelBlockIndex``: a batch of voxel keys to blocks and rows.

Why: the tensor path of ``VoxelBlockIndex.insert`` is ~30 torch ops (block keys and local
indices, ``torch.unique`` over the packed block codes, the table gathers, the allocation
of new rows in first-seen order); at ~10k voxels a frame that is ~0.9 ms of label
fusion's ~5 ms step, most of it per-op overhead. Two loops do the same: the whole insert
1.0 -> 0.55 ms, a third of that the block hash (Open3D or sorted torch codes), still
called once per batch on the distinct blocks (docs/RESULTS.md, issue 17).

The same results as the tensor path, bit for bit: distinct blocks in ascending packed
code (``torch.unique``'s order), rows handed out in the order the voxels first appear.
"""

from __future__ import annotations

import numpy as np

from ..core.geometry import KEY_BITS, KEY_LIMIT
from ..core.jit import compile_kernel, numba, probe, table_size

_KEY_MASK = (1 << KEY_BITS) - 1


def _split_blocks(keys, block_size, capacity, shift):
    """Voxel keys (N, 3) int32 -> (block keys (M, 3) int32 of the distinct blocks in
    ascending packed code, inverse (N,) int64 block of each voxel, local (N,) int64 table
    index x + B * (y + B * z) of each voxel in its block). capacity, shift: a hash table
    of at least 2N slots (``table_size(4 * N)``), so it never fills past half."""
    n = keys.shape[0]
    slot_code = np.empty(capacity, np.int64)
    slot_block = np.full(capacity, -1, np.int64)
    codes = np.empty(n, np.int64)
    inverse = np.empty(n, np.int64)
    local = np.empty(n, np.int64)
    m = 0
    last_code = np.int64(-1)  # block codes are non-negative; keys in packed order mostly repeat the block
    last_block = np.int64(-1)
    for i in range(n):
        code = np.int64(0)
        index = np.int64(0)
        scale = np.int64(1)
        for axis in range(3):
            key = np.int64(keys[i, axis])
            block = key // block_size  # floor division, as torch.div(..., rounding_mode="floor")
            index += (key - block * block_size) * scale
            scale *= block_size
            code = (code << KEY_BITS) | (block & _KEY_MASK)  # core.geometry.pack_keys
        local[i] = index
        if code != last_code:
            slot = probe(slot_code, slot_block, code, capacity, shift)
            if slot_block[slot] < 0:
                slot_block[slot] = m
                slot_code[slot] = code
                codes[m] = code
                m += 1
            last_code = code
            last_block = slot_block[slot]
        inverse[i] = last_block
    # Number the distinct blocks by ascending code, as torch.unique does.
    order = np.argsort(codes[:m])
    rank = np.empty(m, np.int64)
    blocks = np.empty((m, 3), np.int32)
    for r in range(m):
        rank[order[r]] = r
        code = codes[order[r]]
        for axis in range(3):  # core.geometry.unpack_keys: 21-bit fields, sign-extended
            field = (code >> ((2 - axis) * KEY_BITS)) & _KEY_MASK
            blocks[r, axis] = field - (1 << KEY_BITS) if field >= KEY_LIMIT else field
    for i in range(n):
        inverse[i] = rank[inverse[i]]
    return blocks, inverse, local


def split_blocks(keys: np.ndarray, block_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``_split_blocks`` with its hash table sized for ``keys`` (N, 3) int32."""
    capacity, shift = table_size(4 * keys.shape[0])
    return _split_blocks_kernel(keys, np.int64(block_size), capacity, shift)


def _mark_new_voxels(tables, ticks, buffer, inverse, local, tick, new_slots):
    """Stamp the touched blocks with ``tick`` and find the voxels without a row.

    tables: (S, B^3) int32 row tables of the block hash's storage (-1 = no voxel), ticks
    (S,) int64 their last observations, both written. buffer: (M,) int64 storage index of
    each distinct block. inverse, local: (N,) int64 from ``split_blocks``. new_slots: (N,)
    int64, written: the flat table slots (block * B^3 + local) of the new voxels in the
    order they first appear. Each new voxel's table entry is set to -2 - k (k its place in
    that order) until ``assign_rows`` replaces it. Returns the number of new voxels K.
    """
    for b in range(buffer.shape[0]):
        ticks[buffer[b]] = tick
    count = 0
    for i in range(inverse.shape[0]):
        block = buffer[inverse[i]]
        if tables[block, local[i]] == -1:
            tables[block, local[i]] = -2 - count
            new_slots[count] = block * tables.shape[1] + local[i]
            count += 1
    return count


def _assign_rows(tables, buffer, inverse, local, new_slots, allocated, rows):
    """Give the K new voxels (``mark_new_voxels``) the rows ``allocated`` (K,) int64 in
    order, and write every voxel's row into rows (N,) int64."""
    width = tables.shape[1]
    for k in range(allocated.shape[0]):
        slot = new_slots[k]
        tables[slot // width, slot % width] = allocated[k]
    for i in range(inverse.shape[0]):
        rows[i] = tables[buffer[inverse[i]], local[i]]


if numba is not None:
    _split_blocks_kernel = compile_kernel(_split_blocks)
    mark_new_voxels = compile_kernel(_mark_new_voxels)
    assign_rows = compile_kernel(_assign_rows)
else:  # pragma: no cover - exercised where numba is absent
    _split_blocks_kernel = mark_new_voxels = assign_rows = None
