"""Keyframes: a bounded store of posed RGB-D views chosen for coverage, kept for offline
refinement of the map (SAFNet, ``~/refine_semantics``, issue 12).

Coverage is counted in coarse cells (``cell_size``, 10 cm by default) that a frame's depth
pixels fall into, sampled every ``pixel_step`` pixels. A frame becomes a keyframe when at
least ``min_new_fraction`` of the cells it sees are seen by no keyframe yet. The store is
bounded by count and by the bytes of its images; over either bound the *least useful*
keyframe goes first: the one that alone covers the fewest cells (ties: the oldest).

A keyframe keeps colour (uint8) and depth in millimetres (uint16, 0 = none): 320x240 is
230 + 154 kB, so the default budget of 64 MB holds about 170 such keyframes, or 40 at
640x480. ``select_views`` is the paper's view selection for a chunk of the map (SAFNet
section IV-B-1: the view that covers the most not yet covered points, greedily), over
``keyframe_visibility``, computed once per map.

Thread-safety: the mapper adds keyframes while a refinement job reads a snapshot; both go
through the store's lock, and a ``Keyframe`` is never changed after it is made.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from scipy import sparse

from ..core.camera import CameraIntrinsics
from ..core.config import param
from ..core.frame import RGBDFrame
from ..core.geometry import backproject, pack_keys, seen_points, transform_points, voxel_keys
from ..core.tensor_file import TensorFileError, read_tensor_file, write_tensor_file

KEYFRAME_FORMAT = "alster_keyframes"
KEYFRAME_VERSION = 1
MAX_DEPTH_MM = 65535
"""Depth at or beyond this many millimetres is stored as no measurement."""


@dataclass
class KeyframeConfig:
    """``keyframes.*``: which frames the mapper keeps for ``~/refine_semantics``, and how many."""

    enabled: bool = param(True, "keep keyframes (the views ~/refine_semantics relabels the map from)")
    save_with_map: bool = param(True, "~/save_map also writes the keyframes beside the map (MAP.keyframes.safetensors); ~/load_map reads them back")
    max_count: int = param(200, "most keyframes kept", min=1, max=100000)
    max_megabytes: float = param(64.0, "most memory the keyframes' images take [MB] (320x240: 0.38 MB each)", min=0.1, max=1e6)
    min_new_fraction: float = param(
        0.25, "a frame becomes a keyframe when at least this share of the coverage cells it sees is seen by no keyframe", min=0.0, max=1.0
    )
    cell_size: float = param(0.1, "edge of the coverage cells [m]", min=0.01, max=10.0)
    max_range: float = param(3.0, "depth beyond this does not count as coverage [m]", min=0.1, max=100.0)
    pixel_step: int = param(4, "coverage is measured on every n-th pixel in each direction", min=1, max=64)


@dataclass(frozen=True)
class Keyframe:
    """One kept view. color: (H, W, 3) uint8. depth_mm: (H, W) uint16 millimetres, 0 = no
    measurement. T_world_camera: (4, 4) float64 optical-frame pose in the map frame.
    cells: sorted unique int64 packed codes of the coverage cells it sees."""

    color: np.ndarray
    depth_mm: np.ndarray
    intrinsics: CameraIntrinsics
    T_world_camera: np.ndarray
    stamp_ns: int = 0
    cells: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))

    @property
    def depth(self) -> np.ndarray:
        """(H, W) float32 metres, 0 = no measurement."""
        return self.depth_mm.astype(np.float32) / 1000.0

    @property
    def nbytes(self) -> int:
        """Bytes of its images (what the budget counts)."""
        return int(self.color.nbytes + self.depth_mm.nbytes)

    def frame(self) -> RGBDFrame:
        """As an ``RGBDFrame`` (depth in metres)."""
        return RGBDFrame(self.color, self.depth, self.intrinsics, self.T_world_camera, self.stamp_ns)


def depth_to_millimetres(depth: np.ndarray) -> np.ndarray:
    """(H, W) float metres -> (H, W) uint16 millimetres; no measurement (0, negative,
    non-finite, or beyond 65.534 m) becomes 0."""
    depth = np.asarray(depth, np.float32)
    good = np.isfinite(depth) & (depth > 0) & (depth * 1000.0 < MAX_DEPTH_MM)
    return np.where(good, np.rint(np.where(good, depth, 0.0) * 1000.0), 0).astype(np.uint16)


def intrinsics_row(k: CameraIntrinsics) -> list:
    """[fx, fy, cx, cy, width, height]: how a keyframe file stores intrinsics."""
    return [k.fx, k.fy, k.cx, k.cy, k.width, k.height]


def coverage_cells(frame: RGBDFrame, cell_size: float, max_range: float, pixel_step: int) -> np.ndarray:
    """Sorted unique int64 packed codes of the ``cell_size`` [m] cells that every
    ``pixel_step``-th pixel of ``frame``'s valid depth (within ``max_range`` [m]) lies in."""
    depth = torch.from_numpy(np.ascontiguousarray(frame.depth[::pixel_step, ::pixel_step]))
    points, _ = backproject(depth, frame.intrinsics.subsampled(pixel_step), max_range)
    if len(points) == 0:
        return np.empty(0, np.int64)
    keys = voxel_keys(transform_points(frame.T_world_camera, points), cell_size)
    return np.unique(pack_keys(keys).numpy())


class KeyframeStore:
    """The mapper's keyframes (see the module docstring). config: ``KeyframeConfig``."""

    def __init__(self, config: KeyframeConfig | None = None):
        self.config = config or KeyframeConfig()
        self._lock = threading.Lock()
        self._keyframes: list[Keyframe] = []
        self._covered = np.empty(0, np.int64)  # sorted union of the keyframes' cells
        self.counts = {"considered": 0, "added": 0, "evicted": 0, "no_depth": 0, "redundant": 0}

    def __len__(self) -> int:
        with self._lock:
            return len(self._keyframes)

    @property
    def nbytes(self) -> int:
        """Bytes of the kept images."""
        with self._lock:
            return sum(k.nbytes for k in self._keyframes)

    def keyframes(self) -> list[Keyframe]:
        """A snapshot of the keyframes, oldest first."""
        with self._lock:
            return list(self._keyframes)

    def clear(self) -> None:
        """Forget every keyframe (the map was cleared or replaced)."""
        with self._lock:
            self._keyframes = []
            self._covered = np.empty(0, np.int64)

    def consider(self, frame: RGBDFrame) -> bool:
        """Keep ``frame`` if it adds enough unseen coverage (then evict down to the budget);
        returns whether it was kept. A frame without valid depth in range is counted and
        not kept."""
        cfg = self.config
        cells = coverage_cells(frame, cfg.cell_size, cfg.max_range, cfg.pixel_step)
        with self._lock:
            self.counts["considered"] += 1
            if cells.size == 0:
                self.counts["no_depth"] += 1
                return False
            position = np.searchsorted(self._covered, cells).clip(max=max(len(self._covered) - 1, 0))
            seen = (self._covered[position] == cells) if len(self._covered) else np.zeros(len(cells), bool)
            if self._keyframes and 1.0 - seen.mean() < cfg.min_new_fraction:
                self.counts["redundant"] += 1
                return False
        depth = depth_to_millimetres(frame.depth)
        keyframe = Keyframe(frame.color.copy(), depth, frame.intrinsics, frame.T_world_camera.copy(), frame.stamp_ns, cells)
        return self.add(keyframe)

    def add(self, keyframe: Keyframe) -> bool:
        """Keep ``keyframe`` unconditionally, then evict the least useful ones down to the
        budget; returns whether ``keyframe`` itself is still kept."""
        with self._lock:
            self._keyframes.append(keyframe)
            self.counts["added"] += 1
            self._evict_to_budget()
            self._recount()
            return any(k is keyframe for k in self._keyframes)

    def _recount(self) -> None:
        """The union of the kept keyframes' cells (call with the lock held)."""
        self._covered = np.unique(np.concatenate([k.cells for k in self._keyframes])) if self._keyframes else np.empty(0, np.int64)

    def _evict_to_budget(self) -> None:
        budget = self.config.max_megabytes * 1e6
        while len(self._keyframes) > self.config.max_count or (
            len(self._keyframes) > 1 and sum(k.nbytes for k in self._keyframes) > budget
        ):
            self._keyframes.pop(int(np.argmin(self.unique_coverage(self._keyframes))))  # argmin: the oldest of ties
            self.counts["evicted"] += 1

    @staticmethod
    def unique_coverage(keyframes: list[Keyframe]) -> np.ndarray:
        """(K,) int64: how many coverage cells each keyframe alone sees (its usefulness)."""
        if not keyframes:
            return np.empty(0, np.int64)
        cells = np.concatenate([k.cells for k in keyframes])
        owner = np.repeat(np.arange(len(keyframes)), [len(k.cells) for k in keyframes])
        _, inverse, counts = np.unique(cells, return_inverse=True, return_counts=True)
        return np.bincount(owner[counts[inverse] == 1], minlength=len(keyframes))

    def stats(self) -> dict:
        """Count, megabytes, budget and the counters, for ``~/get_stats``."""
        with self._lock:
            return {
                "keyframes": len(self._keyframes),
                "megabytes": round(sum(k.nbytes for k in self._keyframes) / 1e6, 2),
                "max_count": self.config.max_count,
                "max_megabytes": self.config.max_megabytes,
                **self.counts,
            }

    # -- files --------------------------------------------------------------------------------

    def save(self, path: str | os.PathLike) -> Path:
        """Write the keyframes to ``path`` (``save_keyframes``)."""
        return save_keyframes(self.keyframes(), path)

    def load(self, path: str | os.PathLike) -> dict[str, int]:
        """Replace the keyframes with those in ``path`` (``load_keyframes``), evicting down to
        this store's budget; returns the invalid keyframes skipped, by reason. Raises
        ``TensorFileError`` for a file that is not a keyframe file (the store is unchanged)."""
        loaded, skipped = load_keyframes(path)
        with self._lock:
            self._keyframes = loaded
            self._evict_to_budget()
            self._recount()
        return skipped


def save_keyframes(keyframes: list[Keyframe], path: str | os.PathLike) -> Path:
    """Write ``keyframes`` to ``path`` (safetensors with checksums, atomically)."""
    tensors: dict[str, torch.Tensor] = {}
    for i, k in enumerate(keyframes):
        tensors[f"{i}.color"] = torch.from_numpy(np.ascontiguousarray(k.color))
        tensors[f"{i}.depth_mm"] = torch.from_numpy(np.ascontiguousarray(k.depth_mm))
        tensors[f"{i}.pose"] = torch.from_numpy(np.ascontiguousarray(k.T_world_camera))
        tensors[f"{i}.cells"] = torch.from_numpy(k.cells)
    meta = {
        "format": KEYFRAME_FORMAT,
        "version": str(KEYFRAME_VERSION),
        "keyframes": str(len(keyframes)),
        "intrinsics": json.dumps([intrinsics_row(k.intrinsics) for k in keyframes]),
        "stamps": json.dumps([k.stamp_ns for k in keyframes]),
    }
    return write_tensor_file(path, tensors, meta)


def load_keyframes(path: str | os.PathLike) -> tuple[list[Keyframe], dict[str, int]]:
    """Every keyframe in ``path``, and the skip counts by reason of those that do not
    validate (shapes, depth type, pose). Raises ``TensorFileError`` for a file that is not
    a keyframe file."""
    tensors, meta = read_tensor_file(path)
    if meta.get("format") != KEYFRAME_FORMAT:
        raise TensorFileError(f"{path} is not a keyframe file (format {meta.get('format')!r})")
    if int(meta.get("version", "0")) > KEYFRAME_VERSION:
        raise TensorFileError(f"{path} is keyframe format version {meta['version']}; this build reads up to {KEYFRAME_VERSION}")
    try:
        intrinsics, stamps = json.loads(meta["intrinsics"]), json.loads(meta["stamps"])
        count = int(meta["keyframes"])
    except (KeyError, ValueError) as exc:
        raise TensorFileError(f"{path}: keyframe metadata unreadable: {exc}") from exc
    loaded, skipped = [], {}
    for i in range(count):
        try:
            if len(intrinsics) != count or len(stamps) != count:
                raise ValueError("metadata lists do not match the keyframe count")
            depth = tensors[f"{i}.depth_mm"].numpy()
            if depth.dtype != np.uint16:
                raise ValueError(f"depth must be uint16 millimetres, got {depth.dtype}")
            frame = RGBDFrame(  # validates the images, intrinsics and pose
                tensors[f"{i}.color"].numpy(),
                depth.astype(np.float32) / 1000.0,
                CameraIntrinsics(*intrinsics[i]),
                tensors[f"{i}.pose"].numpy(),
                int(stamps[i]),
            )
            cells = np.unique(tensors[f"{i}.cells"].numpy().astype(np.int64))
            loaded.append(Keyframe(frame.color, depth, frame.intrinsics, frame.T_world_camera, frame.stamp_ns, cells))
        except (KeyError, ValueError, TypeError) as exc:
            reason = type(exc).__name__ if isinstance(exc, KeyError) else str(exc).split(":")[0][:80]
            skipped[reason] = skipped.get(reason, 0) + 1
    return loaded, skipped


def keyframe_file(map_path: str | os.PathLike) -> Path:
    """Where the keyframes saved with a map file go: ``room.safetensors`` -> ``room.keyframes.safetensors``."""
    path = Path(map_path)
    return path.with_name(path.name.removesuffix(".safetensors") + ".keyframes.safetensors")


def keyframe_visibility(points: np.ndarray, keyframes: list[Keyframe], max_range: float = 3.0, tolerance: float = 0.05) -> sparse.csc_array:
    """Which keyframe observes which of ``points`` (N, 3) [m] (``geometry.seen_points``: in
    view, within ``max_range`` [m], not hidden): a sparse (K, N) bool matrix, columns
    sliceable, computed once per map so that each chunk's choice only reads its columns (a
    point lies in about nine chunks at test, and is seen by a few keyframes)."""
    points = np.asarray(points, np.float64)
    rows, columns = [], []
    for index, k in enumerate(keyframes):
        seen = np.flatnonzero(seen_points(points, k.depth, k.intrinsics, k.T_world_camera, max_range, tolerance))
        rows.append(np.full(len(seen), index))
        columns.append(seen)
    row, column = (np.concatenate(parts) if parts else np.empty(0, np.int64) for parts in (rows, columns))
    return sparse.csc_array((np.ones(len(row), bool), (row, column)), shape=(len(keyframes), len(points)))


def greedy_views(seen: np.ndarray, count: int) -> tuple[list[int], np.ndarray]:
    """The views of a chunk (SAFNet section IV-B-1): repeatedly the keyframe that observes
    the most points not observed by those chosen so far, until ``count`` are chosen or no
    keyframe adds a point. seen: (K, N) bool, which keyframe observes which point. Returns
    (keyframe indices in the order chosen, (N,) bool of the points they observe)."""
    seen = np.asarray(seen, bool)
    covered = np.zeros(seen.shape[1], bool)
    chosen: list[int] = []
    while len(chosen) < count and len(seen):
        gains = (seen & ~covered).sum(1)
        gains[chosen] = -1
        best = int(np.argmax(gains))  # the first of ties
        if gains[best] <= 0:
            break
        chosen.append(best)
        covered |= seen[best]
    return chosen, covered


def select_views(
    points: np.ndarray, keyframes: list[Keyframe], count: int, max_range: float = 3.0, tolerance: float = 0.05
) -> tuple[list[int], np.ndarray]:
    """``greedy_views`` of ``points`` (N, 3) [m] among ``keyframes`` (``keyframe_visibility``)."""
    return greedy_views(keyframe_visibility(points, keyframes, max_range, tolerance).toarray(), count)
