"""numba, optional: compiling CPU kernels and the small hash table they share.

numba is optional: GPU machines and minimal installs run the torch paths. The kernels
(``pipeline/lift_kernels``, ``image_kernels``, ``label_fusion_kernels``,
``map/index_kernels``) are compiled with ``compile_kernel`` and find distinct int64 codes
with ``probe`` in open-addressing tables sized by ``table_size``.
"""

from __future__ import annotations

import numpy as np

try:
    import numba
except ImportError:  # pragma: no cover - exercised where numba is absent
    numba = None

_GOLDEN = 0x9E3779B97F4A7C15  # Fibonacci hashing multiplier (2^64 / golden ratio)


def available() -> bool:
    """True when numba imports, so the fused CPU kernels can run."""
    return numba is not None


def compile_kernel(function):
    """``function`` as a numba kernel, cached on disk where numba finds a writable place
    (beside the source, else ~/.cache/numba or NUMBA_CACHE_DIR). Where it finds none (a
    read-only install run by a user without a home), numba refuses caching with a
    RuntimeError at this point: then the kernel compiles at every start instead."""
    try:
        return numba.njit(cache=True, nogil=True)(function)
    except RuntimeError:
        return numba.njit(nogil=True)(function)


def table_size(items: int) -> tuple[int, np.uint64]:
    """A hash table of 2^bits >= ``items`` / 2 slots (at least 1024): (slots, shift = 64 -
    bits, as ``probe`` takes it). Kept at most half full, it holds ``items`` / 4 codes."""
    bits = max(int(np.ceil(np.log2(max(items, 1) / 2))), 10)
    return 1 << bits, np.uint64(64 - bits)


def _probe(slot_code, slot_item, code, capacity, shift):
    """Slot of ``code`` in the table of ``capacity`` = 2^(64 - shift) slots (slot_code (S,)
    int64 codes, slot_item (S,) int64, -1 = empty), or the empty slot where it belongs
    (Fibonacci hashing, linear probing). The caller keeps the table at most half full."""
    slot = np.int64((np.uint64(code) * np.uint64(_GOLDEN)) >> shift)
    while slot_item[slot] >= 0 and slot_code[slot] != code:
        slot = (slot + 1) & (capacity - 1)
    return slot


probe = compile_kernel(_probe) if numba is not None else None
