"""OnlineMapper: one posed RGB-D frame in, the semantic voxel map updated (ALSTER Fig. 2).

Per frame (``step``): lift the valid depth (<= 3 m) to voxels, run the 2D encoder at those
pixels and average its features per voxel, refine them with the sparse 3D U-Net, crop the
voxels' old features and observation counts from the map, fuse with the temporal expert
and write the new features, labels (argmax of the expert head) and confidences back.
The same mapper runs the label-fusion baseline (``mode = "label_fusion"``).

Training uses the same pieces with gradients: ``prepare`` -> ``crop`` -> model ->
``commit`` (the map stores detached features, so each frame is one truncated step of
the sequence, as in the paper's sequential training).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

from ..core.config import validate
from ..core.frame import RGBDFrame
from ..core.labels import LabelSpace
from ..core.scatter import scatter_mean
from ..map.voxel_map import SemanticVoxelMap, VoxelData
from ..nets.alster import AlsterModel, AlsterOutput
from ..nets.checkpoint import load_checkpoint
from ..nets.encoder2d import Encoder2D
from ..nets.registry import MODELS
from .gravity import GravityReference
from .label_fusion import LabelFusion
from .lifting import LiftedFrame, lift_frame
from .mapping_config import MappingConfig
from .network_input import network_image

# The task of the models that the online mapper runs (registered as ALSTER's task).
MAPPING_TASK = "semantic_mapping"


@dataclass
class FrameInputs:
    """A frame prepared for the network.

    lifted: its voxels (keys (V, 3), pixel -> voxel ``inverse``). image: (1, 7 or 9, H, W)
    network input (``Encoder2D.prepare_input``). pixels: (P,) int64 flat indices of the
    lifted pixels. color: (V, 3) float32 mean colour per voxel. geometry: (V, 2) float32
    per-voxel mean height / HEIGHT_SCALE and normal . up for a network with ``inputs =
    gravity``, else None.
    """

    lifted: LiftedFrame
    image: torch.Tensor
    pixels: torch.Tensor
    color: torch.Tensor
    geometry: torch.Tensor | None = None


@dataclass
class StageLabels:
    """The auxiliary heads' labels of one frame (ALSTER Table 2's per-stage ablation).

    inputs: the prepared frame (its ``lifted`` voxels and mean ``color``). pixel_labels_2d:
    (P,) int64 argmax of the 2D head at the lifted pixels. labels_3d: (V,) int64 argmax of
    the 3D head per voxel.
    """

    inputs: FrameInputs
    pixel_labels_2d: torch.Tensor
    labels_3d: torch.Tensor


@dataclass
class StepResult:
    """What one ``step`` changed.

    keys: (V, 3) int32 updated voxels. rows: (V,) int64 their map rows. labels: (V,)
    int64 class indices. confidence: (V,) float32. timings: seconds per stage ("2d",
    "lift", "3d", "crop", "expert", "write" for ALSTER; "lift", "vote", "map" for label
    fusion) and "total". stages: the 2D and 3D heads' labels when asked for.
    """

    keys: torch.Tensor
    rows: torch.Tensor
    labels: torch.Tensor
    confidence: torch.Tensor
    timings: dict[str, float] = field(default_factory=dict)
    stages: StageLabels | None = None


class OnlineMapper:
    """Owns the map, the device and (in ALSTER mode) the model in eval mode.

    config: ``MappingConfig`` (mode, label space, map, model). model: an ``AlsterModel``
    to use (default: ``config.alster.checkpoint`` if set, else an untrained one built
    from ``config.model``). voxel_map: the map to write into (default: a new one from ``config.map``).
    Raises ValueError (``CheckpointError`` included) when the model and the map disagree
    (feature size, classes) or the map holds another kind of feature.
    """

    def __init__(self, config: MappingConfig | None = None, model: AlsterModel | None = None, voxel_map: SemanticVoxelMap | None = None):
        self.config = validate(config or MappingConfig())
        label_space = voxel_map.label_space if voxel_map is not None else LabelSpace.load(self.config.label_space)
        self.map = voxel_map if voxel_map is not None else SemanticVoxelMap(self.config.map, label_space)
        self.device = self.map.device
        self.mode = self.config.mode
        self.model = None
        self.fusion = None
        self.gravity = GravityReference(self.config.gravity)
        self._gravity_generation = self.map.generation
        if self.mode == "label_fusion":
            self.fusion = LabelFusion(self.map, self.config.label_fusion)
            return
        if self.map.feature_kind == "label_evidence":
            raise ValueError("this map holds label-fusion evidence; the ALSTER mode needs a map of learned features")
        num_classes = self.map.label_space.num_classes
        if model is None and self.config.alster.checkpoint:
            model, _ = load_checkpoint(
                self.config.alster.checkpoint, self.map.label_space, task=MAPPING_TASK, feature_dim=self.map.feature_dim
            )
        elif model is None:
            model = MODELS.build("alster", self.config.model, num_classes=num_classes, feature_dim=self.map.feature_dim)
        if model.feature_dim != self.map.feature_dim or model.num_classes != num_classes:
            raise ValueError(
                f"model (D_F {model.feature_dim}, {model.num_classes} classes) does not fit the map "
                f"(D_F {self.map.feature_dim}, {num_classes} classes of {self.map.label_space.name!r})"
            )
        self.model = model.to(self.device).eval()
        self._fused_encoder: Encoder2D | None = None
        self._fused_version = -1

    # -- the pieces (shared with training) ------------------------------------------------

    def prepare(self, frame: RGBDFrame) -> FrameInputs:
        """Lift ``frame`` and build the network input. Raises ValueError without valid depth."""
        cfg = self.config.alster
        lifted = lift_frame(frame, self.map.voxel_size, cfg.max_range, cfg.min_range, self.device)
        if self.map.generation != self._gravity_generation:  # the map was cleared or replaced: a new floor
            self.gravity.reset()
            self._gravity_generation = self.map.generation
        image, gravity = network_image(frame, self.model.config.inputs, self.gravity, cfg.max_range, self.device, lifted)
        pixels = lifted.pixel_mask.reshape(-1).nonzero().squeeze(1)
        color = lifted.image_mean(frame.color)
        geometry = None if gravity is None else lifted.image_mean(gravity)
        return FrameInputs(lifted, image, pixels, color, geometry)

    def crop(self, inputs: FrameInputs) -> tuple[torch.Tensor, VoxelData]:
        """Rows of the frame's voxels (created if new) and their current values.

        Call with ``self.map.lock`` held until ``commit`` if other threads may prune.
        """
        rows = self.map.insert(inputs.lifted.keys)
        return rows, self.map.read(rows)

    def commit(self, rows: torch.Tensor, old: VoxelData, inputs: FrameInputs, out: AlsterOutput) -> tuple[torch.Tensor, torch.Tensor]:
        """Write the expert's features (eq. 2) and the voxels' labels and confidences back
        (``alster.label_update``: the vote below or the latest expert output); returns the
        written (labels, confidence)."""
        probabilities = torch.softmax(out.logits_expert.detach().float(), dim=1)
        confidence, labels = probabilities.max(1)
        if self.config.alster.label_update == "vote":
            labels, confidence = vote_labels(old, labels, confidence)
        self.map.write_rows(
            rows,
            feature=out.feature.detach(),
            count=old.count.to(torch.int64) + 1,
            label=labels,
            confidence=confidence,
            color=self.map.blend_color(old, inputs.color),
        )
        self.map.feature_kind = "learned"
        return labels, confidence

    def inference_encoder(self) -> Encoder2D:
        """The 2D encoder that ``step`` runs: a copy with every batch norm folded into its
        convolution (``Encoder2D.fused``; the same function, one pass less over every
        activation). Remade whenever the model's 2D weights or statistics change in place
        (training through ``prepare``/``crop``/``commit`` writes them), so it is never stale."""
        encoder = self.model.encoder2d
        version = sum(t._version for t in (*encoder.parameters(), *encoder.buffers()))
        if self._fused_encoder is None or version != self._fused_version:
            self._fused_encoder = encoder.fused()
            self._fused_version = version
        return self._fused_encoder

    def network_input(self, image: torch.Tensor) -> tuple[torch.Tensor, int]:
        """The 2D encoder's input for a prepared frame's (1, C, H, W) ``image``: reduced by
        the smallest integer factor that fits ``alster.network_width``. Returns (image, factor)."""
        limit = self.config.alster.network_width
        width = image.shape[-1]
        factor = -(-width // limit) if limit and width > limit else 1
        return Encoder2D.downscale_input(image, factor), factor

    def autocast(self) -> torch.autocast:
        """The networks' arithmetic (``alster.precision``): a no-op context for float32."""
        mixed = self.config.alster.precision == "mixed"
        dtype = torch.float16 if self.device.type == "cuda" else torch.bfloat16
        return torch.autocast(self.device.type, dtype=dtype, enabled=mixed)

    # -- one frame --------------------------------------------------------------------------

    def step(self, frame: RGBDFrame, stages: bool = False) -> StepResult:
        """Integrate one frame; bad input raises ValueError before the map changes.

        stages: also return the 2D and 3D heads' labels (``StepResult.stages``, ALSTER mode only).
        """
        if self.fusion is not None:
            start = time.perf_counter()
            result = self.fusion.integrate(frame)
            data = self.map.read(result.rows)
            timings = {**result.timings, "total": time.perf_counter() - start}
            return StepResult(result.keys, result.rows, data.label.to(torch.int64), data.confidence.float(), timings)
        timings: dict[str, float] = {}
        clock = time.perf_counter()
        start = clock
        # CUDA runs asynchronously: without a sync a stage's time lands in whichever stage waits next.
        on_cuda = self.device.type == "cuda"

        def lap(name: str) -> None:
            nonlocal clock
            if on_cuda:
                torch.cuda.synchronize(self.device)
            now = time.perf_counter()
            timings[name] = timings.get(name, 0.0) + now - clock
            clock = now

        model = self.model
        with torch.inference_mode():
            inputs = self.prepare(frame)
            lap("lift")
            with self.autocast():  # the networks only: geometry stays float32
                image, factor = self.network_input(inputs.image)
                pixel_shape = (image.shape[-2] * factor, image.shape[-1] * factor)
                f2d_pixels, logits_2d = model.encode_2d(
                    image, inputs.pixels, self.inference_encoder(), pixel_shape, with_logits=stages
                )
            lap("2d")
            lifted = inputs.lifted
            f2d = scatter_mean(f2d_pixels.float(), lifted.inverse, lifted.num_voxels)
            lap("lift")
            with self.autocast():
                f3d, logits_3d = model.unet3d(lifted.keys, model.input_3d(f2d, inputs.geometry))
            lap("3d")
            with self.map.lock:
                rows, old = self.crop(inputs)
                lap("crop")
                with self.autocast():
                    feature, logits_expert = model.expert(old.feature.float(), old.count, f3d, f2d)
                lap("expert")
                out = AlsterOutput(feature.float(), logits_expert, logits_3d, f2d, f3d, logits_2d)
                labels, confidence = self.commit(rows, old, inputs, out)
                lap("write")
        timings["total"] = time.perf_counter() - start
        heads = StageLabels(inputs, logits_2d.argmax(1), logits_3d.argmax(1)) if stages else None
        return StepResult(lifted.keys, rows, labels, confidence, timings, heads)


def vote_labels(old: VoxelData, labels: torch.Tensor, confidence: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A confidence-weighted majority of the expert's labels over a voxel's observations.

    The paper labels a voxel with the expert's output of its latest observation. On
    held-out worlds that loses ~6 mIoU points against voting the same per-frame labels
    (docs/RESULTS.md): the last view of a voxel is often a poor one (at the image border,
    an object cut by the frustum), and one such view overwrites a well-observed label.
    This keeps the vote in the two columns the map already has, with the streaming
    majority algorithm of Boyer and Moore weighted by confidence: a candidate label and
    its margin m (the weight of the observations that agreed minus those that did not);
    an agreeing observation adds its confidence w, a disagreeing one subtracts it and
    takes over when m drops below zero (with margin -m). Whenever one label holds more
    than half of the weight it ends up as the candidate. The stored confidence is m / n
    (n observations, 0..1): 1 when every view agreed with full certainty.

    old: the voxels' map values before this frame (label -1 and count 0 when new).
    labels: (V,) int64 the expert's labels of this frame. confidence: (V,) float32 their
    probabilities. Returns (labels (V,) int64, confidence (V,) float32) to store.
    """
    count = old.count.to(torch.float32)
    margin = old.confidence.to(torch.float32).clamp(0, 1) * count
    candidate = old.label.to(torch.int64)
    margin = torch.where(candidate == labels, margin + confidence, margin - confidence)
    candidate = torch.where(margin < 0, labels, candidate)
    return candidate, (margin.abs() / (count + 1)).clamp(0, 1)


def frame_targets(inputs: FrameInputs, classes: torch.Tensor, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Training targets of a prepared frame from its per-pixel class indices.

    classes: (H, W) int64 (-1 = unlabelled). Returns (pixel targets (P,) for the lifted
    pixels, voxel targets (V,) = the majority class of each voxel's labelled pixels or -1).
    """
    pixel_targets = classes.reshape(-1).to(inputs.pixels.device)[inputs.pixels]
    hist = inputs.lifted.voxel_histogram(pixel_targets, num_classes)
    voxel_targets = torch.where(hist.sum(1) > 0, hist.argmax(1), torch.full_like(hist[:, 0], -1, dtype=torch.int64))
    return pixel_targets, voxel_targets
