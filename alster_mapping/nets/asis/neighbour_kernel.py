"""The K nearest points in ASIS's embedding space as one compiled CPU loop (numba).

Why: instance fusion (eq. 6) needs each point's K = 30 nearest neighbours by L1 distance
among the chunk's 1,024 points. In tensors that is an (N, N) distance matrix and a top-k
over every row, a quarter of an ASIS forward on this CPU once the grouping was fast; one
loop per point that keeps the K best so far in a sorted list does the same in half the
time (``bench/bench_point_ops.py``). The distances are the tensor path's (the same float32
sum over the dimensions in order). Among exactly equal distances at the K-th place the
earlier point is kept; a top-k leaves that order open.
"""

from __future__ import annotations

import numpy as np

from ...core.jit import compile_kernel, numba


def _embedding_neighbours(embeddings, k, cut_off):
    """embeddings (B, N, E) float32 -> (B, N, k) int64: the k nearest (L1, the point itself
    included), nearest first; one further than ``cut_off`` is replaced by the point itself."""
    batch, count, dims = embeddings.shape
    index = np.empty((batch, count, k), np.int64)
    distance = np.empty(count, np.float32)
    best_distance = np.empty(k, np.float32)
    best_index = np.empty(k, np.int64)
    for b in range(batch):
        columns = np.ascontiguousarray(embeddings[b].T)  # (E, N): the row of distances vectorizes
        for i in range(count):
            distance[:] = np.float32(0.0)
            for e in range(dims):
                own = columns[e, i]
                for j in range(count):
                    distance[j] += abs(columns[e, j] - own)
            kept = 0
            for j in range(count):
                d = distance[j]
                if kept == k and not d < best_distance[k - 1]:
                    continue
                slot = kept if kept < k else k - 1  # the last place, free or given up
                while slot > 0 and best_distance[slot - 1] > d:
                    best_distance[slot] = best_distance[slot - 1]
                    best_index[slot] = best_index[slot - 1]
                    slot -= 1
                best_distance[slot] = d
                best_index[slot] = j
                if kept < k:
                    kept += 1
            for s in range(k):
                index[b, i, s] = i if best_distance[s] > cut_off else best_index[s]
    return index


embedding_neighbours_kernel = compile_kernel(_embedding_neighbours) if numba is not None else None
