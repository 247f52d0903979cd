# ruff: noqa: E501  (markdown table rows of the card template are long lines by nature)
"""A model card (markdown) for a trained model, rendered from its ``train_record.json``.

The committed fixture's ``MODEL_CARD.md`` is this file's output, so every number in it (steps,
wall time, loss, AP on both splits, dataset seeds and sizes, hashes) comes from the record.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

SHOWN = ("AP", "AP50", "AP75", "APs", "APm", "APl")


def _split_row(name: str, dataset: Mapping[str, Any], stats: Mapping[str, Any] | None) -> str:
    gen = dataset.get("extra", {}).get("generator", {})
    images = dataset.get("subset") or dataset.get("num_images")
    cells = [f"{stats[k]:.2f}" if stats and stats.get(k) is not None else "-" for k in SHOWN]
    size = "x".join(str(v) for v in gen.get("image_size", []))
    return f"| {name} | {gen.get('seed', '-')} | {images} | {size} | " + " | ".join(cells) + " |"


def _software(record: Mapping[str, Any]) -> str:
    """Exact package versions and the git revision with its dirty flag."""
    env, repro = record["environment"], record.get("reproducibility", {})
    packages = repro.get("packages") or {"torch": env.get("torch"), "transformers": env.get("transformers")}
    shown = ", ".join(f"{pkg} {ver}" for pkg, ver in packages.items() if ver)
    rev, dirty = (
        repro.get("git_revision", env.get("git_revision")),
        repro.get("git_dirty", env.get("git_dirty")),
    )
    tree = " (uncommitted changes: dirty)" if dirty else (" (clean)" if dirty is False else "")
    return f"{shown}; dfine-bench git {str(rev)[:12]}{tree}"


def render_model_card(record: Mapping[str, Any], *, title: str, extra_notes: str = "") -> str:
    s = record["settings"]
    model = record["model"]
    env = record["environment"]
    datasets = record["datasets"]
    ap = record.get("ap", {})
    train_eval = dict(datasets["train"], subset=record["config"]["train"].get("eval_train_images"))
    rows = [_split_row("training split (first images)", train_eval, ap.get("train"))]
    if "held_out" in datasets:
        rows.append(_split_row("held-out split", datasets["held_out"], ap.get("held_out")))
    minutes = record["wall_time_s"] / 60
    return f"""# {title}

**Fixture weights, trained on generated data.** A D-FINE trained by this project so that accuracy is
real offline: its AP below is measured on generated images (flat-coloured rectangles, 12 of the COCO-80
classes drawn), never on COCO. It checks that preprocessing, box formats and label maps are right end
to end, and gives the regression gate something to lose.

## Reproduce

```bash
{" ".join(record["command"])}
```

(`dfine-bench train` with no overrides is this recipe: `suites/train.yaml`, `dfine_bench/config/train_schema.py`.)
Then copy `model-fp16/config.json` and `model-fp16/model.safetensors` of the run folder here.

## Model

| | |
|---|---|
| architecture | {model["name"]}: D-FINE-N (HGNetv2 B0, hybrid encoder, 3-layer FDR decoder, {model["fdr_bins"]} bins), COCO-80 head |
| input size | {"x".join(str(v) for v in model["input_size"])} |
| parameters | {model["num_parameters"]:,} (whole model as built) |
| initial weights | {record["initial_weights"]} (seed {s["seed"]}) |
| losses | transformers' D-FINE loss: VFL, L1, GIoU, FGL (FDR) and DDF (GO-LSD), with denoising |
| weights file | `model.safetensors`, fp16, sha256 `{record["weights"]["fp16_sha256"]}` |

## Training

| setting | value |
|---|---|
| steps x batch size | {s["steps"]} x {s["batch_size"]} |
| optimizer | AdamW, lr {s["lr"]}, weight decay {s["weight_decay"]} (none on norms/biases), gradient clip {s["grad_clip"]} |
| schedule | linear warm-up {s["warmup_steps"]} steps, cosine to {s["min_lr_ratio"]} x lr |
| EMA | decay {s["ema_decay"]}, warm-up {s["ema_warmup"]} (the saved weights are the EMA) |
| device | {s["device"]}: {env.get("cpu") or env.get("cpu_model") or ""} ({env.get("torch_threads")} threads) |
| wall time | {minutes:.1f} min |
| final loss | {record["final_loss"]:.3f} (mean of the last 50 steps) |
| software | {_software(record)} |
| reproducible with | {record.get("reproducibility", {}).get("note", "the versions above")} |

![loss curve](loss.png)

## Accuracy (COCO protocol on generated data: fixture numbers)

| split | seed | images | image size | {" | ".join(SHOWN)} |
|---|---|---|---|{"---|" * len(SHOWN)}
{chr(10).join(rows)}

The held-out split is the generated dataset the default suite evaluates (seed 0); training used
seed {datasets["train"].get("extra", {}).get("generator", {}).get("seed")}. AP of the fp16 weights through the ordinary evaluation path (faster-coco-eval).
{extra_notes}
"""
