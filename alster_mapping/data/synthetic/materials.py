"""Materials of the non-classic styles: palette families (how a material's colour is drawn),
texture families (which pattern it carries) and ``restyle_materials``, which gives every
material of a built world a new colour, pattern and finish from the world's families.

A *material* is what the classic builders paint alike: the parts of one object whose colours
differ only in brightness (a table top and its slightly darker legs), shared by the objects
that had the same colour in the classic world (the four walls, a kitchen's cabinets). A new
material keeps the brightness ratios between its parts, so the shading cues of the builders
(darker legs, plinths, door fronts) survive the restyle.
"""

from __future__ import annotations

import colorsys
from collections.abc import Callable

import numpy as np

from .classes import BATHTUB, CEILING, FLOOR, REFRIGERATOR, SINK, TOILET, WALL
from .patterns import BLOTCHES, CHECKER, CHEVRON, DOTS, MARBLE, STRIPES
from .records import WorldObject
from .textures import ART, BOOKS, FABRIC, GLASS, PLAIN, SPECKLE, TILES, WOOD

# ---------------------------------------------------------------------------------------
# Palette families: (rng, classic colour (3,) 0..1) -> new colour (3,) 0..1.
# Training palettes stay inside saturation <= 0.75 and value 0.15 .. 0.92, so the held-out
# ones (saturation >= 0.85, value <= 0.12 or >= 0.95) lie outside what training has seen.
# ---------------------------------------------------------------------------------------


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(h % 1.0, s, v))


def _class_jitter(rng, base):
    """The classic class colour with a strong HSV jitter (kept in the training ranges)."""
    h, s, v = colorsys.rgb_to_hsv(*np.clip(base, 0, 1))
    s = float(np.clip(s * rng.uniform(0.5, 1.5), 0, 0.75))
    v = float(np.clip(v * rng.uniform(0.7, 1.3), 0.15, 0.92))
    return _hsv(h + rng.uniform(-0.08, 0.08), s, v)


PALETTE_FAMILIES: dict[str, Callable[[np.random.Generator, np.ndarray], np.ndarray]] = {
    "class_jitter": _class_jitter,
    "muted": lambda rng, base: _hsv(rng.random(), rng.uniform(0.05, 0.35), rng.uniform(0.35, 0.85)),
    "earth": lambda rng, base: _hsv(rng.uniform(0.02, 0.14), rng.uniform(0.25, 0.6), rng.uniform(0.2, 0.7)),
    "pastel": lambda rng, base: _hsv(rng.random(), rng.uniform(0.12, 0.35), rng.uniform(0.75, 0.92)),
    "greys": lambda rng, base: _hsv(rng.random(), rng.uniform(0.0, 0.06), rng.uniform(0.18, 0.9)),
    "colourful": lambda rng, base: _hsv(rng.random(), rng.uniform(0.35, 0.75), rng.uniform(0.3, 0.85)),
    # held out
    "saturated": lambda rng, base: _hsv(rng.random(), rng.uniform(0.85, 1.0), rng.uniform(0.55, 1.0)),
    "very_dark": lambda rng, base: _hsv(rng.random(), rng.uniform(0.0, 0.6), rng.uniform(0.02, 0.12)),
    "very_bright": lambda rng, base: _hsv(rng.random(), rng.uniform(0.0, 0.04), rng.uniform(0.95, 1.0)),
}

SHELL_EXCLUDED_PALETTES = ("very_dark",)
"""Not for walls, floor and ceiling: a black room would leave a sensor almost no depth at all,
which tests the depth sensor, not the look."""

# ---------------------------------------------------------------------------------------
# Texture families: (rng, classic kind, classic params) -> (kind, params (4,)).
# ---------------------------------------------------------------------------------------


def _tiles(rng, kind, params):
    size = rng.uniform(0.1, 0.8)
    return TILES, (size * rng.uniform(0.5, 2.0), size, rng.uniform(0.002, 0.01), rng.uniform(0.0, 0.12))


TEXTURE_FAMILIES: dict[str, Callable[[np.random.Generator, int, tuple], tuple[int, tuple]]] = {
    "class_default": lambda rng, kind, params: (kind, params),
    "plain": lambda rng, kind, params: (PLAIN, (rng.uniform(0.0, 0.1), 0.0, 0.0, 0.0)),
    "wood": lambda rng, kind, params: (WOOD, (rng.uniform(20, 120), rng.uniform(0.08, 0.4), rng.uniform(0.1, 1.2), 0.0)),
    "fabric": lambda rng, kind, params: (FABRIC, (rng.uniform(30, 200), rng.uniform(0.03, 0.18), 0.0, 0.0)),
    "tiles": _tiles,
    "speckle": lambda rng, kind, params: (SPECKLE, (rng.uniform(0.002, 0.015), rng.uniform(0.1, 0.45), 0.0, 0.0)),
    "stripes": lambda rng, kind, params: (STRIPES, (rng.uniform(0.02, 0.3), rng.uniform(0.08, 0.35), rng.uniform(0, np.pi), rng.uniform(0.3, 0.7))),
    "blotches": lambda rng, kind, params: (BLOTCHES, (rng.uniform(0.05, 0.5), rng.uniform(0.1, 0.4), 0.0, 0.0)),
    "checker": lambda rng, kind, params: (CHECKER, (rng.uniform(0.05, 0.4), rng.uniform(0.1, 0.5), 0.0, 0.0)),
    # held out
    "dots": lambda rng, kind, params: (DOTS, (rng.uniform(0.03, 0.2), rng.uniform(0.2, 0.4), rng.uniform(0.3, 0.7), 0.0)),
    "chevron": lambda rng, kind, params: (CHEVRON, (rng.uniform(0.03, 0.25), rng.uniform(0.3, 1.0), rng.uniform(0.2, 0.5), 0.0)),
    "marble": lambda rng, kind, params: (MARBLE, (rng.uniform(3, 12), rng.uniform(1, 4), rng.uniform(0.3, 0.6), 0.0)),
}

CONTENT_TEXTURES = (GLASS, BOOKS, ART)
"""Textures that show content, not a material (window panes, book spines, paintings): kept."""

SHINY_LABELS = (SINK, TOILET, BATHTUB, REFRIGERATOR)
"""Classes whose materials are often glazed or metallic (more likely flagged shiny)."""

_SHELL_LABELS = (WALL, FLOOR, CEILING)


def _chromaticity(rgb: np.ndarray) -> tuple[float, ...]:
    """The colour with its brightness divided out, rounded: parts painted ``col`` and ``col * 0.9`` agree."""
    return tuple(np.round(rgb / max(float(rgb.sum()), 1e-6), 3).tolist())


def restyle_materials(objects: list[WorldObject], world_style, rng: np.random.Generator) -> dict[str, tuple[str, ...]]:
    """Give every material of ``objects`` a colour, texture and finish drawn from the families
    of ``world_style`` (a ``style.WorldStyle``); parts are changed in place.

    Sets each part's ``shiny`` flag (specular highlights; depth sensors lose such surfaces).
    Returns category -> the family names actually drawn ("palette", "texture").
    """
    palettes, textures = world_style.palettes, world_style.textures
    palette_p, texture_p = np.asarray(world_style.palette_weights), np.asarray(world_style.texture_weights)
    shell_palettes = [i for i, name in enumerate(palettes) if name not in SHELL_EXCLUDED_PALETTES]
    shell_p = palette_p[shell_palettes] / palette_p[shell_palettes].sum()
    shiny_rate = rng.uniform(0.02, 0.12)  # share of shiny materials in this world (lacquer, metal, glass tops)
    materials: dict[tuple, tuple[np.ndarray, np.ndarray, int, tuple, bool]] = {}  # key -> rgb, classic reference, kind, params, shiny
    used_palettes, used_textures = set(), set()
    for obj in objects:
        shell = obj.label in _SHELL_LABELS
        group = (obj.name, obj.label, obj.color)  # objects painted alike in the classic world stay alike
        main_chromaticity = np.asarray(_chromaticity(np.asarray(obj.color, float)))
        main, main_distance = None, np.inf
        for part in obj.parts:
            if part.tex in CONTENT_TEXTURES and part.tex != BOOKS:
                continue
            key = (group, _chromaticity(part.rgb))
            if key not in materials:
                if shell:
                    palette = palettes[shell_palettes[int(rng.choice(len(shell_palettes), p=shell_p))]]
                else:
                    palette = palettes[int(rng.choice(len(palettes), p=palette_p))]
                texture = textures[int(rng.choice(len(textures), p=texture_p))]
                rgb = PALETTE_FAMILIES[palette](rng, part.rgb)
                kind, params = part.tex, part.params
                if part.tex != BOOKS:  # book spines keep their pattern, get new cover colours
                    kind, params = TEXTURE_FAMILIES[texture](rng, part.tex, part.params)
                    used_textures.add(texture)
                # Glossy finishes: often on sanitary ware and appliances, sometimes on furniture
                # and floors, never on painted walls and ceilings.
                shiny = rng.random() < (0.5 if obj.label in SHINY_LABELS else shiny_rate) and obj.label not in (WALL, CEILING)
                materials[key] = (rgb, part.rgb.copy(), kind, tuple(float(x) for x in params), shiny)
                used_palettes.add(palette)
            rgb, reference, kind, params, shiny = materials[key]
            distance = float(np.abs(np.asarray(key[1]) - main_chromaticity).sum())
            if distance < main_distance:  # the material closest to the classic main colour
                main, main_distance = rgb, distance
            ratio = float(part.rgb.sum()) / max(float(reference.sum()), 1e-6)
            part.rgb = np.clip(rgb * ratio, 0.0, 1.0)
            part.tex, part.params, part.shiny = kind, params, shiny
        if main is not None:
            obj.color = tuple(int(round(c * 255)) for c in np.clip(main, 0, 1))
    return {
        "palette": tuple(name for name in palettes if name in used_palettes),
        "texture": tuple(name for name in textures if name in used_textures),
    }
