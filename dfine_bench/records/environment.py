"""Provenance of the machine and software a run used: versions, devices, git revision.

Everything is optional: a missing tool (no GPU, no TensorRT, not a git checkout) is
recorded as ``None`` rather than failing the run.

``fingerprint`` is the structured part that decides whether two timings compare: CPU model and
usable cores; GPU name, driver, CUDA, cuDNN and clocks; the torch and runtime versions; the
precision flags (dtype, TF32, cuDNN benchmark); and whatever the timed backend says changes its
speed (``Backend.fingerprint``: its options, providers, exporter ...; this module knows no
backend). Every record's environment holds the machine part; timing records hold the full one in
``setup.extra["fingerprint"]``. Which fields change speed is the gate's business
(``dfine_bench.checks.fingerprint``).
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
import platform
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

import dfine_bench
from dfine_bench.records.packages import OPTIONAL_PACKAGES, version_key


def _version(pkg: str) -> str | None:
    try:
        return importlib.metadata.version(pkg)
    except importlib.metadata.PackageNotFoundError:
        return None


@functools.lru_cache(maxsize=1)
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git(*args: str, cwd: Path) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


@functools.lru_cache(maxsize=1)
def git_state() -> dict[str, Any]:
    """The project's revision and whether the tree was dirty (None outside a checkout)."""
    root = Path(dfine_bench.__file__).resolve().parents[1]
    rev = _git("rev-parse", "HEAD", cwd=root)
    if rev is None:
        return {"git_revision": None, "git_dirty": None}
    status = _git("status", "--porcelain", "--untracked-files=no", cwd=root)
    return {"git_revision": rev, "git_dirty": bool(status)}


def gpu_info() -> list[dict[str, Any]]:
    """Name, driver and clocks of each NVIDIA GPU via nvidia-smi; [] where there is none."""
    if not torch.cuda.is_available():
        return []
    fields = "name,driver_version,clocks.sm,clocks.max.sm,clocks.mem,memory.total"
    try:
        out = subprocess.run(
            ["nvidia-smi", f"--query-gpu={fields}", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
        rows = [[c.strip() for c in line.split(",")] for line in out.strip().splitlines()]
        keys = ["name", "driver", "sm_clock_mhz", "max_sm_clock_mhz", "mem_clock_mhz", "memory_total_mib"]
        return [dict(zip(keys, r)) for r in rows]
    except (OSError, subprocess.SubprocessError):
        return [{"name": torch.cuda.get_device_name(i)} for i in range(torch.cuda.device_count())]


def device_name(device: str) -> str:
    """What actually runs a 'cpu' or 'cuda:N' device, for labels ("NVIDIA H100 80GB HBM3")."""
    if device.startswith("cuda") and torch.cuda.is_available():
        index = torch.device(device).index or 0
        return torch.cuda.get_device_name(index)
    return cpu_model()


@functools.lru_cache(maxsize=1)
def _static_environment() -> dict[str, Any]:
    cuda = torch.version.cuda if torch.cuda.is_available() else None
    cudnn = torch.backends.cudnn.version() if torch.cuda.is_available() else None
    env: dict[str, Any] = {
        "python": platform.python_version(),
        "python_executable": sys.executable,
        "torch": torch.__version__,
        "cuda": cuda,
        "cudnn": cudnn,
        "dfine_bench": dfine_bench.__version__,
        "os": platform.platform(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "gpus": gpu_info(),
    }
    env.update({version_key(pkg): _version(pkg) for pkg in OPTIONAL_PACKAGES})
    env.update(git_state())
    return env


def capture_environment() -> dict[str, Any]:
    """Environment block for a record (static facts cached; thread count read now)."""
    env = dict(_static_environment())
    env["torch_threads"] = torch.get_num_threads()
    env["hostname"] = platform.node()
    env["fingerprint"] = machine_fingerprint("cuda" if torch.cuda.is_available() else "cpu")
    return env


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _gpu_of(device: str) -> dict[str, Any]:
    if not device.startswith("cuda"):
        return {}
    gpus = gpu_info()
    index = torch.device(device).index or 0
    return gpus[index] if index < len(gpus) else {}


def _int_or_none(v: Any) -> int | None:
    try:
        return int(float(v))
    except (TypeError, ValueError):
        return None


#: CPU instruction-set flags that change reduced-precision speed (bf16/fp16 arithmetic, AMX tiles,
#: VNNI int8 dot products): two CPUs differing in one do not run bf16/fp16/int8 alike
PRECISION_CPU_FLAGS = (
    "avx512_bf16",
    "avx512_fp16",
    "amx_bf16",
    "amx_fp16",
    "amx_int8",
    "avx512_vnni",
    "avx_vnni",
)


@functools.lru_cache(maxsize=1)
def cpu_precision_flags() -> list[str] | None:
    """Which of ``PRECISION_CPU_FLAGS`` this CPU has (``/proc/cpuinfo``); None where unreadable."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    flags: set[str] = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[-1].split())
    return [f for f in PRECISION_CPU_FLAGS if f in flags]


def machine_fingerprint(device: str) -> dict[str, Any]:
    """The machine and software part of the fingerprint (no backend): what ran ``device``."""
    static = _static_environment()
    gpu = _gpu_of(device)
    cuda = device.startswith("cuda")
    return {
        "device_type": "cuda" if cuda else "cpu",
        "cpu_model": cpu_model(),
        "cpu_count": _usable_cores(),
        "gpu_name": gpu.get("name") if cuda else None,
        "gpu_driver": gpu.get("driver") if cuda else None,
        "cuda": static["cuda"] if cuda else None,
        "cudnn": static["cudnn"] if cuda else None,
        "sm_clock_mhz": _int_or_none(gpu.get("sm_clock_mhz")),
        "max_sm_clock_mhz": _int_or_none(gpu.get("max_sm_clock_mhz")),
        "mem_clock_mhz": _int_or_none(gpu.get("mem_clock_mhz")),
        "torch": static["torch"],
        "cpu_precision_flags": cpu_precision_flags(),
        "onnxruntime": static.get("onnxruntime"),
        "openvino": static.get("openvino"),
        "tensorrt": static.get("tensorrt"),
        "tf32_matmul": bool(torch.backends.cuda.matmul.allow_tf32) if cuda else None,
        "tf32_cudnn": bool(torch.backends.cudnn.allow_tf32) if cuda else None,
        "cudnn_benchmark": bool(torch.backends.cudnn.benchmark) if cuda else None,
    }


def fingerprint(
    device: str,
    *,
    backend: str,
    dtype: str,
    backend_fingerprint: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The full fingerprint of one timed backend on ``device`` (see the module docstring).

    ``backend_fingerprint`` is what the backend itself says changes its speed
    (``Backend.fingerprint``: its resolved options, runtime version, providers ...); its keys are
    listed in ``backend_fields`` so that whoever reads the record compares them without knowing
    the backend.
    """
    machine = machine_fingerprint(device)
    own = {k: v for k, v in (backend_fingerprint or {}).items() if k not in machine}
    return {**machine, "backend": backend, "precision": dtype, **own, "backend_fields": sorted(own)}
