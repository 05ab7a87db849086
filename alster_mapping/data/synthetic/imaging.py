"""The colour camera of the non-classic styles: imaging families (ranges of exposure, white
balance, gamma, vignetting, blur, sensor noise and JPEG quality) and ``ColourCamera``, which
turns the linear RGB of the shaded hits into the 8-bit image a real RGB-D camera delivers.

Order of the effects, as in a camera: exposure (with auto exposure) and white balance on the
linear signal, lens vignetting, optical blur (defocus or motion), sensor noise (read noise
plus shot noise that grows with the signal; the gain of auto exposure amplifies it), the
tone curve (gamma, clipping highlights), then JPEG compression (RGB-D cameras and their
drivers commonly stream MJPEG/JPEG colour). Per world: the family, its gamma, white balance,
vignetting, exposure and noise levels; per frame (seeded by (seed, index)): exposure jitter,
blur, read noise and JPEG quality.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy import ndimage

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
_LUT_SIZE = 1024  # tone curve resolution: finer than 8 bits, so dark gradients do not band
_MID_GREY = 0.5  # the mean linear luma auto exposure aims at by default


@dataclass(frozen=True)
class ImagingFamily:
    """Ranges (lo, hi) drawn uniformly; levels in uint8 units, lengths in pixels.

    read_noise: std of the signal-independent noise (per frame). shot_noise: noise variance
    per unit of signal (per world). defocus: Gaussian blur sigma (per frame, with
    defocus_probability). motion: box blur length along x or y (per frame, with
    motion_probability). jpeg_quality: Pillow quality 1..95 (per frame). gamma: exponent of
    the tone curve out = in^(1/gamma) (per world). white_balance: largest relative error of a
    channel gain (per world). vignette: relative fall-off at the image corners (per world).
    exposure: the brightness auto exposure aims at, relative to a mid-grey mean (per world;
    exposure compensation). auto_exposure: how far each frame is scaled towards that aim,
    0 = fixed gain, 1 = all the way (per world).
    """

    read_noise: tuple[float, float]
    shot_noise: tuple[float, float]
    defocus: tuple[float, float]
    defocus_probability: float
    motion: tuple[float, float]
    motion_probability: float
    jpeg_quality: tuple[float, float]
    gamma: tuple[float, float] = (0.8, 1.25)
    white_balance: float = 0.15
    vignette: tuple[float, float] = (0.0, 0.3)
    exposure: tuple[float, float] = (0.6, 1.6)
    auto_exposure: tuple[float, float] = (0.4, 1.0)


# Training ranges: read noise <= 6, defocus <= 1.2 px, motion <= 6 px, JPEG quality >= 60.
# The held-out families each leave one of them: noise 9-14, defocus >= 1.8 px with motion
# blur >= 9 px, JPEG quality <= 25; their other settings are moderate training values.
IMAGING_FAMILIES: dict[str, ImagingFamily] = {
    "clean": ImagingFamily((0.5, 2.0), (0.0, 0.05), (0.0, 0.6), 0.3, (0.0, 0.0), 0.0, (88, 95), (0.9, 1.1), 0.06, (0.0, 0.1), (0.8, 1.5)),
    "consumer": ImagingFamily((1.5, 4.0), (0.02, 0.1), (0.3, 1.0), 0.5, (1.0, 4.0), 0.3, (70, 92)),
    "low_light": ImagingFamily((3.0, 6.0), (0.05, 0.2), (0.4, 1.2), 0.5, (2.0, 6.0), 0.5, (60, 85), (0.85, 1.2), 0.15, (0.1, 0.35), (0.45, 0.9)),
    # held out
    "heavy_noise": ImagingFamily((9.0, 14.0), (0.3, 0.5), (0.3, 1.0), 0.5, (1.0, 4.0), 0.3, (70, 92)),
    "heavy_blur": ImagingFamily((1.5, 4.0), (0.02, 0.1), (1.8, 2.6), 1.0, (9.0, 13.0), 0.5, (70, 92)),
    "heavy_jpeg": ImagingFamily((1.5, 4.0), (0.02, 0.1), (0.3, 1.0), 0.5, (1.0, 4.0), 0.3, (8, 25)),
}


class ColourCamera:
    """One world's colour camera: a family with its per-world draws (rng: the world's imaging
    stream) for images of ``width`` x ``height`` pixels."""

    def __init__(self, family: str, rng: np.random.Generator, width: int, height: int):
        self.family_name = family
        self.family = f = IMAGING_FAMILIES[family]
        self.width, self.height = int(width), int(height)
        self.gamma = rng.uniform(*f.gamma)
        self.white_balance = (1 + rng.uniform(-f.white_balance, f.white_balance, 3)).astype(np.float32)
        self.exposure = rng.uniform(*f.exposure)
        self.auto_exposure = rng.uniform(*f.auto_exposure)
        self.shot_noise = np.float32(rng.uniform(*f.shot_noise))
        # Vignetting: cos^4-like fall-off approximated by 1 - strength * r^2 (r = 1 at the corners).
        v, u = np.mgrid[0:height, 0:width].astype(np.float32)
        r2 = ((u - (width - 1) / 2) ** 2 + (v - (height - 1) / 2) ** 2) / (((width - 1) / 2) ** 2 + ((height - 1) / 2) ** 2)
        self.vignette = (1 - np.float32(rng.uniform(*f.vignette)) * r2).reshape(-1, 1)
        levels = np.linspace(0.0, 1.0, _LUT_SIZE)
        self.tone = np.round(255 * levels ** (1 / self.gamma)).astype(np.uint8)

    def develop(self, linear: np.ndarray, rng: np.random.Generator, noise: bool = True) -> np.ndarray:
        """The (H, W, 3) uint8 image of linear RGB (H*W, 3) float32 (1 = white at exposure 1).

        rng: the frame's generator. noise=False: no blur, sensor noise or JPEG artefacts
        (exposure, white balance, vignetting and the tone curve stay).
        """
        f, H, W = self.family, self.height, self.width
        # RGB-D cameras run auto exposure: each frame's gain moves its mean luma towards the
        # world's aim (the mean of every 7th pixel is enough), with a little flicker.
        sample = linear[::7]
        mean = float(sample[:, 0].mean() * _LUMA[0] + sample[:, 1].mean() * _LUMA[1] + sample[:, 2].mean() * _LUMA[2])
        auto_gain = float(np.clip((_MID_GREY * self.exposure / max(mean, 1e-3)) ** self.auto_exposure, 0.25, 8.0))
        gain = auto_gain * float(np.exp(rng.normal(0.0, 0.05)))
        image = linear * (np.float32(255 * gain) * self.white_balance)
        image *= self.vignette
        image = image.reshape(H, W, 3)
        if noise:
            if rng.random() < f.defocus_probability:
                image = ndimage.gaussian_filter(image, (rng.uniform(*f.defocus),) * 2 + (0,), truncate=2.5)
            if rng.random() < f.motion_probability:
                length = int(round(rng.uniform(*f.motion)))
                if length > 1:
                    image = ndimage.uniform_filter1d(image, length, axis=int(rng.integers(2)))
            # Read noise is amplified by the gain auto exposure adds; shot noise grows with the signal.
            read = rng.uniform(*f.read_noise) * np.sqrt(auto_gain)
            sigma = np.sqrt(np.maximum(image, 0) * self.shot_noise + np.float32(read * read))
            image += rng.standard_normal(image.shape, dtype=np.float32) * sigma
        index = np.clip(image * np.float32((_LUT_SIZE - 1) / 255), 0, _LUT_SIZE - 1).astype(np.uint16)
        color = self.tone[index]
        if noise:
            color = _jpeg(color, int(round(rng.uniform(*f.jpeg_quality))))
        return color


def _jpeg(color: np.ndarray, quality: int) -> np.ndarray:
    """``color`` (H, W, 3) uint8 after a JPEG round trip at ``quality`` (Pillow, 4:2:0 chroma)."""
    buffer = io.BytesIO()
    Image.fromarray(color).save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    with Image.open(buffer) as image:
        return np.array(image.convert("RGB"))
