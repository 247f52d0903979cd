"""The paper's claims as data and their verdicts on records built here."""

from __future__ import annotations

from pathlib import Path

import pytest

from dfine_bench.claims import (
    CLAIM_COLUMNS,
    VERDICTS,
    check_claims,
    claims_frame,
    load_claims,
    verdict_counts,
    weights_release,
)
from dfine_bench.errors import ConfigError, UnknownNameError
from dfine_bench.records.metrics import metric
from dfine_bench.records.schema import DatasetInfo, ModelInfo, ResultRecord, Setup

REGISTERED = ["dfine_n", "dfine_s", "dfine_l", "dfine_x", "rtdetr_r18", "rtdetr_r50", "deformable_detr"]
COCO_VAL = DatasetInfo(name="val2017", num_images=5000, annotations_sha256="a" * 64)


def record(
    task: str,
    model: str,
    metrics: dict[str, float],
    *,
    run: str = "run-1",
    weights: str | None = None,
    dataset: DatasetInfo | None = None,
    device: str = "cpu",
    device_name: str = "Some CPU",
    backend: str = "eager",
    dtype: str = "fp32",
    input_size: tuple[int, int] = (640, 640),
    batch_size: int = 1,
) -> ResultRecord:
    return ResultRecord(
        run_id=run,
        record_id=f"{task}-{model}-{backend}-{dtype}-{device}",
        task=task,
        model=ModelInfo(
            name=model,
            weights_source="hub" if weights else "random-init",
            weights_id=weights,
            random_init=weights is None,
            input_size=list(input_size),
        ),
        setup=Setup(
            device=device,
            device_name=device_name,
            backend=backend,
            dtype=dtype,
            batch_size=batch_size,
            input_size=list(input_size),
        ),
        environment={},
        metrics={k: metric(k, v) for k, v in metrics.items()},
        dataset=dataset,
    )


def results_for(claim_id: str, records: list[ResultRecord]):
    claims = load_claims("dfine_paper")
    return [r for r in check_claims(claims, records, registered=REGISTERED) if r.claim.id == claim_id]


def test_the_paper_claims_load_with_sources_and_every_kind() -> None:
    claims = load_claims("dfine_paper")
    assert {c.kind for c in claims} == {"exact", "tolerance", "hardware", "relative"}
    assert all(c.source for c in claims)
    dfine = [c for c in claims if (c.model or "").startswith("dfine")]
    params = {
        c.model: c.claimed
        for c in dfine
        if c.metric == "params" and c.source.startswith(("README", "Table 1"))
    }
    assert params == {"dfine_n": 4, "dfine_s": 10, "dfine_m": 19, "dfine_l": 31, "dfine_x": 62}
    gflops = {c.model: c.claimed for c in dfine if c.metric == "gflops"}
    assert gflops["dfine_x"] == 202 and gflops["dfine_l"] == 91
    table7 = next(
        c for c in claims if c.model == "dfine_s" and c.metric == "gflops" and c.source == "Table 7"
    )
    assert table7.claimed == 25.2 and table7.decimals == 1


def test_exact_claims_compare_after_the_papers_rounding() -> None:
    claim = "dfine_n.coco.params.readme_model_zoo_coco"
    (ok,) = results_for(claim, [record("complexity", "dfine_n", {"params": 3.745})])
    assert ok.verdict == "pass" and ok.delta == pytest.approx(-0.255)
    (bad,) = results_for(claim, [record("complexity", "dfine_n", {"params": 4.6})])
    assert bad.verdict == "fail" and "rounds to 5" in bad.reason
    (small,) = results_for(claim, [record("complexity", "dfine_n", {"params": 3.745}, input_size=(320, 320))])
    assert small.verdict == "not comparable" and "320x320" in small.reason
    (one_decimal,) = results_for(
        "dfine_s.coco.params.table_7", [record("complexity", "dfine_s", {"params": 10.26})]
    )
    assert one_decimal.verdict == "fail"  # 10.26 rounds to 10.3, the paper writes 10.2


def test_counts_quoted_from_other_authors_are_shown_not_judged() -> None:
    (res,) = results_for(
        "rtdetr_r18.coco.gflops.table_7", [record("complexity", "rtdetr_r18", {"gflops": 58.5})]
    )
    assert res.verdict == "not comparable" and res.measured == 58.5 and "another tool" in res.reason


def test_accuracy_claims_need_released_weights_on_full_coco() -> None:
    claim = "dfine_l.coco.AP.table_1"
    hub = "ustc-community/dfine_l_coco"
    (random_init,) = results_for(claim, [record("evaluation", "dfine_l", {"AP": 0.1}, dataset=COCO_VAL)])
    assert random_init.verdict == "not comparable" and "random-init" in random_init.reason
    generated = DatasetInfo(name="generated", generated=True, num_images=24)
    (stand_in,) = results_for(
        claim, [record("evaluation", "dfine_l", {"AP": 54.0}, weights=hub, dataset=generated)]
    )
    assert stand_in.verdict == "not comparable" and "generated" in stand_in.reason
    subset = DatasetInfo(name="val2017", num_images=500)
    (part,) = results_for(claim, [record("evaluation", "dfine_l", {"AP": 54.0}, weights=hub, dataset=subset)])
    assert part.verdict == "not comparable" and "500 images" in part.reason
    (close,) = results_for(
        claim, [record("evaluation", "dfine_l", {"AP": 54.15}, weights=hub, dataset=COCO_VAL)]
    )
    assert close.verdict == "pass"
    (far,) = results_for(
        claim, [record("evaluation", "dfine_l", {"AP": 53.5}, weights=hub, dataset=COCO_VAL)]
    )
    assert far.verdict == "fail" and far.delta == pytest.approx(-0.5)


def test_each_release_is_checked_against_its_own_row() -> None:
    rec = record(
        "evaluation", "dfine_l", {"AP": 57.1}, weights="ustc-community/dfine_l_obj2coco", dataset=COCO_VAL
    )
    assert weights_release(rec) == "obj2coco"
    (other,) = results_for("dfine_l.coco.AP.table_1", [rec])  # the COCO-weights row does not apply
    assert other.verdict == "not measured" and "obj2coco" in other.reason
    (res,) = results_for("dfine_l.obj2coco.AP.table_1_objects365", [rec])
    assert res.verdict == "pass"
    rtdetr = record("evaluation", "rtdetr_r50", {"AP": 1}, weights="PekingU/rtdetr_r50vd_coco_o365")
    assert weights_release(rtdetr) == "obj2coco"


def test_latency_is_judged_only_on_the_papers_hardware() -> None:
    claim = "dfine_l.coco.latency_mean.table_1"
    t4 = dict(device="cuda", device_name="Tesla T4", backend="tensorrt", dtype="fp16")
    (ok,) = results_for(claim, [record("latency", "dfine_l", {"latency_mean": 8.3}, **t4)])
    assert ok.verdict == "pass"
    (slow,) = results_for(claim, [record("latency", "dfine_l", {"latency_mean": 9.5}, **t4)])
    assert slow.verdict == "fail"
    h100 = dict(t4, device_name="NVIDIA H100 80GB HBM3")
    cpu = record("latency", "dfine_l", {"latency_mean": 900.0})
    (other,) = results_for(claim, [record("latency", "dfine_l", {"latency_mean": 3.0}, **h100), cpu])
    assert other.verdict == "not comparable" and other.measured == 3.0  # the closest setup is shown
    assert "H100" in other.reason and "not comparable on this hardware" in other.reason


def test_orderings_compare_models_of_one_run_and_setup() -> None:
    gpu = dict(device="cuda", device_name="NVIDIA L4", backend="tensorrt", dtype="fp16")
    faster = [
        record("latency", "dfine_l", {"latency_mean": 5.0}, **gpu),
        record("latency", "rtdetr_r50", {"latency_mean": 6.0}, **gpu),
    ]
    (res,) = results_for("dfine_l_faster_than_rtdetr_r50", faster)
    assert res.verdict == "pass" and res.measured == pytest.approx(-1.0) and res.device_name == "NVIDIA L4"
    slower = [faster[0], record("latency", "rtdetr_r50", {"latency_mean": 4.0}, **gpu)]
    assert results_for("dfine_l_faster_than_rtdetr_r50", slower)[0].verdict == "fail"
    on_cpu = [
        record("latency", "dfine_l", {"latency_mean": 50}),
        record("latency", "rtdetr_r50", {"latency_mean": 60}),
    ]
    assert results_for("dfine_l_faster_than_rtdetr_r50", on_cpu)[0].verdict == "not comparable"
    apart = [faster[0], record("latency", "rtdetr_r50", {"latency_mean": 6.0}, run="run-2", **gpu)]
    (missing,) = results_for("dfine_l_faster_than_rtdetr_r50", apart)
    assert missing.verdict == "not measured" and "same run" in missing.reason


def test_a_claim_about_an_unregistered_model_says_so() -> None:
    recs = [record("evaluation", "deformable_detr", {"AP": 43.7}, weights="SenseTime/deformable-detr")]
    (res,) = results_for("fdr_golsd_gain_deformable_detr", recs)
    assert res.verdict == "not measured" and "deformable_detr_fdr_golsd" in res.reason


def test_frame_columns_and_counts() -> None:
    results = check_claims("dfine_paper", [record("complexity", "dfine_n", {"params": 3.745, "gflops": 7.2})])
    frame = claims_frame(results)
    assert tuple(frame.columns) == CLAIM_COLUMNS
    counts = verdict_counts(results)
    assert set(counts) == set(VERDICTS) and counts["pass"] == 2 and sum(counts.values()) == len(frame)


def test_bad_claims_files_name_the_entry(tmp_path: Path) -> None:
    bad = tmp_path / "mine.yaml"
    bad.write_text("rows:\n  - {model: dfine_n, source: T1, paramz: 4}\n")
    with pytest.raises(ConfigError, match=r"mine\.yaml: rows\[0\]: unknown metric 'paramz'"):
        load_claims(bad)
    bad.write_text("relative:\n  - {id: x, source: T, metric: AP, a: m1, b: m2, relation: bigger}\n")
    with pytest.raises(ConfigError, match="relation 'bigger' is not one of"):
        load_claims(bad)
    with pytest.raises(UnknownNameError, match="dfine_paper"):
        load_claims("dfine_papr")
