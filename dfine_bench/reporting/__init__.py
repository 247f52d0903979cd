"""Comparison tables, the claims table, plots and the HTML + markdown report of result records.

* ``tables``: ``build_comparison(records, device=, backend=, family=, tasks=)`` -> per-setup tables
  and an overview (pandas), never mixing devices, backends or precisions in one column;
* ``claims_table``: ``check_claims_table(records, claims)`` over ``dfine_bench.claims``;
* ``plots``: ``make_plots(comparison, claims_table, out_dir)`` -> PNG + SVG files;
* ``report``: ``build_report(records, out_dir, claims=..., title=...)`` -> the report folder;
* ``runs``: finding the runs the ``compare`` / ``report`` commands read.
"""

from dfine_bench.reporting.claims_table import ClaimsTable, check_claims_table
from dfine_bench.reporting.figures import Plot, PlotSet, SkippedPlot
from dfine_bench.reporting.pareto import pareto_front
from dfine_bench.reporting.plots import make_plots
from dfine_bench.reporting.report import build_report
from dfine_bench.reporting.selection import filter_records
from dfine_bench.reporting.tables import Comparison, ComparisonTable, build_comparison

__all__ = [
    "ClaimsTable",
    "Comparison",
    "ComparisonTable",
    "Plot",
    "PlotSet",
    "SkippedPlot",
    "build_comparison",
    "build_report",
    "check_claims_table",
    "filter_records",
    "make_plots",
    "pareto_front",
]
