"""The model catalogue: one row per registered model, for ``dfine-bench list models``.

Parameter counts come from the specs (``ModelSpec.num_parameters``: measured once by building each
built-in model and stored in the model index), so listing builds nothing and imports no torch.
A plug-in model whose spec gives no count is built once on PyTorch's ``meta`` device (shapes
only, no memory, no weights read), cached per process. Models whose optional package is missing
(the YOLO family without ultralytics) show no count.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from dfine_bench.adapters.model_index import measure_parameters
from dfine_bench.adapters.registry import from_index, get_spec, list_models

if TYPE_CHECKING:
    import pandas as pd

COLUMNS = ("name", "family", "params_m", "input_size", "fdr", "fdr_bins", "go_lsd", "weights")


@functools.cache
def count_parameters(name: str) -> int | None:
    """Parameters of a registered model: its spec's count, else built on the meta device; None if
    it cannot be built here."""
    spec = get_spec(name)
    if spec.num_parameters is not None or from_index(name):
        return spec.num_parameters

    return measure_parameters(name)


def _weights_column(name: str) -> str:
    spec = get_spec(name)
    sources = [s for s in spec.weights_formats if s != "hub"]
    hub = ", ".join(spec.hub_ids[:2]) + (f" (+{len(spec.hub_ids) - 2})" if len(spec.hub_ids) > 2 else "")
    releases = f"releases: {', '.join(spec.releases)}" if spec.releases else ""
    return " | ".join(filter(None, [", ".join(sources), f"hub: {hub}" if spec.hub_ids else "", releases]))


def model_rows(compute_params: bool = True, family: str | None = None) -> list[dict[str, Any]]:
    """One dict per registered model (``COLUMNS``), without pandas or torch."""
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
    return rows


def models_table(compute_params: bool = True, family: str | None = None) -> pd.DataFrame:
    """``model_rows`` as a DataFrame: name, family, params_m, input_size, FDR (bins), GO-LSD, weights."""
    import pandas as pd

    table = pd.DataFrame(model_rows(compute_params, family), columns=list(COLUMNS))
    return table.astype({"fdr_bins": "Int64"})


def dfine_params_vs_paper() -> pd.DataFrame:
    """D-FINE N..X: our parameter count next to the official implementation's and the paper's."""
    import pandas as pd

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
