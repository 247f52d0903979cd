"""``dfine-bench evaluate``: COCO metrics for a results file from any detector, no model needed.

Writes the same ``ResultRecord`` a full run writes (under ``results/<run-id>/records/``)
and prints the 12 standard COCO stats.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from dfine_bench.config.settings import check_folder_name
from dfine_bench.errors import ConfigError, DatasetError
from dfine_bench.evaluation.engines import ENGINES
from dfine_bench.evaluation.outcome import evaluate_predictions
from dfine_bench.records.build import make_record
from dfine_bench.records.environment import capture_environment
from dfine_bench.records.metrics import COCO_STATS
from dfine_bench.records.schema import ModelInfo, ResultRecord, Setup
from dfine_bench.records.store import RunStore, new_run_id
from dfine_bench.utils.files import sha256_file

log = logging.getLogger(__name__)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="evaluate a COCO results file against an annotation file (no model needed)",
        description=(
            "Compute COCO AP (the 12 standard stats, per-category AP, precision-recall data) for a "
            "COCO-format results file, and write it as a result record like a full run."
        ),
    )
    p.add_argument("--annotations", required=True, type=Path, help="COCO annotation file (instances_*.json)")
    p.add_argument(
        "--predictions", required=True, type=Path, help="COCO results file: a JSON list of detections"
    )
    p.add_argument(
        "--engine", choices=ENGINES, default="faster_coco_eval", help="COCO engine (default: %(default)s)"
    )
    p.add_argument("--images", type=Path, help="image folder, recorded for provenance only")
    p.add_argument("--results-dir", type=Path, default=Path("results"), help="where runs are written")
    p.add_argument("--run-id", help="run folder name (default: a new timestamped id)")
    p.add_argument("--model-name", default="external", help="name of the detector that made the predictions")
    p.add_argument(
        "--weights",
        help="hub id or checkpoint file of the weights that made the predictions (provenance; a released "
        "checkpoint lets the paper's accuracy claims apply to this record)",
    )
    p.set_defaults(func=main)


def format_table(record: ResultRecord) -> str:
    """The 12 stats as two aligned rows (name, value in percent)."""
    values = [record.value(n) for n in COCO_STATS]
    cells = ["-" if v is None else f"{v:.2f}" for v in values]
    widths = [max(len(n), len(c)) for n, c in zip(COCO_STATS, cells)]
    head = "  ".join(n.rjust(w) for n, w in zip(COCO_STATS, widths))
    row = "  ".join(c.rjust(w) for c, w in zip(cells, widths))
    return f"{head}\n{row}"


def main(args: argparse.Namespace) -> int:
    if args.run_id is not None:  # the same rule as `run`'s output.run_id, checked before any work
        check_folder_name("--run-id", args.run_id)
        if (args.results_dir / args.run_id).exists():
            raise ConfigError(
                f"--run-id {args.run_id}: {args.results_dir / args.run_id} already exists and is not "
                "overwritten; choose a new run id"
            )
    if args.images is not None and not args.images.is_dir():
        raise DatasetError(f"--images {args.images} is not a folder")
    outcome = evaluate_predictions(args.annotations, args.predictions, engine=args.engine)
    if args.images is not None and outcome.dataset is not None:
        outcome.dataset.images_root = str(args.images)
    run_id = args.run_id or new_run_id("evaluate")
    store = RunStore(args.results_dir / run_id)
    try:  # created here, never reused: another process that got there first wins
        store.run_dir.mkdir(parents=True, exist_ok=False)
    except FileExistsError:
        raise ConfigError(f"--run-id {run_id}: {store.run_dir} already exists; choose a new run id") from None
    if not store.try_lock():
        raise DatasetError(
            f"run folder {store.run_dir} is in use by another process: choose another --run-id"
        )
    try:
        record = make_record(
            outcome,
            run_id=run_id,
            model=ModelInfo(
                name=args.model_name,
                family="external",
                weights_source="external",
                weights_id=args.weights,
                weights_sha256=sha256_file(args.weights)
                if args.weights and Path(args.weights).is_file()
                else None,
                random_init=False,
            ),
            base_setup=Setup(device="n/a", batch_size=1, protocol="custom"),
            environment=capture_environment(),
        )
        path = store.write_record(record)
        store.update_meta(
            run_id=run_id,
            command=["dfine-bench", *sys.argv[1:]],
            status="complete",
            kind="evaluate",
        )
    finally:
        store.unlock()
    dataset = outcome.dataset
    print(
        f"{args.model_name} on {dataset.name if dataset else '?'} "
        f"({dataset.num_images if dataset else '?'} images, engine {args.engine})"
    )
    print(format_table(record))
    for note in record.notes:
        print(f"note: {note}")
    print(f"record: {path}")
    return 0
