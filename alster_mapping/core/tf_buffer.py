"""A small ROS-free transform buffer: the part of tf2's ``BufferCore`` the mapper needs.

Frames form a forest: every child frame has exactly one parent. An edge is either
static (timeless, from ``/tf_static``) or dynamic (a time-sorted history of samples,
from ``/tf``). ``lookup`` composes the edges from the source frame up to the common
ancestor and down to the target frame, interpolating every dynamic edge at the
requested time (linear translation, slerp rotation, via ``geometry.interpolate_pose``).

Re-parenting: setting a transform for a child under a different parent *replaces* the
child's edge (its old history is discarded), as when a localisation node takes over a
frame; the count of such events is kept in ``reparented``. An edge that would close a
cycle raises ``TransformError``. A static edge replacing a dynamic one (or vice versa)
is treated the same way.

Frame names have one leading "/" stripped (ROS 1 style ids, e.g. from converted bags),
so "/map" and "map" are the same frame.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

import numpy as np

from .geometry import check_rigid, interpolate_pose, invert_se3

# tf2's default cache length.
DEFAULT_CACHE_NS = 10_000_000_000
MAX_DEPTH = 100
"""Longest chain of links from a frame to its root that is accepted (robot trees are a few tens
of links deep): a deeper (or hostile) tree is refused link by link instead of making every
insertion and lookup walk it."""


class TransformError(ValueError):
    """A transform could not be stored or looked up."""


class FrameNotFound(TransformError, LookupError):
    """A frame named in a lookup has never been seen."""


class NotConnected(TransformError, LookupError):
    """Both frames exist but lie in different trees."""


class ExtrapolationError(TransformError):
    """A dynamic edge has no data close enough to the requested time."""


class InterpolationGapError(TransformError):
    """The samples of a dynamic edge around the requested time lie too far apart to interpolate."""


@dataclass
class _Edge:
    parent: str
    static: bool
    # Dynamic edges: sorted stamps [ns] and the matching (4, 4) float64 T_parent_child.
    stamps: list[int] = field(default_factory=list)
    transforms: list[np.ndarray] = field(default_factory=list)


def _normalise(frame: str) -> str:
    if not isinstance(frame, str):
        raise TransformError(f"frame names must be strings, got {frame!r}")
    name = frame[1:] if frame.startswith("/") else frame
    if not name:
        raise TransformError(f"invalid empty frame name {frame!r}")
    return name


def _ms(ns: int) -> str:
    return f"{ns / 1e6:.3f} ms"


class TransformBuffer:
    """Time-indexed tree of rigid transforms between named frames.

    cache_ns: how much history [ns] each dynamic edge keeps, measured back from its
    newest sample (tf2's default: 10 s); ``None`` keeps everything (offline bags).
    max_depth: the most links between a frame and its root (a new link that would make a
    longer chain raises TransformError).
    """

    def __init__(self, cache_ns: int | None = DEFAULT_CACHE_NS, max_depth: int = MAX_DEPTH):
        if cache_ns is not None and cache_ns < 0:
            raise ValueError(f"cache_ns must be non-negative or None, got {cache_ns}")
        self.cache_ns = cache_ns
        self.max_depth = max_depth
        self._edges: dict[str, _Edge] = {}
        # Frames stay known after re-parenting orphans them, so lookups say "not connected".
        self._known: set[str] = set()
        self.reparented = 0

    # ------------------------------------------------------------------ insertion

    def set_transform(
        self, parent: str, child: str, T_parent_child: np.ndarray, stamp_ns: int, static: bool = False
    ) -> None:
        """Store T_parent_child ((4, 4) rigid, metres) valid at ``stamp_ns`` (ns; ignored for static edges).

        Samples may arrive in any order; a sample at an existing stamp replaces it. A nearly
        rigid matrix is stored projected onto SO(3) (``geometry.make_rigid``). Raises
        TransformError for a clearly non-rigid matrix, a self-loop or a cycle.
        """
        parent, child = _normalise(parent), _normalise(child)
        if parent == child:
            raise TransformError(f"transform from frame {child!r} to itself")
        try:
            T = check_rigid(T_parent_child, f"transform {parent} -> {child}")
        except ValueError as exc:
            raise TransformError(str(exc)) from exc
        edge = self._edges.get(child)
        if edge is None or edge.parent != parent or edge.static != static:
            # Walking up from the new parent must not reach the child, or the tree would loop.
            frame: str | None = parent
            depth = 0
            while frame is not None:
                if frame == child:
                    raise TransformError(f"transform {parent} -> {child} would create a cycle")
                depth += 1
                if depth >= self.max_depth:
                    raise TransformError(f"transform {parent} -> {child} would make a chain of more than {self.max_depth} links")
                up = self._edges.get(frame)
                frame = up.parent if up is not None else None
            if edge is not None:
                self.reparented += 1
            edge = _Edge(parent, static)
            self._edges[child] = edge
        self._known.update((parent, child))
        if static:
            edge.stamps, edge.transforms = [0], [T]
            return
        stamp = int(stamp_ns)
        i = bisect.bisect_left(edge.stamps, stamp)
        if i < len(edge.stamps) and edge.stamps[i] == stamp:
            edge.transforms[i] = T
        else:
            edge.stamps.insert(i, stamp)
            edge.transforms.insert(i, T)
        if self.cache_ns is not None:
            cut = bisect.bisect_left(edge.stamps, edge.stamps[-1] - self.cache_ns)
            if cut:
                del edge.stamps[:cut]
                del edge.transforms[:cut]

    def clear(self) -> None:
        """Forget every frame and transform."""
        self._edges.clear()
        self._known.clear()
        self.reparented = 0

    # ------------------------------------------------------------------ queries

    @property
    def frames(self) -> set[str]:
        """Every frame name seen, as parent or child."""
        return set(self._known)

    def parent_of(self, frame: str) -> str | None:
        """The parent of ``frame``, or None for a root or an unknown frame."""
        edge = self._edges.get(_normalise(frame))
        return edge.parent if edge is not None else None

    def time_range(self, parent: str, child: str) -> tuple[int, int] | None:
        """(first, last) stamp [ns] of the dynamic edge parent -> child; None for static or missing edges."""
        edge = self._edges.get(_normalise(child))
        if edge is None or edge.static or edge.parent != _normalise(parent):
            return None
        return edge.stamps[0], edge.stamps[-1]

    def lookup(
        self,
        target_frame: str,
        source_frame: str,
        stamp_ns: int | None,
        tolerance_ns: int = 0,
        max_gap_ns: int | None = None,
    ) -> np.ndarray:
        """T_target_source (4, 4) float64: maps points in ``source_frame`` into ``target_frame`` at ``stamp_ns``.

        stamp_ns: time in ns; ``None`` means the latest time every dynamic edge on the
        path has data for (tf2's "time 0"). A dynamic edge is interpolated between the
        samples bracketing the time; beyond its first or last sample the nearest sample
        is used if the gap is at most ``tolerance_ns``, else ExtrapolationError (naming
        the edge and the gap). max_gap_ns: bracketing samples further apart than this
        are not interpolated (InterpolationGapError: the motion between them is unknown);
        None = no limit, as tf2. FrameNotFound / NotConnected for unknown or unconnected frames.
        """
        target, source = _normalise(target_frame), _normalise(source_frame)
        path_up, path_down = self._path(target, source)
        if stamp_ns is None:
            ends = [self._edges[f].stamps[-1] for f in path_up + path_down if not self._edges[f].static]
            stamp_ns = min(ends) if ends else 0
        if tolerance_ns < 0:
            raise ValueError(f"tolerance_ns must be non-negative, got {tolerance_ns}")
        # T_ancestor_source, composed from the ancestor downwards.
        T_anc_source = np.eye(4)
        for frame in reversed(path_up):
            T_anc_source = T_anc_source @ self._edge_at(frame, int(stamp_ns), tolerance_ns, max_gap_ns)
        T_anc_target = np.eye(4)
        for frame in reversed(path_down):
            T_anc_target = T_anc_target @ self._edge_at(frame, int(stamp_ns), tolerance_ns, max_gap_ns)
        return invert_se3(T_anc_target) @ T_anc_source

    def can_transform(
        self, target_frame: str, source_frame: str, stamp_ns: int | None, tolerance_ns: int = 0, max_gap_ns: int | None = None
    ) -> bool:
        """Whether ``lookup`` with the same arguments would succeed."""
        try:
            self.lookup(target_frame, source_frame, stamp_ns, tolerance_ns, max_gap_ns)
        except TransformError:
            return False
        return True

    # ------------------------------------------------------------------ internals

    def _chain(self, frame: str) -> list[str]:
        """``frame`` and its ancestors, up to the root."""
        chain = [frame]
        while (edge := self._edges.get(chain[-1])) is not None:
            chain.append(edge.parent)
            if len(chain) > 2 * self.max_depth:  # re-parenting can join two chains below max_depth each
                raise TransformError(f"frame {frame!r} lies more than {2 * self.max_depth} links below its root")
        return chain

    def _path(self, target: str, source: str) -> tuple[list[str], list[str]]:
        """Child frames of the edges from source up to the common ancestor, and from target up to it."""
        known = self._known
        for name, frame in (("source", source), ("target", target)):
            if frame not in known:
                raise FrameNotFound(f"{name} frame {frame!r} does not exist (known frames: {sorted(known)})")
        up, down = self._chain(source), self._chain(target)
        common = set(down)
        ancestor = next((f for f in up if f in common), None)
        if ancestor is None:
            raise NotConnected(
                f"frames {target!r} and {source!r} are not connected (roots {down[-1]!r} and {up[-1]!r})"
            )
        return up[: up.index(ancestor)], down[: down.index(ancestor)]

    def _edge_at(self, child: str, stamp: int, tolerance_ns: int, max_gap_ns: int | None = None) -> np.ndarray:
        """T_parent_child of the edge above ``child`` at ``stamp`` [ns]."""
        edge = self._edges[child]
        if edge.static:
            return edge.transforms[0]
        stamps = edge.stamps
        if stamp <= stamps[0] or stamp >= stamps[-1]:
            nearest = 0 if stamp <= stamps[0] else -1
            gap = abs(stamp - stamps[nearest])
            if gap > tolerance_ns:
                when = "before the first" if nearest == 0 else "after the last"
                raise ExtrapolationError(
                    f"lookup at {stamp} ns would extrapolate {_ms(gap)} {when} sample of edge "
                    f"{edge.parent} -> {child} (data spans {stamps[0]}..{stamps[-1]} ns, "
                    f"tolerance {_ms(tolerance_ns)})"
                )
            return edge.transforms[nearest]
        i = bisect.bisect_right(stamps, stamp)
        t0, t1 = stamps[i - 1], stamps[i]
        if t0 == stamp:
            return edge.transforms[i - 1]
        if max_gap_ns is not None and t1 - t0 > max_gap_ns:
            raise InterpolationGapError(
                f"lookup at {stamp} ns falls in a {_ms(t1 - t0)} gap between samples of edge "
                f"{edge.parent} -> {child} (at most {_ms(max_gap_ns)} is interpolated)"
            )
        return interpolate_pose(edge.transforms[i - 1], edge.transforms[i], (stamp - t0) / (t1 - t0))
