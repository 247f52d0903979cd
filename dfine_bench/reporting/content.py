"""What a report shows, gathered once and handed to each renderer (HTML, markdown)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dfine_bench.reporting.claims_table import ClaimsTable
from dfine_bench.reporting.figures import PlotSet
from dfine_bench.reporting.labels import PAPER_PROTOCOL_TEXT
from dfine_bench.reporting.provenance import Provenance
from dfine_bench.reporting.tables import Comparison


@dataclass
class ReportContent:
    title: str
    generated_at: str
    version: str
    out_dir: Path
    comparison: Comparison
    claims: ClaimsTable | None
    plots: PlotSet
    provenance: Provenance
    paper_protocol: str = PAPER_PROTOCOL_TEXT

    @property
    def num_records(self) -> int:
        return len(self.comparison.records)
