"""The ablation's report: per-arm table, paired tests and decisions (markdown), and its figure."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

ARM_TITLES = {"baseline": "baseline", "fdr": "+ FDR", "fdr_go_lsd": "+ FDR + GO-LSD"}
FIGURE = "ablation.png"


def _num(value: float | None, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.{digits}f}"


def _arm_rows(summary: Mapping[str, Any]) -> list[str]:
    metrics = list(dict.fromkeys(a["metric"] for a in summary["arms"]))
    head = "| arm | params | " + " | ".join(f"{m} mean [95% CI]" for m in metrics) + " |"
    lines = [head, "|---|---:|" + "---:|" * len(metrics)]
    for arm in dict.fromkeys(a["arm"] for a in summary["arms"]):
        cells = []
        for m in metrics:
            a = next(x for x in summary["arms"] if x["arm"] == arm and x["metric"] == m)
            cells.append(f"{_num(a['mean'])} [{_num(a['ci_low'])}, {_num(a['ci_high'])}]")
        params = summary["parameters"].get(arm)
        lines.append(f"| {ARM_TITLES.get(arm, arm)} | {params:,} | " + " | ".join(cells) + " |")
    return lines


def _test_rows(summary: Mapping[str, Any]) -> list[str]:
    lines = [
        "| pair | metric | mean Δ | per-seed Δ | sd of Δ | p | Holm p | detectable (80% power) | verdict |",
        "|---|---|---:|---|---:|---:|---:|---:|---|",
    ]
    for t in summary["tests"]:
        pair = f"{ARM_TITLES.get(t['arm'], t['arm'])} vs {ARM_TITLES.get(t['reference'], t['reference'])}"
        verdict = "**significant**" if t["significant"] else "not significant"
        lines.append(
            f"| {pair} | {t['metric']} | {t['mean_difference']:+.2f} | "
            f"{', '.join(f'{d:+.1f}' for d in t['differences'])} | {_num(t['std_difference'])} | "
            f"{t['p_value']:.4f} | {t['p_holm']:.4f} | {_num(t['detectable_effect'])} | {verdict} |"
        )
    return lines


def ablation_markdown(summary: Mapping[str, Any], settings: Any) -> str:
    seeds = summary["seeds"]
    lines = [
        f"## FDR / GO-LSD ablation: {summary['label']}",
        "",
        f"Baseline `{settings.baseline}`{' (reduced layout)' if settings.reduced else ''} at "
        f"{settings.input_size}x{settings.input_size}, {settings.steps} steps of batch {settings.batch_size} "
        f"per run, {len(seeds)} paired seeds ({', '.join(str(s) for s in seeds)}); trained on "
        f"{settings.train_images} generated images of the `{settings.layout}` layout (3 classes, 1-3 "
        f"medium objects: made easier so the baseline gets far enough for localization to matter), "
        f"{summary['metric']} ({settings.eval_images} images). GO-LSD with the official union matching. "
        "Random-init start, generated data: these numbers say nothing about COCO accuracy.",
        "",
        f"Baseline and Table 2: {summary['baseline_note']}.",
        "",
        *_arm_rows(summary),
        "",
        f"Paired tests ({summary['test']}; alpha = {summary['alpha']:g} per metric; the smallest p "
        f"{len(seeds)} seeds can give is {2 / 2 ** max(1, len(seeds)):.4f}):",
        "",
        *_test_rows(summary),
        "",
        "**Decision**",
        "",
        *[f"- {d}" for d in summary["decisions"]],
        "",
    ]
    paper = summary["paper"]
    lines += [
        f"**Paper's claim** ({paper['source']}): {paper['text']}.",
        "",
        "| model (paper) | baseline AP | + FDR + GO-LSD | Δ |",
        "|---|---:|---:|---:|",
    ]
    for model, (before, after) in paper["gains"].items():
        lines.append(f"| {model} | {before:.1f} | {after:.1f} | {after - before:+.1f} |")
    lines += [
        "",
        f"_{summary['label']}: {settings.steps} steps on drawn rectangles, not 12 COCO epochs; the paper's "
        "gains are not expected to transfer in size. This is small-scale evidence shown beside the claim, "
        "never its verdict._",
        "",
        f"![per-seed paired AP and arm means]({FIGURE})",
        "",
    ]
    return "\n".join(lines)


def ablation_figure(summary: Mapping[str, Any], path: Path) -> Path:
    """Per metric: one line per seed across the arms (paired), and each arm's mean with its 95% CI."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics: Sequence[str] = list(dict.fromkeys(a["metric"] for a in summary["arms"]))
    arms = list(dict.fromkeys(a["arm"] for a in summary["arms"]))
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.8), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        rows = [next(a for a in summary["arms"] if a["arm"] == arm and a["metric"] == metric) for arm in arms]
        x = list(range(len(arms)))
        for s in range(len(rows[0]["values"])):
            ax.plot(x, [r["values"][s] for r in rows], color="0.7", lw=0.8, marker=".", zorder=1)
        means = [r["mean"] for r in rows]
        errors = [
            [m - r["ci_low"] for m, r in zip(means, rows)],
            [r["ci_high"] - m for m, r in zip(means, rows)],
        ]
        ax.errorbar(
            x, means, yerr=errors, fmt="o-", color="C3", capsize=4, lw=2, zorder=2, label="mean, 95% CI"
        )
        ax.set_xticks(x, [ARM_TITLES.get(a, a) for a in arms])
        ax.set_title(metric)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("held-out AP (generated data)")
    axes[0][0].legend(loc="lower right", fontsize=8)
    fig.suptitle(
        f"FDR / GO-LSD ablation, {len(summary['seeds'])} paired seeds ({summary['label']})", fontsize=9
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_report(summary: Mapping[str, Any], settings: Any, out_dir: Path) -> list[Path]:
    markdown = out_dir / "ablation.md"
    markdown.write_text(ablation_markdown(summary, settings), encoding="utf-8")
    return [markdown, ablation_figure(summary, out_dir / FIGURE)]
