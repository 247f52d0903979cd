"""Evidence shown beside a claim that gets no verdict here: a committed small-scale result.

A claims file may name result files in its ``evidence:`` block (name -> path relative to the
claims file) and point claims at them (``evidence: <name>``). The paper's FDR / GO-LSD accuracy
gains need weights nobody released, so they stay "not measured"; the project's own ablation
(``reports/fdr_ablation/ablation.json``, written by ``dfine-bench ablate``) is the closest thing
this suite has, and the claims table shows its one-line summary next to them. It is labelled as
small-scale evidence and never becomes the claim's verdict.

The ablation's summary format may grow (a stated ``decision``); this reader takes that when it is
there and otherwise words the arm comparisons itself, so a reworded summary never breaks a report.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from dfine_bench.errors import ConfigError

PREFIX = "small-scale evidence, not this claim's verdict"
#: Claim metrics about training cost: their evidence is the ablation's training wall time per arm.
TRAINING_TIME_METRICS = ("train_time_per_epoch",)


def evidence_sources(data: Any, path: Path) -> dict[str, Path]:
    """The claims file's ``evidence`` block: name -> file, resolved against the claims file's folder."""
    if data is None:
        return {}
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in data.items()
    ):
        raise ConfigError(f"{path}: 'evidence' must map names to file paths (got {data!r})")
    return {name: (path.parent / rel).resolve() for name, rel in data.items()}


def claim_marks(entry: dict[str, Any], where: str, evidence: dict[str, Path]) -> tuple[str, str]:
    """A claims-file entry's (``unmeasurable`` reason, ``evidence`` file), "" where not given; the
    evidence is a name from the file's ``evidence`` block (anything else: one clear error)."""
    reason = entry.get("unmeasurable", "")
    if "unmeasurable" in entry and (not isinstance(reason, str) or not reason.strip()):
        raise ConfigError(f"{where}.unmeasurable: expected a non-empty string (the reason), got {reason!r}")
    if "evidence" not in entry:
        return reason, ""
    name = entry["evidence"]
    if not isinstance(name, str) or name not in evidence:
        known = ", ".join(sorted(evidence)) or "none (add an 'evidence:' block)"
        raise ConfigError(
            f"{where}: evidence {name!r} is not named in the file's 'evidence' block; known: {known}"
        )
    return reason, str(evidence[name])


def evidence_text(path: str, metric: str = "") -> str:
    """One line for the claims table ("" for no evidence); never raises on the file's content."""
    if not path:
        return ""
    file = Path(path)
    try:
        stamp = file.stat().st_mtime_ns
    except OSError:
        return f"{PREFIX}: no result at {file} (run the command that writes it)"
    return _cached(str(file), stamp, metric)


@lru_cache(maxsize=32)
def _cached(path: str, _stamp: int, metric: str) -> str:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return f"{PREFIX}: {path} is not readable JSON ({exc})"
    if not isinstance(data, dict):
        return f"{PREFIX}: {path} holds no summary"
    raw = data.get("summary")
    summary: dict[str, Any] = raw if isinstance(raw, dict) else {}
    label = str(summary.get("label") or "small-scale ablation")
    if metric in TRAINING_TIME_METRICS:
        text = _train_time(data.get("runs"))
    else:
        text = _decision(summary.get("decision")) or _comparisons(summary.get("comparisons"))
    return f"{PREFIX} ({label}): {text or 'no decision recorded'} [{Path(path).name}]"


def _decision(decision: Any) -> str:
    if isinstance(decision, str):
        return decision
    if isinstance(decision, dict):
        for key in ("text", "statement", "summary"):
            if isinstance(decision.get(key), str):
                return str(decision[key])
    return ""


def _comparisons(comparisons: Any) -> str:
    """Each arm against its reference: the AP difference and the best p-value the file gives."""
    parts = []
    for c in comparisons if isinstance(comparisons, list) else []:
        if not isinstance(c, dict) or not isinstance(c.get("difference"), (int, float)):
            continue
        p = next(
            (c[k] for k in ("p_value", "permutation_p", "welch_p") if isinstance(c.get(k), (int, float))),
            None,
        )
        shown = f"{c.get('arm')} vs {c.get('baseline')}: {c['difference']:+.2f} AP"
        parts.append(shown + (f" (p = {p:.2g})" if p is not None else ""))
    return "; ".join(parts)


def _train_time(runs: Any) -> str:
    """Mean training wall time per arm, and each arm's overhead over the baseline arm."""
    times: dict[str, list[float]] = {}
    for r in runs if isinstance(runs, list) else []:
        if isinstance(r, dict) and isinstance(r.get("train_wall_s"), (int, float)):
            times.setdefault(str(r.get("arm")), []).append(float(r["train_wall_s"]))
    means = {arm: sum(v) / len(v) for arm, v in times.items() if v}
    base = means.get("baseline")
    if not base:
        return ""
    return "; ".join(
        f"{arm} {mean:.0f} s vs baseline {base:.0f} s ({mean / base - 1:+.1%} training time)"
        for arm, mean in means.items()
        if arm != "baseline"
    )
