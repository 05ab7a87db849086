"""Worlds of the non-classic styles ("randomized", "shifted"; see ``style``): applying a style
to a built room and rendering it.

``_apply_style`` runs after the classic layout: it draws the world's families, replaces the
camera intrinsics by those of the drawn sensor, adds shape variants and clutter (the geometry
stream [seed, 12], shared by both styles) and restyles every material. ``_prepare_styled``
runs after the ray-casting scene is built: lights, colour camera, depth sensor and per-part
material flags. ``_render_styled`` renders a frame:

    colour  albedo x pattern x RGB light (+ highlights on shiny parts), developed by the
            world's ``imaging.ColourCamera`` (exposure, white balance, vignetting, blur,
            noise, tone curve, JPEG)
    depth   the clean depth through the world's ``sensor.DepthSensor`` (noise,
            quantisation, shadow band, flying pixels, dropouts)

Labels, instance ids and ``depth_clean`` are noise-free as in the classic style.
``_StyledMixin`` is a base of ``SyntheticWorld``; it reads ``seed``, ``config``, ``size``,
``objects`` and the scene tables of ``render`` and sets ``style_draw``, ``style_families``,
``intrinsics`` and the styled render state.
"""

from __future__ import annotations

import numpy as np

from .clutter import add_clutter, add_shape_variants
from .imaging import ColourCamera
from .lighting import LIGHTING_FAMILIES, shade, specular
from .materials import restyle_materials
from .patterns import styled_texture
from .records import SyntheticView
from .sensor import DepthSensor
from .style import draw_world_style
from .textures import GLASS


class _StyledMixin:
    """Style application and rendering of ``SyntheticWorld`` in a non-classic style."""

    def _apply_style(self, width: int, height: int) -> None:
        draw = draw_world_style(self.seed, self.style)
        self.style_draw = draw
        s = draw.stream
        cfg = self.config
        self._depth_sensor = DepthSensor(draw.sensor, np.random.default_rng([self.seed, 14, s]), width, height, cfg.min_depth, cfg.max_depth)
        self.intrinsics = self._depth_sensor.intrinsics
        geometry = np.random.default_rng([self.seed, 12])  # the same for both styles: same rooms
        add_shape_variants(self.objects, geometry)
        add_clutter(self, geometry)
        used = restyle_materials(self.objects, draw, np.random.default_rng([self.seed, 13, s]))
        self.style_families = {**draw.families(), **used}

    def _prepare_styled(self) -> None:
        draw, s = self.style_draw, self.style_draw.stream
        K = self.intrinsics
        self._lighting = LIGHTING_FAMILIES[draw.lighting](np.random.default_rng([self.seed, 15, s]), self.size)
        rng = np.random.default_rng([self.seed, 16, s])
        self._camera = ColourCamera(draw.imaging, rng, K.width, K.height)
        self._specular = (np.float32(rng.uniform(0.2, 0.6)), np.float32(rng.uniform(15, 60)))  # strength, exponent
        self._part_glass = np.append(self._part_tex[:-1] == GLASS, False)  # window panes: no depth
        self._part_shiny = np.array([q.shiny for q in self._parts] + [False]) & ~self._part_glass
        self._luma = np.array([0.299, 0.587, 0.114], dtype=np.float32)

    def _render_styled(self, T_world_camera: np.ndarray, stamp_ns: int, index: int) -> SyntheticView:
        cfg, K = self.config, self.intrinsics
        H, W = K.height, K.width
        T, t, dirs, z, part, n = self._cast(T_world_camera)
        rng = np.random.default_rng([self.seed, int(index), 7, self.style_draw.stream])

        pts, ndotd, n, u, v = self._hit_surface(t, dirs, z, part, n)
        albedo = self._part_rgb[part] * styled_texture(self._part_tex[part], self._part_params[part], u, v, self._part_phase[part])
        light = shade(self._lighting, pts, n)
        light[self._part_emissive[part]] = 1.0
        linear = albedo * light
        shiny = np.flatnonzero(self._part_shiny[part])
        if len(shiny):
            to_camera = -dirs[shiny] / self._ray_norm[shiny, None]
            linear[shiny] += specular(self._lighting, pts[shiny], n[shiny], to_camera, *self._specular)
        color = self._camera.develop(linear, rng, noise=cfg.noise)

        zc = np.where(z <= cfg.max_depth, z, np.float32(0)).reshape(H, W)
        if cfg.noise:
            cos_angle = (np.abs(ndotd) / self._ray_norm).reshape(H, W)
            luma = (albedo[:, 0] * self._luma[0] + albedo[:, 1] * self._luma[1] + albedo[:, 2] * self._luma[2]).reshape(H, W)
            glass, shiny = self._part_glass[part].reshape(H, W), self._part_shiny[part].reshape(H, W)
            depth = self._depth_sensor.measure(zc, cos_angle, luma, glass, shiny, rng)
        else:
            depth = zc.copy()
        return self._view(part, color, depth, zc, T, stamp_ns)
