"""The map's block index on both backends (alster_mapping.map.voxel_index, block_hash_*.py).

Open3D's hash map and the sorted torch tables must be interchangeable: random operation
sequences agree with a plain dict model on each backend, and give the same outputs on
both - rows included, not just the same key sets. That holds because the layer above the
block hash is shared and never depends on buffer indices: whole-map views list blocks in
packed-key order and new voxels get rows in the order they first appear in a batch.
The backend choice (``MapConfig.index``) must work where Open3D cannot be imported.
"""

import importlib.util
import subprocess
import sys

import numpy as np
import pytest
import torch

from alster_mapping.core import jit
from alster_mapping.core.config import MapConfig, validate
from alster_mapping.core.geometry import pack_keys
from alster_mapping.core.labels import scannet20
from alster_mapping.core.tensor_file import read_tensor_file
from alster_mapping.map.map_file import load_map, save_map
from alster_mapping.map.voxel_index import VoxelBlockIndex, make_block_hash, resolve_index_backend
from alster_mapping.map.voxel_map import SemanticVoxelMap

B = 4
HAS_OPEN3D = importlib.util.find_spec("open3d") is not None
needs_open3d = pytest.mark.skipif(not HAS_OPEN3D, reason="needs open3d")
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


# ---------------------------------------------------------------------------
# The block hash itself
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("backend", [pytest.param("open3d", marks=needs_open3d), "torch"])
def test_block_hash_contract(backend):
    blocks = make_block_hash(backend, 8, torch.device("cpu"), 4)
    keys = torch.tensor([[0, 0, 0], [-1, 5, 2], [3, -7, 0], [9, 9, 9], [-4, -4, -4], [1, 0, 0]], dtype=torch.int32)
    tables = torch.arange(6 * 8, dtype=torch.int32).reshape(6, 8)
    buf = blocks.insert(keys, tables, torch.arange(6) * 10)  # past the capacity of 4: grows
    assert blocks.size() == 6 and blocks.capacity() >= 6
    assert sorted(buf.tolist()) == sorted(set(buf.tolist()))
    found_buf, found = blocks.find(torch.cat([keys, torch.tensor([[7, 7, 7]], dtype=torch.int32)]))
    np.testing.assert_array_equal(found.numpy(), [True] * 6 + [False])
    assert int(found_buf[-1]) == -1
    np.testing.assert_array_equal(blocks.keys()[found_buf[:6]].numpy(), keys.numpy())
    np.testing.assert_array_equal(blocks.tables()[found_buf[:6]].numpy(), tables.numpy())
    np.testing.assert_array_equal(blocks.ticks()[found_buf[:6]].numpy(), np.arange(6) * 10)
    active = blocks.active()
    codes = pack_keys(blocks.keys()[active])
    assert torch.equal(codes, torch.sort(codes).values) and active.shape == (6,)
    # Repeated and absent keys in an erase: each block goes once, nothing else changes.
    blocks.erase(torch.tensor([[-1, 5, 2], [-1, 5, 2], [7, 7, 7], [9, 9, 9]], dtype=torch.int32))
    assert blocks.size() == 4
    np.testing.assert_array_equal(blocks.find(keys)[1].numpy(), [True, False, True, False, True, True])
    # Freed slots are reused; survivors keep their contents through another growth.
    more = torch.tensor([[5, 5, 5], [6, 5, 5], [7, 5, 5]], dtype=torch.int32)
    blocks.insert(more, tables[:3], torch.tensor([1, 2, 3]))
    blocks.reserve(64)
    assert blocks.capacity() >= 64 and blocks.size() == 7
    all_keys = torch.cat([keys[[0, 2, 4, 5]], more])
    all_buf, _ = blocks.find(all_keys)
    assert torch.unique(all_buf).shape == (7,)
    np.testing.assert_array_equal(blocks.tables()[all_buf].numpy(), tables[[0, 2, 4, 5, 0, 1, 2]].numpy())
    np.testing.assert_array_equal(blocks.keys()[all_buf].numpy(), all_keys.numpy())
    assert blocks.active().shape == (7,)
    blocks.erase(blocks.keys()[blocks.active()].clone())
    assert blocks.size() == 0 and blocks.active().shape == (0,)
    assert not bool(blocks.find(keys)[1].any())


# ---------------------------------------------------------------------------
# Random operation sequences on VoxelBlockIndex
# ---------------------------------------------------------------------------


def operations(seed: int, steps: int = 70) -> list[tuple[str, tuple]]:
    """A reproducible sequence of (operation, arguments as CPU tensors) over a few thousand keys."""
    rng = np.random.default_rng(seed)
    # Negative and positive keys, ~3000 voxels in up to 12^3 blocks: the index grows far past
    # its 16 initial blocks.
    pool = np.unique(rng.integers(-24, 24, (3200, 3)), axis=0).astype(np.int32)
    absent = pool[:200] + 100  # outside the pool's range: never inserted

    def sample(n, with_absent=False):
        keys = pool[rng.integers(0, pool.shape[0], n)]  # with replacement: duplicates in a batch
        if with_absent:
            keys = np.concatenate([keys, absent[: n // 4]])[rng.permutation(n + min(n // 4, absent.shape[0]))]
        return torch.as_tensor(keys)

    def sample_blocks(n, with_absent=True):
        blocks = np.floor_divide(sample(n, with_absent).numpy(), B)
        return torch.as_tensor(blocks.astype(np.int32))

    ops = []
    kinds = ["insert", "find", "erase", "erase_blocks", "block_voxels", "set_block_ticks"]
    for step in range(steps):
        kind = "insert" if step < 6 else rng.choice(kinds, p=[0.35, 0.15, 0.15, 0.1, 0.15, 0.1])
        if step == steps // 2:
            ops.append(("erase", (torch.as_tensor(pool),)))  # empty: row and slot numbering restart
            continue
        if kind == "insert":
            ops.append(("insert", (sample(int(rng.integers(1, 700))),)))
        elif kind == "find":
            ops.append(("find", (sample(int(rng.integers(1, 400)), with_absent=True),)))
        elif kind == "erase":
            ops.append(("erase", (sample(int(rng.integers(1, 500)), with_absent=True),)))
        elif kind == "erase_blocks":
            ops.append(("erase_blocks", (sample_blocks(int(rng.integers(1, 40))),)))
        elif kind == "block_voxels":
            ops.append(("block_voxels", (sample_blocks(int(rng.integers(1, 60))),)))
        else:  # unique blocks: with a repeated block the tick that wins is unspecified
            blocks = torch.unique(sample_blocks(int(rng.integers(1, 60))), dim=0)
            ops.append(("set_block_ticks", (blocks, torch.as_tensor(rng.integers(0, 1000, blocks.shape[0])))))
    return ops


def apply(index: VoxelBlockIndex, name: str, args: tuple, tick: int) -> tuple[torch.Tensor, ...]:
    """Run one operation; returns its outputs plus the whole index state, on the CPU."""
    args = tuple(a.to(index.device) for a in args)
    if name == "insert":
        out = index.insert(args[0], tick)
    elif name == "find":
        out = (index.find(args[0]),)
    elif name == "erase":
        out = (index.erase(args[0]),)
    elif name == "erase_blocks":
        out = (index.erase_blocks(args[0]),)
    elif name == "block_voxels":
        out = index.block_voxels(args[0])
    else:
        index.set_block_ticks(*args)
        out = ()
    counters = torch.tensor([index.num_voxels, index.high_water, index.num_free_rows, index.num_blocks])
    return tuple(t.cpu() for t in (*out, *index.items(), *index.blocks(), counters))


def block_of(key: tuple) -> tuple:
    return tuple(int(c) // B for c in key)


class DictModel:
    """The index's contract in plain Python: key -> row, block -> tick."""

    def __init__(self):
        self.rows: dict[tuple, int] = {}
        self.ticks: dict[tuple, int] = {}

    def check(self, name: str, args: tuple, out: tuple, tick: int) -> None:
        keys = [tuple(k) for k in args[0].tolist()]
        if name == "insert":
            rows, allocated = out[0].tolist(), out[1].tolist()
            new = {k for k in keys if k not in self.rows}
            for k, r in zip(keys, rows):
                assert r == self.rows.get(k, r)
                self.rows.setdefault(k, r)  # the first occurrence's row: duplicates must match it
                assert r == self.rows[k]
                self.ticks[block_of(k)] = tick
            assert sorted(allocated) == sorted(self.rows[k] for k in new)
            assert len(set(self.rows.values())) == len(self.rows)
        elif name == "find":
            assert out[0].tolist() == [self.rows.get(k, -1) for k in keys]
        elif name in ("erase", "erase_blocks"):
            blocks = set(keys)
            gone = set(keys) if name == "erase" else {k for k in self.rows if block_of(k) in blocks}
            gone &= set(self.rows)
            assert sorted(out[0].tolist()) == sorted(self.rows.pop(k) for k in gone)
            occupied = {block_of(k) for k in self.rows}
            self.ticks = {b: t for b, t in self.ticks.items() if b in occupied}
        elif name == "block_voxels":
            by_block = {}
            for k, r in self.rows.items():
                by_block.setdefault(block_of(k), []).append((k, r))
            expected = [voxel for b in keys for voxel in by_block.get(b, [])]
            got = list(zip(map(tuple, out[0].tolist()), out[1].tolist()))
            assert sorted(got) == sorted(expected)
        elif name == "set_block_ticks":
            for b, t in zip(keys, args[1].tolist()):
                if b in self.ticks:
                    self.ticks[b] = t
        self.check_state(out[-6:])

    def check_state(self, state: tuple) -> None:
        keys, rows, block_keys, ticks, counts, counters = state
        assert dict(zip(map(tuple, keys.tolist()), rows.tolist())) == self.rows and keys.shape[0] == len(self.rows)
        assert dict(zip(map(tuple, block_keys.tolist()), ticks.tolist())) == self.ticks
        voxels_per_block = {b: 0 for b in self.ticks}
        for k in self.rows:
            voxels_per_block[block_of(k)] += 1
        assert dict(zip(map(tuple, block_keys.tolist()), counts.tolist())) == voxels_per_block
        num_voxels, high_water, num_free_rows, num_blocks = counters.tolist()
        assert num_voxels == len(self.rows) and num_blocks == len(self.ticks)
        assert num_free_rows == high_water - num_voxels
        assert all(0 <= r < high_water for r in self.rows.values())


@pytest.mark.parametrize(
    "backend, device, kernels",
    [
        pytest.param("open3d", "cpu", True, marks=needs_open3d),
        ("torch", "cpu", True),
        ("torch", "cpu", False),
        pytest.param("torch", "cuda", True, marks=needs_cuda),
    ],
)
def test_random_operations_follow_the_dict_model(backend, device, kernels):
    index = VoxelBlockIndex(B, device, initial_blocks=16, backend=backend, kernels=kernels)
    model = DictModel()
    grew = False
    for tick, (name, args) in enumerate(operations(seed=1), start=1):
        model.check(name, args, apply(index, name, args, tick), tick)
        grew |= index._blocks.capacity() > 16
    assert grew


@needs_open3d
@pytest.mark.parametrize("seed", [2, 3])
def test_both_backends_give_identical_outputs_rows_included(seed):
    indexes = [VoxelBlockIndex(B, "cpu", initial_blocks=16, backend=b) for b in ("open3d", "torch")]
    for tick, (name, args) in enumerate(operations(seed), start=1):
        a, b = (apply(index, name, args, tick) for index in indexes)
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert torch.equal(x, y), f"step {tick}: {name} differs between the backends"


@pytest.mark.skipif(not jit.available(), reason="numba is not installed")
@pytest.mark.parametrize("backend", [pytest.param("open3d", marks=needs_open3d), "torch"])
def test_fused_kernels_give_the_tensor_paths_outputs_rows_included(backend):
    indexes = [VoxelBlockIndex(B, "cpu", initial_blocks=16, backend=backend, kernels=k) for k in (True, False)]
    assert indexes[0]._fused and not indexes[1]._fused
    for tick, (name, args) in enumerate(operations(seed=5), start=1):
        a, b = (apply(index, name, args, tick) for index in indexes)
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert torch.equal(x, y), f"step {tick}: {name} differs between the kernels and the tensor path"


@pytest.mark.parametrize("kernels", [True, False])
def test_a_failed_row_allocation_leaves_no_voxel_behind(kernels):
    index = VoxelBlockIndex(B, "cpu", backend="torch", kernels=kernels)
    kept = torch.tensor([[0, 0, 0], [1, 2, 3]], dtype=torch.int32)
    rows, _ = index.insert(kept, 1)

    def out_of_memory(n):
        raise MemoryError("no rows")

    index._allocate = out_of_memory
    with pytest.raises(MemoryError):
        index.insert(torch.tensor([[5, 5, 5], [1, 1, 1], [1, 2, 3]], dtype=torch.int32), 2)
    probe = torch.tensor([[5, 5, 5], [1, 1, 1], [1, 2, 3], [0, 0, 0]], dtype=torch.int32)
    assert index.find(probe).tolist() == [-1, -1, int(rows[1]), int(rows[0])]
    assert index.num_voxels == 2 and index.items()[0].shape == (2, 3)


@needs_cuda
def test_torch_backend_on_cuda_matches_cpu():
    indexes = [VoxelBlockIndex(B, device, initial_blocks=16, backend="torch") for device in ("cpu", "cuda")]
    for tick, (name, args) in enumerate(operations(seed=4), start=1):
        a, b = (apply(index, name, args, tick) for index in indexes)
        assert all(torch.equal(x, y) for x, y in zip(a, b)), f"step {tick}: {name}"


# ---------------------------------------------------------------------------
# Whole maps on both backends
# ---------------------------------------------------------------------------


def evict_oldest_third(m: SemanticVoxelMap) -> None:
    """prune_bytes with the budget that evicts exactly the oldest third of the blocks.

    A fixed byte budget would not do: each backend estimates a block's bytes differently.
    """
    _, ticks, counts = m._index.blocks()
    oldest = torch.argsort(ticks, stable=True)[: ticks.shape[0] // 3]
    cost = int((counts[oldest] * m.row_bytes + m.block_bytes).sum())
    m.prune_bytes(m.nbytes() - cost)


def map_history(index: str, tmp_path) -> list[dict]:
    """Write, remove, prune, compact, save and load a map; its state after every stage."""
    rng = np.random.default_rng(11)
    m = SemanticVoxelMap(MapConfig(voxel_size=0.1, feature_dim=4, initial_capacity=64, index=index), scannet20())
    assert m.index_backend == index
    stages = []

    def record():
        keys, rows = m.items()
        block_keys, ticks, _ = m._index.blocks()
        arrays = m.to_arrays()
        stages.append({"keys": keys, "rows": rows, "block_keys": block_keys, "ticks": ticks, **vars(arrays)})

    for i in range(12):  # frames along a path: clusters of voxels, some overlapping
        keys = np.unique(rng.integers(-8, 8, (400, 3)) + np.array([3 * i, -i, 0]), axis=0).astype(np.int32)
        n = keys.shape[0]
        m.write(
            keys,
            feature=rng.normal(0, 1, (n, 4)),
            count=rng.integers(0, 50, n),
            label=rng.integers(-1, 20, n),
            confidence=rng.random(n),
            color=rng.integers(0, 256, (n, 3), dtype=np.uint8),
        )
    record()
    m.remove(m.keys()[::5])
    record()
    m.prune_radius(np.array([1.0, -0.5, 0.2]), 2.0)
    record()
    evict_oldest_third(m)
    record()
    m.compact()
    record()
    path = tmp_path / f"{index}.safetensors"
    save_map(m, path)
    for other in ("open3d", "torch"):  # loading into either backend
        m = load_map(path, index=other)
        record()
    return stages, read_tensor_file(path)


@needs_open3d
def test_maps_on_both_backends_hold_the_same_voxels_rows_and_files(tmp_path):
    open3d_stages, (open3d_tensors, open3d_meta) = map_history("open3d", tmp_path)
    torch_stages, (torch_tensors, torch_meta) = map_history("torch", tmp_path)
    assert len(open3d_stages[-1]["keys"]) > 100
    # Compared in map order, not sorted by key: both list voxels by packed block key.
    for stage, (a, b) in enumerate(zip(open3d_stages, torch_stages)):
        assert a.keys() == b.keys()
        for name in a:
            np.testing.assert_array_equal(np.asarray(a[name]), np.asarray(b[name]), err_msg=f"stage {stage}: {name}")
    # The same file contents (not bytes: safetensors orders the header's keys at random).
    assert open3d_meta == torch_meta and open3d_tensors.keys() == torch_tensors.keys()
    for name, tensor in open3d_tensors.items():
        assert torch.equal(tensor, torch_tensors[name]), name


def test_block_bytes_follow_the_backend():
    maps = {b: SemanticVoxelMap(MapConfig(index=b)) for b in ("torch", *(("open3d",) if HAS_OPEN3D else ()))}
    table = 4 * MapConfig().block_size ** 3
    # torch: 16 B of sorted code and buffer index plus half a block of doubling slack.
    assert maps["torch"].block_bytes == table + 20 + 16 + (table + 20) // 2
    if HAS_OPEN3D:
        assert maps["open3d"].block_bytes == table + 20 + 360


# ---------------------------------------------------------------------------
# Choosing the backend
# ---------------------------------------------------------------------------


@pytest.fixture
def without_open3d(monkeypatch):
    """As if open3d were not installed (the module that imports it must be imported afresh)."""
    monkeypatch.setitem(sys.modules, "open3d", None)
    monkeypatch.setitem(sys.modules, "open3d.core", None)
    monkeypatch.delitem(sys.modules, "alster_mapping.map.block_hash_open3d", raising=False)


def test_open3d_index_without_open3d_is_a_clear_error_and_auto_takes_torch(without_open3d, tmp_path):
    with pytest.raises(ValueError, match="index 'open3d' is not usable: open3d cannot be imported"):
        resolve_index_backend("open3d")
    with pytest.raises(ValueError, match="open3d cannot be imported"):
        SemanticVoxelMap(MapConfig(index="open3d"))
    assert resolve_index_backend("auto") == "torch"
    m = SemanticVoxelMap(MapConfig())
    assert m.index_backend == "torch"
    m.write(np.array([[1, -2, 3]], np.int32), label=np.array([5]))
    save_map(m, tmp_path / "m.safetensors")
    assert load_map(tmp_path / "m.safetensors").index_backend == "torch"
    with pytest.raises(ValueError, match="open3d cannot be imported"):
        load_map(tmp_path / "m.safetensors", index="open3d")


@needs_open3d
def test_auto_takes_open3d_where_it_imports():
    assert resolve_index_backend("auto") == "open3d"
    assert resolve_index_backend("open3d") == "open3d"
    assert resolve_index_backend("torch") == "torch"
    assert SemanticVoxelMap(MapConfig()).index_backend == "open3d"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks a machine without GPU")
@needs_open3d
def test_open3d_index_on_cuda_needs_cuda_in_open3d():
    with pytest.raises(ValueError, match="no CUDA"):
        resolve_index_backend("open3d", "cuda")
    assert resolve_index_backend("auto", "cuda") == "torch"


def test_unknown_index_backend_is_refused():
    with pytest.raises(ValueError, match="config index = 'hash': not one of"):
        validate(MapConfig(index="hash"))
    with pytest.raises(ValueError, match="must be one of"):
        resolve_index_backend("hash")


def test_the_map_modules_import_without_open3d():
    code = (
        "import sys\n"
        "import alster_mapping.map, alster_mapping.map.map_file, alster_mapping.map.voxel_map\n"
        "assert 'open3d' not in sys.modules, 'importing the map pulled in open3d'\n"
        "sys.modules['open3d'] = sys.modules['open3d.core'] = None\n"
        "from alster_mapping.core.config import MapConfig\n"
        "m = alster_mapping.map.SemanticVoxelMap(MapConfig())\n"
        "m.write([[0, 0, 0], [-9, 4, 2]], label=[1, 2])\n"
        "assert m.index_backend == 'torch' and len(m) == 2, m.index_backend\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
