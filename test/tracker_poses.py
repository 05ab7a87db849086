"""Poses as real trackers and pose files give them: rigid only to a few digits.

Shared by the tests of ``geometry.make_rigid``, the ScanNet reader and ``alster replay``.
"""

from __future__ import annotations

import numpy as np

from alster_mapping.core.geometry import orthonormality_error


def with_orthonormality_error(T: np.ndarray, error: float, seed: int = 0) -> np.ndarray:
    """A copy of the rigid (4, 4) ``T`` whose rotation block is off by a random
    perturbation scaled so that max |R R^T - I| is ``error`` (to first order, i.e. within
    about 1 % for errors up to 1e-2); translation and bottom row unchanged."""
    noise = np.random.default_rng(seed).normal(size=(3, 3))
    R = np.asarray(T, dtype=np.float64)[:3, :3]
    probe = 1e-7  # R R^T - I is linear in the perturbation this close to SO(3)
    scale = error * probe / orthonormality_error(R + probe * noise)
    out = np.array(T, dtype=np.float64)
    out[:3, :3] = R + scale * noise
    return out


def written_with_decimals(T: np.ndarray, decimals: int) -> np.ndarray:
    """``T`` as a pose file written with ``decimals`` digits after the point reads back."""
    return np.round(np.asarray(T, dtype=np.float64), decimals)
