"""Unit tests of map files (alster_mapping.map.map_file): round trip, atomic writes, validation."""

import json
import os
import re
import struct
import zlib

import numpy as np
import pytest
import torch
from map_snapshot import INDEX_BACKENDS, assert_same_snapshot, snapshot
from safetensors import safe_open
from safetensors.torch import save_file

from alster_mapping.core import tensor_file
from alster_mapping.core.config import MapConfig
from alster_mapping.core.geometry import pack_keys
from alster_mapping.core.labels import LabelSpace, nyu40, scannet20
from alster_mapping.map import map_file
from alster_mapping.map.map_file import MapFileError, load_map, save_map
from alster_mapping.map.voxel_map import SemanticVoxelMap

D_F = 6
TENSOR_NAMES = {"keys", "feature", "count", "label", "confidence", "color", "instance", "block_keys", "block_ticks"}


def make_map(seed=0, n=500, label_space=None, **config):
    rng = np.random.default_rng(seed)
    kwargs = dict(voxel_size=0.05, feature_dim=D_F, initial_capacity=32)
    kwargs.update(config)
    m = SemanticVoxelMap(MapConfig(**kwargs), label_space or scannet20())
    keys = np.unique(rng.integers(-30, 30, (n, 3)), axis=0).astype(np.int32)
    c = m.label_space.num_classes
    m.write(
        keys,
        feature=rng.normal(0, 3, (keys.shape[0], D_F)),
        count=rng.integers(0, 500, keys.shape[0]),
        label=rng.integers(-1, c, keys.shape[0]),
        confidence=rng.random(keys.shape[0]),
        color=rng.integers(0, 256, (keys.shape[0], 3), dtype=np.uint8),
        instance=rng.integers(-1, 40, keys.shape[0]),
    )
    m.feature_kind = "label_evidence"
    return m


def block_ticks(m):
    keys, ticks, counts = m._index.blocks()
    order = np.argsort(pack_keys(keys).numpy())
    return keys.numpy()[order], ticks.numpy()[order], counts.numpy()[order]


def _cube(origin, edge=8):
    r = np.arange(edge)
    g = np.stack(np.meshgrid(r, r, r, indexing="ij"), -1).reshape(-1, 3)
    return (g + np.asarray(origin)).astype(np.int32)


def data_offset(path):
    """Start of the safetensors data section (8-byte length + JSON header)."""
    with open(path, "rb") as fh:
        (n,) = struct.unpack("<Q", fh.read(8))
    return 8 + n


def read_raw(path):
    with safe_open(str(path), framework="pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata())


def crc32(t):
    """The format's checksum: CRC-32 of a tensor's raw little-endian bytes."""
    return zlib.crc32(np.ascontiguousarray(t.numpy()).view(np.uint8).reshape(-1))


def write_crafted(path, tensors, metadata, fix_crc=True):
    metadata = dict(metadata)
    if fix_crc:
        metadata["crc32"] = json.dumps({k: crc32(t) for k, t in tensors.items()})
    save_file({k: t.contiguous() for k, t in tensors.items()}, str(path), metadata=metadata)
    return path


@pytest.fixture
def saved(tmp_path):
    m = make_map()
    path = tmp_path / "good_map.safetensors"
    save_map(m, path)
    return m, path


def assert_load_fails(path, **kwargs):
    with pytest.raises(MapFileError, match=re.escape(os.path.basename(str(path)))):
        load_map(path, **kwargs)


# ---------------------------------------------------------------------------
# Round trip
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("index", INDEX_BACKENDS)
def test_save_load_round_trip_all_columns(saved, index):
    m, path = saved
    loaded = load_map(path, index=index)
    assert isinstance(loaded, SemanticVoxelMap) and loaded.index_backend == index
    assert len(loaded) == len(m)
    assert_same_snapshot(snapshot(loaded), snapshot(m))
    assert loaded.feature_kind == "label_evidence"
    assert loaded.voxel_size == m.voxel_size and loaded.feature_dim == D_F
    assert loaded.label_space == m.label_space
    assert loaded.config.block_size == m.config.block_size
    for a, b in zip(block_ticks(loaded), block_ticks(m)):
        np.testing.assert_array_equal(a, b)
    # The class method and the label_space check both accept the file.
    assert len(load_map(path, label_space=scannet20())) == len(m)


def test_a_version_1_file_loads_without_instances(saved, tmp_path):
    """Maps saved before the instance layer (version 1: no ``instance`` tensor) still load."""
    m, path = saved
    tensors, meta = read_raw(path)
    tensors.pop("instance")
    old = write_crafted(tmp_path / "v1.safetensors", tensors, {**meta, "version": "1"})
    loaded = load_map(old)
    assert len(loaded) == len(m) and (loaded.to_arrays().instance == -1).all()
    # Everything else as saved (compared by key: the row order of a loaded map may differ).
    expected = snapshot(m)
    expected["instance"] = np.full_like(expected["instance"], -1)
    assert_same_snapshot(snapshot(loaded), expected)
    # A version 2 file must have the layer.
    broken = write_crafted(tmp_path / "v2_without.safetensors", tensors, meta)
    assert_load_fails(broken)


@pytest.mark.parametrize("index", INDEX_BACKENDS)
def test_round_trip_other_label_space_and_block_size(tmp_path, index):
    m = make_map(seed=3, label_space=LabelSpace.load("label_fusion"), block_size=8, voxel_size=0.01, index=index)
    path = tmp_path / "lf.safetensors"
    save_map(m, path)
    loaded = load_map(path, index=index)
    assert loaded.label_space == LabelSpace.load("label_fusion")
    assert loaded.config.block_size == 8 and loaded.voxel_size == 0.01
    assert_same_snapshot(snapshot(loaded), snapshot(m))


@pytest.mark.parametrize("index", INDEX_BACKENDS)
def test_round_trip_empty_map(tmp_path, index):
    m = SemanticVoxelMap(MapConfig(voxel_size=0.05, feature_dim=D_F, index=index))
    save_map(m, tmp_path / "empty.safetensors")
    loaded = load_map(tmp_path / "empty.safetensors", index=index)
    assert len(loaded) == 0 and loaded.feature_kind == "none"
    loaded.write(np.array([[1, 2, 3]], np.int32), label=np.array([4]))
    assert int(loaded.crop(np.array([[1, 2, 3]])).label[0]) == 4


@pytest.mark.parametrize("index", INDEX_BACKENDS)
def test_lru_order_survives_save_and_load(tmp_path, index):
    m = SemanticVoxelMap(MapConfig(voxel_size=0.05, feature_dim=D_F, index=index))
    groups = [_cube((-100, 0, 0)), _cube((0, 0, 0)), _cube((100, 0, 0))]
    for g in (groups[1], groups[0], groups[2]):
        m.insert(g)
    m.insert(groups[1])  # order of last observation: 0, 2, 1
    path = tmp_path / "lru.safetensors"
    save_map(m, path)
    loaded = load_map(path, index=index)
    group_bytes = groups[0].shape[0] * loaded.row_bytes + 8 * loaded.block_bytes
    loaded.prune_bytes(int(1.4 * group_bytes))
    assert bool((loaded.lookup(groups[1]) >= 0).all())
    assert bool((loaded.lookup(groups[0]) < 0).all())
    # New observations after loading are newer than everything in the file.
    loaded2 = load_map(path, index=index)
    loaded2.insert(groups[0][:1])  # its block is now the newest; group 2 is the oldest
    block_cost = 64 * loaded2.row_bytes + loaded2.block_bytes
    loaded2.prune_bytes(9 * block_cost + block_cost // 2)  # room for group 1 and one more block
    assert bool((loaded2.lookup(groups[0][:1]) >= 0).all())
    assert bool((loaded2.lookup(groups[1]) >= 0).all())
    assert bool((loaded2.lookup(groups[2]) < 0).all())
    assert len(loaded2) == 9 * 64


def test_file_holds_no_pickle_and_declares_format(saved):
    _, path = saved
    tensors, meta = read_raw(path)
    assert meta["format"] == map_file.FORMAT and meta["version"] == str(map_file.VERSION)
    assert set(tensors) == TENSOR_NAMES
    crcs = json.loads(meta["crc32"])
    assert crcs == {k: crc32(t) for k, t in tensors.items()}
    assert b"\x80\x04\x95" not in path.read_bytes()[:64]  # no pickle protocol-4 header


# ---------------------------------------------------------------------------
# Atomic writes
# ---------------------------------------------------------------------------


def test_save_leaves_no_temporary_files(tmp_path):
    m = make_map()
    save_map(m, tmp_path / "a.safetensors")
    save_map(m, tmp_path / "a.safetensors")  # overwrite
    assert sorted(os.listdir(tmp_path)) == ["a.safetensors"]


def test_save_into_a_directory_path_raises_oserror_and_cleans_up(tmp_path):
    target = tmp_path / "is_a_dir.safetensors"
    target.mkdir()
    with pytest.raises(OSError):
        save_map(make_map(), target)
    assert target.is_dir()
    assert sorted(os.listdir(tmp_path)) == ["is_a_dir.safetensors"]


def test_failed_save_keeps_existing_file(saved, monkeypatch):
    m, path = saved
    original = path.read_bytes()

    def failing_save(tensors, filename, metadata=None):
        with open(filename, "wb") as fh:
            fh.write(b"\x00" * 100)  # half-written
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(tensor_file, "save_file", failing_save)
    other = make_map(seed=9)
    with pytest.raises(OSError):
        save_map(other, path)
    assert path.read_bytes() == original
    assert sorted(os.listdir(path.parent)) == [path.name]
    monkeypatch.undo()
    assert_same_snapshot(snapshot(load_map(path)), snapshot(m))


def test_save_that_writes_nothing_raises_oserror(saved, monkeypatch):
    _, path = saved
    original = path.read_bytes()
    monkeypatch.setattr(tensor_file, "save_file", lambda tensors, filename, metadata=None: None)
    with pytest.raises(OSError):
        save_map(make_map(seed=2), path)
    assert path.read_bytes() == original
    assert sorted(os.listdir(path.parent)) == [path.name]


# ---------------------------------------------------------------------------
# Load errors
# ---------------------------------------------------------------------------


def test_map_file_error_is_a_value_error():
    assert issubclass(MapFileError, ValueError)


def test_missing_file(tmp_path):
    assert_load_fails(tmp_path / "nowhere.safetensors")


def test_directory_instead_of_file(tmp_path):
    (tmp_path / "dir.safetensors").mkdir()
    assert_load_fails(tmp_path / "dir.safetensors")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.safetensors"
    path.write_bytes(b"")
    assert_load_fails(path)


def test_truncated_file_at_several_offsets(saved, tmp_path):
    _, path = saved
    data = path.read_bytes()
    start = data_offset(path)
    offsets = sorted({1, 4, 7, 8, 9, 40, start - 1, start, start + 1, (start + len(data)) // 2, len(data) - 1})
    for cut in offsets:
        bad = tmp_path / f"truncated_{cut}.safetensors"
        bad.write_bytes(data[:cut])
        assert_load_fails(bad)


def test_flipped_bytes_in_data_section_fail_checksum(saved, tmp_path):
    _, path = saved
    data = bytearray(path.read_bytes())
    start = data_offset(path)
    rng = np.random.default_rng(5)
    positions = [start, len(data) - 1, *rng.integers(start, len(data), 8).tolist()]
    for i, pos in enumerate(positions):
        corrupt = bytearray(data)
        corrupt[pos] ^= 0x10
        bad = tmp_path / f"flipped_{i}.safetensors"
        bad.write_bytes(bytes(corrupt))
        with pytest.raises(MapFileError, match="checksum") as info:
            load_map(bad)
        assert bad.name in str(info.value)


@pytest.mark.parametrize("kind", ["random", "text", "json_header_garbage", "huge_header_length"])
def test_non_safetensors_files(tmp_path, kind):
    path = tmp_path / f"{kind}.safetensors"
    rng = np.random.default_rng(6)
    if kind == "random":
        path.write_bytes(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    elif kind == "text":
        path.write_text("voxel map\n" * 100)
    elif kind == "json_header_garbage":
        header = b"{not json at all}"
        path.write_bytes(struct.pack("<Q", len(header)) + header + b"\x00" * 16)
    else:
        path.write_bytes(struct.pack("<Q", 2**40) + b"{}")
    assert_load_fails(path)


@pytest.mark.parametrize(
    "change, fragment",
    [
        ({"format": "someone.else.Map"}, "format"),
        ({"format": None}, "format"),
        ({"version": "3"}, "version"),
        ({"version": None}, "version"),
        ({"feature_kind": "mystery"}, "feature kind"),
        ({"label_space": "{broken json"}, "metadata"),
        ({"voxel_size": "huge"}, "metadata"),
        ({"num_voxels": "3"}, "header says"),
        ({"crc32": None}, "checksum"),
    ],
)
def test_foreign_or_inconsistent_metadata(saved, tmp_path, change, fragment):
    _, path = saved
    tensors, meta = read_raw(path)
    for key, value in change.items():
        if value is None:
            meta.pop(key)
        else:
            meta[key] = value
    bad = write_crafted(tmp_path / "foreign.safetensors", tensors, meta, fix_crc="crc32" in meta)
    with pytest.raises(MapFileError, match=fragment) as info:
        load_map(bad)
    assert "foreign.safetensors" in str(info.value)


@pytest.mark.parametrize("missing", ["tick", "num_voxels", "voxel_size", "block_size", "feature_dim", "label_space"])
def test_missing_metadata_field_raises_map_file_error(saved, tmp_path, missing):
    _, path = saved
    tensors, meta = read_raw(path)
    meta.pop(missing)
    bad = write_crafted(tmp_path / "incomplete.safetensors", tensors, meta)
    assert_load_fails(bad)


def test_plain_safetensors_without_metadata(tmp_path):
    path = tmp_path / "plain.safetensors"
    save_file({"weight": torch.zeros(3, 3)}, str(path))
    assert_load_fails(path)


@pytest.mark.parametrize(
    "edit, fragment",
    [
        (lambda t: t.pop("color"), "tensors"),
        (lambda t: t.__setitem__("extra", torch.zeros(2)), "tensors"),
        (lambda t: t.__setitem__("count", t["count"].to(torch.int32)), "count"),
        (lambda t: t.__setitem__("feature", t["feature"][:, :-1].contiguous()), "feature"),
        (lambda t: t.__setitem__("label", t["label"][:-1].contiguous()), "label"),
        (lambda t: t["feature"].__setitem__((0, 0), float("nan")), "non-finite"),
        (lambda t: t["label"].__setitem__(0, 20), "label"),
        (lambda t: t["confidence"].__setitem__(0, 1.5), "confidence"),
        (lambda t: t["count"].__setitem__(0, -4), "negative"),
        (lambda t: t["instance"].__setitem__(0, -2), "instance"),
        (lambda t: t.__setitem__("instance", t["instance"].to(torch.int32)), "instance"),
        (lambda t: t["keys"].__setitem__(1, t["keys"][0]), "duplicate"),
        (lambda t: t.__setitem__("block_ticks", t["block_ticks"][:-1].contiguous()), "block"),
    ],
)
def test_invalid_tensors_with_valid_checksums(saved, tmp_path, edit, fragment):
    _, path = saved
    tensors, meta = read_raw(path)
    tensors = {k: v.clone() for k, v in tensors.items()}
    edit(tensors)
    bad = write_crafted(tmp_path / "crafted.safetensors", tensors, meta)
    with pytest.raises(MapFileError, match=fragment) as info:
        load_map(bad)
    assert "crafted.safetensors" in str(info.value)


def test_label_space_mismatch(saved):
    _, path = saved
    assert_load_fails(path, label_space=nyu40())
    with pytest.raises(MapFileError, match="scannet20"):
        load_map(path, label_space=LabelSpace.load("label_fusion"))


def test_failed_load_leaves_live_map_untouched(saved, tmp_path):
    m, path = saved
    before = snapshot(m)
    bad = tmp_path / "bad.safetensors"
    data = path.read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(MapFileError):
        load_map(bad)
    with pytest.raises(MapFileError):
        load_map(path, label_space=nyu40())
    assert_same_snapshot(snapshot(m), before)
    assert m.feature_kind == "label_evidence"
    assert path.read_bytes() == data


@pytest.mark.parametrize("index", INDEX_BACKENDS)
def test_replace_with_loaded_map(saved, index):
    m, path = saved
    live = SemanticVoxelMap(MapConfig(voxel_size=0.05, feature_dim=D_F, index=index), scannet20())
    live.insert(np.array([[500, 500, 500]], np.int32))
    loaded = load_map(path, label_space=live.label_space, index=live.index_backend)
    live.replace_with(loaded)
    assert live.index_backend == index
    assert len(live) == len(m)
    assert live.feature_kind == "label_evidence"
    assert_same_snapshot(snapshot(live), snapshot(m))
    np.testing.assert_array_equal(live.lookup(np.array([[500, 500, 500]])).numpy(), [-1])
    # The live map keeps working after the swap.
    live.write(np.array([[600, 0, 0]], np.int32), label=np.array([1]))
    assert int(live.crop(np.array([[600, 0, 0]])).label[0]) == 1


@pytest.mark.parametrize(
    "key, value",
    [("voxel_size", "-1.0"), ("voxel_size", "nan"), ("voxel_size", "inf"), ("block_size", "0"), ("feature_dim", "0"), ("tick", "abc")],
)
def test_out_of_range_metadata_raises_map_file_error(saved, tmp_path, key, value):
    _, path = saved
    tensors, meta = read_raw(path)
    meta[key] = value
    bad = write_crafted(tmp_path / "odd_meta.safetensors", tensors, meta)
    assert_load_fails(bad)


def test_a_failing_write_leaves_nothing_beside_the_target(tmp_path, monkeypatch):
    """safetensors writes its own .tmpXXXXXX first; a full disk must not leave it (or ours) behind."""
    m = make_map()
    save_map(m, tmp_path / "a.safetensors")
    old = (tmp_path / "a.safetensors").read_bytes()

    def no_space(tensors, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"\0" * 100)
        with open(os.path.join(os.path.dirname(filename), ".tmpQWERTY"), "wb") as f:
            f.write(b"\0" * 100)
        raise tensor_file.SafetensorError("No space left on device (os error 28)")

    monkeypatch.setattr(tensor_file, "save_file", no_space)
    with pytest.raises(OSError, match="No space left"):
        save_map(m, tmp_path / "a.safetensors")
    assert sorted(os.listdir(tmp_path)) == ["a.safetensors"]
    assert (tmp_path / "a.safetensors").read_bytes() == old


def test_stale_temporaries_of_dead_writers_are_removed_and_live_ones_kept(tmp_path):
    from alster_mapping.core.atomic_file import remove_stale_temporaries

    target = tmp_path / "map.safetensors"
    dead = tmp_path / ".map.safetensors.tmp-999999-abc"  # pid 999999 does not run (pid_max is smaller)
    dead.mkdir()
    (dead / ".tmpXYZ").write_bytes(b"x")
    live = tmp_path / f".map.safetensors.tmp-{os.getppid()}-def"  # a running process: a save in progress
    live.mkdir()
    other = tmp_path / ".other.safetensors.tmp-999999-ghi"  # another file's
    other.mkdir()
    assert remove_stale_temporaries(target) == [dead]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, other.name])
    assert remove_stale_temporaries(tmp_path / "no_dir" / ("x" * 300)) == []  # never raises


def test_names_the_os_rejects_fail_as_map_file_errors(tmp_path):
    with pytest.raises(MapFileError, match="cannot be opened.*too long"):
        load_map(tmp_path / ("m" * 300 + ".safetensors"))
    with pytest.raises(MapFileError, match="does not exist"):
        load_map(tmp_path / "nul\0.safetensors")


def test_keys_beyond_the_packed_range_are_refused(saved):
    _, path = saved
    tensors, meta = tensor_file.read_tensor_file(path)
    keys = tensors["keys"].clone()
    keys[0] = torch.tensor([1 << 21, 0, 0])  # packs to the same code as (0, 0, 0)
    tensors["keys"] = keys
    tensor_file.write_tensor_file(path, tensors, {k: v for k, v in meta.items() if k != tensor_file.CHECKSUM_KEY})
    with pytest.raises(MapFileError, match="voxel keys must lie"):
        load_map(path)
