"""Posed RGB-D sequences behind one interface: synthetic worlds, ScanNet-layout scenes, rosbags.

Training needs random access to a sequence's frames; evaluation replays them in order and
compares the map with labelled ground-truth points. ``open_sequence`` turns what a user
types on the command line into one of these:

    synthetic:SEED[:FRAMES][@STYLE]
                                a generated world (``data/synthetic/``) in render style
                                STYLE: classic (the default), randomized (the training
                                look of domain randomization) or shifted (held-out look),
                                e.g. ``synthetic:3:120@shifted``
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
    frames in order and counts the others in ``skipped`` (reason -> count, see
    ``skip_reason``) with the first message of each reason in ``problems``; random access
    that should be counted goes through ``tallied_frame``.
    ``ground_truth()`` gives the labelled points (a ``PointBlock``: xyz, raw label ids and
    instance ids, 0 where the source has none) or None.
    """

    name: str = "sequence"

    def __init__(self) -> None:
        self.skipped: collections.Counter[str] = collections.Counter()
        self.problems: dict[str, str] = {}
        # Counted by ``tallied_frame``, once per frame index.
        self._tallied: set[int] = set()
        self.frames_used = 0
        self.poses_projected = 0
        self.max_pose_correction = 0.0

    def count_skip(self, error: ValueError) -> None:
        """Count a frame that could not be used because of ``error`` in ``skipped`` / ``problems``."""
        reason = skip_reason(error)
        self.skipped[reason] += 1
        self.problems.setdefault(reason, str(error))

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
                self.count_skip(exc)

    def tallied_frame(self, index: int) -> RGBDFrame:
        """``frame(index)`` for random access that reads frames many times (training),
        counted once per index: a frame that raises ValueError in ``skipped`` /
        ``problems`` (the error is re-raised), a usable one in ``frames_used`` and, when its
        pose was projected onto SO(3), in ``poses_projected`` / ``max_pose_correction``."""
        seen = index in self._tallied
        self._tallied.add(index)
        try:
            frame = self.frame(index)
        except ValueError as exc:
            if not seen:
                self.count_skip(exc)
            raise
        if not seen:
            self.frames_used += 1
            if frame.pose_correction > 0.0:
                self.poses_projected += 1
                self.max_pose_correction = max(self.max_pose_correction, frame.pose_correction)
        return frame

    def tallied_counts(self) -> dict:
        """What ``tallied_frame`` counted (``frame_counts``)."""
        return frame_counts(self.frames_used, self.skipped, self.poses_projected, self.max_pose_correction)

    def ground_truth(self) -> PointBlock | None:
        return None


def skip_reason(error: ValueError) -> str:
    """A short reason to count a frame that raised ``error`` under: the error's ``reason``
    attribute where it has one (ScanNet readers: "invalid pose", "missing depth"...), else
    its type and the message up to the first colon."""
    reason = getattr(error, "reason", None)
    return str(reason) if reason else f"{type(error).__name__}: {str(error).split(':')[0]}"


def frame_counts(frames: int, skipped: dict[str, int], poses_projected: int, max_pose_correction: float) -> dict:
    """Frame counts for a JSON summary, in the keys ``describe_frames`` reads: frames used,
    skipped (reason -> count), poses projected onto SO(3) and the largest error corrected."""
    return {"frames": frames, "skipped": dict(skipped), "poses_projected": poses_projected, "max_pose_correction": max_pose_correction}


def describe_frames(counts: dict, used: str = "mapped") -> str:
    """One line of frame counts: "N frames mapped, M skipped (reason: count, ...), K poses
    projected onto SO(3) (max error E)", reasons most frequent first.

    counts: {"frames": frames used, "skipped": {reason: count}, "poses_projected": count,
    "max_pose_correction": the largest orthonormality error projected away}. used: what
    was done with the frames ("mapped", "trained on").
    """
    skipped = counts["skipped"]
    reasons = ", ".join(f"{reason}: {count}" for reason, count in sorted(skipped.items(), key=lambda item: -item[1]))
    line = f"{counts['frames']} frames {used}, {sum(skipped.values())} skipped" + (f" ({reasons})" if reasons else "")
    line += f", {counts['poses_projected']} poses projected onto SO(3)"
    return line + (f" (max error {counts['max_pose_correction']:.1e})" if counts["poses_projected"] else "")


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
    ``width`` x ``height`` pixels) in render ``style`` ("classic", "randomized" for training
    with domain randomization, "shifted" for the held-out look; see ``data.synthetic``).
    Frames are rendered on demand and are identical for the same arguments (the noise of
    frame i is seeded by (seed, i)). The name is ``synthetic:SEED``, with ``@STYLE`` appended
    for a non-classic style, as ``open_sequence`` reads it."""

    def __init__(self, seed: int, num_frames: int = 80, width: int = 320, height: int = 240, style: str = "classic"):
        super().__init__()
        from .synthetic import SyntheticWorld  # the generator builds its scene on construction

        self.seed = int(seed)
        self.style = style
        self.name = f"synthetic:{self.seed}" + ("" if style == "classic" else f"@{style}")
        self.world = SyntheticWorld(self.seed, width, height, style=style)
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
            self._take_bag_skips()
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
        self._take_bag_skips()

    def _take_bag_skips(self) -> None:
        self.skipped.update(self.bag.skipped)
        for reason, message in self.bag.problems.items():
            self.problems.setdefault(reason, message)

    def ground_truth(self) -> PointBlock | None:
        if self.ground_truth_ply is None:
            return None
        from .scannet import read_labels_ply

        return read_labels_ply(self.ground_truth_ply)


def is_bag(path: Path) -> bool:
    """Whether ``path`` looks like a ROS 2 bag (a directory with metadata.yaml, or a .db3/.mcap file)."""
    return (path.is_dir() and (path / "metadata.yaml").is_file()) or path.suffix in (".db3", ".mcap")


def parse_synthetic_spec(spec: str, frames: int = 80) -> tuple[int, int, str]:
    """(seed, frames, style) of ``synthetic:SEED[:FRAMES][@STYLE]``; ``frames`` and the classic
    style where the spec leaves them out. ValueError (naming the spec and the syntax) for
    anything else, including an unknown style."""
    from .synthetic.style import STYLES  # the style names live with the generator

    body, at, style = spec[len(SYNTHETIC_PREFIX) :].partition("@")
    syntax = "synthetic:SEED[:FRAMES][@STYLE]"
    parts = body.split(":")
    try:
        seed = int(parts[0])
        if len(parts) > 1:
            frames = int(parts[1])
    except ValueError:
        raise ValueError(f"{spec!r}: expected {syntax} with integers SEED and FRAMES (synthetic:SEED or synthetic:SEED:FRAMES)") from None
    if len(parts) > 2 or seed < 0 or frames < 1:
        raise ValueError(f"{spec!r}: expected {syntax}, seed >= 0 and frames >= 1")
    if at and style not in STYLES:
        raise ValueError(f"{spec!r}: unknown style {style!r} in {syntax}; STYLE is one of {', '.join(STYLES)}")
    return seed, frames, style or "classic"


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
        seed, frames, style = parse_synthetic_spec(spec, frames)
        return SyntheticSequence(seed, frames, width, height, style=style)
    path = Path(spec)
    if not path.exists():
        raise FileNotFoundError(f"{spec}: no such sequence (a path, or synthetic:SEED[:FRAMES][@STYLE])")
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
