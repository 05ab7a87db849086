"""Test helpers: a whole SemanticVoxelMap as comparable numpy arrays; the index backends to test."""

import importlib.util

import numpy as np
import pytest

from alster_mapping.core.geometry import pack_keys

# MapConfig.index values to run map tests on ('open3d' only where Open3D is installed).
INDEX_BACKENDS = [
    pytest.param("open3d", marks=pytest.mark.skipif(importlib.util.find_spec("open3d") is None, reason="needs open3d")),
    "torch",
]


def snapshot(m):
    """Every key and its values, sorted by key code, as numpy arrays, plus the feature kind."""
    keys, rows = m.items()
    data = m.read(rows)
    order = np.argsort(pack_keys(keys).numpy(), kind="stable")
    return {
        "keys": keys.numpy()[order],
        "feature_kind": m.feature_kind,
        **{name: getattr(data, name).numpy()[order] for name in m.column_spec()},
    }


def assert_same_snapshot(a, b):
    """Two snapshots hold the same keys with the same values."""
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
