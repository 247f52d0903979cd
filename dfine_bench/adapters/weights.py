"""Where a model's weights come from, and loading them safely and strictly.

``weights=`` strings accepted by ``create_model`` (see ``parse_weights``):

* ``random-init``: fresh weights from ``seed``; every record says so.
* ``auto``: the Hugging Face cache if it already holds one of the model's hub ids (looked up
  offline, never downloaded), else random-init with a warning.
* a hub id (``owner/name``): through the HF cache; downloads only when ``HF_HUB_OFFLINE`` is unset.
* a local directory written by ``save_pretrained``.
* a checkpoint file: ``.safetensors`` or an official D-FINE ``.pth``/``.pt``.

Only safe formats are read: safetensors, or ``torch.load(..., weights_only=True)``, which refuses
to unpickle code. Every load is strict: missing, unexpected or mis-shaped tensors are an error
listing them, never a silent partial load.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from dfine_bench.adapters.spec import WeightsRequest
from dfine_bench.errors import CheckpointError, ConfigError

log = logging.getLogger(__name__)

RANDOM_INIT = "random-init"
AUTO = "auto"
_RANDOM_ALIASES = {"random-init", "random", "random_init", "none", "scratch"}
_CHECKPOINT_SUFFIXES = (".pth", ".pt", ".safetensors", ".bin", ".ckpt")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
#: Weight files of a ``save_pretrained`` directory, in order of preference.
_DIR_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")
#: Config sources accepted by ``weights_request`` (the ``weights.source`` config field).
WEIGHT_SOURCES = ("random-init", "auto", "hub", "local", "official", "file")


def weights_request(source: str, path: str | None) -> WeightsRequest:
    """The config's ``(source, path)`` pair as the request ``create_model`` takes, checked here
    (never written out as a ``weights=`` string to be parsed again).

    ``source``: ``random-init`` or ``auto`` (no path), ``hub`` (path = hub id), ``local``
    (path = ``save_pretrained`` directory), ``official``/``file`` (path = checkpoint file).
    """
    source = (source or "").strip().lower()
    if source in _RANDOM_ALIASES:
        return WeightsRequest(RANDOM_INIT)
    if source == AUTO:
        return WeightsRequest(AUTO)
    if source not in WEIGHT_SOURCES:
        raise ConfigError(f"weights.source {source!r} is unknown; choose one of {', '.join(WEIGHT_SOURCES)}")
    if not path:
        what = {
            "hub": "a hub id such as ustc-community/dfine_s_coco",
            "local": "a save_pretrained directory",
        }.get(source, "a checkpoint file (.pth or .safetensors)")
        raise ConfigError(f"weights.source={source} needs weights.path ({what})")
    if source == "hub":
        if not _HUB_ID.match(path):
            raise ConfigError(f"weights.path {path!r} is not a hub id of the form owner/name")
        return WeightsRequest("hub", path)
    p = Path(path).expanduser()
    if source == "local" and not p.is_dir():
        raise ConfigError(
            f"weights.path {path!r}: no such directory (weights.source=local wants save_pretrained output)"
        )
    if source in ("official", "file") and not p.is_file():
        raise ConfigError(f"weights.path {path!r}: no such checkpoint file (weights.source={source})")
    return WeightsRequest("local" if source == "local" else "file", str(p))


def parse_weights(weights: str | WeightsRequest) -> WeightsRequest:
    """Classify a ``weights=`` string (an existing path wins over a hub id of the same spelling); a
    request already made (``weights_request``) is taken as it is."""
    if isinstance(weights, WeightsRequest):
        return weights
    text = (weights or RANDOM_INIT).strip()
    if text.lower() in _RANDOM_ALIASES:
        return WeightsRequest(RANDOM_INIT)
    if text.lower() == AUTO:
        return WeightsRequest(AUTO)
    path = Path(text).expanduser()
    if path.is_dir():
        return WeightsRequest("local", str(path))
    if path.is_file():
        return WeightsRequest("file", str(path))
    looks_like_path = (
        text.endswith(_CHECKPOINT_SUFFIXES)
        or text.startswith((".", "/", "~"))
        or text.count("/") > 1
        or "\\" in text
    )
    if looks_like_path:
        raise CheckpointError(f"weights {text!r}: no such file or directory")
    if _HUB_ID.match(text):
        return WeightsRequest("hub", text)
    raise CheckpointError(
        f"weights {text!r} is neither random-init, auto, an existing path nor a hub id (owner/name)"
    )


# -- the Hugging Face cache ----------------------------------------------------------------------
def hub_offline() -> bool:
    """``HF_HUB_OFFLINE`` as set now (huggingface_hub reads it only once, at import)."""
    from huggingface_hub import constants

    value = os.environ.get("HF_HUB_OFFLINE")
    if value is not None:
        return value.strip().upper() in {"1", "ON", "YES", "TRUE"}
    return bool(constants.HF_HUB_OFFLINE)


def hub_cache_dir() -> str:
    """The HF hub cache as the environment says now (``HF_HUB_CACHE``, then ``HF_HOME``)."""
    from huggingface_hub import constants

    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    if os.environ.get("HF_HOME"):
        return os.path.join(os.environ["HF_HOME"], "hub")
    return constants.HF_HUB_CACHE


def cached_snapshot(hub_id: str, revision: str | None = None) -> Path | None:
    """The local snapshot directory of ``hub_id`` if the cache holds one; never downloads."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(
            snapshot_download(hub_id, revision=revision, cache_dir=hub_cache_dir(), local_files_only=True)
        )
    except (LocalEntryNotFoundError, FileNotFoundError, ValueError):
        return None
    except Exception as exc:  # a malformed cache entry is the same as none, but say why
        log.debug("HF cache lookup for %s failed: %s", hub_id, exc)
        return None


def fetch_hub_snapshot(hub_id: str, revision: str | None = None) -> Path:
    """``hub_id``'s files through the HF cache: download only when not offline."""
    found = cached_snapshot(hub_id, revision)
    if found is not None:
        return found
    if hub_offline():
        raise CheckpointError(
            f"weights {hub_id!r} (revision {revision or 'main'}) are not in the Hugging Face cache "
            f"({hub_cache_dir()}) and HF_HUB_OFFLINE is set: download them on a connected machine "
            f"(huggingface-cli download {hub_id}) or pass a local directory"
        )
    from huggingface_hub import snapshot_download

    try:
        return Path(
            snapshot_download(
                hub_id,
                revision=revision,
                cache_dir=hub_cache_dir(),
                allow_patterns=["*.json", "*.safetensors", "*.bin"],
            )
        )
    except Exception as exc:
        raise CheckpointError(f"could not fetch weights {hub_id!r} from the Hugging Face hub: {exc}") from exc


def snapshot_revision(snapshot: Path) -> str | None:
    """The commit hash of an HF cache snapshot directory (its folder name), if it is one."""
    name = snapshot.name
    return name if snapshot.parent.name == "snapshots" and re.fullmatch(r"[0-9a-f]{40}", name) else None


# -- reading files ---------------------------------------------------------------------------------
def sha256_files(paths: Sequence[Path]) -> str:
    """SHA-256 of the files' bytes, in order (one file: its plain sha256sum)."""
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def read_checkpoint_file(path: str | Path) -> Any:
    """Load a checkpoint file safely: safetensors, or ``torch.load(weights_only=True)``.

    Raises ``CheckpointError`` naming the file when it is missing, truncated, corrupted or
    holds anything but tensors and plain containers.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path}: no such file")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except Exception as exc:  # SafetensorError, OSError...
            raise CheckpointError(
                f"checkpoint {path} could not be read as safetensors (truncated or corrupted?): {exc}"
            ) from exc
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError, EOFError, RuntimeError on a bad zip...
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if "weights_only" in str(exc) or "Unsupported global" in str(exc):
            raise CheckpointError(
                f"checkpoint {path} holds Python objects besides tensors; it is refused because "
                "loading it could run code. Re-save just its state dict (or convert it to safetensors)"
            ) from exc
        raise CheckpointError(
            f"checkpoint {path} could not be read (truncated or corrupted?): {message}"
        ) from exc


@dataclass
class PretrainedDir:
    """A ``save_pretrained`` directory: its config.json and the weight files it holds."""

    path: Path
    config: dict[str, Any]
    files: list[Path]


def inspect_pretrained_dir(directory: str | Path) -> PretrainedDir:
    """Find a ``save_pretrained`` directory's weight files (single or sharded safetensors, or
    pytorch_model.bin) and read its config.json; tensors are not loaded here."""
    directory = Path(directory)
    config_path = directory / "config.json"
    config: dict[str, Any] = {}
    if config_path.is_file():
        try:
            config = json.loads(config_path.read_text())
        except json.JSONDecodeError as exc:
            raise CheckpointError(f"{config_path} is not valid JSON: {exc}") from exc
    for name in _DIR_WEIGHT_FILES:
        candidate = directory / name
        if not candidate.is_file():
            continue
        if name.endswith(".index.json"):
            try:
                index = json.loads(candidate.read_text())
                shards = sorted(set(index["weight_map"].values()))
            except (json.JSONDecodeError, KeyError) as exc:
                raise CheckpointError(f"{candidate} is not a valid shard index: {exc}") from exc
            files = [directory / shard for shard in shards]
            missing = [f.name for f in files if not f.is_file()]
            if missing:
                raise CheckpointError(
                    f"{directory}: shards listed in {name} are missing: {', '.join(missing)}"
                )
        else:
            files = [candidate]
        return PretrainedDir(path=directory, config=config, files=files)
    raise CheckpointError(
        f"{directory} has no weights ({', '.join(_DIR_WEIGHT_FILES)}); is it a save_pretrained directory?"
    )


def check_loading_info(info: Mapping[str, Any], source: str) -> None:
    """Turn transformers' ``output_loading_info`` into a hard error listing what did not fit."""
    mismatched = [
        f"{k}: checkpoint {tuple(a)} vs model {tuple(b)}" for k, a, b in info.get("mismatched_keys", [])
    ]
    missing = [k for k in info.get("missing_keys", []) if not k.endswith("num_batches_tracked")]
    unexpected = [k for k in info.get("unexpected_keys", []) if not k.endswith("num_batches_tracked")]
    _raise_if_problems(source, sorted(mismatched), sorted(missing), sorted(unexpected))


def _raise_if_problems(source: str, mismatched: list[str], missing: list[str], unexpected: list[str]) -> None:
    problems = []
    if mismatched:
        problems.append(f"{len(mismatched)} tensors of another shape ({_summarise(mismatched)})")
    if missing:
        problems.append(f"{len(missing)} missing tensors ({_summarise(missing)})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected tensors ({_summarise(unexpected)})")
    if problems:
        raise CheckpointError(
            f"weights {source} do not fit this model: " + "; ".join(problems) + ". "
            "Is it another model size or class count? Pass the matching model name (or num_classes)."
        )


def num_labels_from_config(config: Mapping[str, Any]) -> int | None:
    """The class count a transformers config.json declares."""
    if isinstance(config.get("id2label"), Mapping) and config["id2label"]:
        return len(config["id2label"])
    value = config.get("num_labels")
    return int(value) if isinstance(value, int) else None


# -- strict loading --------------------------------------------------------------------------------
def _tied_groups(state: Mapping[str, torch.Tensor]) -> dict[str, list[str]]:
    """Keys that share storage with other keys (tied weights) -> all keys of their group."""
    by_storage: dict[tuple[int, int, tuple[int, ...]], list[str]] = {}
    for key, tensor in state.items():
        if tensor.device.type == "meta" or tensor.numel() == 0:
            continue
        ident = (tensor.untyped_storage().data_ptr(), int(tensor.storage_offset()), tuple(tensor.shape))
        by_storage.setdefault(ident, []).append(key)
    return {key: keys for keys in by_storage.values() if len(keys) > 1 for key in keys}


def _summarise(items: Iterable[str], limit: int = 15) -> str:
    items = list(items)
    shown = "; ".join(items[:limit])
    return shown + (f"; ... (+{len(items) - limit} more)" if len(items) > limit else "")


def _with_tied(
    expected: Mapping[str, torch.Tensor], state_dict: Mapping[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """``state_dict`` with each tied name the model expects filled from a partner it does hold."""
    provided = dict(state_dict)
    groups = _tied_groups(expected)
    for key in (k for k in expected if k not in provided and k in groups):
        partner = next((k for k in groups[key] if k in state_dict), None)
        if partner is not None:
            provided[key] = state_dict[partner]
    return provided


def load_state_dict_strict(
    model: torch.nn.Module, state_dict: Mapping[str, torch.Tensor], source: str
) -> None:
    """Load ``state_dict`` into ``model``, failing on any missing, unexpected or mis-shaped tensor.

    Tied weights (one tensor under several names, as transformers' detection heads do) count as
    present when any of their names is. BatchNorm ``num_batches_tracked`` counters are not
    weights and may be absent on either side.
    """
    expected = model.state_dict()
    provided = _with_tied(expected, state_dict)
    missing = [k for k in expected if k not in provided and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in provided if k not in expected and not k.endswith("num_batches_tracked")]
    mismatched = [
        f"{k}: checkpoint {tuple(provided[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in expected
        if k in provided and tuple(provided[k].shape) != tuple(expected[k].shape)
    ]
    _raise_if_problems(source, mismatched, missing, unexpected)
    loadable = {k: v for k, v in provided.items() if k in expected}
    model.load_state_dict(loadable, strict=False)
