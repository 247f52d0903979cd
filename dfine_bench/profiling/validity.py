"""Whether a latency measurement can be trusted: its spread and the machine's contention.

A timing is only as good as the machine it ran on. Two signs that it was not quiet are recorded
with every latency measurement and judged against thresholds:

* the coefficient of variation (std / mean) of the samples: above ``cv_max`` the samples were
  disturbed (other load, frequency scaling, a thermal limit);
* CPU contention. Where Linux reports it (``/proc/self/task/*/schedstat``), the time this
  process's threads spent runnable but waiting for a CPU during the timed window, per timed
  thread (``cpu_wait``): above ``max_cpu_wait`` another process (or our own surplus threads) took
  the CPU the measurement needed. This is measured inside the window, so a quiet machine that was
  busy a minute ago with our own export is not mistaken for a loaded one. The 1-minute load
  average against the usable cores, before and after (``os.getloadavg``, our own CPU use taken
  off the "after"), is recorded beside it and is the judge only where schedstat is not readable:
  other work plus the timed threads above ``max_load_per_core`` per core. (A 1-minute average
  lags: right after our own busy minute it reads as other work, which the schedstat wait does not.)

On a GPU a third sign is read through NVML (``profiling.gpu_state``): a power or thermal slowdown
during the window marks it ``throttled`` as well as unstable.

Any sign marks the measurement ``unstable`` (record ``details["validity"]``, a note, the console
and the report). The median's confidence interval comes from a percentile bootstrap
(``bootstrap_median_ci``), and p99 is only a statistic with ``P99_MIN_SAMPLES`` samples or more:
below that it is one of the few largest samples, not a percentile.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

#: Fewer samples than this give no p99 (the 99th percentile of 20 samples is their maximum).
P99_MIN_SAMPLES = 100
#: Bootstrap resamples for the median's confidence interval, and its level.
BOOTSTRAP_RESAMPLES = 2000
CI_LEVEL = 0.95
#: Default thresholds: a CV above 10% (torch.utils.benchmark warns at an IQR of 10% of the
#: median) or more runnable work than cores.
DEFAULT_CV_MAX = 0.10
DEFAULT_MAX_LOAD_PER_CORE = 1.25
#: Above this share of the window spent waiting for a CPU, per timed thread, the run was contended
#: (measured here: 0.002 on a quiet 2-core machine, 0.5 with two busy processes beside two threads).
DEFAULT_MAX_CPU_WAIT = 0.10


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask), else ``os.cpu_count()``."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def load_average() -> float | None:
    """The 1-minute load average (None where the platform has none, e.g. Windows)."""
    try:
        return float(os.getloadavg()[0])
    except (AttributeError, OSError):
        return None


def run_queue_wait_s() -> float | None:
    """Seconds this process's threads have spent runnable but not running (waiting for a CPU), from
    ``/proc/self/task/*/schedstat``; None where that is not readable (not Linux, no schedstats)."""
    total = 0
    found = False
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return None
    for tid in tasks:
        try:
            with open(f"/proc/self/task/{tid}/schedstat") as f:
                total += int(f.read().split()[1])
                found = True
        except (OSError, ValueError, IndexError):  # a thread that ended meanwhile
            continue
    return total / 1e9 if found else None


def bootstrap_median_ci(
    samples: list[float] | np.ndarray,
    *,
    level: float = CI_LEVEL,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
) -> tuple[float, float]:
    """A percentile-bootstrap confidence interval of the median (seeded: the same samples give
    the same interval). One sample gives a zero-width interval."""
    a = np.asarray(samples, dtype=np.float64)
    if a.size == 0:
        raise ValueError("a confidence interval needs at least one sample")
    if a.size == 1:
        return float(a[0]), float(a[0])
    rng = np.random.default_rng(seed)
    medians = np.median(a[rng.integers(0, a.size, size=(resamples, a.size))], axis=1)
    lo, hi = np.quantile(medians, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(lo), float(hi)


@dataclass
class Contention:
    """Load average before and after a timed window, and what this process itself used in it."""

    cores: int
    load_before: float | None
    load_after: float | None = None
    busy_cores: float = 0.0  # CPU seconds this process used per second of the window
    threads: int = 1  # threads the measurement itself runs on
    # share of the window each timed thread spent waiting for a CPU (schedstat); None: not readable
    cpu_wait: float | None = None

    @property
    def other_load(self) -> float | None:
        """Runnable work of other processes: the larger of "before" and "after" less our own use."""
        after = None if self.load_after is None else self.load_after - self.busy_cores
        seen = [v for v in (self.load_before, after) if v is not None]
        return max(0.0, max(seen)) if seen else None

    @property
    def load_per_core(self) -> float | None:
        """(Other work + the measurement's threads) per usable core; above 1 the cores were shared."""
        other = self.other_load
        return None if other is None else (other + self.threads) / self.cores


class ContentionWatch:
    """Reads the load average around a timed block: ``with ContentionWatch(threads) as w: ...``."""

    def __init__(self, threads: int = 1) -> None:
        self.contention = Contention(cores=usable_cores(), load_before=None, threads=max(1, int(threads)))
        self._cpu0 = 0.0
        self._wall0 = 0.0
        self._wait0: float | None = None

    def __enter__(self) -> ContentionWatch:
        self.contention.load_before = load_average()
        self._wait0 = run_queue_wait_s()
        self._cpu0, self._wall0 = time.process_time(), time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        wall = time.perf_counter() - self._wall0
        cpu = time.process_time() - self._cpu0
        wait1 = run_queue_wait_s()
        c = self.contention
        c.busy_cores = cpu / wall if wall > 0 else 0.0
        if self._wait0 is not None and wait1 is not None and wall > 0:
            c.cpu_wait = max(0.0, wait1 - self._wait0) / wall / c.threads
        c.load_after = load_average()


@dataclass
class Validity:
    """The verdict on one measurement: ``unstable`` and why, with the figures it was judged on."""

    n: int
    cv: float
    cv_max: float
    median_ci_ms: tuple[float, float]
    ci_level: float
    contention: Contention | None
    max_load_per_core: float
    reasons: list[str] = field(default_factory=list)
    max_cpu_wait: float = DEFAULT_MAX_CPU_WAIT
    throttled: bool = False  # the GPU reported a power/thermal slowdown in the window

    @property
    def unstable(self) -> bool:
        return bool(self.reasons)

    @property
    def status(self) -> str:
        """``throttled``, ``unstable`` or ``stable``: what the record's ``stability`` says."""
        if self.throttled:
            return "throttled"
        return "unstable" if self.unstable else "stable"

    @property
    def p99_valid(self) -> bool:
        return self.n >= P99_MIN_SAMPLES

    def to_dict(self) -> dict[str, Any]:
        c = self.contention
        return {
            "status": "unstable" if self.unstable else "stable",
            "throttled": self.throttled,
            "reasons": list(self.reasons),
            "n": self.n,
            "cv": self.cv,
            "cv_max": self.cv_max,
            "median_ci_ms": list(self.median_ci_ms),
            "ci_level": self.ci_level,
            "ci_method": f"percentile bootstrap, {BOOTSTRAP_RESAMPLES} resamples",
            "p99": "reported" if self.p99_valid else f"not reported: {self.n} < {P99_MIN_SAMPLES} samples",
            "contention": None
            if c is None
            else {**asdict(c), "other_load": c.other_load, "load_per_core": c.load_per_core},
            "max_load_per_core": self.max_load_per_core,
            "max_cpu_wait": self.max_cpu_wait,
            "contention_judged_by": None
            if c is None
            else ("cpu_wait (schedstat)" if c.cpu_wait is not None else "load average"),
        }

    def summary(self) -> str:
        """One line for the console and notes: ``UNSTABLE: ...`` or ``stable: ...``."""
        head = "UNSTABLE" if self.unstable else "stable"
        lo, hi = self.median_ci_ms
        text = f"{head}: CV {self.cv:.2f}, median {int(self.ci_level * 100)}% CI [{lo:.3g}, {hi:.3g}] ms"
        c = self.contention
        if c is not None and c.cpu_wait is not None:
            text += f", CPU wait {c.cpu_wait:.0%}"
        elif c is not None and c.load_per_core is not None:
            text += f", load {c.load_per_core:.2f} per core"
        return text + (f" ({'; '.join(self.reasons)})" if self.reasons else "")


def assess(
    samples_ms: list[float],
    contention: Contention | None,
    *,
    cv_max: float = DEFAULT_CV_MAX,
    max_load_per_core: float = DEFAULT_MAX_LOAD_PER_CORE,
    max_cpu_wait: float = DEFAULT_MAX_CPU_WAIT,
    gpu_slowdown: list[str] | None = None,
    seed: int = 0,
) -> Validity:
    """Judge a measurement's samples, the contention around it and the GPU's slowdown reasons
    (``GpuWatch.slowdown``; see the module docstring)."""
    a = np.asarray(samples_ms, dtype=np.float64)
    mean = float(a.mean()) if a.size else 0.0
    cv = float(a.std(ddof=1)) / mean if a.size > 1 and mean > 0 else 0.0
    reasons: list[str] = []
    if cv > cv_max:
        reasons.append(f"coefficient of variation {cv:.2f} > {cv_max:.2f}")
    per_core = None if contention is None else contention.load_per_core
    wait = None if contention is None else contention.cpu_wait
    if contention is not None and wait is not None:
        if wait > max_cpu_wait:
            reasons.append(
                f"CPU contention: the {contention.threads} timed thread(s) waited for a CPU {wait:.0%} of "
                f"the time (run queue, schedstat) > {max_cpu_wait:.0%}; load average "
                f"{contention.load_after if contention.load_after is not None else float('nan'):.2f} "
                f"on {contention.cores} core(s)"
            )
    elif contention is not None and per_core is not None and per_core > max_load_per_core:
        reasons.append(
            f"CPU contention: load {contention.other_load:.2f} from other work + {contention.threads} "
            f"timed thread(s) on {contention.cores} core(s) = {per_core:.2f} per core "
            f"> {max_load_per_core:.2f}"
        )
    if gpu_slowdown:
        reasons.append(f"GPU throttled: {', '.join(gpu_slowdown)}")
    return Validity(
        n=int(a.size),
        cv=cv,
        cv_max=cv_max,
        median_ci_ms=bootstrap_median_ci(a, seed=seed),
        ci_level=CI_LEVEL,
        contention=contention,
        max_load_per_core=max_load_per_core,
        reasons=reasons,
        max_cpu_wait=max_cpu_wait,
        throttled=bool(gpu_slowdown),
    )
