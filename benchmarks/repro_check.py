"""Reproduction check of the committed training results: rerun a short unit of each, compare.

* the fixture (``dfine_bench/fixtures/dfine_fixture``): the first ``--steps`` steps of
  ``dfine-bench train`` (the fixture's recipe, same seed and thread count) against its committed
  ``loss.csv``;
* the FDR ablation (``reports/fdr_ablation``): the first steps of seed 0 of every arm against the
  committed ``runs/<arm>/seed0/loss.csv``.

Training on the CPU is deterministic for a given torch build, thread count and package versions,
so the losses must agree to ``--rtol``. The versions a result depends on are in its record; where
this machine's differ, the check says which and still compares (a mismatch then names the
packages to suspect). Exit 0: every unit reproduced; 1: a mismatch; 2: a committed result is
missing or unreadable. Run by ``.ci/run``; ``python benchmarks/repro_check.py --help``.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import sys
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "dfine_bench" / "fixtures" / "dfine_fixture"
ABLATION = ROOT / "reports" / "fdr_ablation"


class _Stop(Exception):
    pass


def _committed_losses(path: Path, steps: int) -> list[float]:
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    return [float(r["loss"]) for r in rows[:steps]]


def _versions_differ(recorded: dict[str, Any]) -> list[str]:
    out = []
    for name, version in recorded.items():
        try:
            here = metadata.version(name)
        except metadata.PackageNotFoundError:
            here = None
        if version is not None and here != version:
            out.append(f"{name} {version} -> {here}")
    return out


def _compare(name: str, ours: list[float], theirs: list[float], rtol: float, differ: list[str]) -> bool:
    worst = max(abs(a - b) / max(abs(b), 1e-12) for a, b in zip(ours, theirs))
    ok = len(ours) == len(theirs) and worst <= rtol
    note = f"; versions differ from the record: {', '.join(differ)}" if differ else ""
    print(
        f"{'ok  ' if ok else 'FAIL'} {name}: first {len(ours)} step losses, max relative difference "
        f"{worst:.2e} (tolerance {rtol:g}){note}"
    )
    if not ok:
        for i, (a, b) in enumerate(zip(ours, theirs), 1):
            print(f"     step {i}: rerun {a:.6f} committed {b:.6f}")
    return ok


def check_fixture(steps: int, rtol: float) -> bool:
    import torch

    from dfine_bench.cli.train_cmd import compose_train_config
    from dfine_bench.config.settings import DatasetSettings
    from dfine_bench.data.resolve import resolve_dataset
    from dfine_bench.training import TrainingSamples
    from dfine_bench.training.session import build_model, settings_from

    record = json.loads((FIXTURE / "train_record.json").read_text())
    env = record["environment"]
    torch.set_num_threads(int(env.get("torch_threads") or 2))
    cfg = compose_train_config([])
    with tempfile.TemporaryDirectory() as results:
        data = resolve_dataset(DatasetSettings.from_config(cfg.dataset), Path(results))
        adapter = build_model(cfg)
        ours = _run(adapter, TrainingSamples(data, adapter), settings_from(cfg), steps)
    recorded = {k: env.get(k) for k in ("torch", "transformers")}
    return _compare(
        "fixture", ours, _committed_losses(FIXTURE / "loss.csv", steps), rtol, _versions_differ(recorded)
    )


def check_ablation(steps: int, rtol: float) -> bool:
    import torch

    from dfine_bench.training import TrainingSamples
    from dfine_bench.training.ablation import AblationSettings, _datasets, _train_settings, build_arm

    document = json.loads((ABLATION / "ablation.json").read_text())
    s = dict(document["settings"])
    s["seeds"], s["arms"] = tuple(s["seeds"]), tuple(s["arms"])
    settings = AblationSettings(**s)
    torch.set_num_threads(int(document["environment"].get("torch_threads") or 1))
    ok = True
    with tempfile.TemporaryDirectory() as work:
        train_set, _ = _datasets(settings, Path(work))
        for arm in settings.arms:
            adapter = build_arm(settings, arm, 0)
            ours = _run(adapter, TrainingSamples(train_set, adapter), _train_settings(settings, 0), steps)
            theirs = _committed_losses(ABLATION / "runs" / arm / "seed0" / "loss.csv", steps)
            ok &= _compare(
                f"ablation {arm} seed 0", ours, theirs, rtol, _versions_differ(document["depends_on"])
            )
    return ok


def _run(adapter: Any, samples: Any, settings: Any, steps: int) -> list[float]:
    """The first ``steps`` losses of a run with ``settings`` (its schedule is the full run's)."""
    from dfine_bench.training import train

    losses: list[float] = []

    def watch(done: int, row: Any) -> None:
        losses.append(float(row["loss"]))
        if done >= steps:
            raise _Stop

    with tempfile.TemporaryDirectory() as work, contextlib.suppress(_Stop):
        train(adapter, samples, settings, Path(work), progress="off", on_step=watch)
    return losses


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=4, help="steps to rerun per unit (4)")
    parser.add_argument(
        "--rtol", type=float, default=1e-4, help="relative tolerance on each step's loss (1e-4)"
    )
    parser.add_argument("--only", choices=("fixture", "ablation"), default=None)
    args = parser.parse_args()
    for needed in (FIXTURE / "loss.csv", ABLATION / "ablation.json"):
        if not needed.is_file():
            print(f"repro_check: {needed} is missing; commit the result or regenerate it", file=sys.stderr)
            return 2
    ok = True
    if args.only in (None, "fixture"):
        ok &= check_fixture(args.steps, args.rtol)
    if args.only in (None, "ablation"):
        ok &= check_ablation(args.steps, args.rtol)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
