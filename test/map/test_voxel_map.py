"""Unit tests of SemanticVoxelMap (alster_mapping.map.voxel_map) and its block index."""

import threading

import numpy as np
import pytest
import torch
from map_snapshot import INDEX_BACKENDS, assert_same_snapshot, snapshot
from scipy.spatial.transform import Rotation

from alster_mapping.core.camera import CameraIntrinsics
from alster_mapping.core.config import MapConfig
from alster_mapping.core.geometry import in_frustum, voxel_centers
from alster_mapping.core.labels import LabelSpace, nyu40, scannet20
from alster_mapping.map.voxel_map import COUNT_MAX, SemanticVoxelMap

VOXEL = 0.1
D_F = 8
C = 20  # scannet20


MAP_DEFAULTS = dict(voxel_size=VOXEL, feature_dim=D_F, initial_capacity=64)


@pytest.fixture(autouse=True, params=INDEX_BACKENDS)
def index_backend(request, monkeypatch):
    """Every test here runs on both block-index backends: make_map builds its maps with it."""
    monkeypatch.setitem(MAP_DEFAULTS, "index", request.param)
    return request.param


def make_map(**config):
    kwargs = dict(MAP_DEFAULTS)
    kwargs.update(config)
    m = SemanticVoxelMap(MapConfig(**kwargs), scannet20())
    assert m.index_backend == kwargs["index"]
    return m


def unique_keys(rng, n, lo=-12, hi=12):
    keys = np.unique(rng.integers(lo, hi, (n, 3)), axis=0).astype(np.int32)
    return keys[rng.permutation(keys.shape[0])]


def random_columns(rng, n):
    return dict(
        feature=rng.normal(0, 10, (n, D_F)).astype(np.float32),
        count=rng.integers(0, 1000, n),
        label=rng.integers(-1, C, n),
        confidence=rng.random(n).astype(np.float32),
        color=rng.integers(0, 256, (n, 3), dtype=np.uint8),
    )


def key_set(keys):
    return {tuple(k) for k in np.asarray(keys).tolist()}


@pytest.fixture
def filled():
    rng = np.random.default_rng(100)
    m = make_map()
    keys = unique_keys(rng, 400)
    cols = random_columns(rng, keys.shape[0])
    m.write(keys, **cols)
    return m, keys, cols


# ---------------------------------------------------------------------------
# Writing and reading
# ---------------------------------------------------------------------------


def test_write_lookup_crop_read_round_trip(filled):
    m, keys, cols = filled
    assert len(m) == keys.shape[0]
    # Keys cover negative coordinates and several 4^3 blocks.
    assert (keys < 0).any() and (keys >= 4).any()
    assert m.num_blocks > 8
    rows = m.lookup(keys)
    assert rows.dtype == torch.int64 and bool((rows >= 0).all())
    assert torch.unique(rows).shape[0] == keys.shape[0]
    for data in (m.crop(keys), m.read(rows)):
        assert bool(data.found.all())
        np.testing.assert_array_equal(data.feature.numpy(), cols["feature"].astype(np.float16))
        np.testing.assert_array_equal(data.count.numpy(), cols["count"])
        np.testing.assert_array_equal(data.label.numpy(), cols["label"])
        np.testing.assert_array_equal(data.confidence.numpy(), cols["confidence"].astype(np.float16))
        np.testing.assert_array_equal(data.color.numpy(), cols["color"])
        assert data.feature.dtype == torch.float16 and data.count.dtype == torch.int16
        assert data.label.dtype == torch.int16 and data.confidence.dtype == torch.float16
        assert data.color.dtype == torch.uint8


def test_write_with_torch_inputs_and_partial_columns():
    m = make_map()
    keys = torch.tensor([[0, 0, 0], [-1, -5, 7]], dtype=torch.int64)
    m.write(keys, label=torch.tensor([3, -1]))
    data = m.crop(keys)
    np.testing.assert_array_equal(data.label.numpy(), [3, -1])
    # Columns not given keep their defaults.
    assert (data.count == 0).all() and (data.feature == 0).all() and (data.confidence == 0).all()
    assert (data.color == 0).all()
    m.write(keys[:1], count=torch.tensor([5]))
    data = m.crop(keys)
    np.testing.assert_array_equal(data.count.numpy(), [5, 0])
    np.testing.assert_array_equal(data.label.numpy(), [3, -1])  # untouched


def test_absent_keys_lookup_minus_one_and_crop_defaults(filled):
    m, keys, _ = filled
    absent = np.array([[100, 100, 100], [-50, 3, 2], [12, 12, 12]], dtype=np.int32)
    query = np.concatenate([absent, keys[:5]])
    rows = m.lookup(query)
    np.testing.assert_array_equal(rows[:3].numpy(), [-1, -1, -1])
    assert bool((rows[3:] >= 0).all())
    data = m.crop(query)
    np.testing.assert_array_equal(data.found.numpy(), [False] * 3 + [True] * 5)
    assert (data.feature[:3] == 0).all()
    assert (data.count[:3] == 0).all()
    assert (data.label[:3] == -1).all()
    assert (data.confidence[:3] == 0).all()
    assert (data.color[:3] == 0).all()


def test_lookup_on_empty_map_and_empty_query():
    m = make_map()
    np.testing.assert_array_equal(m.lookup(np.array([[0, 0, 0]])).numpy(), [-1])
    assert m.lookup(np.zeros((0, 3), np.int32)).shape == (0,)
    data = m.crop(np.array([[1, 2, 3]]))
    assert not bool(data.found[0]) and int(data.label[0]) == -1


@pytest.mark.parametrize("keys", [np.zeros((3, 2), np.int32), np.zeros(3, np.int32), np.zeros((2, 3), np.float32)])
def test_keys_must_be_integer_n_by_3(keys):
    with pytest.raises(ValueError, match="keys"):
        make_map().lookup(keys)


def test_insert_is_idempotent():
    rng = np.random.default_rng(101)
    m = make_map()
    keys = unique_keys(rng, 300)
    rows1 = m.insert(keys)
    n = len(m)
    assert n == keys.shape[0]
    rows2 = m.insert(keys)
    assert len(m) == n
    np.testing.assert_array_equal(rows1.numpy(), rows2.numpy())
    # New voxels start at defaults.
    data = m.read(rows1)
    assert bool(data.found.all()) and (data.label == -1).all() and (data.count == 0).all()


def test_insert_duplicate_keys_share_a_row():
    m = make_map()
    keys = np.array([[1, 2, 3], [-4, 0, 9], [1, 2, 3], [1, 2, 3], [-4, 0, 9], [7, 7, 7]], dtype=np.int32)
    rows = m.insert(keys).numpy()
    assert len(m) == 3
    assert rows[0] == rows[2] == rows[3]
    assert rows[1] == rows[4]
    assert len({rows[0], rows[1], rows[5]}) == 3


def test_write_rejects_duplicate_keys(filled):
    m, keys, _ = filled
    before = snapshot(m)
    dup = np.array([[50, 50, 50], [51, 50, 50], [50, 50, 50]], dtype=np.int32)
    with pytest.raises(ValueError, match="unique"):
        m.write(dup, label=np.array([1, 2, 3]))
    assert len(m) == keys.shape[0]
    assert_same_snapshot(snapshot(m), before)


def _bad_columns(n):
    return {
        "feature_shape": dict(feature=np.zeros((n, D_F + 1), np.float32)),
        "feature_nan": dict(feature=np.where(np.arange(n * D_F).reshape(n, D_F) == 5, np.nan, 0.0)),
        "feature_inf": dict(feature=np.full((n, D_F), np.inf)),
        "feature_beyond_float16": dict(feature=np.full((n, D_F), 70000.0)),
        "count_shape": dict(count=np.zeros(n + 1, np.int64)),
        "label_too_big": dict(label=np.full(n, C)),
        "label_below_minus_one": dict(label=np.full(n, -2)),
        "label_shape": dict(label=np.zeros((n, 1), np.int64)),
        "confidence_above_one": dict(confidence=np.full(n, 1.5)),
        "confidence_negative": dict(confidence=np.full(n, -0.1)),
        "confidence_nan": dict(confidence=np.full(n, np.nan)),
        "color_float": dict(color=np.zeros((n, 3), np.float32)),
        "color_int64": dict(color=np.zeros((n, 3), np.int64)),
        "color_shape": dict(color=np.zeros((n, 4), np.uint8)),
        "instance_below_minus_one": dict(instance=np.full(n, -2)),
        "instance_beyond_int16": dict(instance=np.full(n, 40000)),
        "unknown_column": dict(weight=np.zeros(n)),
        # A valid column next to an invalid one must not be written either.
        "valid_then_invalid": dict(count=np.full(n, 9), label=np.full(n, 99)),
    }


@pytest.mark.parametrize("case", list(_bad_columns(1)))
@pytest.mark.parametrize("target", ["existing", "new"])
def test_write_rejects_invalid_values_and_leaves_map_unchanged(filled, case, target):
    m, keys, _ = filled
    before = snapshot(m)
    n_before = len(m)
    if target == "existing":
        write_keys = keys[:6]
    else:
        write_keys = np.array([[40, 40, 40], [41, 40, 40], [-40, 0, 0], [0, 0, 40], [1, 1, 41], [2, 2, 42]], np.int32)
    cols = _bad_columns(write_keys.shape[0])[case]
    with pytest.raises(ValueError):
        m.write(write_keys, **cols)
    assert len(m) == n_before
    assert_same_snapshot(snapshot(m), before)
    if target == "new":
        np.testing.assert_array_equal(m.lookup(write_keys).numpy(), -1)


@pytest.mark.parametrize("case", ["label_too_big", "confidence_above_one", "feature_nan", "color_float"])
def test_write_rows_rejects_invalid_values_and_leaves_map_unchanged(filled, case):
    m, keys, _ = filled
    before = snapshot(m)
    rows = m.lookup(keys[:6])
    with pytest.raises(ValueError):
        m.write_rows(rows, **_bad_columns(6)[case])
    assert_same_snapshot(snapshot(m), before)


def test_write_rows_rejects_rows_out_of_range(filled):
    m, _, _ = filled
    before = snapshot(m)
    with pytest.raises(ValueError, match="rows"):
        m.write_rows(torch.tensor([0, -1]), label=torch.tensor([1, 1]))
    with pytest.raises(ValueError, match="rows"):
        m.write_rows(torch.tensor([10**6]), label=torch.tensor([1]))
    assert_same_snapshot(snapshot(m), before)


def test_count_saturates():
    m = make_map()
    keys = np.array([[0, 0, 0], [1, 0, 0], [2, 0, 0], [3, 0, 0]], np.int32)
    m.write(keys, count=np.array([40000, 32767, 5, -3]))
    np.testing.assert_array_equal(m.crop(keys).count.numpy(), [COUNT_MAX, COUNT_MAX, 5, 0])
    assert COUNT_MAX == 32767


def test_items_returns_exactly_the_inserted_keys():
    rng = np.random.default_rng(102)
    m = make_map()
    keys = unique_keys(rng, 500, -30, 30)
    m.insert(keys[:200])
    m.insert(keys[150:])
    got_keys, got_rows = m.items()
    assert got_keys.dtype == torch.int32 and got_rows.dtype == torch.int64
    assert got_keys.shape[0] == keys.shape[0] == len(m)
    assert key_set(got_keys.numpy()) == key_set(keys)
    np.testing.assert_array_equal(m.lookup(got_keys).numpy(), got_rows.numpy())
    assert key_set(m.keys().numpy()) == key_set(keys)


# ---------------------------------------------------------------------------
# Removal, pruning, compaction
# ---------------------------------------------------------------------------


def test_remove_frees_voxels_and_rows_are_reused_with_defaults(filled):
    m, keys, _ = filled
    n = keys.shape[0]
    gone = keys[:100]
    freed_rows = set(m.lookup(gone).tolist())
    high_water = m._index.high_water
    absent = np.array([[99, 99, 99]], np.int32)
    assert m.remove(np.concatenate([gone, absent, gone[:3]])) == 100
    assert len(m) == n - 100
    np.testing.assert_array_equal(m.lookup(gone).numpy(), -1)
    assert key_set(m.keys().numpy()) == key_set(keys[100:])
    # Other voxels keep their values.
    assert bool(m.crop(keys[100:]).found.all())
    # New voxels reuse the freed rows; storage does not grow.
    new_keys = np.stack([np.arange(100), np.full(100, 60), np.full(100, -60)], 1).astype(np.int32)
    rows = m.insert(new_keys)
    assert set(rows.tolist()) == freed_rows
    assert m._index.high_water == high_water
    data = m.read(rows)
    assert (data.feature == 0).all() and (data.count == 0).all() and (data.label == -1).all()
    assert (data.confidence == 0).all() and (data.color == 0).all()


def test_remove_everything_then_reinsert():
    m = make_map()
    keys = unique_keys(np.random.default_rng(103), 50)
    m.write(keys, label=np.full(keys.shape[0], 4))
    assert m.remove(keys) == keys.shape[0]
    assert len(m) == 0 and m.num_blocks == 0
    assert m.keys().shape == (0, 3)
    m.insert(keys[:10])
    data = m.crop(keys[:10])
    assert bool(data.found.all()) and (data.label == -1).all()
    assert len(m) == 10


def test_prune_radius_keeps_exactly_the_voxels_within_radius():
    rng = np.random.default_rng(104)
    m = make_map()
    keys = unique_keys(rng, 3000, -25, 25)
    cols = random_columns(rng, keys.shape[0])
    m.write(keys, **cols)
    center = np.array([0.3, -0.2, 0.1])
    radius = 1.23
    centres = (keys.astype(np.float64) + 0.5) * VOXEL
    keep = np.linalg.norm(centres - center, axis=1) <= radius
    # No centre lies within rounding distance of the sphere.
    assert np.abs(np.linalg.norm(centres - center, axis=1) - radius).min() > 1e-4
    removed = m.prune_radius(center, radius)
    assert removed == int((~keep).sum())
    assert len(m) == int(keep.sum())
    assert key_set(m.keys().numpy()) == key_set(keys[keep])
    data = m.crop(keys[keep])
    np.testing.assert_array_equal(data.label.numpy(), cols["label"][keep])
    np.testing.assert_array_equal(data.color.numpy(), cols["color"][keep])


@pytest.mark.parametrize("center, radius", [(np.array([0.0, np.nan, 0.0]), 1.0), (np.zeros(2), 1.0), (np.zeros(3), -1.0), (np.zeros(3), np.nan)])
def test_prune_radius_rejects_bad_arguments(filled, center, radius):
    m, keys, _ = filled
    with pytest.raises(ValueError):
        m.prune_radius(center, radius)
    assert len(m) == keys.shape[0]


def _cube(origin, edge=8):
    r = np.arange(edge)
    g = np.stack(np.meshgrid(r, r, r, indexing="ij"), -1).reshape(-1, 3)
    return (g + np.asarray(origin)).astype(np.int32)


def test_prune_bytes_evicts_least_recently_observed_blocks_first():
    m = make_map()
    groups = [_cube((-200, 0, 0)), _cube((0, 0, 0)), _cube((200, 8, -16))]  # block-aligned, 8 blocks each
    for g in groups:
        m.insert(g)
    group_bytes = groups[0].shape[0] * m.row_bytes + 8 * m.block_bytes
    assert m.nbytes() == 3 * group_bytes
    budget = int(1.4 * group_bytes)
    removed = m.prune_bytes(budget)
    assert m.nbytes() <= budget
    assert removed == 3 * groups[0].shape[0] - len(m)
    assert bool((m.lookup(groups[2]) >= 0).all()), "the most recently observed group must survive"
    assert bool((m.lookup(groups[0]) < 0).all()), "the least recently observed group must be gone"


def test_prune_bytes_follows_observation_not_insertion_order():
    m = make_map()
    groups = [_cube((-200, 0, 0)), _cube((0, 0, 0)), _cube((200, 8, -16))]
    for g in groups:
        m.insert(g)
    m.insert(groups[0])  # observe the oldest group again: now the newest
    group_bytes = groups[0].shape[0] * m.row_bytes + 8 * m.block_bytes
    m.prune_bytes(int(1.4 * group_bytes))
    assert bool((m.lookup(groups[0]) >= 0).all())
    assert bool((m.lookup(groups[1]) < 0).all())


def test_prune_bytes_noop_within_budget_and_rejects_negative(filled):
    m, keys, _ = filled
    before = snapshot(m)
    assert m.prune_bytes(m.nbytes()) == 0
    assert_same_snapshot(snapshot(m), before)
    with pytest.raises(ValueError):
        m.prune_bytes(-1)
    assert m.prune_bytes(0) == keys.shape[0]
    assert len(m) == 0 and m.nbytes() == 0


def test_max_bytes_bounds_memory_and_keeps_latest_insert():
    rng = np.random.default_rng(105)
    probe = make_map()
    batch_bytes_estimate = 600 * probe.row_bytes + 40 * probe.block_bytes
    budget = 4 * batch_bytes_estimate
    m = make_map(max_bytes=budget)
    inserted = 0
    for i in range(30):
        # A "frame": a cluster of voxels somewhere along a trajectory.
        centre = np.array([i * 12, (i % 3) * 5, 0])
        keys = np.unique(rng.integers(-6, 6, (700, 3)) + centre, axis=0).astype(np.int32)
        inserted += keys.shape[0]
        m.insert(keys)
        assert m.nbytes() <= budget, f"frame {i}: {m.nbytes()} > {budget}"
        assert bool((m.lookup(keys) >= 0).all()), f"frame {i}: latest voxels evicted"
    assert len(m) < inserted  # eviction happened


def test_max_bytes_write_keeps_written_values():
    rng = np.random.default_rng(106)
    m = make_map(max_bytes=20000)
    for i in range(10):
        keys = _cube((i * 40, 0, 0), edge=4)
        labels = rng.integers(0, C, keys.shape[0])
        m.write(keys, label=labels)
        assert m.nbytes() <= 20000
        np.testing.assert_array_equal(m.crop(keys).label.numpy(), labels)


def test_compact_preserves_all_values_and_renumbers_rows(filled):
    m, keys, _ = filled
    m.remove(keys[::3])
    before = snapshot(m)
    m.compact()
    assert_same_snapshot(snapshot(m), before)
    _, rows = m.items()
    assert sorted(rows.tolist()) == list(range(len(m)))
    # Still usable afterwards.
    m.write(np.array([[70, 70, 70]], np.int32), label=np.array([2]))
    assert int(m.crop(np.array([[70, 70, 70]])).label[0]) == 2


def test_compact_keeps_lru_order():
    m = make_map()
    groups = [_cube((-200, 0, 0)), _cube((0, 0, 0)), _cube((200, 8, -16))]
    for g in groups:
        m.insert(g)
    m.compact()
    group_bytes = groups[0].shape[0] * m.row_bytes + 8 * m.block_bytes
    m.prune_bytes(int(1.4 * group_bytes))
    assert bool((m.lookup(groups[2]) >= 0).all())
    assert bool((m.lookup(groups[0]) < 0).all())


def test_prune_freeing_most_rows_compacts_and_keeps_values():
    m = make_map(initial_capacity=1024)
    r = np.arange(0, 64)
    g = np.stack(np.meshgrid(r, r, np.arange(0, 40), indexing="ij"), -1).reshape(-1, 3).astype(np.int32)
    m.insert(g[: g.shape[0] // 2])
    m.insert(g[g.shape[0] // 2 :])
    m.write_rows(m.lookup(g), label=(g.sum(1) % C).astype(np.int64))
    centre = np.array([0.2, 0.2, 0.2])
    removed = m.prune_radius(centre, 1.0)
    keys = m.keys().numpy()
    assert removed + len(m) == g.shape[0] and removed > 1 << 16
    # Storage shrank to the live voxels: rows are dense again.
    assert m._index.num_free_rows == 0 and m._index.high_water == len(m)
    centres = (keys + 0.5) * VOXEL
    assert (np.linalg.norm(centres - centre, axis=1) <= 1.0 + 1e-6).all()
    np.testing.assert_array_equal(m.crop(keys).label.numpy(), keys.sum(1) % C)


def test_clear_empties_the_map(filled):
    m, keys, _ = filled
    m.feature_kind = "label_evidence"
    m.clear()
    assert len(m) == 0 and m.num_blocks == 0 and m.nbytes() == 0
    assert m.keys().shape == (0, 3)
    assert len(m.to_arrays()) == 0
    assert m.feature_kind == "none"
    np.testing.assert_array_equal(m.lookup(keys[:5]).numpy(), -1)
    m.write(keys[:5], label=np.arange(5))
    np.testing.assert_array_equal(m.crop(keys[:5]).label.numpy(), np.arange(5))


# ---------------------------------------------------------------------------
# Frustum crop
# ---------------------------------------------------------------------------

CAM = CameraIntrinsics(40.0, 40.0, 31.5, 23.5, 64, 48)


def _pose(position, yaw_deg, pitch_deg=0.0):
    T = np.eye(4)
    # Camera z forward along world +x rotated by yaw about world z.
    base = np.array([[0, 0, 1], [-1, 0, 0], [0, -1, 0]], dtype=np.float64)  # cam x->-y_w, y->-z_w, z->x_w
    R = Rotation.from_euler("zy", [yaw_deg, pitch_deg], degrees=True).as_matrix() @ base
    T[:3, :3] = R
    T[:3, 3] = position
    return T


def _brute_force_frustum(m, T, max_range, min_range):
    keys, rows = m.items()
    inside = in_frustum(voxel_centers(keys, m.voxel_size), CAM, T, max_range, min_range)
    return {tuple(k): int(r) for k, r in zip(keys[inside].tolist(), rows[inside].tolist())}


def _cropped(m, T, max_range, min_range):
    keys, rows = m.crop_frustum(CAM, T, max_range, min_range)
    assert keys.dtype == torch.int32 and rows.dtype == torch.int64
    out = {tuple(k): int(r) for k, r in zip(keys.tolist(), rows.tolist())}
    assert len(out) == keys.shape[0]
    return out


def _forbid(monkeypatch, m, method):
    def fail(*args, **kwargs):
        raise AssertionError(f"crop_frustum took the other path ({method} called)")

    monkeypatch.setattr(m._index, method, fail)


def test_crop_frustum_small_map_full_scan(monkeypatch):
    rng = np.random.default_rng(107)
    m = make_map()
    m.insert(unique_keys(rng, 400, -20, 20))  # sparse voxels in a 4 m cube: few blocks vs a 5 m frustum
    assert m.num_blocks < 400
    cases = [(_pose([-1.0, 0.2, 0.1], 10.0, 5.0), 5.0, 0.0), (_pose([0.0, 0.0, 0.0], 200.0, -20.0), 4.5, 0.5)]
    _forbid(monkeypatch, m, "block_voxels")
    total = 0
    for T, max_range, min_range in cases:
        expected = _brute_force_frustum(m, T, max_range, min_range)
        total += len(expected)
        assert _cropped(m, T, max_range, min_range) == expected
    assert total > 20


def test_crop_frustum_large_map_candidate_blocks(monkeypatch):
    m = make_map()
    # A dense 6.4 m x 6.4 m x 1.6 m slab: 16 x 16 x 4 = 1024 blocks.
    r = np.arange(-32, 32)
    g = np.stack(np.meshgrid(r, r, np.arange(-8, 8), indexing="ij"), -1).reshape(-1, 3).astype(np.int32)
    m.insert(g)
    assert m.num_blocks == 1024
    _forbid(monkeypatch, m, "items")
    cases = [(_pose([0.05, -0.3, 0.02], 30.0, 10.0), 1.2, 0.0), (_pose([1.0, 1.0, 0.3], 225.0, 30.0), 1.0, 0.3)]
    for T, max_range, min_range in cases:
        got = _cropped(m, T, max_range, min_range)
        monkeypatch.undo()
        expected = _brute_force_frustum(m, T, max_range, min_range)
        _forbid(monkeypatch, m, "items")
        assert len(expected) > 100
        assert got == expected


def test_crop_frustum_of_empty_map():
    keys, rows = make_map().crop_frustum(CAM, np.eye(4), 3.0)
    assert keys.shape == (0, 3) and rows.shape == (0,)


# ---------------------------------------------------------------------------
# Whole-map views
# ---------------------------------------------------------------------------


def test_to_arrays_shapes_dtypes_and_values(filled):
    m, keys, cols = filled
    a = m.to_arrays()
    n = keys.shape[0]
    assert len(a) == n
    assert a.xyz.shape == (n, 3) and a.xyz.dtype == np.float32
    assert a.color.shape == (n, 3) and a.color.dtype == np.uint8
    assert a.label_color.shape == (n, 3) and a.label_color.dtype == np.uint8
    assert a.label.shape == (n,) and a.label.dtype == np.uint16
    assert a.label_index.shape == (n,) and a.label_index.dtype == np.int16
    assert a.confidence.shape == (n,) and a.confidence.dtype == np.float32
    assert a.count.shape == (n,) and a.count.dtype == np.int32
    # Match every voxel back to what was written through its centre.
    back = np.floor(a.xyz.astype(np.float64) / VOXEL).astype(np.int64)
    np.testing.assert_allclose(a.xyz, (back + 0.5) * VOXEL, atol=1e-6)
    index = {k: i for i, k in enumerate(map(tuple, keys.tolist()))}
    order = np.array([index[tuple(k)] for k in back.tolist()])
    assert sorted(order.tolist()) == list(range(n))
    space = scannet20()
    np.testing.assert_array_equal(a.label_index, cols["label"][order])
    np.testing.assert_array_equal(a.label, space.decode(cols["label"][order]))
    np.testing.assert_array_equal(a.label_color, space.colorize(cols["label"][order]))
    np.testing.assert_array_equal(a.color, cols["color"][order])
    np.testing.assert_array_equal(a.count, cols["count"][order])
    np.testing.assert_array_equal(a.confidence, cols["confidence"][order].astype(np.float16).astype(np.float32))
    unknown = cols["label"][order] < 0
    assert unknown.any() and (a.label[unknown] == 0).all()


def test_assign_instances_replaces_the_layer_and_skips_voxels_gone(filled):
    m, keys, _ = filled
    before = snapshot(m)
    assert (before["instance"] == -1).all()  # new voxels have no instance
    assert m.assign_instances(keys[:5], np.arange(5)) == 5
    arrays = m.to_arrays()
    assert sorted(arrays.instance[arrays.instance >= 0].tolist()) == [0, 1, 2, 3, 4]
    # A later segmentation replaces the whole layer; keys removed since are skipped.
    m.remove(keys[5:6])
    assert m.assign_instances(keys[5:8], np.array([7, 7, 8])) == 2
    after = snapshot(m)
    assert sorted(after["instance"][after["instance"] >= 0].tolist()) == [7, 8]
    for name in ("feature", "count", "label", "confidence", "color"):
        assert after[name].shape[0] == len(m)
    with pytest.raises(ValueError, match="instance ids"):
        m.assign_instances(keys[:2], np.array([3, 40000]))
    assert_same_snapshot(snapshot(m), after)


def test_to_arrays_empty_map():
    a = make_map().to_arrays()
    assert len(a) == 0 and a.xyz.shape == (0, 3) and a.label.shape == (0,)


def test_nbytes_follows_voxels_and_blocks():
    m = make_map()
    assert m.nbytes() == 0
    m.insert(_cube((0, 0, 0), edge=4))  # one block
    assert m.nbytes() == 64 * m.row_bytes + m.block_bytes
    assert m.row_bytes == 2 * D_F + 11


def test_concurrent_writer_and_readers():
    m = make_map()
    rng = np.random.default_rng(108)
    batches = [unique_keys(rng, 300, -15, 15) + np.array([i * 3, 0, 0], np.int32) for i in range(25)]
    expected = set()
    for b in batches:
        expected |= key_set(b)
    errors = []
    done = threading.Event()

    def writer():
        try:
            for i, b in enumerate(batches):
                m.write(b, label=np.full(b.shape[0], i % C), count=np.full(b.shape[0], i))
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            done.set()

    def reader():
        try:
            probe = batches[0][:50]
            while not done.is_set():
                a = m.to_arrays()
                assert a.xyz.shape[0] == a.label.shape[0] == a.count.shape[0]
                m.lookup(probe)
                m.crop(probe)
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=writer), threading.Thread(target=reader), threading.Thread(target=reader)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    assert not errors, errors
    assert len(m) == len(expected)
    assert key_set(m.keys().numpy()) == expected
    # The last write wins for every key of the last batch.
    data = m.crop(batches[-1])
    assert (data.count.numpy() == len(batches) - 1).all()


# ---------------------------------------------------------------------------
# replace_with
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "other",
    [
        lambda: SemanticVoxelMap(MapConfig(voxel_size=0.05, feature_dim=D_F), scannet20()),
        lambda: SemanticVoxelMap(MapConfig(voxel_size=VOXEL, feature_dim=D_F + 1), scannet20()),
        # Block size is geometry too: the map's config (saved to files) must describe its index.
        lambda: SemanticVoxelMap(MapConfig(voxel_size=VOXEL, feature_dim=D_F, block_size=8), scannet20()),
        lambda: SemanticVoxelMap(MapConfig(voxel_size=VOXEL, feature_dim=D_F), nyu40()),
        lambda: SemanticVoxelMap(MapConfig(voxel_size=VOXEL, feature_dim=D_F), LabelSpace.load("label_fusion")),
    ],
)
def test_replace_with_rejects_different_geometry_or_label_space(filled, other):
    m, keys, _ = filled
    before = snapshot(m)
    o = other()
    o.insert(np.array([[90, 90, 90]], np.int32))
    with pytest.raises(ValueError):
        m.replace_with(o)
    assert_same_snapshot(snapshot(m), before)
    assert len(m) == keys.shape[0]


def test_replace_with_takes_over_contents(filled):
    m, keys, _ = filled
    rng = np.random.default_rng(109)
    other = make_map()
    new_keys = unique_keys(rng, 50, 30, 40)
    other.write(new_keys, **random_columns(rng, new_keys.shape[0]))
    other.feature_kind = "label_evidence"
    expected = snapshot(other)
    m.replace_with(other)
    assert len(m) == new_keys.shape[0]
    assert m.feature_kind == "label_evidence"
    assert_same_snapshot(snapshot(m), expected)
    np.testing.assert_array_equal(m.lookup(keys).numpy(), -1)


def test_keys_beyond_the_packed_range_are_refused_instead_of_aliasing(filled):
    """(2^23, 0, 0) used to wrap onto (0, 0, 0) in the packed key and overwrite it."""
    m, _, _ = filled
    m.write(np.array([[0, 0, 0]], np.int32), label=np.array([1]))
    before = snapshot(m)
    for call in (
        lambda: m.write(np.array([[1 << 23, 0, 0]]), label=np.array([2])),
        lambda: m.insert(np.array([[0, 1 << 20, 0]])),
        lambda: m.lookup(np.array([[0, 0, -(1 << 20) - 1]])),
        lambda: m.remove(torch.tensor([[1 << 40, 0, 0]])),  # int64 beyond int32: no silent cast
    ):
        with pytest.raises(ValueError, match="voxel keys must lie"):
            call()
    assert_same_snapshot(snapshot(m), before)
    limit = 1 << 20
    edge = np.array([[-limit, limit - 1, 0]], np.int32)  # the range's ends still work
    m.write(edge, label=np.array([3]))
    assert int(m.crop(edge).label[0]) == 3 and int(m.crop(np.zeros((1, 3), np.int32)).label[0]) == 1


def test_all_finite_float16_finds_every_inf_and_nan():
    from alster_mapping.map.voxel_map import all_finite_float16

    values = torch.arange(-(2**15), 2**15, dtype=torch.int32).to(torch.int16).view(torch.float16)  # every half
    finite = torch.isfinite(values)
    for i in range(0, values.numel(), 4096):
        chunk = values[i : i + 4096]
        assert all_finite_float16(chunk) == bool(finite[i : i + 4096].all())
    assert all_finite_float16(values[finite]) and not all_finite_float16(values)
    assert all_finite_float16(torch.empty((0, 4), dtype=torch.float16))


def test_column_arrays_are_writable_views_of_the_columns():
    m = SemanticVoxelMap(MapConfig(voxel_size=0.1, feature_dim=4))
    rows = m.write(np.array([[0, 0, 0], [5, -3, 2]]), feature=torch.ones(2, 4), count=torch.tensor([3, 4]))
    columns = m.column_arrays()
    assert columns["feature"].dtype == np.uint16 and columns["confidence"].dtype == np.uint16
    np.testing.assert_array_equal(columns["feature"][rows[0].item()], np.full(4, 0x3C00))  # 1.0 in float16
    columns["count"][rows[1].item()] = 9
    columns["confidence"][rows[1].item()] = 0x3800  # 0.5
    data = m.read(rows)
    assert data.count.tolist() == [3, 9] and data.confidence[1].item() == 0.5
    assert torch.equal(m.read_column("count", rows), data.count)

