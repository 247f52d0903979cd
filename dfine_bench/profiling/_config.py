"""Reading the profiling config groups whether they arrive as dataclasses or OmegaConf DictConfigs.

The runner passes plain dataclass instances or ``DictConfig`` objects, and enum fields may
arrive as ``Enum`` members or plain strings; these helpers give the profiling code one view.
"""

from __future__ import annotations

from enum import Enum
from typing import Any


def value(x: Any) -> Any:
    """An enum member's value, else ``x`` unchanged (``Timed.model`` and ``"model"`` -> ``"model"``)."""
    return x.value if isinstance(x, Enum) else x


def get(cfg: Any, name: str, default: Any = None) -> Any:
    """``cfg.name`` with enums normalised to their values; ``default`` when missing or None."""
    if cfg is None:
        return default
    try:
        out = getattr(cfg, name)
    except (AttributeError, KeyError):
        return default
    out = value(out)
    return default if out is None else out


def get_list(cfg: Any, name: str, default: list[Any] | None = None) -> list[Any]:
    """A list field as a plain Python list (a ``ListConfig`` is turned into one)."""
    out = get(cfg, name, None)
    if out is None:
        return list(default or [])
    return [value(v) for v in out]
