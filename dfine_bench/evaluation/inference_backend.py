"""Which backend an evaluation's inference runs through (``evaluation.backends``), in one place.

Each entry is a registered profiling backend's name, optionally with a precision
(``onnxruntime``, ``eager-fp16``, ``tensorrt-fp16``). Its settings (options, dtype when none is
given) are those of the run's backend config of the same name (the ``backend`` group or the
suite's ``backends``), so evaluation runs the very artifact profiling times: the runner is built
by ``backends.build_backend`` with the same artifacts folder (the run folder, where the
ONNX export and TensorRT engines are cached).

``eager-fp32`` is the reference: it calls ``adapter.forward`` directly, exactly as before.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from dfine_bench.adapters.base import DetectorAdapter, RawOutputs
from dfine_bench.backends import DTYPES, BackendSpec, build_backend, resolve_backend
from dfine_bench.config.settings import EvaluationSettings
from dfine_bench.errors import BackendUnavailable, ConfigError, DfineBenchError
from dfine_bench.profiling.precision import calibration_for

REFERENCE = "eager-fp32"

Forward = Callable[..., RawOutputs]


@dataclass(frozen=True)
class EvalBackend:
    """One resolved ``evaluation.backends`` entry."""

    spec: BackendSpec

    @property
    def key(self) -> str:
        return self.spec.key

    @property
    def is_reference(self) -> bool:
        return self.key == REFERENCE


def _split(entry: str) -> tuple[str, str | None]:
    name, sep, dtype = entry.rpartition("-")
    if sep and dtype in DTYPES:
        return name, dtype
    return entry, None


def resolve_eval_backends(
    cfg: EvaluationSettings, candidates: Sequence[BackendSpec] = ()
) -> list[EvalBackend]:
    """``evaluation.backends`` checked against the backend registry (a ``ConfigError`` naming the entry).

    ``candidates`` are the run's resolved backends; an entry takes the options (and, without an
    explicit precision, the dtype) of the first candidate with its name.
    """
    entries = [str(e) for e in cfg.backends]
    if not entries:
        raise ConfigError("evaluation.backends is empty: list at least one backend (e.g. [eager])")
    out: list[EvalBackend] = []
    for i, entry in enumerate(entries):
        name, dtype = _split(entry)
        named = [c for c in candidates if c.name == name]
        # a candidate of this precision first (eager-fp16 beside eager), else the first of the name
        match = next(iter([c for c in named if c.dtype == dtype] or named), None)
        config: dict[str, Any] = {"name": name, "dtype": dtype or "fp32"}
        if match is not None:
            config.update(dtype=dtype or match.dtype, options=dict(match.options), atol=match.atol)
        spec = resolve_backend(config, key=f"evaluation.backends[{i}]")
        if any(b.key == spec.key for b in out):
            raise ConfigError(f"evaluation.backends lists {spec.key!r} twice")
        out.append(EvalBackend(spec))
    return out


def make_forward(
    adapter: DetectorAdapter,
    backend: EvalBackend,
    *,
    device: str,
    artifacts_dir: Path,
    max_batch_size: int,
) -> tuple[Forward, dict[str, Any]]:
    """A ``forward(pixels, **extras) -> RawOutputs`` for ``backend`` and the facts for the record.

    Raises ``BackendUnavailable`` when this machine cannot run it (the evaluation records a skip).
    """
    if backend.is_reference:
        return adapter.forward, {}

    runner = build_backend(
        adapter,
        backend.spec,
        device=device,
        work_dir=artifacts_dir,
        input_size=tuple(adapter.spec.input_size),  # type: ignore[arg-type]
        max_batch_size=max_batch_size,
        calibration=calibration_for(adapter, backend.spec, artifacts_dir),
    )

    def forward(pixel_values: torch.Tensor, **extras: torch.Tensor) -> RawOutputs:
        # Exported modules take the pixels only; an extra that says something (a padding mask with
        # zeros) would be dropped silently, so it is refused instead.
        for name, value in extras.items():
            if not bool(torch.all(value != 0)):
                raise DfineBenchError(
                    f"evaluation.backends={backend.key}: the exported model takes pixels only, but the "
                    f"{adapter.spec.name} preprocessor passes a non-trivial {name!r}; evaluate it with eager"
                )
        fixed = tuple(adapter.spec.input_size)
        if "onnx_file" in info and tuple(pixel_values.shape[-2:]) != fixed:
            raise BackendUnavailable(
                f"evaluation.backends={backend.key}: the exported graph takes {fixed[0]}x{fixed[1]} pixels, "
                f"but the {adapter.spec.name} preprocessor gives {pixel_values.shape[-2]}x"
                f"{pixel_values.shape[-1]} here (it keeps the aspect ratio); evaluate it with eager"
            )
        try:
            outputs = runner(pixel_values)
        except Exception as exc:  # a runtime error of this cell: its records fail, the other cells go on
            raise DfineBenchError(
                f"evaluation through {backend.key} failed: {type(exc).__name__}: "
                + str(exc).splitlines()[0][:300]
            ) from exc
        return adapter.outputs_from_tuple(finite_outputs(outputs, adapter.output_names, info))

    info = dict(runner.info)
    return forward, info


def finite_outputs(
    outputs: tuple[torch.Tensor, ...], names: Sequence[str], info: dict[str, Any]
) -> tuple[torch.Tensor, ...]:
    """A reduced-precision cell's outputs with non-finite values made "no detection" (a NaN logit
    becomes a score of ~0, a NaN box 0): a deployed NaN fails every score threshold, and COCO
    evaluation refuses NaN scores. How many images had them is counted in ``info``
    (``nonfinite_images``; the record's ``details.backend_info``)."""
    bad = torch.zeros(outputs[0].shape[0], dtype=torch.bool) if outputs else None
    for o in outputs:
        if o.is_floating_point() and bad is not None and o.shape[:1] == bad.shape:
            bad |= ~torch.isfinite(o.reshape(o.shape[0], -1)).all(dim=1)
    if bad is None or not bool(bad.any()):
        return outputs
    info["nonfinite_images"] = int(info.get("nonfinite_images", 0)) + int(bad.sum())
    return tuple(
        torch.nan_to_num(o, nan=-1e4 if "logit" in n else 0.0, posinf=1e4, neginf=-1e4)
        if o.is_floating_point()
        else o
        for o, n in zip(outputs, names, strict=False)
    )
