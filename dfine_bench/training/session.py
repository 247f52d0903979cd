"""One ``dfine-bench train`` run: config -> model + data -> training -> weights, curves, AP, record.

Writes into the run folder (``train.out_dir``, by default ``results/train/<model>-<hash>`` so
that the same command resumes the same folder):

* ``checkpoint.pt``: the resumable state (see ``trainer``);
* ``model/``: the EMA weights as a ``save_pretrained`` folder (fp32), ``model-fp16/`` the same in
  fp16 (what the committed fixture ships);
* ``loss.csv`` and ``loss.png``: the loss curve;
* ``train_record.json``: settings, data, weights, wall time, final loss and the AP of the fp16
  weights on the training split and the held-out split, with the environment and git revision.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf

from dfine_bench.adapters import DetectorAdapter, create_model, get_spec
from dfine_bench.adapters.weights import WeightsRequest, weights_request
from dfine_bench.config.checks import check_size, enum_value
from dfine_bench.config.input_size import check_input_size
from dfine_bench.config.settings import DatasetSettings, EvaluationSettings
from dfine_bench.config.train_schema import TrainConfig, check_train_config
from dfine_bench.data.dataset import ResolvedDataset
from dfine_bench.data.resolve import resolve_dataset
from dfine_bench.errors import ConfigError
from dfine_bench.evaluation.loop import evaluate_model
from dfine_bench.records.environment import capture_environment, git_state
from dfine_bench.training.card import render_model_card
from dfine_bench.training.data import TrainingSamples
from dfine_bench.training.run_folder import (
    check_train_folder,
    claim_train_folder,
    finish_train_folder,
    train_identity,
)
from dfine_bench.training.trainer import TrainResult, TrainSettings, train
from dfine_bench.utils.files import atomic_write_json, atomic_write_text, sha256_file

log = logging.getLogger(__name__)

RECORD = "train_record.json"
FP16_DIR = "model-fp16"
#: COCO stats shown in the console and the record.
SHOWN = ("AP", "AP50", "AP75", "APs", "APm", "APl")


@dataclass
class TrainReport:
    out_dir: Path
    result: TrainResult
    ap: dict[str, dict[str, float | None]]  # split -> COCO stats of the fp16 weights


def settings_from(cfg: TrainConfig) -> TrainSettings:
    t = cfg.train
    return TrainSettings(
        steps=t.steps,
        batch_size=t.batch_size,
        lr=t.lr,
        weight_decay=t.weight_decay,
        warmup_steps=t.warmup_steps,
        min_lr_ratio=t.min_lr_ratio,
        grad_clip=t.grad_clip,
        ema_decay=t.ema_decay,
        ema_warmup=t.ema_warmup,
        seed=t.seed,
        checkpoint_every=t.checkpoint_every,
        log_every=t.log_every,
        device=cfg.device,
    )


def input_size_of(cfg: TrainConfig) -> tuple[int, int]:
    """The training input size, if the model runs at it (``config/input_size.py``)."""
    key = "input_size" if cfg.input_size else "model.input_size"
    size = cfg.input_size or cfg.model.input_size or list(get_spec(cfg.model.name).input_size)
    return check_input_size(key, get_spec(cfg.model.name), check_size(key, size, minimum=32))


def validate(cfg: TrainConfig) -> TrainSettings:
    """Every check that needs no model or data, so a bad value fails before any work."""
    check_train_config(cfg)  # the typed checks `run` has: one line naming the key
    settings = settings_from(cfg)
    settings.validate()
    get_spec(cfg.model.name)  # unknown model: one line with suggestions
    input_size_of(cfg)
    if cfg.device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device={cfg.device}: this torch build has no CUDA device; use device=cpu")
    if cfg.train.eval_train_images < 0:
        raise ConfigError(f"train.eval_train_images must be >= 0, got {cfg.train.eval_train_images}")
    return settings


def _weights_arg(cfg: TrainConfig) -> WeightsRequest:
    return weights_request(str(enum_value(cfg.weights.source)), cfg.weights.path)


def weight_settings(cfg: TrainConfig) -> dict[str, Any]:
    """Everything in the config that changes the trained weights (not the output folder)."""
    blob = OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True, enum_to_str=True)
    assert isinstance(blob, dict)
    blob["train"] = {
        k: v for k, v in blob["train"].items() if k not in ("out_dir", "results_dir", "log_every")
    }
    for key in ("progress", "log_level", "val_dataset"):
        blob.pop(key, None)
    return {str(k): v for k, v in blob.items()}


def run_key(cfg: TrainConfig) -> str:
    """Hash of everything that changes the trained weights (not the output folder)."""
    return hashlib.sha256(json.dumps(weight_settings(cfg), sort_keys=True).encode()).hexdigest()[:10]


def build_model(cfg: TrainConfig) -> DetectorAdapter:
    options: dict[str, Any] = {
        "weights": _weights_arg(cfg),
        "seed": cfg.train.seed,  # one seed: initial weights too
        "input_size": input_size_of(cfg),
        "revision": cfg.weights.revision,
        "trust_remote_code": cfg.weights.trust_remote_code,
    }
    if cfg.model.num_classes is not None:
        options["num_classes"] = cfg.model.num_classes
    return create_model(cfg.model.name, **options)


def evaluate_weights(
    name: str, weights_dir: Path, input_size: tuple[int, int], dataset: ResolvedDataset, device: str
) -> dict[str, float | None]:
    """COCO stats of a ``save_pretrained`` folder through the ordinary evaluation path."""
    adapter = create_model(name, weights=str(weights_dir), input_size=input_size, device=device)
    with tempfile.TemporaryDirectory() as work:
        outcome = evaluate_model(
            adapter, dataset, EvaluationSettings(num_workers=0, resume=False), Path(work), device=device,
            progress=False,
        )[0]  # fmt: skip
    return {k: outcome.metrics[k].value for k in SHOWN if k in outcome.metrics}


def plot_losses(losses: list[dict[str, float]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["step"] for r in losses]
    values = [r["loss"] for r in losses]
    window = max(1, len(values) // 100)
    smooth = [
        sum(values[max(0, i - window + 1) : i + 1]) / len(values[max(0, i - window + 1) : i + 1])
        for i in range(len(values))
    ]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(steps, values, color="#bbbbbb", linewidth=0.6, label="loss per step")
    ax.plot(steps, smooth, color="#1f77b4", linewidth=1.5, label=f"mean of {window} steps")
    ax.set_xlabel("step")
    ax.set_ylabel("total training loss")
    ax.set_yscale("log")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


#: The distributions a training result's numbers depend on: torch's CPU kernels (GEMM, convolution,
#: reduction order), transformers' model and loss code (D-FINE's matcher, FGL/DDF losses), scipy's
#: assignment solver (the Hungarian matching), numpy and Pillow (image decoding and resizing), the
#: COCO engine for the AP. Another version of any of them may give other weights, loss and AP.
RESULT_PACKAGES = ("torch", "transformers", "numpy", "scipy", "pillow", "safetensors", "faster-coco-eval")


def reproducibility(device: str) -> dict[str, Any]:
    """What a rerun needs to reproduce the numbers exactly: package versions, git revision, threads."""
    from importlib.metadata import PackageNotFoundError, version

    def _v(pkg: str) -> str | None:
        try:
            return version(pkg)
        except PackageNotFoundError:
            return None

    git = git_state()
    if git.get("git_dirty"):
        log.warning(
            "training from a working tree with uncommitted changes (git %s, dirty): the record's revision "
            "does not describe the code that ran; commit first for a result others can reproduce",
            str(git.get("git_revision"))[:12],
        )
    return {
        "packages": {pkg: _v(pkg) for pkg in RESULT_PACKAGES},
        "depends_on": list(RESULT_PACKAGES),
        "git_revision": git.get("git_revision"),
        "git_dirty": git.get("git_dirty"),
        "device": device,
        "torch_threads": torch.get_num_threads(),
        "note": (
            f"deterministic on the {device.split(':')[0].upper()} from train.seed with exactly these package "
            "versions and thread count; other versions of "
            + ", ".join(RESULT_PACKAGES)
            + " change the numbers (CPU kernels, loss and matching code, image decoding)"
        ),
    }


def run_training(cfg: TrainConfig, command: list[str]) -> TrainReport:
    settings = validate(cfg)
    results = Path(cfg.train.results_dir)
    out_dir = (
        Path(cfg.train.out_dir)
        if cfg.train.out_dir
        else results / "train" / f"{cfg.model.name}-{run_key(cfg)}"
    )
    check_train_folder(out_dir)  # a folder of the user's is refused before any work
    adapter = build_model(cfg)
    train_set = resolve_dataset(DatasetSettings.from_config(cfg.dataset), results)
    samples = TrainingSamples(train_set, adapter)  # no annotations / unknown categories: error here
    val_set = (
        resolve_dataset(DatasetSettings.from_config(cfg.val_dataset), results)
        if cfg.val_dataset is not None
        else None
    )
    identity = train_identity(weight_settings(cfg), input_size_of(cfg), train_set)
    claim_train_folder(out_dir, identity)  # another run's folder (settings, data) is refused here
    log.info(
        "training %s (%s) at %s on %s (%d images) for %d steps of %d into %s",
        cfg.model.name, adapter.weights.label, list(adapter.spec.input_size), train_set.name, len(samples),
        settings.steps, settings.batch_size, out_dir,
    )  # fmt: skip
    result = train(adapter, samples, settings, out_dir, progress=cfg.progress)
    fp16_dir = out_dir / FP16_DIR
    adapter.model.to("cpu").half().save_pretrained(str(fp16_dir))  # type: ignore[operator]
    plot_losses(result.losses, out_dir / "loss.png", f"{cfg.model.name}: {settings.steps} steps")

    size = adapter.spec.input_size
    ap: dict[str, dict[str, float | None]] = {}
    if cfg.train.eval_train_images > 0:
        train_eval = resolve_dataset(DatasetSettings.from_config(cfg.dataset), results)
        train_eval.subset = cfg.train.eval_train_images
        ap["train"] = evaluate_weights(cfg.model.name, fp16_dir, size, train_eval, cfg.device)
    if val_set is not None:
        ap["held_out"] = evaluate_weights(cfg.model.name, fp16_dir, size, val_set, cfg.device)
    record = {
        "kind": "training",
        "command": command,
        "config": OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True, enum_to_str=True),
        "settings": asdict(settings),
        "model": {**adapter.describe(), "random_init": False, "trained_here": True},
        "initial_weights": _weights_arg(cfg).label,
        "datasets": {
            "train": asdict(train_set.info()),
            **({"held_out": asdict(val_set.info())} if val_set is not None else {}),
        },
        "steps": result.steps,
        "wall_time_s": round(result.wall_time_s, 1),
        "final_loss": result.final_loss,
        "ap": ap,
        "ap_note": "AP of the fp16 weights on generated data: fixture numbers, never COCO numbers",
        "weights": {
            "fp32": str(result.model_dir),
            "fp16": str(fp16_dir),
            "fp16_sha256": sha256_file(fp16_dir / "model.safetensors"),
        },
        "environment": {**capture_environment(), **git_state()},
        "reproducibility": reproducibility(cfg.device),
    }
    atomic_write_json(out_dir / RECORD, record)

    title = f"{cfg.model.name}: trained with dfine-bench train"
    atomic_write_text(out_dir / "MODEL_CARD.md", render_model_card(record, title=title))
    finish_train_folder(out_dir, identity)
    return TrainReport(out_dir=out_dir, result=result, ap=ap)


def print_summary(report: TrainReport, stream: Any = sys.stdout) -> None:
    r = report.result
    print(
        f"trained {r.steps} steps in {r.wall_time_s / 60:.1f} min; final loss {r.final_loss:.3f}", file=stream
    )
    for split, stats in report.ap.items():
        shown = ", ".join(f"{k} {v:.2f}" for k, v in stats.items() if v is not None)
        print(f"  {split} (generated data, fixture numbers): {shown}", file=stream)
    print(
        f"  weights: {r.model_dir} (fp32), {report.out_dir / FP16_DIR} (fp16); "
        f"curve: {report.out_dir / 'loss.png'}",
        file=stream,
    )
