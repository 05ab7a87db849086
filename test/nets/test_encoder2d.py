"""Tests of the 2D encoder (papers/alster.md sec. 3 "2D Encoder", eq. 1) and its
EfficientNet-Lite backbone: the ImageNet weights really load and classify, the RGB-D-N
stem keeps the pretrained RGB path, shapes at odd sizes, gradients, determinism."""
import importlib
import json
import pathlib
import sys

import numpy as np
import pytest
import torch

from alster_mapping.nets.efficientnet_lite import (
    VARIANTS,
    EfficientNetLite,
    block_args_for,
    load_pretrained_state_dict,
    normalize_rgb,
)
from alster_mapping.nets.encoder2d import Encoder2D

skimage_data = pytest.importorskip('skimage.data')
skimage_transform = pytest.importorskip('skimage.transform')

CAT_CLASSES = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat


@pytest.fixture(autouse=True)
def _two_threads():
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(previous)


def _cat_batch(resolution: int) -> torch.Tensor:
    """skimage's chelsea (300x451 RGB) resized to resolution^2: (1, 3, r, r) float32."""
    image = skimage_transform.resize(skimage_data.chelsea(), (resolution, resolution),
                                     anti_aliasing=True, preserve_range=True)
    rgb = torch.from_numpy(image.astype(np.float32)).permute(2, 0, 1)
    return normalize_rgb(rgb).unsqueeze(0)


def _frame(h: int, w: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    color = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    depth = rng.uniform(0.3, 5.0, (h, w)).astype(np.float32)
    normals = rng.normal(size=(h, w, 3)).astype(np.float32)
    normals /= np.linalg.norm(normals, axis=-1, keepdims=True)
    return color, depth, normals


@pytest.mark.parametrize('variant', ['lite0', 'lite1', 'lite2'])
def test_pretrained_backbone_classifies_the_cat(variant):
    model = EfficientNetLite(variant, pretrained=True).eval()
    with torch.inference_mode():
        probs = model(_cat_batch(VARIANTS[variant].resolution)).softmax(-1)[0]
    assert int(probs.argmax()) in CAT_CLASSES
    assert float(probs[list(CAT_CLASSES)].sum()) > 0.5


def test_random_backbone_does_not_classify_the_cat():
    torch.manual_seed(0)
    model = EfficientNetLite('lite0', pretrained=False).eval()
    with torch.inference_mode():
        probs = model(_cat_batch(224)).softmax(-1)[0]
    assert int(probs.argmax()) not in CAT_CLASSES
    # Chance level is 5 / 1000 for the five cat classes.
    assert float(probs[list(CAT_CLASSES)].sum()) < 0.05


def test_lite_variants_load_strictly_with_the_expected_layout():
    expected_params = {'lite0': 4_652_008, 'lite1': 5_416_680, 'lite2': 6_092_072}
    for variant, n_params in expected_params.items():
        state = load_pretrained_state_dict(variant)
        model = EfficientNetLite(variant)
        # Every key and shape must match: load_state_dict(strict=True) raises otherwise.
        model.load_state_dict(state, strict=True)
        assert model.parameter_counts()['total'] == n_params
        assert len(model._blocks) == (16 if variant == 'lite0' else 21)
        encoder = Encoder2D(backbone=variant, pretrained=True)
        stem = encoder.backbone._conv_stem.weight
        assert stem.shape[1] == 7
        torch.testing.assert_close(stem[:, :3], state['_conv_stem.weight'], rtol=0, atol=0)


def test_output_stride_16_dilates_only_the_last_strided_stage():
    args = block_args_for('lite0', output_stride=16)
    stage6 = [a for a in args if a.stage == 5]
    assert [a.stride for a in stage6] == [1, 1, 1, 1]
    assert [a.dilation for a in stage6] == [1, 2, 2, 2]
    assert all(a.dilation == 1 and a.stride in (1, 2) for a in args if a.stage < 5)
    assert all(a.dilation == 2 for a in args if a.stage == 6)
    model = EfficientNetLite('lite0', output_stride=16, include_head=False)
    with torch.inference_mode():
        feats = model.forward_features(torch.zeros(1, 3, 64, 96))
    sizes = {name: tuple(f.shape[1:]) for name, f in feats.items()}
    assert sizes == {'stride2': (16, 32, 48), 'stride4': (24, 16, 24), 'stride8': (40, 8, 12),
                     'stride16': (112, 4, 6), 'out': (320, 4, 6)}
    assert model.feature_channels == {name: s[0] for name, s in sizes.items()}


def test_rgbdn_stem_preserves_the_pretrained_rgb_path():
    encoder = Encoder2D(pretrained=True).eval()
    rgb_backbone = EfficientNetLite('lite0', in_channels=3, output_stride=16,
                                    include_head=False, pretrained=True).eval()
    assert torch.count_nonzero(encoder.backbone._conv_stem.weight[:, 3:]) == 0
    color, depth, normals = _frame(96, 128)
    x = Encoder2D.prepare_input(color, depth, normals)
    x_other = x.clone()
    x_other[:, 3:] = torch.randn_like(x_other[:, 3:]) * 5.0
    with torch.inference_mode():
        reference = rgb_backbone.forward_features(x[:, :3])
        for inp in (x, x_other):
            feats = encoder.backbone.forward_features(
                inp.contiguous(memory_format=torch.channels_last))
            assert feats.keys() == reference.keys()
            for name in reference:
                torch.testing.assert_close(feats[name], reference[name], rtol=1e-4, atol=1e-4)
        # Hence the whole encoder ignores depth and normals until they are trained.
        torch.testing.assert_close(encoder(x)[0], encoder(x_other)[0], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize('size', [(240, 320), (250, 330)])
def test_encoder_output_shapes_and_dtypes(size):
    h, w = size
    torch.manual_seed(0)
    encoder = Encoder2D(pretrained=False).eval()
    x = Encoder2D.prepare_input(*_frame(h, w))
    with torch.inference_mode():
        features, logits = encoder(x)
        low_features, low_logits = encoder.forward_stride4(x)
    assert features.shape == (1, 40, h, w) and features.dtype == torch.float32
    assert logits.shape == (1, 20, h, w) and logits.dtype == torch.float32
    low = (-(-h // 4), -(-w // 4))
    assert low_features.shape == (1, 40, *low) and low_logits.shape == (1, 20, *low)
    assert torch.isfinite(features).all() and torch.isfinite(logits).all()
    # The head commutes with the bilinear upsampling (both linear, weights sum to one).
    head_full = encoder.head(features.contiguous())
    torch.testing.assert_close(head_full, logits.contiguous(), rtol=1e-4, atol=1e-4)


def test_prepare_input_normalises_and_zeroes_invalid_pixels():
    color, depth, normals = _frame(6, 8)
    depth[0, 0] = 0.0
    depth[0, 1] = np.nan
    depth[0, 2] = np.inf
    normals[1, 0] = np.nan
    x = Encoder2D.prepare_input(color, depth, normals)
    assert x.shape == (1, 7, 6, 8) and x.dtype == torch.float32
    torch.testing.assert_close(x[0, :3], (torch.from_numpy(color).permute(2, 0, 1).float()
                                          - 127.0) / 128.0)
    assert torch.isfinite(x).all()
    assert x[0, 3, 0, :3].eq(0).all() and x[0, 4:, 0, :3].eq(0).all()
    assert x[0, 4:, 1, 0].eq(0).all()
    assert torch.allclose(x[0, 3, 3, 3], torch.tensor(depth[3, 3] / 3.0))
    torch.testing.assert_close(x[0, 4:, 3, 3], torch.from_numpy(normals[3, 3]))
    no_normals = Encoder2D.prepare_input(color, depth)
    assert no_normals[0, 4:].eq(0).all()
    with pytest.raises(ValueError):
        Encoder2D.prepare_input(color, depth[:, :-1], normals)


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    encoder = Encoder2D(pretrained=False).train()
    x = torch.randn(2, 7, 64, 96)
    features, logits = encoder(x)
    target = torch.randint(0, 20, (2, 64, 96))
    loss = torch.nn.functional.cross_entropy(logits, target) + features.square().mean()
    loss.backward()
    missing = [name for name, p in encoder.named_parameters()
               if p.grad is None or not torch.isfinite(p.grad).all() or p.grad.abs().sum() == 0]
    assert missing == []


def test_eval_output_is_deterministic_for_a_seed():
    x = Encoder2D.prepare_input(*_frame(64, 96))
    outputs = []
    for _ in range(2):
        torch.manual_seed(123)
        encoder = Encoder2D(pretrained=False).eval()
        with torch.inference_mode():
            outputs.append(encoder(x))
            again = encoder(x)
        assert torch.equal(outputs[-1][0], again[0]) and torch.equal(outputs[-1][1], again[1])
    assert torch.equal(outputs[0][0], outputs[1][0])
    assert torch.equal(outputs[0][1], outputs[1][1])


def test_fused_copy_matches_and_leaves_the_original_alone():
    encoder = Encoder2D(pretrained=True).eval()
    n_state = len(encoder.state_dict())
    fused = encoder.fused()
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    assert len(encoder.state_dict()) == n_state
    x = Encoder2D.prepare_input(*_frame(96, 128))
    with torch.inference_mode():
        for ref, out in zip(encoder(x), fused(x)):
            torch.testing.assert_close(out, ref, rtol=1e-3, atol=1e-3)


def test_parameter_counts_cover_the_model():
    encoder = Encoder2D(pretrained=False)
    counts = encoder.parameter_counts()
    assert counts['total'] == sum(v for k, v in counts.items() if k != 'total')
    assert counts['projection'] == 128 * 40 + 40
    assert counts['head'] == 40 * 20 + 20


def test_bench_quick_run_writes_json(tmp_path):
    bench_dir = str(pathlib.Path(__file__).resolve().parents[2] / 'bench')
    sys.path.insert(0, bench_dir)
    try:
        bench = importlib.import_module('bench_encoder2d')
    finally:
        sys.path.remove(bench_dir)
    assert bench.main(['--quick', '--out', str(tmp_path)]) == 0
    result = json.loads((tmp_path / 'bench_encoder2d.json').read_text())
    assert set(result['latency_ms']['96x64']) == {'eval', 'fused', 'fused_backbone', 'fused_stride4'}
    assert result['parameters']['total'] == Encoder2D(pretrained=False).parameter_counts()['total']
