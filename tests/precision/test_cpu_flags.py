"""Reduced-precision timings compare only between CPUs with the same precision instruction-set flags."""

from __future__ import annotations

from typing import Any

from dfine_bench.checks.fingerprint import fingerprint_differences
from dfine_bench.records.environment import PRECISION_CPU_FLAGS, cpu_precision_flags, machine_fingerprint


def _fp(precision: str, flags: list[str]) -> dict[str, Any]:
    return {
        "device_type": "cpu",
        "cpu_model": "Xeon",
        "cpu_count": 2,
        "torch": "2.x",
        "backend": "onnxruntime",
        "precision": precision,
        "backend_fields": [],
        "cpu_precision_flags": flags,
    }


def test_the_fingerprint_records_the_precision_flags_of_this_cpu() -> None:
    flags = cpu_precision_flags()
    assert flags is None or set(flags) <= set(PRECISION_CPU_FLAGS)
    assert machine_fingerprint("cpu")["cpu_precision_flags"] == flags


def test_int8_timings_on_cpus_with_other_flags_do_not_compare_fp32_ones_do() -> None:
    amx, plain = ["amx_int8", "avx512_vnni"], []
    diffs = fingerprint_differences(_fp("int8", amx), _fp("int8", plain))
    assert [d[0] for d in diffs] == ["fingerprint.cpu_precision_flags"]
    assert fingerprint_differences(_fp("int8", amx), _fp("int8", list(amx))) == []
    assert fingerprint_differences(_fp("fp32", amx), _fp("fp32", plain)) == []
