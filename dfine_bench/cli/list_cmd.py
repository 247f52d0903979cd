"""``dfine-bench list``: what is registered — models, suites, datasets, backends, protocols, weights,
claims."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dfine_bench.adapters.catalog import COLUMNS, model_rows
from dfine_bench.adapters.registry import get_spec, list_models, load_errors
from dfine_bench.backends import backend_table
from dfine_bench.backends import load_errors as backend_load_errors
from dfine_bench.errors import UnknownNameError
from dfine_bench.records.metrics import load_errors as metric_load_errors
from dfine_bench.utils.text import format_table, normalize_name

if TYPE_CHECKING:
    import pandas as pd

# pandas, yaml, Hydra and the backends are imported where used: `list models` needs none of them
# and starts in well under a second (see benchmarks/bench_startup.py).

KINDS = ("models", "suites", "datasets", "backends", "protocols", "weights", "claims")
#: Under ``list models`` when parameters were counted: how its count differs from the records'.
PARAMS_NOTE = (
    "params_total_m: every parameter of the model as built, in millions (training-only heads and "
    "unfused layers included; a run's complexity records call it params_total); their `params` is "
    "the official get_info.py count of the deploy-mode model, so it is a little smaller."
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "list",
        help="list registered models, suites, datasets, backends, protocols, weights, claims",
        description="List what dfine-bench knows. With no argument, everything.",
    )
    p.add_argument("what", nargs="?", choices=[*KINDS, "all"], default="all")
    p.add_argument(
        "--family", help="models: only this family (case and dashes ignored: d-fine = dfine; e.g. rt-detr)"
    )
    p.add_argument("--no-params", action="store_true", help="models: skip computing parameter counts")
    p.add_argument("--suites-dir", action="append", default=[], metavar="DIR", help="extra suites folder")
    p.set_defaults(func=main)


def _first_comment(path: Path) -> str:
    for line in path.read_text().splitlines():
        line = line.strip()
        if line.startswith("#") and "@package" not in line:
            return line.lstrip("# ").strip()
    return ""


def model_families(family: str) -> list[str]:
    """The registered families ``family`` names, matched as ``compare --family`` does (case and
    punctuation ignored: ``d-fine`` = ``dfine``); an unknown family is an error listing those that exist."""
    families = sorted({get_spec(name).family for name in list_models()})
    matched = [f for f in families if normalize_name(f) == normalize_name(family)]
    if not matched:
        raise UnknownNameError("model family", family, families)
    return matched


MODEL_COLUMNS = tuple("params_total_m" if c == "params_m" else c for c in COLUMNS)


def model_list(family: str | None = None, compute_params: bool = True) -> list[dict[str, Any]]:
    """One row per registered model (only ``family``'s if given); ``params_total_m`` counts every
    parameter of the model as built (see ``PARAMS_NOTE``), read from the specs: nothing is built."""
    families = [None] if family is None else model_families(family)
    rows = [row for f in families for row in model_rows(compute_params=compute_params, family=f)]
    return [{("params_total_m" if k == "params_m" else k): v for k, v in row.items()} for row in rows]


def models_frame(family: str | None = None, compute_params: bool = True) -> pd.DataFrame:
    """``model_list`` as a DataFrame."""
    import pandas as pd

    frame = pd.DataFrame(model_list(family, compute_params), columns=list(MODEL_COLUMNS))
    return frame.astype({"fdr_bins": "Int64"})


def suites_frame(extra_dirs: list[str]) -> pd.DataFrame:
    import pandas as pd
    import yaml

    from dfine_bench.config.loading import group_options, suites_dir

    rows = []
    for name in group_options("suite", extra_dirs):
        path = next(
            (
                d / "suite" / f"{name}.yaml"
                for d in (suites_dir(), *map(Path, extra_dirs))
                if (d / "suite" / f"{name}.yaml").is_file()
            ),
            None,
        )
        data = yaml.safe_load(path.read_text()) if path else {}
        suite = (data or {}).get("suite", {})
        rows.append(
            {
                "suite": name,
                "models": ", ".join(suite.get("models", [])),
                "description": " ".join(str(suite.get("description", "")).split()),
            }
        )
    return pd.DataFrame(rows)


def group_frame(group: str, extra_dirs: list[str]) -> pd.DataFrame:
    import pandas as pd

    from dfine_bench.config.loading import group_options, suites_dir

    rows = []
    for name in group_options(group, extra_dirs):
        path = suites_dir() / group / f"{name}.yaml"
        rows.append({group: name, "description": _first_comment(path) if path.is_file() else ""})
    return pd.DataFrame(rows)


def backends_frame() -> pd.DataFrame:
    """One row per registered backend (built-in modules and ``dfine_bench.backends`` plug-ins):
    whether its packages are installed here, the devices and dtypes it runs, its options."""
    import pandas as pd

    return pd.DataFrame(backend_table())


def main(args: argparse.Namespace) -> int:
    kinds = KINDS if args.what == "all" else (args.what,)
    for kind in kinds:
        if kind == "models":  # without pandas: the common, quick case
            rows = model_list(args.family, compute_params=not args.no_params)
            print(f"== {kind} ==")
            print(format_table(rows, MODEL_COLUMNS))
            if any(r["params_total_m"] is not None for r in rows):
                print(PARAMS_NOTE)
            print()
            continue
        df = _frame(kind, args.suites_dir)
        print(f"== {kind} ==")
        print(df.to_string(index=False) if not df.empty else "(none)")
        print()
    _print_load_errors(kinds, every=args.what == "all")
    return 0


def _frame(kind: str, suites_dirs: list[str]) -> pd.DataFrame:
    """The table of one kind other than models."""
    import pandas as pd

    from dfine_bench.config.loading import suites_dir

    if kind == "suites":
        return suites_frame(suites_dirs)
    if kind == "datasets":
        coco = os.environ.get("DFINE_BENCH_COCO")
        print(f"DFINE_BENCH_COCO = {coco or '(not set: dataset=auto uses the generated dataset)'}")
        return group_frame("dataset", suites_dirs)
    if kind == "backends":
        return backends_frame()
    if kind in ("protocols", "weights"):
        return group_frame({"protocols": "protocol", "weights": "weights"}[kind], suites_dirs)
    claims = sorted(p.stem for p in (suites_dir() / "claims").glob("*.yaml"))
    return pd.DataFrame({"claims": claims})


def _print_load_errors(kinds: tuple[str, ...], *, every: bool) -> None:
    """The plug-ins and modules that failed to load (contained: listed here, never fatal)."""
    errors = load_errors()
    if errors and "models" in kinds:
        print("adapters that failed to load:")
        for where, why in errors.items():
            print(f"  {where}: {why}")
    if "backends" in kinds:
        for where, why in backend_load_errors().items():
            print(f"backend {where} failed to load: {why}")
    if every:  # the plug-ins of the other registries
        from dfine_bench.evaluation.registry import load_errors as evaluator_load_errors

        for kind, found in (("evaluator", evaluator_load_errors()), ("metric", metric_load_errors())):
            for where, why in found.items():
                print(f"{kind} {where} failed to load: {why}")
