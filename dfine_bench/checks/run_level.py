"""The gate's run-level findings: reasons a run cannot be compared at all, and notes beside the rows.

``check_catalogue`` refuses a baseline metric the catalogue does not know (it has no gate rule);
``run_problems`` finds an unfinished run and model or record sets that differ. The notes say what
does not fail the check but should be read: records that were not clean in the baseline either,
package versions that changed, and the run's own tolerances, which are never used.
"""

from __future__ import annotations

from collections.abc import Mapping

from dfine_bench.checks.entries import Baseline, BaselineError, RunData
from dfine_bench.checks.rules import OK, Row
from dfine_bench.records import metrics as catalogue
from dfine_bench.records.metrics import find_metric


def check_catalogue(baseline: Baseline) -> None:
    """Every metric the baseline holds must be in the catalogue (so that it has a gate rule)."""
    unknown = sorted({m for e in baseline.entries.values() for m in e.metrics if find_metric(m) is None})
    if unknown:
        broken = catalogue.load_errors()
        not_loaded = f" (plug-ins that failed to load: {', '.join(broken)})" if broken else ""
        raise BaselineError(
            f"{baseline.label}: metric(s) {', '.join(unknown)} are not in the metric catalogue, so no gate "
            "rule says how to compare them: register each with dfine_bench.records.metrics.register_metric "
            f"(installing the plug-in that defines them), or re-save the baseline{not_loaded}"
        )


def run_problems(baseline: Baseline, run: RunData) -> list[str]:
    """Run-level reasons the two cannot be compared: an unfinished run, other models or records."""
    problems: list[str] = []
    status = run.meta.get("status")
    if run.meta and status != "complete":
        problems.append(
            f"run {run.run_id} is {status!r}, not complete: finish it (re-run the same command) first"
        )
    base_models = {e.model_name for e in baseline.entries.values()}
    run_models = {e.model_name for e in run.entries.values()}
    parts = []
    if base_models - run_models:
        parts.append(f"the run lacks {', '.join(sorted(base_models - run_models))}")
    if run_models - base_models:
        parts.append(f"the baseline lacks {', '.join(sorted(run_models - base_models))}")
    if parts:
        problems.append(
            f"another model set: {'; '.join(parts)} (save a new baseline if the suite's models changed)"
        )
    return problems + record_set_problems(baseline, run, base_models & run_models)


def record_set_problems(baseline: Baseline, run: RunData, models: set[str]) -> list[str]:
    """Records of the models both hold that only one side has."""
    missing = sorted(
        r for r, e in baseline.entries.items() if e.model_name in models and r not in run.entries
    )
    extra = sorted(r for r, e in run.entries.items() if e.model_name in models and r not in baseline.entries)
    out = []
    if missing:
        out.append(f"records in the baseline but not in the run: {', '.join(missing)}")
    if extra:
        out.append(
            f"records in the run but not in the baseline: {', '.join(extra)} "
            "(save a new baseline to gate them)"
        )
    return out


def unclean_note(rows: list[Row]) -> list[str]:
    """A note naming the records that failed or were skipped in the baseline too (so not gated)."""
    unclean = [r.record_id for r in rows if r.metric == "status" and r.verdict == OK]
    if not unclean:
        return []
    return [
        f"the baseline is not clean: {len(unclean)} record(s) failed or were skipped there too and are "
        f"not gated: {', '.join(unclean)}"
    ]


def version_notes(baseline: Baseline, run: RunData) -> list[str]:
    """A note naming the package versions that changed since the baseline (they explain timings)."""
    base_versions = baseline.provenance.get("versions") or {}
    env = run.records[0].environment if run.records else {}
    changed = [
        f"{k} {base_versions[k]} -> {env.get(k)}"
        for k in sorted(base_versions)
        if base_versions.get(k) is not None and env.get(k) != base_versions.get(k)
    ]
    return [f"versions differ from the baseline's: {', '.join(changed)}"] if changed else []


def ignored_run_tolerances(run: RunData, used: Mapping[str, float]) -> list[str]:
    """A note when the run's own suite.tolerances differ from the ones it was judged with."""
    differ = {k: v for k, v in run.suite_tolerances.items() if used.get(k) != v}
    if not differ:
        return []
    shown = ", ".join(f"{k}={v:g}" for k, v in differ.items())
    return [
        f"the run's own suite.tolerances ({shown}) are not used: a run is judged by the baseline's "
        "tolerances and --tolerance only (re-save the baseline to change them)"
    ]
