"""The range and type checks of the typed settings: each raises one ``ConfigError`` line naming the key.

``enum_value`` is the one place a config enum member is unwrapped to its value; the settings
(``config/settings.py``) call it while converting the composed config, and nothing below reads
an enum.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Iterable
from enum import Enum
from typing import Any

from dfine_bench.errors import ConfigError
from dfine_bench.records.protocols import PAPER_T4

_DEVICE = re.compile(r"^(cpu|cuda(:\d+)?)$")
#: A run id or report name: one folder name, never ``.``/``..`` or a path.
_FOLDER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")


def enum_value(v: Any) -> Any:
    """An enum member's value, else ``v`` unchanged: the one place config enums are unwrapped."""
    return v.value if isinstance(v, Enum) else v


def check_int(key: str, value: Any, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{key}={value!r}: must be an integer >= {minimum}")
    if value < minimum:
        raise ConfigError(f"{key}={value}: must be >= {minimum}")
    return int(value)


def check_float(
    key: str, value: Any, *, minimum: float, strict: bool = False, maximum: float | None = None
) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise ConfigError(f"{key}={value!r}: must be a number")
    if value < minimum or (strict and value == minimum):
        raise ConfigError(f"{key}={value}: must be {'>' if strict else '>='} {minimum:g}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{key}={value}: must be between {minimum:g} and {maximum:g}")
    return float(value)


def check_bool(key: str, value: Any, *, optional: bool = False) -> bool | None:
    if value is None and optional:
        return None
    if not isinstance(value, bool):
        what = "true, false or null" if optional else "true or false"
        raise ConfigError(f"{key}={value!r}: must be {what}")
    return value


def check_choice(key: str, value: Any, allowed: Iterable[str]) -> str:
    value = enum_value(value)
    allowed = tuple(allowed)
    if value not in allowed:
        raise ConfigError(f"{key}={value!r}: allowed values are {', '.join(allowed)}")
    return str(value)


def check_size(key: str, value: Any, *, minimum: int = 1) -> tuple[int, int]:
    items = list(value) if value is not None and not isinstance(value, (str, bytes)) else []
    if len(items) != 2:
        raise ConfigError(f"{key}={value!r}: must be [height, width]")
    h, w = (check_int(key, v, minimum=minimum) for v in items)
    return h, w


def check_names(key: str, value: Any) -> tuple[str, ...]:
    """A list of names (``evaluation.evaluators``) as a tuple of strings."""
    if isinstance(value, (str, bytes)) or value is None:
        raise ConfigError(f"{key}={value!r}: must be a list of names, e.g. [coco]")
    return tuple(str(enum_value(v)) for v in value)


def check_folder_name(key: str, value: str) -> str:
    """A run id or report name must be one plain folder name (no ``..``, ``.``, ``/`` or leading dot)."""
    if not _FOLDER_NAME.match(value or ""):
        raise ConfigError(
            f"{key}={value!r}: must be one folder name of letters, digits and . _ + - that does not "
            "start with a dot (at most 128 characters), e.g. my-run-1"
        )
    return value


def check_device_name(device: str, key: str = "device") -> str:
    """``cpu``, ``cuda`` or ``cuda:N`` (whether this machine has it is ``check_device``)."""
    if not isinstance(device, str) or not _DEVICE.match(device):
        raise ConfigError(f"{key}={device!r}: must be cpu, cuda or cuda:N")
    return device


def check_device(device: str, key: str = "device") -> str:
    """``cpu``, ``cuda`` or ``cuda:N``, and present on this machine."""
    check_device_name(device, key)
    if device.startswith("cuda"):
        import torch  # heavy: only a CUDA device needs it here

        if not torch.cuda.is_available():
            raise ConfigError(
                f"{key}={device}: CUDA is not available on this machine "
                f"(torch {torch.__version__}, cuda build {torch.version.cuda or 'none'}); use device=cpu"
            )
        index = int(device.split(":", 1)[1]) if ":" in device else 0
        if index >= torch.cuda.device_count():
            raise ConfigError(f"{key}={device}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return device


def check_paper_protocol() -> None:
    """``protocol=paper_t4`` needs CUDA and TensorRT; refused at start-up, naming what is missing."""
    import torch  # heavy: only this protocol needs it at start-up

    missing = []
    if not torch.cuda.is_available():
        missing.append(
            f"a CUDA device (torch {torch.__version__}, cuda build {torch.version.cuda or 'none'})"
        )
    if importlib.util.find_spec("tensorrt") is None:
        missing.append("TensorRT (pip install tensorrt)")
    if missing:
        raise ConfigError(
            f"protocol={PAPER_T4.name} needs an NVIDIA GPU with CUDA and TensorRT; this machine lacks "
            f"{' and '.join(missing)}: use protocol=end_to_end or protocol=model_only here"
        )
