"""Start-up cost of the ``dfine-bench`` command: CPU and wall seconds per command, heavy imports.

Each command runs in a fresh interpreter, ``--repeat`` times (the median is printed). Goals
(issue 12): ``--help`` under 0.5 s, ``list models`` under 1 s; ``--help``, ``list suites`` and
``list backends`` import no torch. Run: ``python benchmarks/bench_startup.py [--repeat 5]``.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import time

COMMANDS = (["--help"], ["list", "models"], ["list", "suites"], ["list", "backends"])
GOALS_S = {"--help": 0.5, "list models": 1.0}
PROBE = (
    "import sys, runpy\n"
    "sys.argv = ['dfine-bench', *sys.argv[1:]]\n"
    "try:\n    runpy.run_module('dfine_bench', run_name='__main__')\n"
    "except SystemExit:\n    pass\n"
    "heavy = [m for m in ('torch', 'transformers', 'pandas', 'matplotlib', 'hydra') if m in sys.modules]\n"
    "print('HEAVY', ','.join(heavy) or 'none', file=sys.stderr)\n"
)


def run_once(argv: list[str]) -> tuple[float, float, str]:
    """(CPU seconds of the child, wall seconds, heavy modules it imported)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    heavy = next((ln.split(" ", 1)[1] for ln in done.stderr.splitlines() if ln.startswith("HEAVY")), "?")
    return cpu, wall, heavy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}; median of {args.repeat} fresh interpreters per command")
    print(f"{'command':<16} {'cpu_s':>6} {'wall_s':>7} {'goal_s':>6}  heavy imports")
    for argv in COMMANDS:
        runs = [run_once(argv) for _ in range(args.repeat)]
        cpu = statistics.median(r[0] for r in runs)
        wall = statistics.median(r[1] for r in runs)
        name = " ".join(argv)
        goal = GOALS_S.get(name)
        print(f"{name:<16} {cpu:6.2f} {wall:7.2f} {goal if goal else '-':>6}  {runs[-1][2]}")


if __name__ == "__main__":
    main()
