"""What every report plot shares: the ``Plot`` records, one matplotlib style, and writing the files.

Figures are made without pyplot state (``new_figure``) under one rc style (text kept as text in SVG,
stable SVG ids) and written atomically as PNG and SVG (``save_figure``); a stand-in plot carries a
faint watermark (``stand_in_mark``) so it still says what it is when copied out of the report.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib
from matplotlib.figure import Figure

from dfine_bench.utils.files import atomic_write_bytes, atomic_write_text

if TYPE_CHECKING:  # matplotlib's rc key names (a Literal type)
    from matplotlib.typing import RcKeyType

#: rc settings for every plot: text kept as text in SVG (searchable), stable SVG ids.
PLOT_STYLE: dict[RcKeyType, Any] = {"svg.fonttype": "none", "svg.hashsalt": "dfine-bench", "font.size": 9}


@dataclass
class Plot:
    """A drawn plot: ``png`` and ``svg`` files, the full title (with conditions) and a caption."""

    name: str
    kind: str  # ap_vs_latency | ap_vs_params | ap_vs_gflops | latency_vs_batch | claims | pr_curve
    title: str
    caption: str
    png: Path
    svg: Path


@dataclass
class SkippedPlot:
    """A plot that was not drawn, and why."""

    kind: str
    reason: str


@dataclass
class PlotSet:
    plots: list[Plot]
    skipped: list[SkippedPlot]


def save_figure(fig: Figure, out_dir: Path, name: str) -> tuple[Path, Path]:
    """Write ``<name>.png`` and ``<name>.svg`` atomically; returns their paths."""
    png, svg = out_dir / f"{name}.png", out_dir / f"{name}.svg"
    with matplotlib.rc_context(PLOT_STYLE):
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=130, metadata={"Software": None})
        atomic_write_bytes(png, buf.getvalue())
        buf = io.BytesIO()
        fig.savefig(buf, format="svg", metadata={"Date": None})
        atomic_write_text(svg, buf.getvalue().decode("utf-8"))
    return png, svg


def slug(*parts: str) -> str:
    text = "-".join(p for p in parts if p)
    out = "".join(c.lower() if c.isalnum() else "-" for c in text)
    while "--" in out:
        out = out.replace("--", "-")
    return out.strip("-")[:90] or "plot"


def new_figure(width: float = 7.5, height: float = 5.0) -> Figure:
    with matplotlib.rc_context(PLOT_STYLE):
        return Figure(figsize=(width, height), layout="constrained")


def plot_title(main: str, *lines: str) -> str:
    return "\n".join([main, *(line for line in lines if line)])


def stand_in_mark(fig: Figure, stand_in: str) -> None:
    """A faint watermark, so a stand-in plot copied out of the report still says what it is."""
    if stand_in:
        fig.text(0.5, 0.45, "STAND-IN", fontsize=54, color="0.5", alpha=0.12, rotation=25,
                 ha="center", va="center", zorder=0)  # fmt: skip
