"""Posed RGB-D sequences behind one interface: synthetic worlds, ScanNet-layout scenes, rosbags.

Training needs random access to a sequence's frames; evaluation replays them in order and
compares the map with labelled ground-truth points. ``open_sequence`` turns what a user
types on the command line into one of these:

    synthetic:SEED[:FRAMES]     a generated world (``data/synthetic/``)
    DIR                         an exported ScanNet scene (color/, depth/, pose/, intrinsic/)
    BAG                         a ROS 2 bag (a directory with metadata.yaml, or .db3/.mcap)
"""

from __future__ import annotations

import abc
import collections
import os
from collections.abc import Iterator
from pathlib import Path

from ..core.frame import RGBDFrame
from ..core.samples import PointBlock

SYNTHETIC_PREFIX = "synthetic:"


class Sequence(abc.ABC):
    """A posed RGB-D sequence with optional labelled ground-truth points.

    ``len(seq)`` frames; ``frame(i)`` returns the i-th ``RGBDFrame`` (raises ValueError for
    a frame that cannot be used; callers count and skip it); iterating yields the usable
    frames in order and counts the others in ``skipped`` (reason -> count).
    ``ground_truth()`` gives the labelled points (a ``PointBlock``: xyz, raw label ids and
    instance ids, 0 where the source has none) or None.
    """

    name: str = "sequence"

    def __init__(self) -> None:
        self.skipped: collections.Counter[str] = collections.Counter()

    @abc.abstractmethod
    def __len__(self) -> int:
        """Number of frames."""

    @abc.abstractmethod
    def frame(self, index: int) -> RGBDFrame:
        """Frame ``index`` (0-based); ValueError for a frame that cannot be used."""

    def __iter__(self) -> Iterator[RGBDFrame]:
        for i in range(len(self)):
            try:
                yield self.frame(i)
            except ValueError as exc:
                self.skipped[type(exc).__name__ + ": " + str(exc).split(":")[0]] += 1

    def ground_truth(self) -> PointBlock | None:
        return None


class FrameList(Sequence):
    """Frames already in memory (e.g. a test's), with optional ground-truth points."""

    def __init__(self, frames: list[RGBDFrame], name: str = "frames", ground_truth: PointBlock | None = None):
        super().__init__()
        self.frames = list(frames)
        self.name = name
        self._ground_truth = ground_truth

    def __len__(self) -> int:
        return len(self.frames)

    def frame(self, index: int) -> RGBDFrame:
        return self.frames[index]

    def ground_truth(self) -> PointBlock | None:
        return self._ground_truth


class SyntheticSequence(Sequence):
    """A trajectory through the synthetic world of ``seed`` (``num_frames`` frames, 10 Hz,
    ``width`` x ``height`` pixels). Frames are rendered on demand and are identical for the
    same arguments (the noise of frame i is seeded by (seed, i))."""

    def __init__(self, seed: int, num_frames: int = 80, width: int = 320, height: int = 240):
        super().__init__()
        from .synthetic import SyntheticWorld  # the generator builds its scene on construction

        self.seed = int(seed)
        self.name = f"synthetic:{self.seed}"
        self.world = SyntheticWorld(self.seed, width, height)
        self.poses = self.world.trajectory(num_frames)

    def __len__(self) -> int:
        return len(self.poses)

    def frame(self, index: int) -> RGBDFrame:
        return self.view(index).frame

    def view(self, index: int):
        """The full ``SyntheticView`` of frame ``index`` (frame, instance ids, clean depth)."""
        return self.world.render(self.poses[index], stamp_ns=index * self.world.config.frame_period_ns, index=index)

    def ground_truth(self) -> PointBlock:
        points, labels, instances = self.world.ground_truth_points()
        return PointBlock(points, labels, instances, name=self.name)


class ScanNetSequence(Sequence):
    """An exported ScanNet scene (every ``stride``-th frame), ground truth from its labelled PLY."""

    def __init__(self, path: str | os.PathLike, stride: int = 1):
        super().__init__()
        from .scannet import ScanNetScene

        self.scene = ScanNetScene(path)
        self.name = Path(path).name
        self.frame_ids = list(self.scene.frame_ids)[:: max(1, int(stride))]

    def __len__(self) -> int:
        return len(self.frame_ids)

    def frame(self, index: int) -> RGBDFrame:
        return self.scene.read_frame(self.frame_ids[index])

    def ground_truth(self) -> PointBlock | None:
        from .scannet import GT_SUFFIX

        if not (self.scene.path / f"{self.scene.name}{GT_SUFFIX}").exists():
            return None
        return self.scene.ground_truth()


class BagFrames(Sequence):
    """The frames of a ROS 2 bag, in order (no random access); ground truth from an optional
    labelled PLY in the ScanNet ``*.labels.ply`` layout. ``bag_options`` go to ``BagSequence``."""

    def __init__(self, path: str | os.PathLike, ground_truth_ply: str | os.PathLike | None = None, **bag_options):
        super().__init__()
        from .rosbag_io import BagSequence

        self.bag = BagSequence(path, **bag_options)
        self.name = Path(path).name
        self.ground_truth_ply = ground_truth_ply
        self._frames: list[RGBDFrame] | None = None

    def _all(self) -> list[RGBDFrame]:
        if self._frames is None:
            self._frames = list(self.bag)
            self.skipped.update(self.bag.skipped)
        return self._frames

    def __len__(self) -> int:
        return len(self._all())

    def frame(self, index: int) -> RGBDFrame:
        return self._all()[index]

    def __iter__(self) -> Iterator[RGBDFrame]:
        if self._frames is not None:
            yield from self._frames
            return
        yield from self.bag
        self.skipped.update(self.bag.skipped)

    def ground_truth(self) -> PointBlock | None:
        if self.ground_truth_ply is None:
            return None
        from .scannet import read_labels_ply

        return read_labels_ply(self.ground_truth_ply)


def is_bag(path: Path) -> bool:
    """Whether ``path`` looks like a ROS 2 bag (a directory with metadata.yaml, or a .db3/.mcap file)."""
    return (path.is_dir() and (path / "metadata.yaml").is_file()) or path.suffix in (".db3", ".mcap")


def open_sequence(
    spec: str,
    *,
    frames: int = 80,
    width: int = 320,
    height: int = 240,
    stride: int = 1,
    ground_truth_ply: str | os.PathLike | None = None,
    **bag_options,
) -> Sequence:
    """The sequence ``spec`` names (see the module docstring).

    frames, width, height: of synthetic sequences (``synthetic:SEED:FRAMES`` overrides
    frames). stride: ScanNet frame stride. ground_truth_ply: labelled points for a bag.
    Raises ValueError (FileNotFoundError for a missing path) with the spec in the message.
    """
    if spec.startswith(SYNTHETIC_PREFIX):
        parts = spec[len(SYNTHETIC_PREFIX) :].split(":")
        try:
            seed = int(parts[0])
            if len(parts) > 1:
                frames = int(parts[1])
        except ValueError:
            raise ValueError(f"{spec!r}: expected synthetic:SEED or synthetic:SEED:FRAMES with integers") from None
        if len(parts) > 2 or seed < 0 or frames < 1:
            raise ValueError(f"{spec!r}: expected synthetic:SEED[:FRAMES], seed >= 0 and frames >= 1")
        return SyntheticSequence(seed, frames, width, height)
    path = Path(spec)
    if not path.exists():
        raise FileNotFoundError(f"{spec}: no such sequence (a path, or synthetic:SEED[:FRAMES])")
    if is_bag(path):
        return BagFrames(path, ground_truth_ply, **bag_options)
    if path.is_dir():
        return ScanNetSequence(path, stride)
    raise ValueError(f"{spec}: neither a ROS 2 bag nor an exported ScanNet scene directory")


def parse_seed_range(seeds: tuple[int, ...]) -> list[int]:
    """``(first, last)`` -> [first .. last] (inclusive); a single value is one seed."""
    if len(seeds) == 1:
        return [int(seeds[0])]
    if len(seeds) != 2 or seeds[1] < seeds[0]:
        raise ValueError(f"seeds must be [first, last] with first <= last, got {list(seeds)}")
    return list(range(int(seeds[0]), int(seeds[1]) + 1))
