"""The report's measured-vs-claimed plot: for each claim checked under its conditions, measured
minus claimed in percent of the claim, coloured by verdict (``plots.make_plots`` draws it)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from matplotlib.patches import Patch

from dfine_bench.records.schema import ResultRecord
from dfine_bench.reporting import labels
from dfine_bench.reporting.claims_table import ClaimsTable
from dfine_bench.reporting.figures import Plot, new_figure, plot_title, save_figure, slug

_VERDICT_COLORS = {"pass": "#2e7d32", "fail": "#c62828"}


def claims_deltas(claims: ClaimsTable | None, records: Sequence[ResultRecord], out_dir: Path) -> Plot | str:
    """Measured minus claimed, in % of the claim, for claims checked under their conditions."""
    if claims is None:
        return "no claims were asked for"
    f = claims.frame
    rows = []
    for _, r in f.iterrows():
        c, m = r["claimed"], r["measured"]
        if r["verdict"] not in _VERDICT_COLORS or not is_number(c) or not is_number(m) or float(c) == 0:
            continue
        rows.append(r)
    if not rows:
        counts = ", ".join(f"{n} {v}" for v, n in claims.counts().items()) or "none"
        return f"no claim with a numeric measured value was checked under its conditions ({counts})"
    setups = _claims_setups(rows, records)
    title = plot_title(
        f"Measured vs claimed ({claims.name}) — measured on {setups}",
        "bar: (measured - claimed) / claimed; only claims checked under their conditions",
    )
    fig = new_figure(8, max(2.5, 0.35 * len(rows) + 1.6))
    ax = fig.add_subplot()
    names = [_claim_label(r) for r in rows]
    rel = [100.0 * (float(r["measured"]) - float(r["claimed"])) / abs(float(r["claimed"])) for r in rows]
    ax.barh(range(len(rows)), rel, color=[_VERDICT_COLORS[r["verdict"]] for r in rows])
    ax.set_yticks(range(len(rows)), names, fontsize=8)
    ax.invert_yaxis()
    ax.axvline(0, color="0.3", lw=0.8)
    ax.set_xlabel("measured - claimed (% of the claimed value)")
    ax.grid(True, axis="x", alpha=0.3)
    handles = [Patch(color=c, label=v) for v, c in _VERDICT_COLORS.items()]
    ax.legend(handles=handles, fontsize=8, title="verdict", title_fontsize=8)
    fig.suptitle(title, fontsize=9)  # over the whole figure: the claim names take the left side
    name = slug("claims_deltas", claims.name)
    png, svg = save_figure(fig, out_dir, name)
    skipped = len(f) - len(rows)
    caption = (
        f"{len(rows)} claim(s) checked under their conditions; "
        f"{skipped} not plotted (not comparable, not measured or not numeric)."
    )
    return Plot(name, "claims", title.replace("\n", " — "), caption, png, svg)


def _claim_label(row: Any) -> str:
    """``"dfine_s: gflops = 25 GFLOPs [Table 7]"`` (the claim's own words where the checker gives them)."""
    text = row.get("text")
    head = text if isinstance(text, str) and text else f"{row['model']} {row['metric']} ({row['claim_id']})"
    source = row.get("source")
    return f"{head} [{source}]" if isinstance(source, str) and source else head


def _claims_setups(rows: Sequence[Any], records: Sequence[ResultRecord]) -> str:
    """``device · backend · dtype`` of the claims' measurements (dtype from the records if not given)."""
    out = set()
    for r in rows:
        device, backend = r["device_name"], r["backend"]
        if not isinstance(device, str) or not device:
            continue
        dtype = r.get("dtype")
        if isinstance(dtype, str) and dtype:
            dtypes = {dtype}
        else:
            dtypes = {
                x.setup.dtype
                for x in records
                if x.model.name == r["model"]
                and labels.device_label(x.setup) == device
                and x.setup.backend == backend
            }
        out.add(f"{device} · {backend or '?'} · {'/'.join(sorted(dtypes)) or '?'}")
    return "; ".join(sorted(out)) or "devices not recorded in the claims table"


def is_number(v: Any) -> bool:
    """A finite int or float (not a bool): a value a plot can place."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))


__all__ = ["claims_deltas", "is_number"]
