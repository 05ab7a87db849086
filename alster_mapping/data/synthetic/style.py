"""Render styles of the synthetic worlds and the per-world draw of a style's families.

A style decides how a world *looks* to the sensor, not what is in it:

    classic     the original look (class palettes, fixed textures, one light set-up, the
                Kinect-like depth noise of ``render``); bit for bit the frames the held-out
                evaluations ``synthetic:0..4`` were made with.
    randomized  the training style (domain randomization): every world draws its materials,
                lighting, camera/ISP and depth sensor from the RANDOMIZED families below.
    shifted     the held-out style of the robustness benchmark: the same draws from the
                SHIFTED families, which ``randomized`` never uses.

The two non-classic styles share their geometry (the classic room plus shape variants and
clutter, drawn from the world seed alone), so ``synthetic:S@randomized`` and
``synthetic:S@shifted`` are the same room, trajectory and ground truth in two looks.

Families are named; the implementations live in ``materials`` (palettes, textures),
``lighting``, ``imaging`` (colour camera) and ``sensor`` (intrinsics and depth artefacts),
keyed by these names. Random streams (``numpy.random.default_rng`` seeds): [seed, 11,
stream] the family draw here, [seed, 12] the geometry, [seed, 13, stream] materials,
[seed, 14, stream] camera and depth sensor, [seed, 15, stream] lighting, [seed, 16, stream]
imaging, [seed, index, 7, stream] the noise of frame ``index``; stream is 1 (randomized)
or 2 (shifted), so the two styles draw independently.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .imaging import IMAGING_FAMILIES
from .lighting import LIGHTING_FAMILIES
from .materials import PALETTE_FAMILIES, TEXTURE_FAMILIES
from .sensor import SENSORS

CLASSIC, RANDOMIZED, SHIFTED = "classic", "randomized", "shifted"
STYLES = (CLASSIC, RANDOMIZED, SHIFTED)
"""The render styles, in the order of the ``SyntheticConfig.style`` docstring."""

STYLE_STREAMS = {RANDOMIZED: 1, SHIFTED: 2}
"""The extra seed word of each non-classic style's random streams."""

CATEGORIES = ("palette", "texture", "lighting", "imaging", "sensor")
"""What a family decides: material colours, surface patterns, the light set-up, the colour
camera (exposure, white balance, gamma, blur, noise, JPEG) and the depth sensor (intrinsics,
depth noise, quantisation, holes, shadows, flying pixels)."""

# The split between training and held-out families. It is what makes the robustness
# benchmark honest: a model trained on ``randomized`` worlds has never seen any family of
# ``shifted``, so its score on ``synthetic:S@shifted`` measures generalisation to an unseen
# look, and comparing it with ``synthetic:S@randomized`` (same rooms) isolates that shift.
# Never move a name from one side to the other; add new families to one side only.
RANDOMIZED_FAMILIES: dict[str, tuple[str, ...]] = {
    # Class colours with strong jitter, and random colours of moderate saturation (<= 0.75)
    # and value (0.15 .. 0.92).
    "palette": ("class_jitter", "muted", "earth", "pastel", "greys", "colourful"),
    # The classic patterns with wide parameter ranges, plus stripes, stains and checks.
    "texture": ("class_default", "plain", "wood", "fabric", "tiles", "speckle", "stripes", "blotches", "checker"),
    # Near-white lights (saturation <= 0.25) from the ceiling, windows or a standing lamp.
    "lighting": ("daylight", "overcast", "ceiling_lamps", "evening_lamp", "side_window"),
    # Read noise <= 6 levels, defocus <= 1.2 px, motion blur <= 6 px, JPEG quality >= 60.
    "imaging": ("clean", "consumer", "low_light"),
    # Structured light and active stereo, fx / width 0.76 .. 0.99.
    "sensor": ("kinect_v1", "structure_sensor", "realsense_d415", "realsense_d435"),
}
SHIFTED_FAMILIES: dict[str, tuple[str, ...]] = {
    # Saturation >= 0.85, or value <= 0.12, or value >= 0.95 with almost no colour.
    "palette": ("saturated", "very_dark", "very_bright"),
    # Procedural patterns no training family produces.
    "texture": ("dots", "chevron", "marble"),
    # A single warm light near the floor; strongly coloured lights (saturation >= 0.55).
    "lighting": ("warm_low_single", "strong_colored"),
    # Read noise 9-14 levels, or defocus >= 1.8 px with motion blur >= 9 px, or JPEG quality <= 25.
    "imaging": ("heavy_noise", "heavy_blur", "heavy_jpeg"),
    # Time-of-flight sensors with wide fields of view (fx / width 0.63 .. 0.73).
    "sensor": ("kinect_v2", "azure_kinect_nfov"),
}
STYLE_FAMILIES = {RANDOMIZED: RANDOMIZED_FAMILIES, SHIFTED: SHIFTED_FAMILIES}

_IMPLEMENTED = {
    "palette": PALETTE_FAMILIES,
    "texture": TEXTURE_FAMILIES,
    "lighting": LIGHTING_FAMILIES,
    "imaging": IMAGING_FAMILIES,
    "sensor": SENSORS,
}
for _category in CATEGORIES:
    _train, _held_out = set(RANDOMIZED_FAMILIES[_category]), set(SHIFTED_FAMILIES[_category])
    if _train & _held_out:
        raise AssertionError(f"{_category} families in both styles: {sorted(_train & _held_out)}")
    if (_train | _held_out) - set(_IMPLEMENTED[_category]):
        raise AssertionError(f"{_category} families without an implementation: {sorted((_train | _held_out) - set(_IMPLEMENTED[_category]))}")


def check_style(style: str) -> str:
    """``style`` if it is one of ``STYLES``, else ValueError naming the choices."""
    if style not in STYLES:
        raise ValueError(f"unknown synthetic style {style!r}; expected one of {', '.join(STYLES)}")
    return style


@dataclass(frozen=True)
class WorldStyle:
    """The families one world of a non-classic style uses.

    style: "randomized" or "shifted". sensor, lighting, imaging: one family each for the
    whole world. palettes, textures: the families the world's materials mix (2-4 of each),
    with their mixing weights (sum 1); each material draws one of them.
    """

    style: str
    sensor: str
    lighting: str
    imaging: str
    palettes: tuple[str, ...]
    palette_weights: tuple[float, ...]
    textures: tuple[str, ...]
    texture_weights: tuple[float, ...]

    @property
    def stream(self) -> int:
        """The extra seed word of this style's random streams."""
        return STYLE_STREAMS[self.style]

    def families(self) -> dict[str, tuple[str, ...]]:
        """Category -> the family names this world may use (see ``CATEGORIES``)."""
        return {
            "palette": self.palettes,
            "texture": self.textures,
            "lighting": (self.lighting,),
            "imaging": (self.imaging,),
            "sensor": (self.sensor,),
        }


def _subset(rng: np.random.Generator, names: tuple[str, ...], low: int, high: int) -> tuple[tuple[str, ...], tuple[float, ...]]:
    """``low``..``high`` distinct names (in family order) with Dirichlet mixing weights."""
    k = int(rng.integers(min(low, len(names)), min(high, len(names)) + 1))
    chosen = np.sort(rng.choice(len(names), size=k, replace=False))
    weights = rng.dirichlet(np.ones(k))
    return tuple(names[i] for i in chosen), tuple(float(w) for w in weights)


def draw_world_style(seed: int, style: str) -> WorldStyle:
    """The families world ``seed`` uses in ``style`` ("randomized" or "shifted"); reproducible."""
    if check_style(style) == CLASSIC:
        raise ValueError("the classic style has no families to draw")
    families = STYLE_FAMILIES[style]
    rng = np.random.default_rng([int(seed), 11, STYLE_STREAMS[style]])

    def one(category: str) -> str:
        return families[category][int(rng.integers(len(families[category])))]

    sensor, lighting, imaging = one("sensor"), one("lighting"), one("imaging")
    palettes, palette_weights = _subset(rng, families["palette"], 2, 4)
    textures, texture_weights = _subset(rng, families["texture"], 2, 4)
    return WorldStyle(style, sensor, lighting, imaging, palettes, palette_weights, textures, texture_weights)
