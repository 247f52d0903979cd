"""The GPU's clocks, temperature, power and throttle reasons around a timing, read through NVML.

A GPU that slows itself down (power cap, thermal limit, a hardware slowdown signal) gives
latencies that say more about its cooling than about the model. ``GpuWatch`` reads the state of
the timed device before and after the timed window with ``nvidia-ml-py`` (module ``pynvml``, the
``gpu`` extra); a slowdown reason in either reading marks the measurement ``throttled``, which
marks it unstable and keeps it out of claim verdicts (``profiling.validity``, ``claims``).

Throttle reasons are NVML's clock-event bits (``nvmlClocksEventReason*``, formerly
``nvmlClocksThrottleReason*``); idle, application-clock, sync-boost and display-clock reasons are
recorded but are no slowdown. On the CPU the state is "n/a"; without ``pynvml`` or without a
readable device it is "not measured" with the reason, never a guess.
"""

from __future__ import annotations

import contextlib
import importlib
import os
from typing import Any

#: NVML clock-event (throttle) reason bits -> names (nvml.h).
REASON_BITS: dict[int, str] = {
    0x1: "gpu_idle",
    0x2: "applications_clocks_setting",
    0x4: "sw_power_cap",
    0x8: "hw_slowdown",
    0x10: "sync_boost",
    0x20: "sw_thermal_slowdown",
    0x40: "hw_thermal_slowdown",
    0x80: "hw_power_brake_slowdown",
    0x100: "display_clock_setting",
}
#: The reasons that mean the GPU ran slower than it could.
SLOWDOWN = frozenset(
    {"sw_power_cap", "hw_slowdown", "sw_thermal_slowdown", "hw_thermal_slowdown", "hw_power_brake_slowdown"}
)
NOT_APPLICABLE = "n/a (cpu)"


def reason_names(mask: int) -> list[str]:
    """The names of the reason bits set in ``mask`` (unknown bits as ``bit_0x..``)."""
    names = [name for bit, name in REASON_BITS.items() if mask & bit]
    unknown = mask & ~sum(REASON_BITS)
    for bit in range(32):
        if unknown & (1 << bit):
            names.append(f"bit_{1 << bit:#x}")
    return names


def _nvml_index(device: str) -> int | str:
    """The NVML index (or ``GPU-...`` UUID) of a torch device name, through CUDA_VISIBLE_DEVICES."""
    index = int(device.split(":", 1)[1]) if ":" in device else 0
    visible = [v.strip() for v in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()]
    if not visible:
        return index
    entry = visible[index] if index < len(visible) else str(index)
    return entry if entry.startswith(("GPU-", "MIG-")) else int(entry)


def _load_nvml() -> Any:
    return importlib.import_module("pynvml")


def read_state(nvml: Any, handle: Any) -> dict[str, Any]:
    """One reading: SM and memory clocks (MHz, with the SM maximum), temperature (C), power (W),
    and the throttle reasons."""
    # the newer name first; nvidia-ml-py < 12.535 has the older one only
    get_reasons = getattr(nvml, "nvmlDeviceGetCurrentClocksEventReasons", None)
    if get_reasons is None:
        get_reasons = nvml.nvmlDeviceGetCurrentClocksThrottleReasons
    mask = int(get_reasons(handle))
    return {
        "sm_clock_mhz": int(nvml.nvmlDeviceGetClockInfo(handle, nvml.NVML_CLOCK_SM)),
        "sm_clock_max_mhz": int(nvml.nvmlDeviceGetMaxClockInfo(handle, nvml.NVML_CLOCK_SM)),
        "mem_clock_mhz": int(nvml.nvmlDeviceGetClockInfo(handle, nvml.NVML_CLOCK_MEM)),
        "temperature_c": int(nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU)),
        "power_w": float(nvml.nvmlDeviceGetPowerUsage(handle)) / 1000.0,
        "throttle_reasons": reason_names(mask),
    }


class GpuWatch:
    """``with GpuWatch(device) as w: <timed work>``; then ``w.state`` is the record's ``gpu_state``
    and ``w.slowdown`` the slowdown reasons seen (empty: not throttled, or not measured)."""

    def __init__(self, device: str, *, nvml: Any = None) -> None:
        self.device = device
        self._nvml = nvml
        self._handle: Any = None
        self.state: dict[str, Any] = {"status": NOT_APPLICABLE}
        self.slowdown: list[str] = []

    def __enter__(self) -> GpuWatch:
        if not self.device.startswith("cuda"):
            return self
        try:
            nvml = self._nvml if self._nvml is not None else _load_nvml()
        except ImportError:
            self.state = {
                "status": "not measured",
                "reason": "nvidia-ml-py is not installed (pip install nvidia-ml-py)",
            }
            return self
        try:
            nvml.nvmlInit()
            ident = _nvml_index(self.device)
            if isinstance(ident, str):
                self._handle = nvml.nvmlDeviceGetHandleByUUID(ident)
            else:
                self._handle = nvml.nvmlDeviceGetHandleByIndex(ident)
            self._nvml = nvml
            self.state = {"status": "ok", "source": "nvml", "before": read_state(nvml, self._handle)}
        except Exception as exc:  # NVML present but unusable (no driver access in a container ...)
            self._handle = None
            self.state = {"status": "not measured", "reason": f"NVML: {type(exc).__name__}: {exc}"}
        return self

    def __exit__(self, *exc: object) -> None:
        if self._handle is None:
            return
        try:
            self.state["after"] = read_state(self._nvml, self._handle)
        except Exception as err:  # the "before" reading stands
            self.state["after"] = {"status": "not measured", "reason": f"NVML: {type(err).__name__}: {err}"}
        seen: list[str] = []
        for when in ("before", "after"):
            for name in self.state.get(when, {}).get("throttle_reasons", []):
                if name in SLOWDOWN and name not in seen:
                    seen.append(name)
        self.slowdown = seen
        self.state["throttled"] = bool(seen)
        with contextlib.suppress(Exception):  # shutting NVML down is best effort
            self._nvml.nvmlShutdown()
