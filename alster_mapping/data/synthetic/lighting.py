"""Lighting of the non-classic styles: lighting families (an ambient term, a distant sun-like
light and point lamps, each with an RGB colour) and the vectorised shading of ray hits.

Light colours are normalised to unit luma (Rec. 601 weights), so a light's colour changes the
hue of the image, its level the brightness. Training families keep their lights near white
(saturation <= 0.25: the spread between warm and cool white bulbs and daylight); the held-out
families use a deep orange light near the floor or strongly coloured lights.
"""

from __future__ import annotations

import colorsys
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

_LUMA = np.array([0.299, 0.587, 0.114])


@dataclass(frozen=True)
class Lighting:
    """The lights of one world (RGB levels are multiples of the albedo; 1 = fully lit).

    ambient (3,): light reaching every surface. sun_direction (3,): unit vector towards a
    distant light; sun_rgb (3,): its level on a surface facing it. lamp_positions (L, 3)
    world [m]; lamp_rgb (L, 3): level of each point lamp (falls off with distance).
    """

    ambient: np.ndarray
    sun_direction: np.ndarray
    sun_rgb: np.ndarray
    lamp_positions: np.ndarray
    lamp_rgb: np.ndarray


def _light_colour(hue: float, saturation: float) -> np.ndarray:
    """RGB (3,) of a light of ``hue`` and ``saturation`` with unit luma."""
    rgb = np.array(colorsys.hsv_to_rgb(hue % 1.0, saturation, 1.0))
    return rgb / float(rgb @ _LUMA)


def _white(rng: np.random.Generator) -> np.ndarray:
    """A warm or cool white (saturation <= 0.25, hue orange or blue)."""
    hue = rng.uniform(0.05, 0.12) if rng.random() < 0.6 else rng.uniform(0.55, 0.62)
    return _light_colour(hue, rng.uniform(0.0, 0.25))


def _ceiling_lamp(rng, size) -> np.ndarray:
    return np.array([rng.uniform(0.2, 0.8) * size[0], rng.uniform(0.2, 0.8) * size[1], size[2] - 0.05])


def _near_wall(rng, size, z) -> np.ndarray:
    """A point 0.3-0.6 m in front of a random wall at height ``z``."""
    inset = rng.uniform(0.3, 0.6)
    x, y = rng.uniform(inset, size[0] - inset), rng.uniform(inset, size[1] - inset)
    side = int(rng.integers(4))
    x = (inset, size[0] - inset, x, x)[side]
    y = (y, y, inset, size[1] - inset)[side]
    return np.array([x, y, z])


def _lighting(ambient, sun_direction=(0.0, 0.0, 1.0), sun_rgb=(0.0, 0.0, 0.0), lamps=(), lamp_rgb=()) -> Lighting:
    d = np.asarray(sun_direction, float)
    return Lighting(
        np.asarray(ambient, np.float32),
        (d / np.linalg.norm(d)).astype(np.float32),
        np.asarray(sun_rgb, np.float32),
        np.asarray(lamps, np.float32).reshape(-1, 3),
        np.asarray(lamp_rgb, np.float32).reshape(-1, 3),
    )


def _daylight(rng, size):
    """Like the classic set-up with wider ranges: ambient, light from above, one ceiling lamp."""
    sun = (rng.uniform(-0.7, 0.7), rng.uniform(-0.7, 0.7), 1.0)
    return _lighting(rng.uniform(0.25, 0.45) * _white(rng), sun, rng.uniform(0.2, 0.5) * _white(rng),
                     [_ceiling_lamp(rng, size)], [rng.uniform(0.3, 0.6) * _white(rng)])  # fmt: skip


def _overcast(rng, size):
    """Flat, diffuse light: strong ambient, a weak light from above, no lamp."""
    sun = (rng.uniform(-0.3, 0.3), rng.uniform(-0.3, 0.3), 1.0)
    return _lighting(rng.uniform(0.5, 0.75) * _white(rng), sun, rng.uniform(0.0, 0.15) * _white(rng))


def _ceiling_lamps(rng, size):
    """Two or three ceiling lamps of one colour and a dim ambient."""
    n, colour = int(rng.integers(2, 4)), _white(rng)
    return _lighting(rng.uniform(0.12, 0.28) * colour, lamps=[_ceiling_lamp(rng, size) for _ in range(n)],
                     lamp_rgb=[rng.uniform(0.25, 0.45) * colour for _ in range(n)])  # fmt: skip


def _evening_lamp(rng, size):
    """A standing lamp (1.3-2 m high) near a wall, little ambient light."""
    colour = _light_colour(rng.uniform(0.05, 0.12), rng.uniform(0.1, 0.25))
    return _lighting(
        rng.uniform(0.08, 0.18) * colour, lamps=[_near_wall(rng, size, rng.uniform(1.3, 2.0))], lamp_rgb=[rng.uniform(0.5, 0.9) * colour]
    )


def _side_window(rng, size):
    """Low sun through a window: a strong, almost horizontal light."""
    a = rng.uniform(0, 2 * np.pi)
    sun = (np.cos(a), np.sin(a), rng.uniform(0.1, 0.4))
    return _lighting(rng.uniform(0.2, 0.35) * _white(rng), sun, rng.uniform(0.4, 0.8) * _white(rng))


def _warm_low_single(rng, size):
    """Held out: one deep orange light (about 2000 K) 0.2-0.7 m above the floor, almost no ambient."""
    colour = _light_colour(rng.uniform(0.055, 0.09), rng.uniform(0.7, 0.85))
    return _lighting(
        rng.uniform(0.02, 0.06) * colour, lamps=[_near_wall(rng, size, rng.uniform(0.2, 0.7))], lamp_rgb=[rng.uniform(0.6, 1.0) * colour]
    )


def _strong_colored(rng, size):
    """Held out: one or two strongly coloured lamps (saturation >= 0.55) and a tinted ambient."""
    n = int(rng.integers(1, 3))
    colours = [_light_colour(rng.random(), rng.uniform(0.55, 0.9)) for _ in range(n)]
    return _lighting(rng.uniform(0.15, 0.3) * colours[0], lamps=[_ceiling_lamp(rng, size) for _ in range(n)],
                     lamp_rgb=[rng.uniform(0.4, 0.8) * c for c in colours])  # fmt: skip


LIGHTING_FAMILIES: dict[str, Callable[[np.random.Generator, np.ndarray], Lighting]] = {
    "daylight": _daylight,
    "overcast": _overcast,
    "ceiling_lamps": _ceiling_lamps,
    "evening_lamp": _evening_lamp,
    "side_window": _side_window,
    "warm_low_single": _warm_low_single,
    "strong_colored": _strong_colored,
}


def shade(light: Lighting, points: np.ndarray, normals: np.ndarray) -> np.ndarray:
    """(N, 3) float32 RGB light level at N surface points (N, 3) [m] with unit normals (N, 3)
    facing the camera: ambient + Lambertian sun + lamps (the classic fall-off 1 / (r (1 + 0.08 r^2)))."""
    out = np.empty(points.shape, dtype=np.float32)
    out[:] = light.ambient
    if light.sun_rgb.any():
        d = light.sun_direction
        lit = np.maximum(normals[:, 0] * d[0] + normals[:, 1] * d[1] + normals[:, 2] * d[2], 0)
        out += lit[:, None] * light.sun_rgb
    for position, rgb in zip(light.lamp_positions, light.lamp_rgb):
        to_lamp = position - points
        r2 = np.einsum("ij,ij->i", to_lamp, to_lamp)
        lit = np.maximum(np.einsum("ij,ij->i", normals, to_lamp), 0) / (np.sqrt(r2) * (1 + np.float32(0.08) * r2))
        out += lit[:, None] * rgb
    return out


def specular(light: Lighting, points: np.ndarray, normals: np.ndarray, to_camera: np.ndarray, strength: float, exponent: float) -> np.ndarray:
    """(M, 3) float32 Blinn-Phong highlights of the brightest lamp (or the sun) on M shiny points.

    to_camera (M, 3): unit vectors from the points to the camera. strength: peak level
    relative to the light; exponent: the highlight's sharpness.
    """
    if len(light.lamp_rgb):
        k = int(np.argmax(light.lamp_rgb @ _LUMA.astype(np.float32)))
        to_light, rgb = light.lamp_positions[k] - points, light.lamp_rgb[k]
        to_light /= np.linalg.norm(to_light, axis=1, keepdims=True)
    else:
        to_light, rgb = np.broadcast_to(light.sun_direction, points.shape), light.sun_rgb
    half = to_light + to_camera
    half /= np.maximum(np.linalg.norm(half, axis=1, keepdims=True), np.float32(1e-6))
    cos = np.maximum(np.einsum("ij,ij->i", normals, half), 0)
    return (np.float32(strength) * cos ** np.float32(exponent))[:, None] * rgb
