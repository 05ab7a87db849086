"""Materials of the synthetic worlds: the procedural texture kinds, per-class colour palettes
with per-instance HSV jitter, texture parameter samplers (wood grain, fabric weave, plain,
speckle) and the vectorised per-pixel texture evaluation at the ray hit points."""

from __future__ import annotations

import colorsys

import numpy as np

# Procedural texture kinds (evaluated per pixel at the 3D hit point).
PLAIN, WOOD, FABRIC, TILES, GLASS, BOOKS, SPECKLE, ART = range(8)


# ---------------------------------------------------------------------------------------
# Palettes: per-class base colours (RGB 0..255); instances jitter them in HSV.
# ---------------------------------------------------------------------------------------

PALETTES = {
    "wall": [(226, 221, 206), (212, 206, 190), (192, 201, 212), (201, 211, 192), (216, 200, 186), (184, 183, 180), (230, 226, 214)],
    "ceiling": [(236, 236, 232), (228, 226, 220)],
    "floor_wood": [(150, 105, 66), (172, 128, 84), (118, 84, 56), (190, 150, 105)],
    "floor_tile": [(204, 198, 188), (162, 162, 168), (214, 210, 200), (140, 128, 118)],
    "floor_carpet": [(112, 102, 96), (92, 98, 112), (130, 118, 98), (84, 84, 88)],
    "wood": [(150, 100, 60), (120, 78, 46), (185, 140, 95), (95, 62, 40), (200, 165, 120)],
    "white": [(236, 234, 228), (245, 245, 242), (224, 222, 215)],
    "dark": [(48, 46, 48), (70, 66, 64), (35, 38, 45)],
    "metal": [(190, 190, 195), (160, 162, 168), (205, 205, 208)],
    "cabinet": [(236, 234, 228), (150, 100, 60), (185, 140, 95), (120, 124, 130), (96, 110, 128), (200, 196, 176)],
    "counter": [(62, 62, 66), (226, 222, 212), (150, 140, 130), (40, 40, 44), (190, 175, 150)],
    "bed_sheet": [(236, 236, 242), (200, 212, 232), (222, 204, 192), (180, 200, 180), (214, 200, 220)],
    "blanket": [(120, 140, 180), (170, 70, 70), (90, 120, 90), (210, 190, 150), (80, 80, 110), (200, 120, 60)],
    "sofa": [(92, 92, 102), (132, 62, 52), (62, 92, 72), (172, 162, 142), (72, 82, 122), (150, 130, 105), (40, 40, 42)],
    "chair": [(150, 100, 60), (40, 40, 45), (150, 40, 40), (50, 70, 130), (200, 165, 120), (220, 220, 215)],
    "door": [(122, 76, 42), (232, 231, 226), (92, 62, 40), (150, 112, 70), (110, 120, 130)],
    "window_frame": [(242, 242, 240), (100, 100, 102), (150, 105, 66)],
    "glass": [(205, 225, 250), (225, 235, 245), (235, 238, 226)],
    "curtain": [(200, 60, 60), (60, 90, 150), (220, 210, 180), (120, 150, 110), (160, 120, 170), (235, 235, 230), (90, 70, 60)],
    "shower_curtain": [(232, 238, 244), (200, 225, 235), (235, 220, 230), (215, 235, 215), (240, 240, 225)],
    "picture_frame": [(42, 32, 26), (205, 172, 90), (242, 242, 240), (120, 80, 50)],
    "art": [(230, 220, 200), (200, 215, 235), (240, 230, 210)],
    "ceramic": [(242, 242, 240), (236, 236, 232), (226, 230, 232)],
    "fridge": [(236, 236, 236), (192, 192, 198), (52, 52, 56), (225, 222, 210)],
    "books": [(160, 60, 50), (50, 80, 140), (70, 120, 70), (200, 180, 120), (120, 60, 110)],
    "lamp_shade": [(245, 235, 210), (240, 240, 235), (230, 210, 170)],
}


def _color(rng: np.random.Generator, key: str, dh: float = 0.03, ds: float = 0.12, dv: float = 0.1) -> np.ndarray:
    """A palette colour of ``key`` with per-instance HSV jitter, RGB floats 0..1."""
    base = PALETTES[key][rng.integers(len(PALETTES[key]))]
    h, s, v = colorsys.rgb_to_hsv(*(c / 255 for c in base))
    h = (h + rng.uniform(-dh, dh)) % 1.0
    s = float(np.clip(s * (1 + rng.uniform(-ds, ds) * 2), 0, 1))
    v = float(np.clip(v * (1 + rng.uniform(-dv, dv)), 0.05, 1))
    return np.array(colorsys.hsv_to_rgb(h, s, v))


def _wood(rng):
    """Wood-grain parameters: ring frequency [1/m], contrast, waviness."""
    return (rng.uniform(35, 90), rng.uniform(0.12, 0.28), rng.uniform(0.3, 0.9), 0.0)


def _fabric(rng):
    """Fabric weave parameters: frequency [1/m], contrast."""
    return (rng.uniform(50, 130), rng.uniform(0.05, 0.12), 0.0, 0.0)


def _plain(rng):
    return (rng.uniform(0.02, 0.06), 0.0, 0.0, 0.0)


def _speckle(rng):
    return (rng.uniform(0.003, 0.008), rng.uniform(0.15, 0.35), 0.0, 0.0)


# ---------------------------------------------------------------------------------------
# Texture evaluation (vectorised over hit points)
# ---------------------------------------------------------------------------------------


def _hash(a: np.ndarray, b: np.ndarray, c: float | np.ndarray = 0.0) -> np.ndarray:
    """Deterministic pseudo-random values in [0, 1) of integer lattice coordinates."""
    return np.modf(np.abs(np.sin(a * 12.9898 + b * 78.233 + c * 37.719) * 43758.5453))[0]


def _texture(tex: np.ndarray, params: np.ndarray, u: np.ndarray, v: np.ndarray, phase: np.ndarray) -> np.ndarray:
    """(N, 3) albedo multipliers of N hit points.

    tex (N,) texture kinds, params (N, 4), u, v (N,) texture coordinates [m], phase (N,)
    per-part random phase.
    """
    f = np.ones((tex.shape[0], 3), dtype=np.float32)
    two_pi = 2 * np.pi
    for kind in np.flatnonzero(np.bincount(tex, minlength=8)):
        m = tex == kind
        pu, pv, ph, p = u[m], v[m], phase[m], params[m]
        if kind == PLAIN:
            g = 1 + p[:, 0] * (np.sin(two_pi * pu / 0.53 + ph) * np.sin(two_pi * pv / 0.41 + 1.3 * ph) + 0.5 * np.sin(two_pi * (pu + pv) / 0.17 + ph))
            f[m] = g[:, None]
        elif kind == WOOD:
            ring = np.sin(two_pi * (pv * p[:, 0] + p[:, 2] * np.sin(two_pi * pu * 1.7 + ph) + 0.3 * np.sin(two_pi * pu * 5.3 + 2 * ph)))
            f[m] = (1 - p[:, 1] * (0.5 + 0.5 * ring) ** 3)[:, None]
        elif kind == FABRIC:
            weave = np.sin(two_pi * pu * p[:, 0]) * np.sin(two_pi * pv * p[:, 0])
            f[m] = (1 + p[:, 1] * weave + 0.04 * np.sin(two_pi * pu / 0.23 + ph))[:, None]
        elif kind == TILES:
            su, sv, grout, var = p[:, 0], p[:, 1], p[:, 2], p[:, 3]
            iv = np.floor(pv / sv)
            fu = pu / su + 0.5 * (iv % 2)  # staggered rows (planks, bricks)
            iu = np.floor(fu)
            edge = ((fu - iu) * su < grout) | ((pv / sv - iv) * sv < grout)
            g = 1 + var * (2 * _hash(iu, iv, ph) - 1)
            f[m] = np.where(edge, 0.6, g)[:, None]
        elif kind == GLASS:
            f[m] = (0.93 + 0.07 * np.sin(two_pi * pv * 0.7 + ph))[:, None]
        elif kind == BOOKS:
            w = p[:, 0]
            x = pu / w + p[:, 1]
            ib = np.floor(x + 0.3 * _hash(np.floor(x), p[:, 1]))
            col = np.stack([0.45 + 0.9 * _hash(ib, p[:, 1], k) for k in (1.0, 2.0, 3.0)], 1)
            seam = np.abs(x - np.round(x)) < 0.06
            f[m] = np.where(seam[:, None], 0.35, col)
        elif kind == SPECKLE:
            cell = p[:, 0]
            g = 1 + p[:, 1] * (_hash(np.floor(pu / cell), np.floor(pv / cell), ph) - 0.5)
            f[m] = g[:, None]
        elif kind == ART:
            a = two_pi * (pu * p[:, 0] + pv * p[:, 1]) + p[:, 2]
            b = two_pi * (pu * p[:, 1] - pv * p[:, 0] * 0.7) + p[:, 3]
            f[m] = np.stack([0.55 + 0.45 * np.sin(a), 0.55 + 0.45 * np.sin(b + 1.0), 0.55 + 0.45 * np.sin(a * 0.6 + b + 2.0)], 1)
    return f
