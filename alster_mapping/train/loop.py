"""The one training loop of every model family (``alster train --model NAME``).

The loop runs a recipe (``train/recipe.py``) phase by phase: each phase gets Adam (or SGD
with momentum, when the phase asks) with the recipe's parameter groups and one OneCycle
schedule over their peak rates; a step zeroes
the gradients, runs the phase's forwards (each backward scaled by 1 / forwards; under
``torchrun`` only the last one synchronises gradients), clips the gradient norm and steps
the optimizer and the schedule. Everything random is seeded by the config's ``seed``
(the model's initialisation included). Every ``checkpoint_every`` steps, and at the end of
each phase, the training state (weights, optimizer, generator, phase, step, loss history,
the recipe's own state) is written atomically to ``OUT/state.safetensors``; a rerun with
the same ``OUT`` resumes from it. The end writes ``OUT/model.safetensors`` and its card
(``nets.checkpoint``) with the provenance and the final losses.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from ..core.config import to_dict, validate
from ..core.tensor_file import TensorFileError, read_tensor_file, write_tensor_file
from ..nets.checkpoint import save_checkpoint
from .recipe import RECIPES, Phase, Recipe

STATE_FILE = "state.safetensors"
MODEL_FILE = "model.safetensors"
DONE = "done"


class TrainingLoop:
    """Trains one registered model with its recipe.

    recipe: the recipe's name (= the model's registry name) or class. config: an instance
    of the recipe's ``config_class``. out_dir: where the training state, the log and the
    final checkpoint go. sequences: training data handed to the recipe (default: what the
    config names). provenance: recorded in the model card (e.g. the command line).
    """

    def __init__(
        self,
        recipe: str | type[Recipe],
        config: Any,
        out_dir: str | os.PathLike,
        sequences: list | None = None,
        provenance: dict | None = None,
        progress: bool = True,
        log: Callable[[str], None] = print,
    ):
        recipe_class = RECIPES.get(recipe) if isinstance(recipe, str) else recipe
        if not isinstance(config, recipe_class.config_class):
            raise TypeError(f"recipe {recipe_class.__name__} takes a {recipe_class.config_class.__name__}, got {type(config).__name__}")
        self.cfg = validate(config)
        self.out = Path(out_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        self.progress = progress
        self.log = log
        self.provenance = dict(provenance or {})
        self.rank, self.world_size = distributed_rank()
        torch.manual_seed(self.cfg.seed)  # before the recipe builds (initialises) its model
        self.recipe = recipe_class(self.cfg, sequences=sequences, rank=self.rank, world_size=self.world_size)
        names = self.recipe.phases()
        self.phase_names = [*names, DONE]
        self.phase = next((name for name in names if self.recipe.steps(name) > 0), names[-1])
        self.step = 0
        self.history: list[dict] = []
        self.elapsed = 0.0
        self.current: Phase | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.scheduler = None

    @property
    def model(self) -> torch.nn.Module:
        """The model being trained."""
        return self.recipe.model

    # -- optimisation set-up --------------------------------------------------------------------

    def _start_phase(self) -> None:
        """The phase's optimizer (Adam, or SGD with momentum) + OneCycle (one group per recipe parameter group)."""
        self.current = self.recipe.start_phase(self.phase)
        groups = [{"params": params, "lr": lr} for params, lr in self.current.param_groups]
        if self.current.optimizer == "sgd":
            self.optimizer = torch.optim.SGD(groups, momentum=self.current.momentum, weight_decay=self.current.weight_decay)
        elif self.current.optimizer == "adam":
            self.optimizer = torch.optim.Adam(groups, weight_decay=self.current.weight_decay)
        else:
            raise ValueError(f"unknown optimizer {self.current.optimizer!r} (adam or sgd)")
        self._build_scheduler()

    def _build_scheduler(self) -> None:
        """OneCycle over the phase's steps (its peaks from the recipe, also after a resume)."""
        peaks = [lr for _, lr in self.current.param_groups]
        # total_steps + 1: the last step() lands on the end of the schedule. SGD keeps its momentum constant.
        self.scheduler = torch.optim.lr_scheduler.OneCycleLR(
            self.optimizer, max_lr=peaks, total_steps=self.current.steps + 1, cycle_momentum=self.current.optimizer == "adam"
        )

    # -- training state ----------------------------------------------------------------------

    def state_path(self) -> Path:
        return self.out / STATE_FILE

    def save_state(self) -> None:
        """Write weights, optimizer, phase, step, generator and the recipe's state atomically (rank 0)."""
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
            "recipe_state": self.recipe.state(),
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
        changed = changed_keys(
            meta.get("config", {}),
            json.loads(json.dumps(to_dict(self.cfg))),
            defaults=json.loads(json.dumps(to_dict(type(self.cfg)()))),
        )
        # Settings of phases that have not started yet may change (e.g. fewer steps of a
        # later phase); anything that shaped the saved weights may not.
        free = {"checkpoint_every"}
        position = self.phase_names.index(meta["phase"])
        for index, name in enumerate(self.phase_names[:-1]):
            if index > position or (index == position and int(meta["step"]) == 0):
                free |= self.recipe.phase_config_keys(name)
        fixed = [k for k in changed if k.split(".")[0] not in free and k not in free]
        if fixed:
            raise ValueError(
                f"{path} was written by a different training configuration ({', '.join(fixed)}); use another --out or delete it"
            )
        self.model.load_state_dict({k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")})
        self.phase, self.step, self.elapsed = meta["phase"], int(meta["step"]), float(meta["elapsed"])
        self.history = meta["history"]
        torch.set_rng_state(tensors["torch_rng"])
        if self.phase != DONE:
            self._start_phase()
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
            self.recipe.load_state(meta.get("recipe_state", {}))
        self.log(f"resumed {path}: phase {self.phase}, step {self.step}")
        return True

    # -- one step -------------------------------------------------------------------------------

    def _step(self) -> dict[str, float]:
        """One optimizer step of the current phase; returns the mean losses of its forwards."""
        phase = self.current
        sums: dict[str, float] = {}
        done = 0
        self.optimizer.zero_grad(set_to_none=True)
        for index in range(phase.forwards):
            # Under DDP gradients are averaged across ranks only in the last backward of a step.
            sync = self.world_size == 1 or phase.network is None or index == phase.forwards - 1
            with contextlib.nullcontext() if sync else phase.network.no_sync():
                losses = self.recipe.forward(self.phase, self.step, index)
                if losses is None:
                    # Nothing to learn from this forward; DDP still needs every rank's backward.
                    if self.world_size > 1:
                        sum(p.sum() * 0.0 for p in self.model.parameters()).backward()
                    continue
                (losses["total"] / phase.forwards).backward()
            self.recipe.after_backward(self.phase, self.step, index)
            done += 1
            for name, value in losses.items():
                sums[name] = sums.get(name, 0.0) + value.item()
        if phase.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), phase.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        return {name: value / max(done, 1) for name, value in sums.items()}

    # -- driver ---------------------------------------------------------------------------

    def run(self) -> dict:
        """Train (resuming if a state exists) and write ``OUT/model.safetensors`` + card; returns the card."""
        if not self.load_state() and self.phase != DONE:
            self._start_phase()
        while self.phase != DONE:
            total = self.current.steps
            bar = tqdm(total=total, initial=self.step, desc=self.phase, disable=not self.progress or self.rank != 0, dynamic_ncols=True)
            while self.step < total:
                start = time.perf_counter()
                losses = self._step()
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
            self.recipe.end_phase(self.phase)
            self.phase = self.phase_names[self.phase_names.index(self.phase) + 1]
            self.step = 0
            if self.phase != DONE:
                self._start_phase()
            self.save_state()
        return self.write_model()

    def write_model(self) -> dict:
        """Save the trained weights with a model card (provenance, time, final losses); returns the card."""
        provenance = {
            **self.provenance,
            "train_config": to_dict(self.cfg),
            **self.recipe.provenance(),
            "train_seconds": round(self.elapsed, 1),
            "setup_seconds": round(self.recipe.setup_seconds, 1),
            "threads": torch.get_num_threads(),
            "device": str(self.recipe.device),
            "world_size": self.world_size,
            "torch": torch.__version__,
        }
        metrics = {"final_losses": tail_means(self.history, self.phase_names[:-1])}
        self.model.eval()
        return save_checkpoint(self.model, self.out / MODEL_FILE, self.recipe.label_space, provenance, metrics) if self.rank == 0 else {}


def changed_keys(old: dict, new: dict, prefix: str = "", defaults: dict | None = None) -> list[str]:
    """Dotted keys whose values differ between two nested config dicts.

    defaults: the schema's defaults (same nesting); a key that ``old`` lacks -- a parameter
    added after ``old`` was written -- counts as unchanged while ``new`` holds its default.
    """
    keys = []
    defaults = defaults or {}
    for key in sorted(set(old) | set(new)):
        a, b, default = old.get(key), new.get(key), defaults.get(key)
        if key not in old and key in defaults:
            a = default
        if isinstance(a, dict) and isinstance(b, dict):
            keys += changed_keys(a, b, f"{prefix}{key}.", default if isinstance(default, dict) else None)
        elif a != b:
            keys.append(f"{prefix}{key}")
    return keys


def tail_means(history: list[dict], phases: list[str], n: int = 20) -> dict:
    """Mean of each loss over the last ``n`` steps of each phase."""
    out: dict = {}
    for phase in phases:
        rows = [r for r in history if r["phase"] == phase][-n:]
        if rows:
            keys = [k for k in rows[0] if k not in ("phase", "step", "lr", "elapsed_s")]
            out[phase] = {k: round(float(np.mean([r[k] for r in rows if k in r])), 4) for k in keys}
    return out


def distributed_rank() -> tuple[int, int]:
    """(rank, world size); initialises torch.distributed when launched by ``torchrun``."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ or int(os.environ["WORLD_SIZE"]) <= 1:
        return 0, 1
    if not torch.distributed.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        torch.distributed.init_process_group(backend)
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    return torch.distributed.get_rank(), torch.distributed.get_world_size()
