"""A seed-paired ablation of the paper's FDR and GO-LSD claim (Table 2), built to reach a decision.

Three arms on one small baseline, trained with the same budget:

* ``baseline``: the model as transformers builds it (RT-DETR's box head and loss);
* ``fdr``: the FDR box head, trained with the baseline's loss terms only;
* ``fdr_go_lsd``: the FDR head plus GO-LSD (FGL and DDF, the union matching of the official
  ``dfine_criterion.py``: ``fdr/matching.py``).

**Paired by seed**: a seed fixes the data order, the denoising noise and the initial weights of
every module the arms share (the FDR arms copy the baseline's initial tensors by name, so only the
box head differs at step 0), and the arms are compared through per-seed differences with an exact
sign-flip test (``ablation_stats``). A design with too few seeds to reach its own level is refused
at start-up. **Trained far enough**: the default trains a reduced RT-DETR-R18 (``REDUCED_RTDETR``)
at 128x128 on the generated ``easy`` layout (3 classes, 1-3 medium objects per image), where the
baseline passes AP 50 within the budget, so that localization quality matters; AP, AP75 and AP at
IoU 0.9 are reported per arm. Labelled a small-scale check on generated data, never a COCO number.

Resumable: each finished run writes ``runs/<arm>/seed<k>/result.json`` (kept when rerun with the
same settings); an interrupted run resumes from its training checkpoint. The output folder is the
tool's own (a marker file): a folder the user made is refused, never written into.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dfine_bench.adapters import get_spec
from dfine_bench.adapters.fdr_variants import rtdetr_family
from dfine_bench.adapters.hf_common import build_adapter
from dfine_bench.data.dataset import ResolvedDataset
from dfine_bench.data.generated import LAYOUTS, GeneratedParams, generate_dataset
from dfine_bench.errors import ConfigError
from dfine_bench.fdr.head import FdrSettings
from dfine_bench.records.environment import capture_environment, git_state
from dfine_bench.training import TrainingSamples, TrainSettings, train
from dfine_bench.training.ablation_eval import evaluate_adapter
from dfine_bench.training.ablation_stats import PAIRS, decision, headline, min_seeds, paired_tests, summarise
from dfine_bench.utils.tool_folder import check_tool_folder, mark_folder

log = logging.getLogger(__name__)

LABEL = "small-scale check on generated data, not a COCO reproduction"
ARMS = ("baseline", "fdr", "fdr_go_lsd")
METRICS = ("AP", "AP75", "AP90")  # AP at IoU 0.9: where a better localization should show first
RESULT = "result.json"
SUMMARY = "ablation.json"
MARKER = ".dfine-bench-ablation"
#: The packages whose CPU kernels and defaults the exact AP of a run depends on (the document's
#: ``depends_on`` gives their versions): a rerun with other versions may differ in the decimals.
DEPENDS_ON = ("torch", "transformers", "numpy", "pillow", "faster-coco-eval", "scipy")

#: A reduced RT-DETR-R18 (ResNet basic blocks 1-1-1-1 at quarter width, 64-d encoder/decoder,
#: 40 queries): same layout as the full model, small enough to train from scratch on a CPU.
REDUCED_RTDETR: dict[str, Any] = {
    "backbone_config.depths": [1, 1, 1, 1],
    "backbone_config.hidden_sizes": [16, 32, 64, 128],
    "backbone_config.embedding_size": 16,
    "encoder_in_channels": [32, 64, 128],
    "encoder_hidden_dim": 64,
    "encoder_ffn_dim": 128,
    "encoder_attention_heads": 4,
    "d_model": 64,
    "decoder_in_channels": [64, 64, 64],
    "decoder_ffn_dim": 128,
    "decoder_attention_heads": 4,
    "decoder_layers": 3,
    "num_queries": 40,
    "num_denoising": 20,
}

#: The paper's claim the ablation is shown beside (D-FINE, arXiv 2410.13842 v1, Table 2, COCO
#: val2017, 12 epochs; re-typed from the authors' table image, Peterande/storage figs/table2.png).
PAPER_CLAIM = {
    "source": "D-FINE (arXiv 2410.13842 v1), Table 2: COCO val2017, 12 epochs",
    "text": "FDR + GO-LSD raise AP by 2.0 to 5.3 points on other DETRs at the same parameter count",
    "gains": {
        "Deformable-DETR": [43.7, 47.1],
        "DAB-DETR": [44.2, 49.5],
        "DN-DETR": [46.0, 49.7],
        "DINO (12 ep)": [49.0, 51.6],
        "DINO (24 ep)": [50.4, 52.4],
    },
}

#: How the baseline relates to Table 2's rows (said in the report).
BASELINE_NOTE = (
    "RT-DETR is a DINO-style DETR (denoising queries, query selection, iterative box refinement), "
    "the closest of this project's trainable models to Table 2's DN-DETR and DINO rows; Table 2 "
    "itself has no RT-DETR row, so this is the project's extension of it"
)


@dataclass(frozen=True)
class AblationSettings:
    baseline: str = "rtdetr_r18"
    seeds: tuple[int, ...] = tuple(range(8))
    arms: tuple[str, ...] = ARMS
    steps: int = 600
    batch_size: int = 8
    lr: float = 4e-4
    warmup_steps: int = 50
    ema_decay: float = 0.99  # a short run: the EMA must follow within ~100 steps
    input_size: int = 128
    reduced: bool = True
    train_images: int = 800
    eval_images: int = 200
    layout: str = "easy"
    alpha: float = 0.05  # family-wise level of the three paired tests (Holm)
    device: str = "cpu"

    def validate(self) -> None:
        """Every setting checked before any work: one ``ConfigError`` line naming the flag."""
        self._check_design()
        self._check_training()
        self._check_target()

    def _check_design(self) -> None:
        """Arms, seeds and a level the paired test can reach with these seeds."""
        unknown = [a for a in self.arms if a not in ARMS]
        if unknown or "baseline" not in self.arms:
            raise ConfigError(
                f"ablation arms must include 'baseline' and come from {', '.join(ARMS)}; got {self.arms}"
            )
        if len(set(self.seeds)) != len(self.seeds) or not self.seeds or min(self.seeds) < 0:
            raise ConfigError(f"--seeds: distinct non-negative seeds, at least one; got {list(self.seeds)}")
        if not 0 < self.alpha < 1:
            raise ConfigError(f"--alpha must be in (0, 1), got {self.alpha}")
        needed = min_seeds(self.alpha, len(_pairs(self.arms)) or 1)
        if len(self.seeds) < needed:
            raise ConfigError(
                f"--seeds {len(self.seeds)}: the paired sign-flip test cannot reach alpha={self.alpha:g} "
                f"(Holm over {len(_pairs(self.arms))} pairs) with fewer than {needed} seeds; "
                f"use --seeds {needed}"
            )

    def _check_training(self) -> None:
        if self.input_size < 64 or self.input_size % 32:
            raise ConfigError(f"--input-size must be a multiple of 32 (>= 64), got {self.input_size}")
        for key in ("steps", "batch_size", "train_images", "eval_images"):
            if getattr(self, key) < 1:
                raise ConfigError(f"--{key.replace('_', '-')} must be positive, got {getattr(self, key)}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ConfigError(f"--lr must be a positive finite number, got {self.lr}")
        if not 0 <= self.ema_decay < 1:
            raise ConfigError(f"ablation ema_decay must be in [0, 1), got {self.ema_decay}")

    def _check_target(self) -> None:
        if self.device != "cpu" and not (self.device == "cuda" or self.device.startswith("cuda:")):
            raise ConfigError(f"--device must be cpu, cuda or cuda:N, got {self.device!r}")
        if self.layout not in LAYOUTS:
            raise ConfigError(f"ablation layout must be one of {', '.join(LAYOUTS)}, got {self.layout!r}")
        if self.baseline not in ("rtdetr_r18", "rtdetr_r50"):
            raise ConfigError(
                f"--baseline must be rtdetr_r18 or rtdetr_r50 (the RT-DETR baselines the ablation trains; "
                f"the arms add FDR and GO-LSD themselves), got {self.baseline!r}"
            )

    def key(self) -> str:
        blob = {k: v for k, v in asdict(self).items() if k not in ("seeds", "arms", "device", "alpha")}
        return hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()[:12]


def _pairs(arms: tuple[str, ...]) -> list[tuple[str, str]]:
    return [(a, r) for a, r in PAIRS if a in arms and r in arms]


@dataclass
class AblationResult:
    settings: AblationSettings
    runs: list[dict[str, Any]]
    summary: dict[str, Any] = field(default_factory=dict)
    out_dir: Path | None = None


def _build(settings: AblationSettings, arm: str, seed: int) -> Any:
    depth = settings.baseline.split("_", 1)[1]
    overrides = REDUCED_RTDETR if settings.reduced else {}
    fdr = None if arm == "baseline" else FdrSettings()
    family = rtdetr_family(depth, fdr, arm == "fdr_go_lsd", overrides)
    size = (settings.input_size, settings.input_size)
    return build_adapter(
        get_spec(settings.baseline), family, seed=seed, input_size=size, device=settings.device
    )


def build_arm(settings: AblationSettings, arm: str, seed: int) -> Any:
    """The adapter of one arm at its initial weights: every tensor it shares with the baseline (same
    name and shape) is the baseline's, for this seed; only the box head differs."""
    import torch

    adapter = _build(settings, arm, seed)
    if arm != "baseline":
        base = _build(settings, "baseline", seed).model.state_dict()
        own = adapter.model.state_dict()
        shared = {k: v for k, v in base.items() if k in own and own[k].shape == v.shape}
        with torch.no_grad():
            adapter.model.load_state_dict(shared, strict=False)
        adapter.shared_initial_tensors = len(shared)
    return adapter


def _datasets(settings: AblationSettings, out_dir: Path) -> tuple[Any, Any]:

    size = (settings.input_size, settings.input_size)
    splits = []
    # the training split from another generator seed than the held-out split, as the fixture's
    for name, n, seed in (("train", settings.train_images, 1000), ("held_out", settings.eval_images, 0)):
        params = GeneratedParams(n, size, seed, settings.layout)
        images, annotations = generate_dataset(out_dir / "data" / name, params)
        splits.append(
            ResolvedDataset(f"generated-{settings.layout}-{name}", images, annotations, generated=True)
        )
    return splits[0], splits[1]


def _train_settings(settings: AblationSettings, seed: int) -> Any:
    return TrainSettings(
        steps=settings.steps,
        batch_size=settings.batch_size,
        lr=settings.lr,
        warmup_steps=settings.warmup_steps,
        ema_decay=settings.ema_decay,
        ema_warmup=max(1, settings.steps // 10),
        seed=seed,
        checkpoint_every=max(1, settings.steps // 5),
        log_every=max(1, settings.steps // 10),
        device=settings.device,
    )


def run_one(
    settings: AblationSettings, arm: str, seed: int, train_set: Any, held_out: Any, out_dir: Path
) -> dict:
    run_dir = out_dir / "runs" / arm / f"seed{seed}"
    done = run_dir / RESULT
    if done.is_file():
        previous = json.loads(done.read_text())
        if previous.get("settings_key") == settings.key():
            log.info("ablation %s seed %d: done earlier (%s)", arm, seed, done)
            return dict(previous)
    adapter = build_arm(settings, arm, seed)
    samples = TrainingSamples(train_set, adapter)
    started = time.perf_counter()
    result = train(adapter, samples, _train_settings(settings, seed), run_dir, progress="off")
    stats = evaluate_adapter(adapter, held_out, settings.device)

    row = {
        "arm": arm,
        "seed": seed,
        "settings_key": settings.key(),
        **git_state(),  # the code that trained this run (a resumed ablation may mix revisions)
        "num_parameters": adapter.num_parameters(),
        "shared_initial_tensors": getattr(adapter, "shared_initial_tensors", None),
        "final_loss": result.final_loss,
        "train_wall_s": round(result.wall_time_s, 1),
        "wall_s": round(time.perf_counter() - started, 1),
        **stats,
    }
    done.write_text(json.dumps(row, indent=1))
    log.info("ablation %s seed %d: AP %.2f (%.0f s)", arm, seed, row.get("AP") or 0.0, row["wall_s"])
    return row


def summarise_runs(settings: AblationSettings, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-arm summaries and the paired tests of every metric, over the seeds every arm finished."""
    complete = [s for s in settings.seeds if all(_row(runs, a, s) for a in settings.arms)]
    arms: list[dict[str, Any]] = []
    tests: list[Any] = []
    for metric in METRICS:
        values = {a: [float(_row(runs, a, s)[metric]) for s in complete] for a in settings.arms}
        arms += [dataclasses.asdict(summarise(v, a, metric)) for a, v in values.items()]
        tests += paired_tests(values, metric, settings.alpha, _pairs(settings.arms))
    return {
        "label": LABEL,
        "metric": "COCO-style AP (percent) on the generated held-out split",
        "seeds": complete,
        "alpha": settings.alpha,
        "test": "exact two-sided sign-flip permutation test on per-seed differences, Holm over the pairs",
        "arms": arms,
        "tests": [dataclasses.asdict(t) for t in tests],
        "decisions": [decision(t, settings.alpha) for t in tests],
        "decision": {"text": headline(tests, settings.alpha, len(complete))},
        "parameters": {
            arm: next(r["num_parameters"] for r in runs if r["arm"] == arm) for arm in settings.arms
        },
        "baseline_note": BASELINE_NOTE,
        "paper": PAPER_CLAIM,
    }


def _row(runs: list[dict[str, Any]], arm: str, seed: int) -> dict[str, Any]:
    return next((r for r in runs if r["arm"] == arm and r["seed"] == seed), {})


def package_versions(names: tuple[str, ...]) -> dict[str, str | None]:
    from importlib import metadata

    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _fill_revisions(runs: list[dict[str, Any]], previous: Path) -> None:
    """Runs trained before rows recorded their revision take it from the summary their run wrote."""
    if all("git_revision" in r for r in runs) or not previous.is_file():
        return
    try:
        env = json.loads(previous.read_text()).get("environment", {})
    except (OSError, ValueError, AttributeError):
        return
    for r in runs:
        r.setdefault("git_revision", env.get("git_revision"))
        r.setdefault("git_dirty", env.get("git_dirty"))


def claim_folder(out_dir: Path) -> None:
    """Make ``out_dir`` the ablation's own, or refuse a folder someone else made (nothing is written)."""
    check_tool_folder(out_dir, MARKER, option="--out", fix="pick a new folder; nothing was written")
    mark_folder(out_dir, MARKER, (SUMMARY, "ablation.md", "ablation.png"))


def run_ablation(
    settings: AblationSettings, out_dir: Path, on_run: Callable[[Mapping[str, Any]], None] | None = None
) -> AblationResult:
    """Every (seed, arm) run, then the statistics; written to ``out_dir/ablation.json``."""
    import torch

    settings.validate()
    if settings.device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(
            f"--device {settings.device}: this torch build has no CUDA device; use --device cpu"
        )
    claim_folder(out_dir)
    train_set, held_out = _datasets(settings, out_dir)
    runs = []
    for seed in settings.seeds:  # seeds outermost: an interrupted run still has every arm of early seeds
        for arm in settings.arms:
            row = run_one(settings, arm, seed, train_set, held_out, out_dir)
            runs.append(row)
            if on_run is not None:
                on_run(row)

    _fill_revisions(runs, out_dir / SUMMARY)
    summary = summarise_runs(settings, runs)
    environment = capture_environment()
    document = {
        "settings": asdict(settings),
        "reduced_overrides": REDUCED_RTDETR if settings.reduced else {},
        "datasets": {"train": asdict(train_set.info()), "held_out": asdict(held_out.info())},
        "runs": runs,
        "runs_revisions": sorted({str(r.get("git_revision")) for r in runs}),
        "summary": summary,
        "environment": environment,
        # CPU kernels (convolutions, attention, the optimizer) make the exact AP depend on these
        "depends_on": package_versions(DEPENDS_ON),
    }
    (out_dir / SUMMARY).write_text(json.dumps(document, indent=1, default=str))
    return AblationResult(settings=settings, runs=runs, summary=summary, out_dir=out_dir)
