"""ALSTER training: optional 2D pre-training, then joint sequential training (Weder et al., sec. 3-4).

Stage 1 (``pretrain_2d``) fine-tunes the ImageNet-initialised 2D encoder alone on per-pixel
labels with the focal loss of its auxiliary head. Stage 2 (``joint``) trains the whole
pipeline the way it runs: ``batch`` sequences side by side, each with its own map; every
forward takes one frame of each sequence, crops the frame's voxels from that map, runs
the three stages, adds eq. 4 (focal loss, gamma = 1, on the 2D, 3D and expert heads) and
writes the expert's detached features back, so every frame is one truncated step of the
sequence. As the paper prescribes, frames are visited in a random permutation of each
trajectory and maps are reset at random, so the expert sees scenes at every stage of
reconstruction. Adam with a OneCycle schedule (peak 1e-3 for the 3D network and the
expert; the paper's 1e-5 for the pretrained 2D encoder with ``joint.max_lr_2d=1e-5``, by
default 0, which freezes it: on a CPU its backward is a third of a joint step, and the
time buys twice the 2D pre-training), gradients summed over ``accumulate`` forwards.
Pre-training mirrors half of its images (``pretrain_2d.flip``).

Everything random is drawn from generators seeded by ``TrainConfig.seed``; the training
state (weights, optimizer, generators, sequence positions) is written every
``checkpoint_every`` steps to ``OUT/state.safetensors`` and picked up again by a rerun
(maps restart empty on resume, like a reset). Multi-GPU: run under ``torchrun``; the model
is wrapped in ``DistributedDataParallel`` and each rank draws its own sequences.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..core.config import to_dict, validate
from ..core.geometry import normals_from_depth
from ..core.labels import LabelSpace
from ..core.tensor_file import TensorFileError, read_tensor_file, write_tensor_file
from ..data.sequences import ScanNetSequence, Sequence, SyntheticSequence, parse_seed_range
from ..nets.alster import AlsterModel
from ..nets.checkpoint import save_checkpoint
from ..nets.encoder2d import Encoder2D
from ..nets.losses import focal_loss
from ..nets.registry import MODELS
from ..pipeline.online_mapper import OnlineMapper, frame_targets
from .config import TrainConfig

STATE_FILE = "state.safetensors"
MODEL_FILE = "model.safetensors"
PHASES = ("pretrain_2d", "joint", "done")


def training_sequences(cfg: TrainConfig) -> list[Sequence]:
    """The training sequences the config names (synthetic seeds or ScanNet scenes)."""
    data = cfg.data
    if data.source == "synthetic":
        return [SyntheticSequence(seed, data.frames, data.width, data.height) for seed in parse_seed_range(data.seeds)]
    root = Path(data.scannet_root)
    if not root.is_dir():
        raise ValueError(f"data.scannet_root {str(root)!r} is not a directory")
    scenes = sorted(p for p in root.iterdir() if (p / "pose").is_dir())
    if not scenes:
        raise ValueError(f"{root}: no exported ScanNet scenes (sub-directories with pose/)")
    return [ScanNetSequence(p, data.stride) for p in scenes]


def _rng(seed: int, *stream: int) -> np.random.Generator:
    """An independent generator for (seed, stream...) so each draw is reproducible on its own."""
    return np.random.default_rng([int(seed), *map(int, stream)])


@dataclass
class Slot:
    """One of the ``joint.batch`` sequences trained side by side: which sequence, the
    permutation of its frames, how far along it is, and its map."""

    sequence: int = -1
    order: list[int] = field(default_factory=list)
    position: int = 0
    mapper: OnlineMapper | None = None

    def state(self) -> dict:
        return {"sequence": self.sequence, "order": self.order, "position": self.position}


class Trainer:
    """Runs ``alster train``.

    config: ``TrainConfig``. out_dir: where the training state, the log and the final
    checkpoint go. sequences: training sequences (default: from ``config.data``).
    provenance: recorded in the checkpoint's model card (e.g. the command line).
    """

    def __init__(
        self,
        config: TrainConfig,
        out_dir: str | os.PathLike,
        sequences: list[Sequence] | None = None,
        provenance: dict | None = None,
        progress: bool = True,
        log: Callable[[str], None] = print,
    ):
        self.cfg = validate(config)
        self.out = Path(out_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        self.progress = progress
        self.log = log
        self.provenance = dict(provenance or {})
        self.rank, self.world_size = _distributed_rank()
        self.device = torch.device(self.cfg.mapping.map.device)
        torch.manual_seed(self.cfg.seed)
        self.space = LabelSpace.load(self.cfg.mapping.label_space)
        m = self.cfg.mapping
        self.model: AlsterModel = MODELS.build(
            "alster", m.model, num_classes=self.space.num_classes, feature_dim=m.map.feature_dim
        ).to(self.device)
        setup = time.perf_counter()
        self.sequences = sequences if sequences is not None else training_sequences(self.cfg)
        self.setup_seconds = time.perf_counter() - setup  # building worlds/scenes, outside the step times
        if not self.sequences:
            raise ValueError("no training sequences")
        self.phase = "pretrain_2d" if self.cfg.pretrain_2d.steps > 0 else "joint"
        self.step = 0
        self.history: list[dict] = []
        self.elapsed = 0.0
        self.slots: list[Slot] = []
        self.optimizer: torch.optim.Optimizer | None = None
        self.scheduler = None
        # The modules each stage calls: DistributedDataParallel wrappers under torchrun.
        self.encoder = self.model.encoder2d
        self.network = self.model
        if self.world_size > 1:
            ddp = torch.nn.parallel.DistributedDataParallel
            self.encoder = ddp(self.model.encoder2d)
            self.network = ddp(self.model, find_unused_parameters=True)

    # -- optimisation set-up --------------------------------------------------------------------

    def _build_optimizer(self) -> None:
        """Adam + OneCycle for the current phase (param groups: the paper's per-network rates)."""
        enc = self.model.encoder2d
        if self.phase == "pretrain_2d":
            cfg = self.cfg.pretrain_2d
            backbone = list(enc.backbone.parameters())
            ids = {id(p) for p in backbone}
            rest = [p for p in enc.parameters() if id(p) not in ids]
            groups = [(backbone, cfg.max_lr * cfg.backbone_lr_scale), (rest, cfg.max_lr)]
            total = cfg.steps
        else:
            cfg = self.cfg.joint
            rest = [p for name, p in self.model.named_parameters() if not name.startswith("encoder2d.")]
            groups = [(rest, cfg.max_lr)]
            if not self._frozen_2d():
                groups.insert(0, (list(enc.parameters()), cfg.max_lr_2d))
            total = cfg.steps
        self.optimizer = torch.optim.Adam([{"params": p, "lr": lr} for p, lr in groups])
        self._peak_lrs, self._total_steps = [lr for _, lr in groups], total
        self._build_scheduler()

    def _frozen_2d(self) -> bool:
        """The joint stage with ``max_lr_2d = 0``: the 2D encoder is a fixed feature extractor."""
        return self.phase == "joint" and self.cfg.joint.max_lr_2d == 0.0

    def _train_mode(self) -> None:
        """Training mode for the phase; a frozen 2D encoder gets no gradients (so autograd
        skips its backward, a third of a joint step) and stays in eval mode."""
        self.model.train()
        frozen = self._frozen_2d()
        for p in self.model.encoder2d.parameters():
            p.requires_grad_(not frozen)
        if frozen:
            self.model.encoder2d.eval()

    def _build_scheduler(self) -> None:
        """OneCycle over the phase's steps (its peaks from the config, also after a resume)."""
        self.scheduler = torch.optim.lr_scheduler.OneCycleLR(
            self.optimizer, max_lr=self._peak_lrs, total_steps=self._total_steps + 1  # the last step() lands on the end
        )

    # -- training state ----------------------------------------------------------------------

    def state_path(self) -> Path:
        return self.out / STATE_FILE

    def save_state(self) -> None:
        """Write weights, optimizer, phase, step, generators and slots atomically (rank 0)."""
        if self.rank != 0:
            return
        tensors = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        optim = self.optimizer.state_dict()
        for index, values in optim["state"].items():
            for name, value in values.items():
                tensors[f"optimizer.{index}.{name}"] = value if torch.is_tensor(value) else torch.tensor(value)
        tensors["torch_rng"] = torch.get_rng_state()
        meta = {
            "phase": self.phase,
            "step": self.step,
            "elapsed": self.elapsed,
            "history": self.history,
            "slots": [s.state() for s in self.slots],
            "param_groups": optim["param_groups"],
            "config": to_dict(self.cfg),
        }
        write_tensor_file(self.state_path(), tensors, {"training_state": json.dumps(meta)})

    def load_state(self) -> bool:
        """Resume from ``OUT/state.safetensors`` if it exists; raises ValueError if it is
        corrupt or was written for another configuration."""
        path = self.state_path()
        if not path.exists():
            return False
        try:
            tensors, metadata = read_tensor_file(path)
            meta = json.loads(metadata["training_state"])
        except (TensorFileError, KeyError, json.JSONDecodeError) as exc:
            raise ValueError(f"cannot resume from {path}: {exc} (delete it to start over)") from exc
        changed = _changed_keys(meta.get("config", {}), json.loads(json.dumps(to_dict(self.cfg))))
        # Settings of stages that have not started yet may change (e.g. fewer joint steps);
        # anything that shaped the saved weights may not.
        free = {"checkpoint_every"}
        if meta["phase"] == "pretrain_2d" and int(meta["step"]) == 0:
            free.add("pretrain_2d")
        if meta["phase"] == "pretrain_2d" or (meta["phase"] == "joint" and int(meta["step"]) == 0):
            free.add("joint")
        fixed = [k for k in changed if k.split(".")[0] not in free and k not in free]
        if fixed:
            raise ValueError(
                f"{path} was written by a different training configuration ({', '.join(fixed)}); use another --out or delete it"
            )
        self.model.load_state_dict({k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")})
        self.phase, self.step, self.elapsed = meta["phase"], int(meta["step"]), float(meta["elapsed"])
        self.history = meta["history"]
        torch.set_rng_state(tensors["torch_rng"])
        if self.phase != "done":
            self._build_optimizer()
            state: dict = {}
            for key, value in tensors.items():
                if key.startswith("optimizer."):
                    _, index, name = key.split(".", 2)
                    state.setdefault(int(index), {})[name] = value
            self.optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
            self._build_scheduler()  # the loaded groups carry the old schedule's rates
            with warnings.catch_warnings():  # fast-forward the schedule without optimizer steps
                warnings.simplefilter("ignore")
                for _ in range(self.step):
                    self.scheduler.step()
            self.slots = [Slot(**s) for s in meta["slots"]]
        self.log(f"resumed {path}: phase {self.phase}, step {self.step}")
        return True

    # -- data -------------------------------------------------------------------------------

    def _frame(self, sequence: int, index: int):
        return self.sequences[sequence].frame(index)

    def _pretrain_batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Images (B, 7, H, W) and class targets (B, H, W) of pre-training step ``step``."""
        rng = _rng(self.cfg.seed, 1, step, self.rank)
        images, targets = [], []
        while len(images) < self.cfg.pretrain_2d.batch:
            s = int(rng.integers(len(self.sequences)))
            i = int(rng.integers(len(self.sequences[s])))
            try:
                frame = self._frame(s, i)
            except ValueError:
                continue
            if frame.labels is None:
                raise ValueError(f"{self.sequences[s].name} frame {i} has no 2D labels to train on")
            depth = torch.from_numpy(frame.depth)
            normals = normals_from_depth(depth, frame.intrinsics, self.cfg.mapping.alster.max_range)
            image = Encoder2D.prepare_input(frame.color, frame.depth, normals.numpy())
            target = self.space.encode(frame.labels)
            if self.cfg.pretrain_2d.flip and rng.random() < 0.5:
                image, target = mirror_input(image, target)
            images.append(image)
            targets.append(target)
        if len({tuple(t.shape) for t in targets}) > 1:
            raise ValueError("pre-training batches need images of one size")
        return torch.cat(images).to(self.device), torch.stack(targets).to(self.device)

    def _next_frame(self, slot_index: int) -> tuple[int, int, bool]:
        """(sequence, frame, reset) of the next frame of a slot; a new sequence when done."""
        slot = self.slots[slot_index]
        rng = _rng(self.cfg.seed, 2, self.step, slot_index, slot.position, self.rank)
        reset = slot.mapper is None or rng.random() < self.cfg.joint.reset_probability
        if slot.sequence < 0 or slot.position >= len(slot.order):
            slot.sequence = int(rng.integers(len(self.sequences)))
            slot.order = [int(i) for i in rng.permutation(len(self.sequences[slot.sequence]))]
            slot.position = 0
            reset = True
        index = slot.order[slot.position]
        slot.position += 1
        return slot.sequence, index, reset

    # -- the two stages ------------------------------------------------------------------------

    def _pretrain_step(self) -> dict:
        images, targets = self._pretrain_batch(self.step)
        _, logits = self.encoder(images)  # (B, C, H, W) at full resolution
        loss = focal_loss(logits, targets, self.cfg.mapping.model.focal_gamma)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self._optimizer_step()
        return {"2d": loss.item(), "total": loss.item()}

    def _joint_step(self) -> dict:
        cfg = self.cfg.joint
        if len(self.slots) != cfg.batch:
            self.slots = [Slot() for _ in range(cfg.batch)]
        sums: dict[str, float] = {}
        forwards = 0
        last = cfg.accumulate * cfg.batch - 1
        self.optimizer.zero_grad(set_to_none=True)
        for n in range(cfg.accumulate * cfg.batch):
            k = n % cfg.batch
            sequence, index, reset = self._next_frame(k)
            slot = self.slots[k]
            if slot.mapper is None:
                slot.mapper = OnlineMapper(self.cfg.mapping, model=self.model)
                self._train_mode()  # the mapper puts its model in eval mode
            if reset:
                slot.mapper.map.clear()
            # Under DDP gradients are averaged across ranks only in the last backward of a step.
            sync = self.world_size == 1 or n == last
            with contextlib.nullcontext() if sync else self.network.no_sync():
                try:
                    frame = self._frame(sequence, index)
                    inputs = slot.mapper.prepare(frame)
                except ValueError:
                    # Nothing to learn from this frame; DDP still needs every rank's backward.
                    if self.world_size > 1:
                        sum(p.sum() * 0.0 for p in self.model.parameters()).backward()
                    continue
                pixel_t, voxel_t = frame_targets(inputs, self.space.encode(frame.labels), self.space.num_classes)
                rows, old = slot.mapper.crop(inputs)
                lifted = inputs.lifted
                out = self.network(inputs.image, inputs.pixels, lifted.inverse, lifted.keys, old.feature.float(), old.count)
                losses = self.model.losses(out, pixel_t, voxel_t)
                (losses["total"] / (cfg.batch * cfg.accumulate)).backward()
            slot.mapper.commit(rows, old, inputs, out)
            forwards += 1
            for name, value in losses.items():
                sums[name] = sums.get(name, 0.0) + value.item()
        self._optimizer_step()
        return {name: value / max(forwards, 1) for name, value in sums.items()}

    def _optimizer_step(self) -> None:
        clip = self.cfg.joint.grad_clip
        if clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip)
        self.optimizer.step()
        self.scheduler.step()

    # -- driver ---------------------------------------------------------------------------

    def run(self) -> dict:
        """Train (resuming if a state exists) and write ``OUT/model.safetensors`` + card; returns the card."""
        if not self.load_state():
            self._build_optimizer()
        self._train_mode()
        while self.phase != "done":
            total = self.cfg.pretrain_2d.steps if self.phase == "pretrain_2d" else self.cfg.joint.steps
            bar = tqdm(total=total, initial=self.step, desc=self.phase, disable=not self.progress or self.rank != 0, dynamic_ncols=True)
            while self.step < total:
                start = time.perf_counter()
                losses = self._pretrain_step() if self.phase == "pretrain_2d" else self._joint_step()
                self.step += 1
                self.elapsed += time.perf_counter() - start
                record = {"phase": self.phase, "step": self.step, "lr": self.scheduler.get_last_lr()[-1], "elapsed_s": round(self.elapsed, 1)}
                record.update({k: round(v, 5) for k, v in losses.items()})
                self.history.append(record)
                bar.set_postfix(loss=f"{losses.get('total', math.nan):.3f}")
                bar.update(1)
                if self.step % self.cfg.checkpoint_every == 0 and self.step < total:
                    self.save_state()
            bar.close()
            self.phase = PHASES[PHASES.index(self.phase) + 1]
            self.step = 0
            self.slots = []
            if self.phase != "done":
                self._build_optimizer()
                self._train_mode()
            self.save_state()
        return self.write_model()

    def write_model(self) -> dict:
        """Save the trained weights with a model card (provenance, time, loss curve summary)."""
        provenance = {
            **self.provenance,
            "train_config": to_dict(self.cfg),
            "data_seeds": parse_seed_range(self.cfg.data.seeds) if self.cfg.data.source == "synthetic" else None,
            "sequences": [s.name for s in self.sequences],
            "train_seconds": round(self.elapsed, 1),
            "setup_seconds": round(self.setup_seconds, 1),
            "threads": torch.get_num_threads(),
            "device": str(self.device),
            "world_size": self.world_size,
            "torch": torch.__version__,
        }
        metrics = {"final_losses": _tail_means(self.history)}
        self.model.eval()
        card = save_checkpoint(self.model, self.out / MODEL_FILE, self.space, provenance, metrics) if self.rank == 0 else {}
        return card


def mirror_input(image: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mirror a network input left-right as a camera would see the mirrored scene.

    image: (1, 7, H, W) ``Encoder2D.prepare_input`` layout (RGB, depth, camera-frame
    normals). target: (H, W) class indices. The normals' x component changes sign,
    because the camera's x axis points the other way in the mirrored image.
    """
    image = image.flip(-1)
    image[:, 4] = -image[:, 4]
    return image, target.flip(-1)


def _changed_keys(old: dict, new: dict, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two nested config dicts."""
    keys = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            keys += _changed_keys(a, b, f"{prefix}{key}.")
        elif a != b:
            keys.append(f"{prefix}{key}")
    return keys


def _tail_means(history: list[dict], n: int = 20) -> dict:
    """Mean of each loss over the last ``n`` steps of each phase."""
    out: dict = {}
    for phase in ("pretrain_2d", "joint"):
        rows = [r for r in history if r["phase"] == phase][-n:]
        if rows:
            keys = [k for k in rows[0] if k not in ("phase", "step", "lr", "elapsed_s")]
            out[phase] = {k: round(float(np.mean([r[k] for r in rows if k in r])), 4) for k in keys}
    return out


def _distributed_rank() -> tuple[int, int]:
    """(rank, world size); initialises torch.distributed when launched by ``torchrun``."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ or int(os.environ["WORLD_SIZE"]) <= 1:
        return 0, 1
    if not torch.distributed.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        torch.distributed.init_process_group(backend)
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    return torch.distributed.get_rank(), torch.distributed.get_world_size()
