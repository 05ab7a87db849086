"""``SyntheticWorld``: one seeded furnished room that renders posed RGB-D frames with ground
truth. It builds its room on construction (layout, then the ray-casting scene) and combines
the layout, renderer, trajectory and ground-truth parts (``layout``, ``render``,
``trajectory``, ``groundtruth``) with the non-classic render styles (``styled``)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from ...core.camera import CameraIntrinsics
from .config import SyntheticConfig
from .groundtruth import _GroundTruthMixin
from .layout import _LayoutMixin
from .records import SyntheticView, WorldObject
from .render import _RenderMixin
from .style import CLASSIC, WorldStyle, check_style
from .styled import _StyledMixin
from .trajectory import _TrajectoryMixin


class SyntheticWorld(_LayoutMixin, _RenderMixin, _StyledMixin, _TrajectoryMixin, _GroundTruthMixin):
    """A seeded furnished room that renders posed RGB-D frames with ground truth.

    seed: any non-negative int; the same seed (and style) gives bitwise-identical objects,
    trajectories, frames and ground-truth points. width, height: image size [px] (kept by
    every style; the non-classic styles vary the focal length). config: generator knobs
    (``SyntheticConfig()`` by default). style: "classic", "randomized" or "shifted" (see
    ``style``); None takes ``config.style``.

    Attributes of a non-classic world: ``style_draw`` (the ``style.WorldStyle`` it drew) and
    ``style_families`` (category -> the family names it uses); None for classic worlds.
    """

    style_draw: WorldStyle | None = None
    style_families: dict[str, tuple[str, ...]] | None = None

    def __init__(self, seed: int, width: int = 320, height: int = 240, config: SyntheticConfig | None = None, style: str | None = None):
        self.seed = int(seed)
        self.config = config or SyntheticConfig()
        self.style = check_style(self.config.style if style is None else style)
        f = self.config.focal_per_width * width
        self.intrinsics = CameraIntrinsics(f, f, (width - 1) / 2, (height - 1) / 2, width, height)
        rng = np.random.default_rng([self.seed, 1])
        cfg = self.config
        self.size = np.array([rng.uniform(*cfg.room_x_range), rng.uniform(*cfg.room_y_range), rng.uniform(*cfg.room_height_range)])
        self.objects: list[WorldObject] = []
        self._boxes: list[tuple[np.ndarray, np.ndarray]] = []  # occupied / reserved world AABBs
        self._footprints: list[tuple[np.ndarray, np.ndarray]] = []  # 2D AABBs the camera must avoid
        self._build_shell(rng)
        self._furnish(rng)
        if self.style != CLASSIC:
            self._apply_style(width, height)  # its own random streams: the classic draws stay as they are
        self._build_scene(rng)
        if self.style != CLASSIC:
            self._prepare_styled()
        self._gt: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._trajectory_attempts = 0  # of the last trajectory() call (for diagnostics)
        K = self.intrinsics
        v, u = np.mgrid[0:height, 0:width]
        self._rays_cam = np.stack([(u - K.cx) / K.fx, (v - K.cy) / K.fy, np.ones(u.shape)], -1).reshape(-1, 3).astype(np.float32)
        self._ray_norm = np.linalg.norm(self._rays_cam, axis=1)
        self._tri_part = self._tri_part.astype(np.int32)

    def sequence(self, num_frames: int) -> Iterator[SyntheticView]:
        """The ``trajectory(num_frames)`` frames rendered in order, stamped one frame period apart from 0."""
        for i, T in enumerate(self.trajectory(num_frames)):
            yield self.render(T, stamp_ns=i * self.config.frame_period_ns, index=i)
