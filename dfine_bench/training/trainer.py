"""The training loop: AdamW, warm-up then cosine decay, gradient clipping, an EMA of the weights.

Deterministic on the CPU from ``TrainSettings.seed``: the initial weights, the sample order and
the model's own sampling (D-FINE's denoising queries) all come from it. Every
``checkpoint_every`` steps the whole state (model, EMA, optimizer, torch RNG, loss history) is
written atomically to ``checkpoint.pt``; a killed run restarted on the same folder continues from
it and ends with the same weights as an uninterrupted one. The result is the EMA model, written
as a ``save_pretrained`` folder (safetensors + config.json), with the loss curve beside it.
"""

from __future__ import annotations

import copy
import csv
import logging
import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from dfine_bench.adapters.base import DetectorAdapter
from dfine_bench.errors import CheckpointError, ConfigError
from dfine_bench.training.data import TrainingSamples
from dfine_bench.utils.progress import Progress

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"
LOSS_CSV = "loss.csv"
MODEL_DIR = "model"


@dataclass(frozen=True)
class TrainSettings:
    """What a training run does; validated before any work (``validate``)."""

    steps: int = 3000
    batch_size: int = 8
    lr: float = 4e-4
    weight_decay: float = 1e-4
    warmup_steps: int = 200
    min_lr_ratio: float = 0.05  # cosine decay ends at lr * this
    grad_clip: float = 0.1  # max gradient norm (D-FINE's clip_max_norm)
    ema_decay: float = 0.999
    ema_warmup: int = 200  # EMA decay ramps up as decay * (1 - exp(-step / ema_warmup))
    seed: int = 0
    checkpoint_every: int = 100
    log_every: int = 10
    device: str = "cpu"

    def validate(self) -> None:
        positive = {"steps": self.steps, "batch_size": self.batch_size, "lr": self.lr}
        positive |= {"checkpoint_every": self.checkpoint_every, "log_every": self.log_every}
        for key, value in positive.items():
            if not value > 0:
                raise ConfigError(f"train.{key} must be positive, got {value}")
        for key, value in {"warmup_steps": self.warmup_steps, "weight_decay": self.weight_decay}.items():
            if value < 0:
                raise ConfigError(f"train.{key} must be >= 0, got {value}")
        if not 0 <= self.ema_decay < 1:
            raise ConfigError(f"train.ema_decay must be in [0, 1), got {self.ema_decay}")
        if not 0 <= self.min_lr_ratio <= 1:
            raise ConfigError(f"train.min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")


@dataclass
class TrainResult:
    model_dir: Path
    steps: int
    final_loss: float
    wall_time_s: float  # this process's training time (a resumed run adds the earlier part)
    losses: list[dict[str, float]] = field(default_factory=list)


def lr_at(step: int, s: TrainSettings) -> float:
    """Linear warm-up to ``lr`` over ``warmup_steps``, then cosine decay to ``lr * min_lr_ratio``."""
    if step < s.warmup_steps:
        return s.lr * (step + 1) / s.warmup_steps
    progress = (step - s.warmup_steps) / max(1, s.steps - s.warmup_steps)
    return s.lr * (s.min_lr_ratio + (1 - s.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def _param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    # No weight decay on norms and biases (1-d tensors), as the official D-FINE optimizer config.
    decay: list[torch.nn.Parameter] = []
    no_decay: list[torch.nn.Parameter] = []
    for _name, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _supports_loss(adapter: DetectorAdapter) -> None:
    import inspect

    if "labels" not in inspect.signature(adapter.model.forward).parameters:
        raise ConfigError(
            f"model {adapter.spec.name} does not compute its own loss from labels; `train` supports "
            "transformers detection models (D-FINE, RT-DETR, Deformable-DETR, ...)"
        )


class _Ema:
    def __init__(self, model: torch.nn.Module, s: TrainSettings) -> None:
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.settings = s

    @torch.no_grad()
    def update(self, model: torch.nn.Module, step: int) -> None:
        d = self.settings.ema_decay * (1 - math.exp(-(step + 1) / max(1, self.settings.ema_warmup)))
        ema_state = self.module.state_dict()
        for name, value in model.state_dict().items():
            if value.dtype.is_floating_point:
                ema_state[name].mul_(d).add_(value.detach(), alpha=1 - d)
            else:
                ema_state[name].copy_(value)


def _loss_parts(loss_dict: Mapping[str, torch.Tensor]) -> dict[str, float]:
    """The final layer's loss terms (``loss_vfl``, ``loss_bbox``, ...), without aux/denoising copies."""
    return {
        k: float(v.detach())
        for k, v in loss_dict.items()
        if "_aux_" not in k and "_dn_" not in k and "_enc" not in k
    }


def _save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def _load_checkpoint(path: Path) -> dict[str, Any]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file: say which and what to do
        raise CheckpointError(
            f"training checkpoint {path} cannot be read ({type(exc).__name__}: {exc}); "
            "delete it to start over or pick another train.out_dir"
        ) from None
    if not isinstance(state, dict) or "step" not in state:
        raise CheckpointError(f"training checkpoint {path} is not a dfine-bench training checkpoint")
    return state


@dataclass
class _Run:
    """What a training run carries from step to step, and what its checkpoint holds."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    ema: _Ema
    settings: TrainSettings
    losses: list[dict[str, float]] = field(default_factory=list)
    start_step: int = 0
    elapsed_before: float = 0.0

    def resume(self, ckpt_path: Path) -> None:
        state = _load_checkpoint(ckpt_path)
        if state.get("settings") != asdict(self.settings):
            raise ConfigError(
                f"{ckpt_path} was written by a run with other settings; use a new train.out_dir "
                "or the same settings to resume"
            )
        self.model.load_state_dict(state["model"])
        self.ema.module.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"])
        self.losses = list(state["losses"])
        self.start_step, self.elapsed_before = int(state["step"]), float(state["elapsed_s"])
        log.info("resuming training from step %d (%s)", self.start_step, ckpt_path)

    def step(self, samples: TrainingSamples, step: int) -> dict[str, float]:
        """One optimiser step on batch ``step``; returns its row of the loss curve."""
        s, model = self.settings, self.model
        for group in self.optimizer.param_groups:
            group["lr"] = lr_at(step, s)
        pixel_values, extras, targets = samples.batch(step, s.batch_size, s.seed)
        pixel_values = pixel_values.to(s.device)
        extras = {k: v.to(s.device) for k, v in extras.items()}
        targets = [{k: v.to(s.device) for k, v in t.items()} for t in targets]
        out = model(pixel_values=pixel_values, labels=targets, **extras)
        loss = out.loss
        if not torch.isfinite(loss):
            raise FloatingPointError(f"training loss is {float(loss)} at step {step}; lower train.lr")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if s.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), s.grad_clip)
        self.optimizer.step()
        self.ema.update(model, step)
        row = {"step": step + 1, "loss": float(loss.detach()), "lr": lr_at(step, s)}
        row |= _loss_parts(getattr(out, "loss_dict", None) or {})
        self.losses.append(row)
        return row

    def log_progress(self, row: dict[str, float]) -> None:
        every = self.settings.log_every
        if int(row["step"]) % every == 0:
            recent = [r["loss"] for r in self.losses[-every:]]
            mean = sum(recent) / len(recent)
            log.info("step %d/%d loss %.4f lr %.2e", row["step"], self.settings.steps, mean, row["lr"])

    def checkpoint_if_due(self, ckpt_path: Path, done: int, started: float) -> None:
        if done % self.settings.checkpoint_every != 0 and done != self.settings.steps:
            return
        _save_checkpoint(
            ckpt_path,
            {
                "step": done,
                "settings": asdict(self.settings),
                "model": self.model.state_dict(),
                "ema": self.ema.module.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "rng": torch.get_rng_state(),
                "losses": self.losses,
                "elapsed_s": self.elapsed_before + time.perf_counter() - started,
            },
        )


def train(
    adapter: DetectorAdapter,
    samples: TrainingSamples,
    settings: TrainSettings,
    out_dir: Path,
    *,
    progress: str = "auto",
    meta: Mapping[str, Any] | None = None,
    on_step: Callable[[int, Mapping[str, float]], None] | None = None,
) -> TrainResult:
    """Train ``adapter.model`` in place of its weights; write checkpoints and the result to ``out_dir``."""
    settings.validate()
    _supports_loss(adapter)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = adapter.model.to(settings.device)
    model.train()
    optimizer = torch.optim.AdamW(_param_groups(model, settings.weight_decay), lr=settings.lr)
    run = _Run(model, optimizer, _Ema(model, settings), settings)
    ckpt_path = out_dir / CHECKPOINT
    torch.manual_seed(settings.seed)
    if ckpt_path.is_file():
        run.resume(ckpt_path)
    started = time.perf_counter()
    with Progress(
        settings.steps, f"train {adapter.spec.name}", unit="step", enabled=progress, initial=run.start_step
    ) as bar:
        for step in range(run.start_step, settings.steps):
            row = run.step(samples, step)
            bar.update(1)
            bar.postfix = f"loss {row['loss']:.3f}"
            run.log_progress(row)
            run.checkpoint_if_due(ckpt_path, step + 1, started)
            if on_step is not None:
                on_step(step + 1, row)  # the step's losses: a caller may stop or check the run
    wall = run.elapsed_before + time.perf_counter() - started
    final = run.ema.module.eval()
    model_dir = out_dir / MODEL_DIR
    final.save_pretrained(str(model_dir))  # type: ignore[operator]
    write_loss_csv(out_dir / LOSS_CSV, run.losses)
    adapter.model = final
    window = [r["loss"] for r in run.losses[-50:]]
    return TrainResult(
        model_dir=model_dir,
        steps=settings.steps,
        final_loss=sum(window) / max(1, len(window)),
        wall_time_s=wall,
        losses=run.losses,
    )


def write_loss_csv(path: Path, losses: list[dict[str, float]]) -> None:
    columns: list[str] = []
    for row in losses:
        columns += [k for k in row if k not in columns]
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(losses)
