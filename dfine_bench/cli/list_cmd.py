"""``dfine-bench list``: what is registered — models, suites, datasets, backends, protocols, weights,
claims."""

from __future__ import annotations

import argparse
import importlib.util
import os
from pathlib import Path

import pandas as pd
import torch
import yaml

from dfine_bench.adapters.catalog import models_table
from dfine_bench.adapters.registry import get_spec, list_models, load_errors
from dfine_bench.config.loading import group_options, suites_dir
from dfine_bench.errors import UnknownNameError
from dfine_bench.reporting.labels import normalize_name

KINDS = ("models", "suites", "datasets", "backends", "protocols", "weights", "claims")
#: Under ``list models`` when parameters were counted: how its count differs from the records'.
PARAMS_NOTE = (
    "params_total_m: every parameter of the model as built, in millions (training-only heads and "
    "unfused layers included); the `params` of a run's complexity records counts, as the paper "
    "does, only the modules that run at inference, so it is a little smaller."
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


def models_frame(family: str | None = None, compute_params: bool = True) -> pd.DataFrame:
    """One row per registered model (only ``family``'s if given); ``params_total_m`` counts every
    parameter of the model as built (see ``PARAMS_NOTE``)."""
    if family is None:
        df = models_table(compute_params=compute_params)
    else:
        df = pd.concat(
            [models_table(compute_params=compute_params, family=f) for f in model_families(family)],
            ignore_index=True,
        )
    return df.rename(columns={"params_m": "params_total_m"})


def suites_frame(extra_dirs: list[str]) -> pd.DataFrame:
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
    rows = []
    for name in group_options(group, extra_dirs):
        path = suites_dir() / group / f"{name}.yaml"
        rows.append({group: name, "description": _first_comment(path) if path.is_file() else ""})
    return pd.DataFrame(rows)


def backends_frame() -> pd.DataFrame:
    cuda = torch.cuda.is_available()
    has = {m: importlib.util.find_spec(m) is not None for m in ("onnxruntime", "tensorrt")}
    rows = [
        {"backend": "eager", "available here": "yes", "dtypes": "fp32" + (", fp16, bf16" if cuda else "")},
        {"backend": "compile", "available here": "yes", "dtypes": "fp32" + (", fp16, bf16" if cuda else "")},
        {
            "backend": "onnxruntime",
            "available here": "yes" if has["onnxruntime"] else "no (pip install onnxruntime)",
            "dtypes": "fp32",
        },
        {
            "backend": "tensorrt",
            "available here": "yes"
            if has["tensorrt"] and cuda
            else "no (needs an NVIDIA GPU and `pip install dfine-bench[tensorrt]`)",
            "dtypes": "fp16, fp32",
        },
    ]
    return pd.DataFrame(rows)


def main(args: argparse.Namespace) -> int:
    kinds = KINDS if args.what == "all" else (args.what,)
    for kind in kinds:
        if kind == "models":
            df = models_frame(args.family, compute_params=not args.no_params)
        elif kind == "suites":
            df = suites_frame(args.suites_dir)
        elif kind == "datasets":
            df = group_frame("dataset", args.suites_dir)
            coco = os.environ.get("DFINE_BENCH_COCO")
            print(f"DFINE_BENCH_COCO = {coco or '(not set: dataset=auto uses the generated dataset)'}")
        elif kind == "backends":
            df = backends_frame()
        elif kind == "protocols":
            df = group_frame("protocol", args.suites_dir)
        elif kind == "weights":
            df = group_frame("weights", args.suites_dir)
        else:
            claims = sorted(p.stem for p in (suites_dir() / "claims").glob("*.yaml"))
            df = pd.DataFrame({"claims": claims})
        print(f"== {kind} ==")
        print(df.to_string(index=False) if not df.empty else "(none)")
        if kind == "models" and "params_total_m" in df and df["params_total_m"].notna().any():
            print(PARAMS_NOTE)
        print()
    errors = load_errors()
    if errors and "models" in kinds:
        print("adapters that failed to load:")
        for where, why in errors.items():
            print(f"  {where}: {why}")
    return 0
