"""Which environment-fingerprint fields change speed, and where two timings' fingerprints differ.

A timing compares with another only when every speed-relevant field of their fingerprints
(``dfine_bench.records.environment.fingerprint``) agrees. What is speed-relevant depends on what
ran: the CPU model, its usable cores, the torch version and the precision always; on a GPU also
its name, driver, CUDA, cuDNN and TF32 switches; and every field the timed backend contributed
(``Backend.fingerprint``: its options, such as OpenVINO's ``hint`` or the ONNX opset, its runtime
version, providers, exporter ...), which the fingerprint lists in ``backend_fields``: nothing here
knows a backend. A reduced-precision timing (bf16, fp16, int8) also compares only between CPUs with
the same precision instruction-set flags (``cpu_precision_flags``: AMX, AVX512-BF16/FP16, VNNI).
Clocks are recorded but not compared: they move with load and temperature (the GPU discipline
marks throttled runs instead).

A field missing on either side (a record written before it was recorded) is not a difference:
``missing_fingerprint`` lets the gate say the comparison could not be checked.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from dfine_bench.backends import get_backend
from dfine_bench.errors import DfineBenchError

if TYPE_CHECKING:
    from dfine_bench.records.schema import ResultRecord

ALWAYS = ("cpu_model", "cpu_count", "torch", "precision", "backend")
CUDA = ("gpu_name", "gpu_driver", "cuda", "cudnn", "tf32_matmul", "tf32_cudnn", "cudnn_benchmark")


def legacy_backend_fields(backend: str) -> tuple[str, ...]:
    """For a record written before fingerprints listed their backend's fields (``backend_fields``):
    the fields its backend declares here (``Backend.fingerprint_fields``); () for a backend this
    installation does not have (the machine's fields still compare)."""
    try:
        return tuple(get_backend(backend).fingerprint_fields)
    except DfineBenchError:
        return ()


def speed_fields(fp: Mapping[str, Any]) -> tuple[str, ...]:
    """The fields of ``fp`` that change how fast the same model runs: the machine's, and those the
    backend contributed (``backend_fields``, written with the fingerprint)."""
    fields = list(ALWAYS)
    if fp.get("device_type") == "cuda":
        fields += CUDA
    own = fp.get("backend_fields")
    fields += own if isinstance(own, list) else legacy_backend_fields(str(fp.get("backend")))
    if fp.get("precision") not in (None, "fp32"):  # bf16/fp16/int8 speed hangs on AMX, AVX512-FP16, VNNI
        fields.append("cpu_precision_flags")
    return tuple(fields)


def fingerprint_differences(
    base: Mapping[str, Any] | None, new: Mapping[str, Any] | None
) -> list[tuple[str, Any, Any]]:
    """``("fingerprint.<field>", base value, new value)`` for each speed-relevant field that differs.

    Fields recorded on one side only, or fingerprints absent on either side, are not differences.
    """
    if not base or not new:
        return []
    fields = dict.fromkeys([*speed_fields(base), *speed_fields(new)])
    return [
        (f"fingerprint.{k}", base[k], new[k]) for k in fields if k in base and k in new and base[k] != new[k]
    ]


def record_fingerprint(
    setup_extra: Mapping[str, Any], environment: Mapping[str, Any]
) -> dict[str, Any] | None:
    """A record's fingerprint: the timed backend's full one, else the machine part of its environment."""
    fp = setup_extra.get("fingerprint") or environment.get("fingerprint")
    return dict(fp) if isinstance(fp, Mapping) else None


def not_comparable(diffs: list[tuple[str, Any, Any]]) -> str:
    """One line naming each differing field: ``not comparable: fingerprint.onnxruntime 1.17 -> 1.18``."""
    return "not comparable: " + "; ".join(f"{k} {b!r} -> {n!r}" for k, b, n in diffs)


def incomparable_timings(records: Iterable[ResultRecord]) -> list[str]:
    """For ``compare``: timing records shown side by side (same device name, backend and dtype) whose
    fingerprints differ in a speed-relevant field, one line per group naming the fields and runs."""
    groups: dict[tuple[Any, ...], list[ResultRecord]] = {}
    for r in records:
        if r.task in ("latency", "throughput") and r.status == "ok":
            groups.setdefault((r.setup.device_name, r.setup.backend, r.setup.dtype), []).append(r)
    out: list[str] = []
    for (device, backend, dtype), recs in groups.items():
        first = recs[0]
        ref = record_fingerprint(first.setup.extra, first.environment)
        seen: dict[str, set[str]] = {}
        for r in recs[1:]:
            for key, b, n in fingerprint_differences(ref, record_fingerprint(r.setup.extra, r.environment)):
                seen.setdefault(key, set()).add(f"{b!r} (run {first.run_id}) vs {n!r} (run {r.run_id})")
        if seen:
            fields = "; ".join(f"{k}: {', '.join(sorted(v))}" for k, v in seen.items())
            out.append(f"{device} {backend} {dtype} timings are not comparable: {fields}")
    return out
