"""The few lines a run prints when it ends: where things are, the headline numbers, what was a stand-in."""

from __future__ import annotations

import sys
from typing import TextIO

import pandas as pd

from dfine_bench.execution.executor import RunOutcome
from dfine_bench.records.store import records_to_frame


def _ap_record(g: pd.DataFrame) -> pd.Series | None:
    """The record whose AP the summary shows: an ok evaluation record that holds an AP (what the
    COCO evaluator's records declare; another evaluator of task ``evaluation`` holds none), the
    reference eager fp32 one first (``evaluation.backends`` may add others)."""
    if "AP" not in g:
        return None
    ev = g[(g.task == "evaluation") & (g.status == "ok") & g["AP"].notna()]
    if ev.empty:
        return None
    reference = ev[(ev.backend.fillna("eager") == "eager") & (ev.dtype.fillna("fp32") == "fp32")]
    return (reference if not reference.empty else ev).iloc[0]


def summary_frame(outcome: RunOutcome) -> pd.DataFrame:
    """One row per model: AP, params, GFLOPs, and median latency / FPS per backend."""
    df = records_to_frame(outcome.records)
    if df.empty:
        return df
    rows = []
    for model, g in df.groupby("model", sort=False):
        row: dict[str, object] = {"model": model}
        first = g.iloc[0]
        row["weights"] = "random-init" if first["random_init"] else first["weights"]
        coco = _ap_record(g)
        if coco is not None:
            row["AP"] = round(float(coco["AP"]), 2)
            row["data"] = "generated" if coco["generated_data"] else coco["dataset"]
        cx = g[(g.task == "complexity") & (g.status == "ok")]
        for col in ("params", "gflops"):
            if not cx.empty and col in cx:
                row[col] = round(float(cx[col].iloc[0]), 2)
        lat = g[g.task == "latency"]
        for _, r in lat.iterrows():
            label = f"{r['backend']}-{r['dtype']}"
            if r["status"] == "ok" and "latency_median" in r and pd.notna(r["latency_median"]):
                row[f"{label} ms"] = round(float(r["latency_median"]), 2)
            else:
                row[f"{label} ms"] = r["status"]
        rows.append(row)
    return pd.DataFrame(rows)


def print_summary(outcome: RunOutcome, stream: TextIO | None = None) -> None:
    out = stream or sys.stdout
    print(f"\nrecords: {outcome.run_dir}/records ({len(outcome.records)} records)", file=out)
    if outcome.report_dir:
        print(f"report:  {outcome.report_dir}/index.html  (markdown: README.md)", file=out)
    table = summary_frame(outcome)
    if not table.empty:
        print(table.fillna("").to_string(index=False), file=out)
    from dfine_bench.reporting.precision_section import precision_console

    fidelity = precision_console(outcome.records)  # only with reduced-precision cells
    if fidelity:
        print(fidelity, file=out)
    _print_stand_ins(outcome, out)
    _print_unstable(outcome, out)
    if outcome.failed:
        print(f"\n{len(outcome.failed)} task(s) failed: {', '.join(outcome.failed)}", file=out)


def _print_stand_ins(outcome: RunOutcome, out: TextIO) -> None:
    stand_ins = [r for r in outcome.records if r.is_stand_in]
    if not stand_ins:
        return
    models = sorted({r.model.name for r in stand_ins if r.model.random_init})
    generated = any(r.dataset is not None and r.dataset.generated for r in stand_ins)
    print("\nSTAND-INS (not any model's accuracy):", file=out)
    if models:
        print(f"  random-init weights: {', '.join(models)} (no released weights found offline)", file=out)
    if generated:
        print("  generated dataset instead of COCO val2017 (set DFINE_BENCH_COCO to use COCO)", file=out)


def _print_unstable(outcome: RunOutcome, out: TextIO) -> None:
    unstable = [r for r in outcome.records if (r.details.get("validity") or {}).get("status") == "unstable"]
    if not unstable:
        return
    print(
        "\nUNSTABLE timings (a noisy or oversubscribed machine, or a throttling GPU; compare with care, "
        "claims do not judge them):",
        file=out,
    )
    for r in unstable:
        reasons = "; ".join(r.details["validity"].get("reasons") or [])
        mark = "THROTTLED " if r.details["validity"].get("throttled") else ""
        print(f"  {mark}{r.model.name} {r.setup.backend}-{r.setup.dtype}: {reasons}", file=out)
