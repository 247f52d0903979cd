"""Detections on disk: checking COCO results, and the resumable stream an evaluation writes.

``validate_detections`` rejects what the engines would otherwise take silently (unknown
image or category ids are dropped by both; NaN scores change pycocotools' AP) or crash on.

``PredictionStream`` appends one JSON line per image as soon as the image is done
(``{"image_id", "status": "ok", "dets": [[x, y, w, h, score, category_id], ...]}`` or
``{"image_id", "status": "failed", "error"}``) to a part file of its own, so a killed run
loses at most the line being written and a new session never recomputes finished images.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from dfine_bench.errors import DatasetError
from dfine_bench.utils.files import atomic_write_json

log = logging.getLogger(__name__)

PART_GLOB = "part-*.jsonl"
META_FILE = "meta.json"
MERGED_FILE = "predictions.json"


def _finite_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def validate_detections(
    detections: Sequence[Any],
    *,
    image_ids: Iterable[int],
    category_ids: Iterable[int],
    source: str,
) -> None:
    """Raise a ``DatasetError`` naming ``source`` and the first bad entry; empty input is an error."""
    if not isinstance(detections, list):
        raise DatasetError(
            f"{source}: COCO results are a JSON list of detections, found {type(detections).__name__}"
        )
    if not detections:
        raise DatasetError(f"{source}: no predictions at all (an empty list); nothing to evaluate")
    images, cats = set(image_ids), set(category_ids)
    for i, d in enumerate(detections):
        problem = _detection_problem(d, images, cats)
        if problem is not None:
            raise DatasetError(f"{source}: detection [{i}] {problem}")


def _detection_problem(d: Any, images: set[int], cats: set[int]) -> str | None:
    """What is wrong with one detection (None: nothing), checked in the order the message promises."""
    if not isinstance(d, dict):
        return "is not an object"
    missing = [k for k in ("image_id", "category_id", "bbox", "score") if k not in d]
    if missing:
        return f"lacks the field(s) {', '.join(missing)}"
    if d["image_id"] not in images:
        return f"has image_id {d['image_id']!r}, which is not in the annotation file"
    if d["category_id"] not in cats:
        return f"has category_id {d['category_id']!r}, which is not in the annotation file"
    return _bbox_problem(d["bbox"]) or _score_problem(d["score"])


def _bbox_problem(bbox: Any) -> str | None:
    if not (isinstance(bbox, (list, tuple)) and len(bbox) == 4 and all(_finite_number(v) for v in bbox)):
        return f"has a bbox that is not 4 finite numbers [x, y, w, h]: {bbox!r}"
    if bbox[2] < 0 or bbox[3] < 0:
        return f"has a negative-size bbox {list(bbox)!r} (width and height must be >= 0)"
    return None


def _score_problem(score: Any) -> str | None:
    if not _finite_number(score):
        return f"has a score that is not a finite number: {score!r}"
    return None


def load_results_file(path: Path) -> list[dict[str, Any]]:
    """Read a COCO results file (a JSON list of detections)."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"predictions file {path} does not exist")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"predictions file {path} is not readable JSON: {exc}") from None
    if not isinstance(data, list):
        raise DatasetError(f"predictions file {path}: COCO results are a JSON list of detections")
    return data


def rows_to_coco(image_id: int, rows: Sequence[Sequence[float]]) -> list[dict[str, Any]]:
    return [
        {"image_id": image_id, "category_id": int(r[5]), "bbox": [r[0], r[1], r[2], r[3]], "score": r[4]}
        for r in rows
    ]


class PredictionStream:
    """The predictions folder of one model's evaluation: part files, a meta file, the merged file."""

    def __init__(self, work_dir: Path, rank: int = 0) -> None:
        self.work_dir = Path(work_dir)
        self.rank = rank
        self._fh: Any = None

    # -- identity: predictions of another dataset or model are never reused -----------------
    def matches(self, meta: dict[str, Any]) -> bool:
        try:
            return json.loads((self.work_dir / META_FILE).read_text()) == json.loads(json.dumps(meta))
        except (OSError, ValueError):
            return False

    def reset(self, meta: dict[str, Any]) -> None:
        """Start afresh: drop old parts and record what these predictions belong to."""
        self.work_dir.mkdir(parents=True, exist_ok=True)
        for part in self.work_dir.glob(PART_GLOB):
            part.unlink()
        (self.work_dir / MERGED_FILE).unlink(missing_ok=True)
        atomic_write_json(self.work_dir / META_FILE, meta)

    # -- reading ---------------------------------------------------------------------------
    def read(self) -> tuple[dict[int, list[list[float]]], dict[int, str]]:
        """(image id -> detection rows, image id -> error) from every part file.

        A line cut short by a kill is ignored; an image that failed once and succeeded later
        counts as done.
        """
        done: dict[int, list[list[float]]] = {}
        failed: dict[int, str] = {}
        for part in sorted(self.work_dir.glob(PART_GLOB)):
            with open(part, encoding="utf-8") as f:
                for line in f:
                    try:
                        entry = json.loads(line)
                    except ValueError:
                        log.warning("%s: ignoring a line cut short (an interrupted run)", part)
                        continue
                    image_id = int(entry["image_id"])
                    if entry.get("status") == "ok":
                        done[image_id] = entry["dets"]
                        failed.pop(image_id, None)
                    elif image_id not in done:
                        failed[image_id] = str(entry.get("error", "unknown error"))
        return done, failed

    # -- writing ---------------------------------------------------------------------------
    def open(self) -> PredictionStream:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        name = f"part-{time.time_ns()}-{os.getpid()}-r{self.rank}.jsonl"
        self._fh = open(self.work_dir / name, "a", encoding="utf-8")  # noqa: SIM115 — kept open across batches
        return self

    def write_ok(self, image_id: int, rows: list[list[float]]) -> None:
        self._fh.write(json.dumps({"image_id": int(image_id), "status": "ok", "dets": rows}) + "\n")

    def write_failed(self, image_id: int, error: str) -> None:
        self._fh.write(json.dumps({"image_id": int(image_id), "status": "failed", "error": error}) + "\n")

    def flush(self) -> None:
        # Flushed per batch: what a kill leaves on disk is every finished batch.
        if self._fh is not None:
            self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()
            self._fh = None

    def __enter__(self) -> PredictionStream:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def write_merged(self, detections: list[dict[str, Any]]) -> Path:
        """The whole evaluation's detections as one COCO results file (``dfine-bench evaluate`` reads it)."""
        path = self.work_dir / MERGED_FILE
        tmp = path.with_suffix(".json.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(detections, f)
        os.replace(tmp, path)
        return path
