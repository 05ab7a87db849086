"""Procedural surface patterns of the non-classic styles, added to the classic texture kinds
of ``textures`` (which stay untouched, so the classic look does not change).

Each pattern is a grey multiplier of the albedo evaluated at the texture coordinates (u, v)
[m] of the ray hits, vectorised over the hits of one kind. ``STRIPES``, ``BLOTCHES`` and
``CHECKER`` belong to the training families, ``DOTS``, ``CHEVRON`` and ``MARBLE`` to the
held-out families (see ``style``).
"""

from __future__ import annotations

import numpy as np

from .textures import _hash, _texture

# Texture kinds after the classic PLAIN .. ART (0..7).
STRIPES, BLOTCHES, CHECKER, DOTS, CHEVRON, MARBLE = range(8, 14)

_TWO_PI = np.float32(2 * np.pi)


def _value_noise(x: np.ndarray, y: np.ndarray, salt: np.ndarray) -> np.ndarray:
    """Smooth noise in [0, 1] of continuous lattice coordinates (x, y): hashed lattice values
    blended with a smoothstep, so it has no visible grid. salt (N,): per-part offset."""
    ix, iy = np.floor(x), np.floor(y)
    fx, fy = x - ix, y - iy
    sx, sy = fx * fx * (3 - 2 * fx), fy * fy * (3 - 2 * fy)
    top = _hash(ix, iy, salt) * (1 - sx) + _hash(ix + 1, iy, salt) * sx
    bottom = _hash(ix, iy + 1, salt) * (1 - sx) + _hash(ix + 1, iy + 1, salt) * sx
    return top * (1 - sy) + bottom * sy


def _stripes(u, v, phase, p):
    """Parallel stripes: period [m], contrast, direction [rad], duty cycle."""
    period, contrast, angle, duty = p[:, 0], p[:, 1], p[:, 2], p[:, 3]
    s = (u * np.cos(angle) + v * np.sin(angle)) / period + phase / _TWO_PI
    return np.where(s - np.floor(s) < duty, 1 + contrast / 2, 1 - contrast / 2)


def _blotches(u, v, phase, p):
    """Soft stains (concrete, stone, worn paint): two octaves of value noise; cell [m], contrast."""
    cell, contrast = p[:, 0], p[:, 1]
    n = 0.65 * _value_noise(u / cell, v / cell, phase) + 0.35 * _value_noise(2.7 * u / cell, 2.7 * v / cell, phase + 1)
    return 1 + contrast * (2 * n - 1)


def _checker(u, v, phase, p):
    """Checkerboard (tiles, gingham): square size [m], contrast."""
    size, contrast = p[:, 0], p[:, 1]
    odd = (np.floor(u / size) + np.floor(v / size)) % 2
    return 1 + contrast * (odd - 0.5)


def _dots(u, v, phase, p):
    """Polka dots on a square grid: pitch [m], radius / pitch, contrast (dots darker)."""
    pitch, radius, contrast = p[:, 0], p[:, 1], p[:, 2]
    cu = u / pitch + phase / _TWO_PI
    cv = v / pitch
    du, dv = cu - np.floor(cu) - 0.5, cv - np.floor(cv) - 0.5
    return np.where(du * du + dv * dv < radius * radius, 1 - contrast, 1.0)


def _chevron(u, v, phase, p):
    """Zigzag stripes: period [m], zigzag amplitude / period, contrast."""
    period, amplitude, contrast = p[:, 0], p[:, 1], p[:, 2]
    x = u / period
    triangle = np.abs(x - np.floor(x) - 0.5) * 2
    s = v / period + amplitude * triangle + phase / _TWO_PI
    return np.where(s - np.floor(s) < 0.5, 1 + contrast / 2, 1 - contrast / 2)


def _marble(u, v, phase, p):
    """Marble veins: dark thin lines of a turbulent sine. frequency [1/m], turbulence, contrast."""
    frequency, turbulence, contrast = p[:, 0], p[:, 1], p[:, 2]
    t = np.sin(_TWO_PI * frequency * (u + 0.3 * v) + turbulence * 4 * _value_noise(4 * u, 4 * v, phase) + phase)
    vein = 1 - np.abs(t)
    vein *= vein
    return 1 - contrast * vein * vein


_PATTERNS = {STRIPES: _stripes, BLOTCHES: _blotches, CHECKER: _checker, DOTS: _dots, CHEVRON: _chevron, MARBLE: _marble}


def styled_texture(tex: np.ndarray, params: np.ndarray, u: np.ndarray, v: np.ndarray, phase: np.ndarray) -> np.ndarray:
    """(N, 3) float32 albedo multipliers of N hits: the classic kinds as ``textures._texture``
    evaluates them, the kinds of this module on top. Arguments as for ``_texture``."""
    f = _texture(tex, params, u, v, phase)  # leaves the kinds >= 8 at 1
    counts = np.bincount(tex, minlength=MARBLE + 1)
    for kind in np.flatnonzero(counts[STRIPES:]) + STRIPES:
        m = tex == kind
        f[m] = _PATTERNS[int(kind)](u[m], v[m], phase[m], params[m]).astype(np.float32)[:, None]
    return f
