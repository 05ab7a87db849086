"""Training augmentations: colour jitter, grayscale, and dropping the colour or gravity inputs."""

import numpy as np
import torch

from alster_mapping.train.augment import AugmentConfig, drop_input_groups, jitter_color


def _image(seed=0):
    return np.random.default_rng(seed).integers(0, 256, (24, 32, 3), dtype=np.uint8)


def test_jitter_is_reproducible_and_changes_the_look():
    color = _image()
    config = AugmentConfig(grayscale=0.0)
    a = jitter_color(color, config, np.random.default_rng(1))
    b = jitter_color(color, config, np.random.default_rng(1))
    c = jitter_color(color, config, np.random.default_rng(2))
    assert a.dtype == np.uint8 and a.shape == color.shape
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert np.abs(a.astype(int) - color).mean() > 2


def test_no_jitter_keeps_the_image_and_grayscale_equalises_the_channels():
    color = _image()
    unchanged = jitter_color(color, AugmentConfig(color_jitter=0.0, grayscale=0.0), np.random.default_rng(0))
    assert np.array_equal(unchanged, color)
    gray = jitter_color(color, AugmentConfig(color_jitter=0.0, grayscale=1.0), np.random.default_rng(0))
    assert np.array_equal(gray[..., 0], gray[..., 1]) and np.array_equal(gray[..., 1], gray[..., 2])


def test_input_groups_are_dropped_with_their_probabilities():
    image = torch.ones(1, 9, 4, 5)
    out, dropped = drop_input_groups(image.clone(), AugmentConfig(color_dropout=1.0, gravity_dropout=1.0), np.random.default_rng(0))
    assert dropped and (out[:, :3] == 0).all() and (out[:, 7:] == 0).all() and (out[:, 3:7] == 1).all()
    out, dropped = drop_input_groups(image.clone(), AugmentConfig(color_dropout=0.0, gravity_dropout=0.0), np.random.default_rng(0))
    assert not dropped and (out == 1).all()
    # The paper's 7 channels have no gravity group to drop.
    out, dropped = drop_input_groups(torch.ones(1, 7, 4, 5), AugmentConfig(color_dropout=0.0, gravity_dropout=1.0), np.random.default_rng(0))
    assert not dropped and (out == 1).all()
    # Over many draws the rates match the configuration.
    rng = np.random.default_rng(3)
    config = AugmentConfig(color_dropout=0.2, gravity_dropout=0.1)
    drops = [drop_input_groups(image.clone(), config, rng) for _ in range(2000)]
    assert abs(np.mean([bool((o[:, 0] == 0).all()) for o, _ in drops]) - 0.2) < 0.03
    assert abs(np.mean([d for _, d in drops]) - 0.1) < 0.03
