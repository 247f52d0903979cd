"""The ablation's markdown: AP mean +- std per arm, differences and tests, beside the paper's claim."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ARM_TITLES = {"baseline": "baseline", "fdr": "+ FDR", "fdr_go_lsd": "+ FDR + GO-LSD"}


def _num(value: float, digits: int = 2) -> str:
    return (
        "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"
    )


def ablation_markdown(summary: Mapping[str, Any], settings: Any) -> str:
    lines = [
        f"## FDR / GO-LSD ablation: {summary['label']}",
        "",
        f"Baseline `{settings.baseline}`{' (reduced layout)' if settings.reduced else ''} at "
        f"{settings.input_size}x{settings.input_size}, {settings.steps} steps of batch {settings.batch_size} "
        f"per run, seeds {', '.join(str(s) for s in settings.seeds)}; trained on {settings.train_images} "
        f"generated images, {summary['metric']} ({settings.eval_images} images). Random-init start, "
        "generated data: these numbers "
        "say nothing about COCO accuracy.",
        "",
        "| arm | params | AP mean ± std | per seed | Δ vs baseline | Welch p | permutation p |",
        "|---|---:|---:|---|---:|---:|---:|",
    ]
    comparisons = {c["arm"]: c for c in summary["comparisons"]}
    for arm in summary["arms"]:
        name = arm["arm"]
        c = comparisons.get(name)
        delta = f"{c['difference']:+.2f}" if c else "—"
        welch = _num(c["welch_p"], 3) if c else "—"
        perm = f"{c['permutation_p']:.3f} (min {c['min_permutation_p']:.3f})" if c else "—"
        lines.append(
            f"| {ARM_TITLES.get(name, name)} | {summary['parameters'][name]:,} "
            f"| {_num(arm['mean'])} ± {_num(arm['std'])} | {', '.join(_num(v) for v in arm['values'])} "
            f"| {delta} | {welch} | {perm} |"
        )
    paper = summary["paper"]
    lines += [
        "",
        f"**Paper's claim** ({paper['source']}): {paper['text']}.",
        "",
        "| model (paper) | baseline AP | + FDR + GO-LSD | Δ |",
        "|---|---:|---:|---:|",
    ]
    for model, (before, after) in paper["gains"].items():
        lines.append(f"| {model} | {before:.1f} | {after:.1f} | {after - before:+.1f} |")
    lines += [
        "",
        f"_{summary['label']}: a few hundred steps on drawn rectangles, not 12 COCO epochs; the paper's "
        "gains are not expected to transfer in size, only the direction is of interest._",
        "",
    ]
    return "\n".join(lines)


def write_markdown(summary: Mapping[str, Any], settings: Any, path: Path) -> Path:
    path.write_text(ablation_markdown(summary, settings), encoding="utf-8")
    return path
