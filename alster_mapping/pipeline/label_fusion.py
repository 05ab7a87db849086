"""Label fusion: the classical baseline that fuses external 2D label images into the map.

SemanticFusion (McCormac et al., ICRA 2017) keeps a class distribution per map element
and multiplies in each frame's per-pixel class probabilities. With hard labels from an
arbitrary 2D segmenter the Bayesian update with a symmetric noise model reduces to
counting votes, so each voxel keeps the per-class vote *fractions* f (C values in its
feature columns, ``feature_kind = "label_evidence"``):

    h   = histogram of the labels of the voxel's pixels in this frame, normalised to sum 1
    w   = min(observations so far, evidence_weight_cap)
    f' = (w * f + h) / (w * sum(f) + 1)          (sum(f) is 1, or 0 before the first label)
    label = argmax f',   confidence = max f'

The cap turns the running mean into a moving average once a voxel is well observed,
which keeps the float16 storage exact enough and lets the map follow change.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from ..core.config import LabelFusionConfig, validate
from ..core.frame import RGBDFrame
from ..map.voxel_map import SemanticVoxelMap
from . import label_fusion_kernels
from .lifting import LiftedFrame, lift_frame, use_numba


@dataclass
class FusionResult:
    """What one integrated frame changed.

    keys: (V, 3) int32 voxels updated. rows: (V,) int64 their map rows. num_pixels:
    valid depth pixels used. timings: seconds per stage ("lift", "vote", "map").
    """

    keys: torch.Tensor
    rows: torch.Tensor
    num_pixels: int
    timings: dict[str, float] = field(default_factory=dict)


class LabelFusion:
    """Fuses integer label images into a ``SemanticVoxelMap`` by per-class voting.

    voxel_map: the map (its label space decides which ids are classes). config:
    ``LabelFusionConfig``. The map's D_F must be at least the number of classes.
    """

    def __init__(self, voxel_map: SemanticVoxelMap, config: LabelFusionConfig | None = None):
        self.map = voxel_map
        self.config = validate(config or LabelFusionConfig())
        self.num_classes = voxel_map.label_space.num_classes
        if self.num_classes > voxel_map.feature_dim:
            raise ValueError(
                f"label fusion stores one evidence value per class in the feature columns: "
                f"{self.num_classes} classes need feature_dim >= {self.num_classes}, map has {voxel_map.feature_dim}"
            )
        if voxel_map.feature_kind == "learned":
            raise ValueError("this map holds learned ALSTER features; label fusion needs a map of its own")

    def integrate(self, frame: RGBDFrame, labels: np.ndarray | torch.Tensor | None = None) -> FusionResult:
        """Fuse one frame and its (H, W) integer label image of raw label ids.

        labels: defaults to ``frame.labels``. Ids outside the label space, a size
        mismatch or a frame without valid depth raise ValueError before the map changes.
        """
        t0 = time.perf_counter()
        if labels is None:
            labels = frame.labels
        if labels is None:
            raise ValueError(f"frame {frame.stamp_ns}: no label image to fuse")
        if tuple(labels.shape) != tuple(frame.shape):
            raise ValueError(f"label image is {tuple(labels.shape)} but the frame is {tuple(frame.shape)}")
        device = self.map.device
        classes = self.map.label_space.encode(labels).to(device)
        cfg = self.config
        fused = use_numba(cfg.kernel, device)
        kernel = "numba" if fused else "torch"
        lifted = lift_frame(frame, self.map.voxel_size, cfg.max_range, cfg.min_range, device, kernel)
        t1 = time.perf_counter()

        if fused:
            hist, color = label_fusion_kernels.count_votes(
                lifted.pixel_mask.numpy(), lifted.inverse.numpy(), classes.numpy(),
                np.ascontiguousarray(frame.color), lifted.num_voxels, self.num_classes,
            )
            hist, color = torch.from_numpy(hist), torch.from_numpy(color)
        else:
            hist = lifted.voxel_histogram(lifted.pixel_values(classes), self.num_classes)
            color = lifted.voxel_mean(lifted.pixel_values(torch.from_numpy(frame.color).to(device)))
        t2 = time.perf_counter()
        rows = self._fuse_numba(lifted, hist, color) if fused else self.fuse(lifted, hist, color)
        t3 = time.perf_counter()
        return FusionResult(
            keys=lifted.keys,
            rows=rows,
            num_pixels=int(lifted.inverse.shape[0]),
            timings={"lift": t1 - t0, "vote": t2 - t1, "map": t3 - t2},
        )

    def fuse(self, lifted: LiftedFrame, hist: torch.Tensor, color: torch.Tensor) -> torch.Tensor:
        """Add one frame's class votes to the voxels it observes (the update in the module docstring).

        lifted: the frame's voxels. hist: (V, C) float per-voxel class counts of this frame
        (any non-negative weights; rows of zeros leave a voxel's evidence unchanged).
        color: (V, 3) float mean observed colour. Returns the (V,) int64 map rows.
        """
        cfg = self.config
        C = self.num_classes
        votes = hist.sum(1, keepdim=True)
        observed = votes.squeeze(1) > 0
        h = hist / votes.clamp_min(1e-12)
        with self.map.lock:  # rows must stay valid until written back
            rows = self.map.insert(lifted.keys)
            old = self.map.read(rows)
            f = old.feature[:, :C].to(torch.float32)
            w = old.count.to(torch.float32).clamp_max(cfg.evidence_weight_cap).unsqueeze(1)
            fused = (w * f + h) / (w * f.sum(1, keepdim=True) + 1)
            f = torch.where(observed.unsqueeze(1), fused, f)
            confidence, label = f.max(1)
            label = torch.where(f.sum(1) > 0, label, torch.full_like(label, -1))
            feature = old.feature  # read() returned a copy
            feature[:, :C] = f.to(torch.float16)
            self.map.write_rows(
                rows,
                feature=feature,
                count=old.count.to(torch.int64) + 1,
                label=label,
                confidence=confidence.clamp(0, 1),
                color=self.map.blend_color(old, color),
            )
            self.map.feature_kind = "label_evidence"
        return rows

    def _fuse_numba(self, lifted: LiftedFrame, hist: torch.Tensor, color: torch.Tensor) -> torch.Tensor:
        """``fuse`` with the arithmetic in numba loops that write the map's columns in place
        (``label_fusion_kernels``); the same map, bit for bit."""
        C = self.num_classes
        with self.map.lock:  # rows and column views must stay valid until written back
            rows = self.map.insert(lifted.keys)
            columns = self.map.column_arrays()
            kernels = label_fusion_kernels
            evidence = kernels.gather_evidence(rows.numpy(), columns["feature"], C)
            confidence = kernels.update_evidence(
                rows.numpy(),
                evidence,
                torch.from_numpy(evidence).sum(1).numpy(),  # torch's summation order, as in fuse()
                hist.numpy(),
                color.numpy(),
                np.float32(self.config.evidence_weight_cap),
                np.float32(self.map.config.color_weight_cap),
                columns["count"],
                columns["label"],
                columns["color"],
            )
            kernels.store_evidence(rows.numpy(), evidence, confidence, columns["feature"], columns["confidence"])
            self.map.feature_kind = "label_evidence"
        return rows
