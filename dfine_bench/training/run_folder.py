"""The training run folder (``train.out_dir``): only a new folder or one ``dfine-bench train`` made.

A training folder carries the ``.dfine-bench-train`` marker (``utils/tool_folder.py``, the rule
``report`` follows too): the files the run writes and the run's identity, i.e. every setting
that changes the weights, the input size and the training data's identity (annotation hash,
image count, the images' names/sizes/mtimes). A folder of the user's is refused before anything
is built; a marked folder is resumed only when the identity matches, else refused with the
differing keys: resuming with other data would keep the old weights and describe them as trained
on the new data.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from dfine_bench.data.dataset import ResolvedDataset
from dfine_bench.errors import ConfigError
from dfine_bench.execution.folder import identity_diff
from dfine_bench.utils.tool_folder import ToolFolderError, check_tool_folder, mark_folder, read_marker

MARKER = ".dfine-bench-train"
#: What a training run writes (folders: every file inside them).
OUTPUTS = (
    "checkpoint.pt",
    "model",
    "model-fp16",
    "loss.csv",
    "loss.png",
    "train_record.json",
    "MODEL_CARD.md",
)


class TrainFolderError(ToolFolderError):
    """``train.out_dir`` names a folder dfine-bench train did not make."""


def check_train_folder(out_dir: Path) -> None:
    """Refuse ``train.out_dir`` when it holds files ``dfine-bench train`` did not write."""
    check_tool_folder(
        out_dir,
        MARKER,
        option="train.out_dir",
        fix="choose a new train.out_dir (or an empty folder); nothing of yours is overwritten",
        error=TrainFolderError,
    )


def data_identity(dataset: ResolvedDataset) -> dict[str, Any]:
    """What identifies the training data: the annotation file's hash and the image files."""
    info = dataset.info()
    return {
        "annotations_sha256": info.annotations_sha256,
        "images": info.num_images,
        "images_identity": dataset.images_identity(),
    }


def train_identity(
    settings: Mapping[str, Any], input_size: Iterable[int], dataset: ResolvedDataset
) -> dict[str, Any]:
    return {"settings": dict(settings), "input_size": list(input_size), "data": data_identity(dataset)}


def _written(out_dir: Path) -> list[str]:
    files: list[str] = []
    for name in OUTPUTS:
        path = out_dir / name
        if path.is_dir():
            files += [str(p.relative_to(out_dir)) for p in sorted(path.rglob("*")) if p.is_file()]
        else:
            files.append(name)
    return files


def claim_train_folder(out_dir: Path, identity: Mapping[str, Any]) -> None:
    """Mark ``out_dir`` as this run's (before training); a folder of another run is refused."""
    check_train_folder(out_dir)
    old = read_marker(out_dir, MARKER).get("identity")
    if isinstance(old, dict) and old != dict(identity):
        diff = identity_diff(old, dict(identity))
        shown = "; ".join(diff[:4]) + (f"; and {len(diff) - 4} more" if len(diff) > 4 else "")
        raise ConfigError(
            f"train.out_dir={out_dir}: it holds a training run of other settings or data ({shown}); "
            "its weights are not this run's: choose a new train.out_dir or resume with the same "
            "settings and data"
        )
    mark_folder(out_dir, MARKER, _written(out_dir), {"identity": dict(identity)})


def finish_train_folder(out_dir: Path, identity: Mapping[str, Any]) -> None:
    """List every file the finished run wrote in the marker."""
    mark_folder(out_dir, MARKER, _written(out_dir), {"identity": dict(identity)})


__all__ = [
    "MARKER",
    "TrainFolderError",
    "check_train_folder",
    "claim_train_folder",
    "data_identity",
    "finish_train_folder",
    "train_identity",
]
