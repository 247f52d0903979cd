"""Claims no record here can decide stay "not measured" with their reason; evidence shows beside them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_claims import COCO_VAL, REGISTERED, record, write_claims

from dfine_bench.claims import check_claims, claims_frame, load_claims
from dfine_bench.claims.evidence import PREFIX, evidence_text
from dfine_bench.errors import ConfigError
from dfine_bench.reporting.claims_table import ClaimsTable

GAIN = (
    "relative:\n"
    "  - {id: gain, source: T2, metric: AP, a: base, relation: gain, b: base+fdr,"
    " claimed: 3.4, tolerance: 0.3, conditions: [real_weights, coco]%s}\n"
)


def _released_pair(gain: float) -> list:
    """Both models with released weights on COCO val2017: what would decide the gain claim."""
    recs = [
        record("evaluation", "base", {"AP": 43.7}, weights="org/base_coco", dataset=COCO_VAL),
        record("evaluation", "base+fdr", {"AP": 43.7 + gain}, weights="org/base_fdr_coco", dataset=COCO_VAL),
    ]
    for r in recs:
        r.model.extra["weights_release"] = "coco"
    return recs


def test_an_unmeasurable_claim_is_not_measured_whatever_the_records(tmp_path: Path) -> None:
    judged = load_claims(write_claims(tmp_path, GAIN % ""))
    (passed,) = check_claims(judged, _released_pair(3.4), registered=["base", "base+fdr"])
    assert passed.verdict == "pass"  # the same records decide the claim when it is measurable
    marked = load_claims(write_claims(tmp_path, GAIN % ", unmeasurable: 'no FDR release exists'"))
    for records in ([], _released_pair(3.4), _released_pair(-1.0)):
        (res,) = check_claims(marked, records, registered=["base", "base+fdr"])
        assert res.verdict == "not measured" and res.measured is None
        assert res.reason == "cannot be measured here: no FDR release exists"


def test_the_papers_fdr_gains_say_why_they_are_not_measured() -> None:
    claims = load_claims("dfine_paper")
    gains = [c for c in claims if c.id.startswith(("fdr_golsd_gain_", "roadmap_", "distillation_golsd_gain"))]
    accuracy = [c for c in gains if c.metric == "AP"]
    assert len(accuracy) == 8  # Table 2's five, Table 3's two steps, Table 5's GO-LSD over FDR
    # random-init variants measured in one run: still no verdict, the reason says why
    recs = [
        record("evaluation", "deformable_detr_refine", {"AP": 1.0}, dataset=COCO_VAL),
        record("evaluation", "deformable_detr+fdr", {"AP": 2.0}, dataset=COCO_VAL),
    ]
    results = {r.claim.id: r for r in check_claims(claims, recs, registered=REGISTERED)}
    for claim in accuracy:
        res = results[claim.id]
        assert res.verdict == "not measured", claim.id
        assert res.reason.startswith("cannot be measured here:") and "released" in res.reason
        assert claim.evidence.endswith("reports/fdr_ablation/ablation.json")


def _ablation(tmp_path: Path, summary: dict, runs: list | None = None) -> Path:
    path = tmp_path / "ablation.json"
    path.write_text(json.dumps({"summary": summary, "runs": runs or []}))
    return path


def test_evidence_is_the_ablations_decision_labelled_as_small_scale(tmp_path: Path) -> None:
    stated = _ablation(tmp_path, {"label": "generated data", "decision": "no gain larger than 1.2 AP75"})
    assert (
        evidence_text(str(stated))
        == f"{PREFIX} (generated data): no gain larger than 1.2 AP75 [ablation.json]"
    )
    worded = tmp_path / "worded"
    worded.mkdir()
    comparisons = [{"arm": "fdr_go_lsd", "baseline": "baseline", "difference": 1.94, "permutation_p": 0.4}]
    text = evidence_text(str(_ablation(worded, {"label": "small", "comparisons": comparisons})))
    assert "fdr_go_lsd vs baseline: +1.94 AP (p = 0.4)" in text
    runs = [{"arm": "baseline", "train_wall_s": 100.0}, {"arm": "fdr_go_lsd", "train_wall_s": 106.0}]
    timed = tmp_path / "timed"
    timed.mkdir()
    assert "fdr_go_lsd 106 s vs baseline 100 s (+6.0% training time)" in evidence_text(
        str(_ablation(timed, {"label": "cpu"}, runs)), "train_time_per_epoch"
    )
    assert "no result at" in evidence_text(str(tmp_path / "missing.json"))
    assert evidence_text("") == ""


def test_evidence_goes_beside_the_verdict_in_the_claims_table(tmp_path: Path) -> None:
    _ablation(tmp_path, {"label": "small", "decision": "FDR: +2 AP, p = 0.004"})
    text = "evidence: {abl: ablation.json}\n" + GAIN % ", unmeasurable: 'no release', evidence: abl"
    claims = load_claims(write_claims(tmp_path, text))
    results = check_claims(claims, _released_pair(3.4), registered=["base", "base+fdr"])
    frame = claims_frame(results)
    assert frame.loc[0, "verdict"] == "not measured"  # the evidence never becomes the verdict
    assert "FDR: +2 AP, p = 0.004" in frame.loc[0, "evidence"]
    table = ClaimsTable("mine", results)
    assert table.folded_frame().loc[0, "evidence"] == frame.loc[0, "evidence"]
    plain = ClaimsTable("plain", check_claims(load_claims(write_claims(tmp_path, GAIN % "")), []))
    assert "evidence" not in plain.display_frame().columns  # no column where no claim has evidence


BAD = [
    (GAIN % ", evidence: abl", r"relative\[0\]: evidence 'abl' is not named in the file's 'evidence' block"),
    (GAIN % ", unmeasurable: ''", r"relative\[0\]\.unmeasurable: expected a non-empty string"),
    ("evidence: [a.json]\n", r"'evidence' must map names to file paths"),
    (
        "relative:\n  - {id: t, source: T5, metric: train_time, a: x, relation: ratio, b: y, claimed: 1.06,"
        " tolerance: 0.01, unit: min}\n",
        r"unknown metric 'train_time'.*needs 'unmeasurable' and 'unit'",
    ),
    (
        "relative:\n  - {id: t, source: T5, metric: AP, a: x, relation: greater, b: y, unit: min}\n",
        r"'unit' is for quantities outside the metric catalogue; AP has one",
    ),
]


@pytest.mark.parametrize(("text", "message"), BAD, ids=[f"bad{i}" for i in range(len(BAD))])
def test_marking_mistakes_are_one_clear_error(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_claims(write_claims(tmp_path, text))


def test_training_overhead_is_a_relative_claim_on_a_quantity_no_record_measures() -> None:
    claims = {c.id: c for c in load_claims("dfine_paper")}
    time, memory = claims["training_time_overhead_fdr_golsd"], claims["training_memory_overhead_fdr_golsd"]
    assert (time.metric, time.claimed, memory.metric, memory.claimed) == (
        "train_time_per_epoch",
        1.06,
        "train_peak_memory",
        1.02,
    )
    (res,) = [r for r in check_claims(load_claims("dfine_paper"), []) if r.claim.id == time.id]
    assert res.verdict == "not measured" and "no record kind measures training cost" in res.reason


def test_yolo_rows_keep_the_papers_errata_and_starred_settings_apart() -> None:
    recs = [
        record("evaluation", "yolov9s", {"AP": 46.8}, weights="ultralytics:yolov9s.pt", dataset=COCO_VAL),
        record("evaluation", "yolo11l", {"AP": 53.4}, dataset=COCO_VAL),
    ]
    results = {
        r.claim.id: r
        for r in check_claims(load_claims("dfine_paper"), recs, registered=["yolov9s", "yolo11l"])
    }
    erratum = results["yolov9s.coco.AP.table_7"]
    assert erratum.verdict == "not comparable" and erratum.measured == 46.8
    starred = results["yolo11l.coco.AP.table_1_yolo11_l"]
    assert starred.verdict == "not measured" and "confidence 0.01" in starred.reason
    plain = results["yolo11l.coco.AP.table_1"]
    assert plain.verdict == "not comparable" and "random-init" in plain.reason
    lwdetr = results["lwdetr_x.coco.AP.table_1"]
    assert lwdetr.verdict == "not measured" and "no adapter named lwdetr_x" in lwdetr.reason
