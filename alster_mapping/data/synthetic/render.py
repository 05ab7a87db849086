"""Rendering of a synthetic world with Open3D ray casting: the scene of all primitives with
per-part tables (labels, instances, albedo, texture, emissive) and this world's lighting,
``_cast`` (the camera rays of a pose into the scene) and ``render``: RGB = albedo x texture x
shading + pixel noise, depth with a Kinect-like noise model (axial noise, dropouts at edges,
grazing angles and at random), noise-free labels and instance ids. That is the classic style;
worlds of the other styles share the scene and ``_cast`` and render in ``styled``.

``_RenderMixin`` is a base of ``SyntheticWorld``; ``_build_scene`` reads ``objects`` and
``size``, ``render`` reads ``config``, ``intrinsics``, ``seed`` and the camera rays
``_rays_cam`` / ``_ray_norm`` set up by the world.
"""

from __future__ import annotations

import numpy as np
import open3d as o3d

from ...core.frame import RGBDFrame
from .records import SyntheticView
from .shapes import _matmul_rows
from .textures import PLAIN, _texture


class _RenderMixin:
    """Ray-casting scene and renderer of ``SyntheticWorld``."""

    # -- scene ---------------------------------------------------------------------------

    def _build_scene(self, rng) -> None:
        parts = [q for obj in self.objects for q in obj.parts]
        part_obj = np.concatenate([[i] * len(obj.parts) for i, obj in enumerate(self.objects)]).astype(np.int64)
        verts, tris, tri_part, off = [], [], [], 0
        for k, q in enumerate(parts):
            verts.append(q.verts)
            tris.append(q.tris + off)
            tri_part.append(np.full(len(q.tris), k))
            off += len(q.verts)
        self._parts = parts
        mesh = o3d.t.geometry.TriangleMesh()
        mesh.vertex.positions = o3d.core.Tensor(np.concatenate(verts).astype(np.float32))
        mesh.triangle.indices = o3d.core.Tensor(np.concatenate(tris).astype(np.int32))
        self._scene = o3d.t.geometry.RaycastingScene()
        self._scene.add_triangles(mesh)
        self._tri_part = np.concatenate(tri_part)
        P = len(parts)
        # Per-part tables; index P (the last row) stands for "no hit".
        labels = np.array([self.objects[i].label for i in part_obj] + [0], dtype=np.uint16)
        inst = np.array([self.objects[i].instance for i in part_obj] + [0], dtype=np.uint16)
        self._part_label, self._part_inst = labels, inst
        self._part_rgb = np.array([q.rgb for q in parts] + [np.zeros(3)], dtype=np.float32)
        self._part_tex = np.array([q.tex for q in parts] + [PLAIN], dtype=np.int8)
        self._part_params = np.array([q.params for q in parts] + [(0.0, 0, 0, 0)], dtype=np.float32)
        self._part_u = np.array([q.u for q in parts] + [np.zeros(3)], dtype=np.float32)
        self._part_v = np.array([q.v for q in parts] + [np.zeros(3)], dtype=np.float32)
        self._part_phase = rng.uniform(0, 2 * np.pi, P + 1).astype(np.float32)
        self._part_emissive = np.array([q.emissive for q in parts] + [True])
        # Lighting of this world: ambient, a sun-like directional light and a ceiling light.
        self._ambient = np.float32(rng.uniform(0.3, 0.42))
        d = np.array([rng.uniform(-0.5, 0.5), rng.uniform(-0.5, 0.5), 1.0])
        self._sun = (d / np.linalg.norm(d) * rng.uniform(0.25, 0.4)).astype(np.float32)
        lamp = [rng.uniform(0.3, 0.7) * self.size[0], rng.uniform(0.3, 0.7) * self.size[1], self.size[2] - 0.05]
        self._lamp = np.array(lamp, dtype=np.float32)
        self._lamp_power = np.float32(rng.uniform(0.35, 0.55))
        self._white_balance = (1 + rng.uniform(-0.05, 0.05, 3)).astype(np.float32)
        self._P = P

    # -- rendering -----------------------------------------------------------------------

    def _cast(self, T_world_camera: np.ndarray):
        """Cast the camera rays of pose ``T_world_camera`` (4, 4) into the scene.

        Returns T (4, 4) float64, the camera position t (3,) and ray directions dirs (N, 3)
        float32 (world; z = 1 in the camera), the depth z (N,) float32 (0 where nothing is
        hit), the part index (N,) (``_P`` where nothing is hit) and the hit normals (N, 3).
        """
        T = np.asarray(T_world_camera, dtype=np.float64)
        R, t = T[:3, :3].astype(np.float32), T[:3, 3].astype(np.float32)
        dirs = _matmul_rows(self._rays_cam, R.T)
        rays = np.empty((dirs.shape[0], 6), dtype=np.float32)
        rays[:, :3] = t
        rays[:, 3:] = dirs
        hit = self._scene.cast_rays(o3d.core.Tensor(rays), nthreads=0)
        z = hit["t_hit"].numpy()  # rays have z = 1 in the camera, so t is the depth
        hitmask = np.isfinite(z)
        allhit = bool(hitmask.all())
        prim = hit["primitive_ids"].numpy()
        if allhit:  # the room is closed: normally every ray hits
            part = self._tri_part[prim]
        else:
            part = np.full(z.shape, self._P, dtype=np.int32)
            part[hitmask] = self._tri_part[prim[hitmask]]
            z = np.where(hitmask, z, np.float32(0))
        n = hit["primitive_normals"].numpy()
        return T, t, dirs, z, part, n

    def _view(self, part, color, depth, depth_clean, T, stamp_ns) -> SyntheticView:
        """The rendered frame with its noise-free labels and instance ids (per-pixel ``part`` (N,))."""
        K = self.intrinsics
        labels = self._part_label[part].reshape(K.height, K.width)
        instances = self._part_inst[part].reshape(K.height, K.width)
        frame = RGBDFrame(color=color, depth=depth, intrinsics=K, T_world_camera=T, stamp_ns=stamp_ns, labels=labels, instances=instances)
        return SyntheticView(frame=frame, instances=instances, depth_clean=depth_clean)

    def _hit_surface(self, t, dirs, z, part, n):
        """What shading needs of the ray hits: world points (N, 3), ray . normal (N,), the
        normals turned towards the camera (N, 3) and the texture coordinates u, v (N,)."""
        pts = dirs * z[:, None]
        pts += t
        ndotd = np.einsum("ij,ij->i", n, dirs)
        n = n * np.where(ndotd > 0, np.float32(-1), np.float32(1))[:, None]  # shade the side the camera sees
        u = np.einsum("ij,ij->i", pts, self._part_u[part])
        v = np.einsum("ij,ij->i", pts, self._part_v[part])
        return pts, ndotd, n, u, v

    def render(self, T_world_camera: np.ndarray, stamp_ns: int = 0, index: int = 0) -> SyntheticView:
        """One frame seen from ``T_world_camera`` (4, 4) float64 (optical frame), stamped ``stamp_ns``.

        index: seeds the frame's noise together with the world seed (same index, same noise).
        Returns a ``SyntheticView``; see its docstring for the images. Worlds of a non-classic
        style render with ``_render_styled`` (see ``styled``).
        """
        if self.style != "classic":
            return self._render_styled(T_world_camera, stamp_ns, index)
        cfg, K = self.config, self.intrinsics
        Hh, Ww = K.height, K.width
        T, t, dirs, z, part, n = self._cast(T_world_camera)
        rng = np.random.default_rng([self.seed, int(index), 7])

        # Colour: albedo x texture x shading.
        pts, ndotd, n, u, v = self._hit_surface(t, dirs, z, part, n)
        albedo = self._part_rgb[part] * _texture(self._part_tex[part], self._part_params[part], u, v, self._part_phase[part])
        to_lamp = self._lamp - pts
        r2 = np.einsum("ij,ij->i", to_lamp, to_lamp)
        lamp = np.maximum(np.einsum("ij,ij->i", n, to_lamp), 0) * (self._lamp_power / (np.sqrt(r2) * (1 + 0.08 * r2)))
        shade = np.maximum(n[:, 0] * self._sun[0] + n[:, 1] * self._sun[1] + n[:, 2] * self._sun[2], 0) + lamp + self._ambient
        shade[self._part_emissive[part]] = 1.0
        color = albedo * (shade * 255)[:, None] * self._white_balance
        if cfg.noise and cfg.color_noise > 0:
            color += rng.standard_normal(color.shape, dtype=np.float32) * np.float32(cfg.color_noise)
        color = np.clip(color, 0, 255, out=color).astype(np.uint8).reshape(Hh, Ww, 3)

        # Depth: clean z cut to the sensor range, then the noise model.
        zc = np.where(z <= cfg.max_depth, z, np.float32(0)).reshape(Hh, Ww)
        if cfg.noise:
            # Axial noise of a structured-light sensor (Kinect), Nguyen, Izadi & Lovell 2012,
            # "Modeling Kinect Sensor Noise for Improved 3D Reconstruction and Tracking":
            # sigma_z = 0.0012 + 0.0019 (z - 0.4)^2 m.
            sigma = np.float32(0.0019) * (zc - np.float32(0.4)) ** 2 + np.float32(0.0012)
            depth = zc + rng.standard_normal(zc.shape, dtype=np.float32) * sigma
            # Dropouts: at depth discontinuities (the projector's shadow and mixed pixels) ...
            jump = np.zeros_like(zc)
            dx = np.abs(zc[:, 1:] - zc[:, :-1])
            dy = np.abs(zc[1:] - zc[:-1])
            np.maximum(jump[:, 1:], dx, out=jump[:, 1:])
            np.maximum(jump[:, :-1], dx, out=jump[:, :-1])
            np.maximum(jump[1:], dy, out=jump[1:])
            np.maximum(jump[:-1], dy, out=jump[:-1])
            edge = jump > np.float32(0.03) + np.float32(0.03) * zc
            # ... at grazing angles between ray and surface (probability linear in the cosine) ...
            cosang = (np.abs(ndotd) / self._ray_norm).reshape(Hh, Ww)
            c0, c1 = np.cos(np.radians(cfg.grazing_angle_deg)).astype(np.float32)
            p_drop = np.clip((c0 - cosang) / (c0 - c1), 0, 1)
            p_drop[edge] = np.maximum(p_drop[edge], cfg.edge_dropout)
            np.maximum(p_drop, np.float32(cfg.random_dropout), out=p_drop)  # ... and at random
            drop = rng.random(zc.shape, dtype=np.float32) < p_drop
            drop |= (zc <= 0) | (depth < cfg.min_depth) | (depth > cfg.max_depth)
            depth[drop] = 0.0
            if cfg.depth_quantum > 0:
                depth = np.round(depth / np.float32(cfg.depth_quantum)) * np.float32(cfg.depth_quantum)
            depth = depth.astype(np.float32)
        else:
            depth = zc.copy()
        return self._view(part, color, depth, zc, T, stamp_ns)
