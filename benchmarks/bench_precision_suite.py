"""Wall time of ``dfine-bench run suite=precision`` (issue 20's target: under 25 minutes on 2 CPU cores),
and the deployment-fidelity table it wrote.

Runs the suite once in a fresh run folder (``output.run_id=bench-precision-<time>``; extra
arguments are passed on, e.g. ``dataset.num_images=8`` for a quick look), then prints the wall
and CPU time, how many cells got an AP (goal: at least 6, among them fp16, bf16 and int8) and the
table. Run: ``nice -n 19 python benchmarks/bench_precision_suite.py [overrides...]``. On a shared
machine the time includes the other load (the load average is printed with it).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

GOAL_S = 25 * 60


def main(argv: list[str]) -> int:
    run_id = f"bench-precision-{time.strftime('%Y%m%d-%H%M%S')}"
    cmd = ["dfine-bench", "run", "suite=precision", f"output.run_id={run_id}", "output.progress=off", *argv]
    load_before = os.getloadavg()
    start = time.perf_counter()
    done = subprocess.run(cmd, check=False)
    wall = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    records = [json.loads(p.read_text()) for p in Path("results", run_id, "records").glob("*.json")]
    evaluated = [
        r
        for r in records
        if r["task"] == "evaluation" and r["status"] == "ok" and "AP" in (r.get("metrics") or {})
    ]
    dtypes = sorted({r["setup"]["dtype"] for r in evaluated})
    cpu = (usage.ru_utime + usage.ru_stime) / 60
    print(
        f"\nsuite=precision: exit {done.returncode}, wall {wall / 60:.1f} min "
        f"(goal < {GOAL_S / 60:.0f} min), "
        f"CPU {cpu:.1f} min, load average before/after {load_before[0]:.1f}/{os.getloadavg()[0]:.1f} "
        f"on {os.cpu_count()} core(s)"
    )
    print(f"cells with an AP: {len(evaluated)} (precisions {', '.join(dtypes)}); records in results/{run_id}")
    return 0 if wall < GOAL_S and len(evaluated) >= 6 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
