"""Training augmentations that make the networks rely on what every room shares (issue 16).

Colour changes the way cameras and rooms do (exposure, contrast, white balance, gamma,
saturation, grayscale), and whole input groups are dropped at random: the colour
channels, so that geometry (depth, normals, height, the normal's up component) must carry
the decision on its own, and the gravity channels, so that a map without a meaningful up
(``gravity.up = none``, both channels zero) still works.

Everything is drawn from a generator the caller seeds, so a training step is reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..core.config import param

# Channels of Encoder2D.prepare_input: RGB first, the two gravity channels last (9-channel layout).
RGB_CHANNELS = slice(0, 3)
GRAVITY_CHANNELS = slice(7, 9)
# ITU-R BT.601 luma weights (what "grayscale" means for a camera image).
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


@dataclass
class AugmentConfig:
    """Colour and input-group augmentations of both training stages (0 turns each off)."""

    color_jitter: float = param(
        0.3, "strength of the colour jitter: exposure, contrast and saturation within 1 +- s, white balance 1 +- s/3, gamma", min=0.0, max=1.0
    )
    grayscale: float = param(0.1, "probability of turning an image gray", min=0.0, max=1.0)
    color_dropout: float = param(0.2, "probability of zeroing the colour channels, so that geometry must carry the decision", min=0.0, max=1.0)
    gravity_dropout: float = param(
        0.1, "probability of zeroing the gravity channels (what gravity.up = none feeds), so that a map without up still works",
        min=0.0, max=1.0,
    )


def jitter_color(color: np.ndarray, config: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    """A colour image as another camera in another light might see it.

    color: (H, W, 3) uint8 RGB. Returns a new (H, W, 3) uint8 image: per-image gamma,
    exposure, white balance, contrast and saturation drawn within ``color_jitter``, then
    grayscale with probability ``grayscale``.
    """
    s = config.color_jitter
    image = color.astype(np.float32) / 255.0
    if s > 0:
        image = image ** np.float32(np.exp(rng.uniform(-s, s)))  # gamma in about [0.74, 1.35] at s = 0.3
        gain = rng.uniform(1 - s, 1 + s) * rng.uniform(1 - s / 3, 1 + s / 3, 3)
        image = image * gain.astype(np.float32)
        mean = image.mean()
        image = (image - mean) * np.float32(rng.uniform(1 - s, 1 + s)) + mean
        gray = image @ LUMA
        image = gray[..., None] + (image - gray[..., None]) * np.float32(rng.uniform(1 - s, 1 + s))
    if rng.random() < config.grayscale:
        image = np.repeat((image @ LUMA)[..., None], 3, axis=-1)
    return (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def drop_input_groups(image: torch.Tensor, config: AugmentConfig, rng: np.random.Generator) -> tuple[torch.Tensor, bool]:
    """Zero the colour and/or gravity channels of a network input at random.

    image: (B, 7 or 9, H, W) ``Encoder2D.prepare_input`` layout (zero colour is mid-grey
    after its normalisation; zero gravity is what ``gravity.up = none`` feeds). Returns
    (the image, changed in place, and whether the gravity channels were dropped, so the
    caller can drop the 3D network's gravity values with them).
    """
    if rng.random() < config.color_dropout:
        image[:, RGB_CHANNELS] = 0.0
    dropped = image.shape[1] > GRAVITY_CHANNELS.start and rng.random() < config.gravity_dropout
    if dropped:
        image[:, GRAVITY_CHANNELS] = 0.0
    return image, dropped
