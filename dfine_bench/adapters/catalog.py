"""The model catalogue: one row per registered model, for ``dfine-bench list models``.

Parameter counts come from building each model on PyTorch's ``meta`` device (shapes only, no
memory, no weights read) and are cached per process. Models whose optional package is missing
(the YOLO family without ultralytics) show no count.
"""

from __future__ import annotations

import functools
import logging

import pandas as pd
import torch

from dfine_bench.adapters.registry import create_model, get_spec, list_models
from dfine_bench.errors import DfineBenchError

log = logging.getLogger(__name__)

COLUMNS = ("name", "family", "params_m", "input_size", "fdr", "fdr_bins", "go_lsd", "weights")


@functools.cache
def count_parameters(name: str) -> int | None:
    """Parameters of a registered model, built on the meta device; None if it cannot be built here."""
    try:
        with torch.device("meta"):
            adapter = create_model(name, device="meta")
    except DfineBenchError as exc:  # e.g. an optional extra not installed
        log.debug("cannot count parameters of %s: %s", name, exc)
        return None
    return adapter.num_parameters()


def _weights_column(name: str) -> str:
    spec = get_spec(name)
    sources = [s for s in spec.weights_formats if s != "hub"]
    hub = ", ".join(spec.hub_ids[:2]) + (f" (+{len(spec.hub_ids) - 2})" if len(spec.hub_ids) > 2 else "")
    return " | ".join(filter(None, [", ".join(sources), f"hub: {hub}" if spec.hub_ids else ""]))


def models_table(compute_params: bool = True, family: str | None = None) -> pd.DataFrame:
    """One row per registered model: name, family, params_m, input_size, FDR (bins), GO-LSD, weights."""
    rows = []
    for name in list_models(family):
        spec = get_spec(name)
        params = count_parameters(name) if compute_params else None
        rows.append(
            {
                "name": name,
                "family": spec.family,
                "params_m": round(params / 1e6, 2) if params is not None else None,
                "input_size": "x".join(str(v) for v in spec.input_size),
                "fdr": spec.fdr,
                "fdr_bins": spec.fdr_bins,
                "go_lsd": spec.go_lsd,
                "weights": _weights_column(name),
            }
        )
    table = pd.DataFrame(rows, columns=list(COLUMNS))
    return table.astype({"fdr_bins": "Int64"})


def dfine_params_vs_paper() -> pd.DataFrame:
    """D-FINE N..X: our parameter count next to the official implementation's and the paper's."""
    rows = []
    for size in "nsmlx":
        spec = get_spec(f"dfine_{size}")
        ours = count_parameters(spec.name)
        official = spec.extra["official_params"]
        rows.append(
            {
                "model": spec.name,
                "params": ours,
                "official_params": official,
                "diff_pct": None if ours is None else round(100 * (ours - official) / official, 3),
                "paper_params_m": spec.extra["paper_params_m"],
            }
        )
    return pd.DataFrame(rows)
