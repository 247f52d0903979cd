"""The paper's claims as data and their verdicts on records built here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dfine_bench.claims import (
    CLAIM_COLUMNS,
    VERDICTS,
    ClaimConditions,
    check_claims,
    claims_frame,
    load_claims,
    verdict_counts,
    weights_release,
)
from dfine_bench.errors import ConfigError, UnknownNameError
from dfine_bench.profiling.protocols import COCO_VAL2017_SHA256, PAPER_T4, deviations_from_paper
from dfine_bench.records.metrics import metric
from dfine_bench.records.schema import DatasetInfo, ModelInfo, ResultRecord, Setup

REGISTERED = [
    "dfine_n",
    "dfine_s",
    "dfine_m",
    "dfine_l",
    "dfine_x",
    "rtdetr_r18",
    "rtdetr_r50",
    "deformable_detr",
]
#: COCO val2017 as a record names it: the official annotation file's hash (the claims check it).
COCO_VAL = DatasetInfo(name="val2017", num_images=5000, annotations_sha256=COCO_VAL2017_SHA256)


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
    timed: str | None = None,
    deviations: list[str] | None = None,
    source: str | None = None,
    status: str = "ok",
    reason: str | None = None,
    extra: dict[str, object] | None = None,
) -> ResultRecord:
    """A record as the runner writes it; ``weights`` None is random-init unless ``source`` says
    otherwise (``dfine-bench evaluate`` writes real weights with no weights id)."""
    source = source or ("hub" if weights else "random-init")
    return ResultRecord(
        run_id=run,
        record_id=f"{task}-{model}-{backend}-{dtype}-{device}-{weights}",
        task=task,
        model=ModelInfo(
            name=model,
            weights_source=source,
            weights_id=weights,
            random_init=source == "random-init",
            input_size=list(input_size),
        ),
        setup=Setup(
            device=device,
            device_name=device_name,
            backend=backend,
            dtype=dtype,
            batch_size=batch_size,
            input_size=list(input_size),
            timed=timed,
            deviations=list(deviations or []),
            extra=dict(extra or {}),
        ),
        environment={},
        metrics={k: metric(k, v) for k, v in metrics.items()},
        dataset=dataset,
        status=status,
        reason=reason,
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
    subset = DatasetInfo(name="val2017", num_images=500, annotations_sha256=COCO_VAL2017_SHA256)
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
    t4 = dict(
        device="cuda", device_name="Tesla T4", backend="tensorrt", dtype="fp16", timed="model+postprocess"
    )
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
    recs = [record("complexity", "deformable_detr_refine", {"params": 40.73})]
    (res,) = results_for("fdr_same_params_deformable_detr", recs)
    assert res.verdict == "not measured" and "no adapter named deformable_detr+fdr" in res.reason


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


# -- review fixes ---------------------------------------------------------------------------------
T4 = dict(device="cuda", device_name="Tesla T4", backend="tensorrt", dtype="fp16", timed="model+postprocess")
HUB_L = "ustc-community/dfine_l_coco"


def write_claims(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mine.yaml"
    path.write_text(text)
    return path


def test_relative_claims_without_text_are_described(tmp_path: Path) -> None:
    path = write_claims(
        tmp_path,
        "relative:\n"
        "  - {id: o, source: T, metric: latency_mean, a: dfine_l, relation: less, b: rtdetr_r50}\n"
        "  - {id: g, source: T, metric: AP, a: dab_detr, relation: gain, b: dab_detr_x, claimed: 5.3,"
        " tolerance: 0.3}\n",
    )
    ordering, gain = load_claims(path)
    assert ordering.describe() == "dfine_l less rtdetr_r50 (latency_mean)"
    assert gain.describe() == "dab_detr gain dab_detr_x (AP): 5.3 % ± 0.3 %"
    assert list(claims_frame(check_claims(load_claims(path), [], registered=[]))["text"]) == [
        ordering.describe(),
        gain.describe(),
    ]


def test_a_known_erratum_is_measured_and_shown_not_judged() -> None:
    claims = load_claims("dfine_paper")
    errata = [c.id for c in claims if c.erratum]
    assert [i for i in errata if i.startswith("dfine")] == ["dfine_m.coco.gflops.table_7"]  # that cell only
    # and Table 7's YOLOv9-S/M accuracy, which repeats the YOLOv8 rows: six metrics each, no cost
    assert sorted({i.split(".")[0] for i in errata if not i.startswith("dfine")}) == ["yolov9m", "yolov9s"]
    assert not [
        i for i in errata if i.startswith("yolo") and i.split(".")[2] in ("params", "gflops", "latency_mean")
    ]
    assert len(errata) == 13
    counted = [record("complexity", "dfine_m", {"params": 19.59, "gflops": 56.68})]
    results = {r.claim.id: r for r in check_claims(claims, counted, registered=REGISTERED)}
    erratum = results["dfine_m.coco.gflops.table_7"]
    assert erratum.verdict == "not comparable"
    assert erratum.measured == 56.68 and erratum.delta == pytest.approx(0.08)
    assert "known discrepancy in the paper" in erratum.reason and "56.680 rounds to 56.7" in erratum.reason
    assert results["dfine_m.coco.gflops.readme_model_zoo_coco"].verdict == "pass"  # 57 in the README
    assert results["dfine_m.coco.params.table_7"].verdict == "fail"  # the split row is still judged
    (off,) = results_for(
        "dfine_m.coco.gflops.table_7",
        [record("complexity", "dfine_m", {"gflops": 56.6}, input_size=(320, 320))],
    )
    assert off.verdict == "not comparable" and "320x320" in off.reason  # other reasons still come first


def test_erratum_must_be_text_with_a_metric(tmp_path: Path) -> None:
    path = write_claims(tmp_path, "rows:\n  - {model: dfine_m, source: T7, erratum: 56.7}\n")
    with pytest.raises(ConfigError, match=r"mine\.yaml: rows\[0\]\.erratum: expected a non-empty string"):
        load_claims(path)
    path.write_text("rows:\n  - {model: dfine_m, source: T7, erratum: misprint}\n")
    with pytest.raises(ConfigError, match="'erratum' needs a metric"):
        load_claims(path)


def test_latency_claims_need_the_deploy_engine_timed() -> None:
    """The paper's latency is its deploy engine: the model with the top-k postprocessor inside."""
    claim = "dfine_l.coco.latency_mean.table_1"
    for timed in ("end-to-end", "model", None):
        (res,) = results_for(
            claim, [record("latency", "dfine_l", {"latency_mean": 8.1}, **dict(T4, timed=timed))]
        )
        assert res.verdict == "not comparable" and res.measured == 8.1
        assert f"timed {timed or 'an unrecorded span'}, not the deploy engine" in res.reason
    in_python = record("latency", "dfine_l", {"latency_mean": 8.1}, extra={"graph": "model"}, **T4)
    (res,) = results_for(claim, [in_python])
    assert res.verdict == "not comparable" and "postprocessor ran in Python" in res.reason
    deploy = record("latency", "dfine_l", {"latency_mean": 8.1}, extra={"graph": "deploy"}, **T4)
    (ok,) = results_for(claim, [deploy])
    assert ok.verdict == "pass" and "note" not in ok.reason


@pytest.mark.parametrize("stability", ["unstable", "throttled"])
def test_an_unsteady_timing_is_excluded_from_verdicts(stability: str) -> None:
    """A timing marked unstable or throttled when measured is shown, never judged; the reasons go along."""
    extra = {"graph": "deploy", "stability": stability}
    steady = record(
        "latency", "dfine_l", {"latency_mean": 8.1}, extra={"graph": "deploy", "stability": "stable"}, **T4
    )
    (ok,) = results_for("dfine_l.coco.latency_mean.table_1", [steady])
    assert ok.verdict == "pass"
    rec = record("latency", "dfine_l", {"latency_mean": 8.1}, extra=extra, **T4)
    rec.details["validity"] = {"reasons": ["GPU throttled: sw_thermal_slowdown"]}
    (res,) = results_for("dfine_l.coco.latency_mean.table_1", [rec])
    assert res.verdict == "not comparable" and res.measured == 8.1
    assert f"marked {stability}" in res.reason and "sw_thermal_slowdown" in res.reason
    # relative claims too: one unsteady side keeps the pair from a verdict
    fast = record("latency", "dfine_l", {"latency_mean": 8.1}, extra=extra, **T4)
    slow = record("latency", "rtdetr_r50", {"latency_mean": 9.0}, extra={"graph": "deploy"}, **T4)
    judged = check_claims(load_claims("dfine_paper"), [fast, slow], registered=REGISTERED)
    pairs = [r for r in judged if r.claim.kind == "relative" and r.measured is not None]
    assert pairs and all(r.verdict == "not comparable" and f"marked {stability}" in r.reason for r in pairs)


def test_a_fixed_input_is_noted_but_not_held_against_a_latency() -> None:
    fixed = deviations_from_paper(
        "Tesla T4", "tensorrt", "fp16", 1, (640, 640), "model+postprocess", "fixed", graph="deploy"
    )
    assert fixed  # the profiler's own sentence for a fixed random tensor
    rec = record("latency", "dfine_l", {"latency_mean": 8.1}, deviations=fixed, **T4)
    (res,) = results_for("dfine_l.coco.latency_mean.table_1", [rec])
    assert res.verdict == "pass"
    assert f"note: {fixed[0]}" in res.reason and "the paper feeds COCO images" in res.reason
    h100 = record(
        "latency", "dfine_l", {"latency_mean": 3.0}, deviations=fixed, **dict(T4, device_name="NVIDIA H100")
    )
    (other,) = results_for("dfine_l.coco.latency_mean.table_1", [h100])
    assert other.verdict == "not comparable" and "note" not in other.reason


def test_fps_claims_use_the_mean_latency_like_the_paper() -> None:
    # median 6.67 ms -> the record's fps 150; mean 8.07 ms -> 123.9 FPS, the abstract's 124
    rec = record("latency", "dfine_l", {"latency_mean": 8.07, "latency_median": 6.67, "fps": 150.0}, **T4)
    (res,) = results_for("dfine_l.coco.fps.abstract", [rec])
    assert res.verdict == "pass" and res.measured == pytest.approx(1000 / 8.07)
    assert "mean latency (8.070 ms)" in res.reason
    no_mean = record("latency", "dfine_l", {"fps": 124.0}, **T4)
    (missing,) = results_for("dfine_l.coco.fps.abstract", [no_mean])
    assert missing.verdict == "not measured"


@pytest.mark.parametrize(
    ("model", "source", "weights", "release"),
    [
        ("dfine_l", "hub", "ustc-community/dfine_l_coco", "coco"),
        ("dfine_l", "hub", "ustc-community/dfine-large-obj2coco-e25", "obj2coco"),
        ("dfine_x", "hub", "ustc-community/dfine_x_obj365", "obj365"),
        ("rtdetr_r50", "hub", "PekingU/rtdetr_r50vd", "coco"),
        ("rtdetr_r50", "hub", "PekingU/rtdetr_r50vd_coco_o365", "obj2coco"),
        ("dfine_l", "official", "/ckpt/dfine_l_obj2coco_e25.pth", "obj2coco"),
        ("dfine_l", "official", "C:\\ckpt\\dfine_l_coco.pth", "coco"),
        ("deim_dfine_l", "official", "/ckpt/deim_dfine_hgnetv2_l_coco_50e.pth", "coco"),
        ("rtdetr_r50", "external", "PekingU/rtdetr_r50vd", "coco"),  # `evaluate --weights`: the spec's data
        # not recognisably a release:
        ("dfine_l", "local", "/models/my_finetune", None),
        ("dfine_l", "hub", "someone/dfine_l_coco", None),
        ("dfine_l", "hub", "PekingU/rtdetr_r50vd", None),  # another model's publisher
        ("dfine_l", "local", "/models/ustc-community/dfine_l_coco", None),  # a directory, not the hub
        ("dfine_l", "official", "/ckpt/model_final.pth", None),
        ("dfine_l", "official", "/ckpt/dfine_l_coco_finetuned.pth", None),
        ("dfine_l", "official", "/ckpt/deim_dfine_hgnetv2_l_coco_50e.pth", None),  # DEIM's, not D-FINE's
        ("deim_dfine_l", "official", "/ckpt/deim_dfine_hgnetv2_l_coco_58e.pth", None),  # no such release file
        ("unregistered_plugin", "hub", "facebook/some-detr", None),  # no spec, no release data
        ("dfine_l", "hub", "ustc-community/dfine_l_coco_v2", None),  # named like a release, is none
        ("dfine_l", "official", "/ckpt/dfine_x_coco.pth", None),
        ("dfine_l", "local", None, None),  # `dfine-bench evaluate` with real weights, no id
        ("dfine_l", "random-init", None, None),
    ],
)
def test_weights_release_only_names_recognised_releases(
    model: str, source: str, weights: str | None, release: str | None
) -> None:
    rec = record("evaluation", model, {"AP": 1.0}, weights=weights, source=source)
    assert weights_release(rec) == release


def test_the_weights_loaders_release_wins_over_the_weights_id() -> None:
    """The release is what the weights loader wrote (``model.extra["weights_release"]``), not what
    the id looks like: a hub-style id in a local folder, or a release-named id the loader did not
    recognise, is no release; an id the loader matched to another release is that release."""
    claim = "dfine_l.coco.AP.table_1"
    hub = "ustc-community/dfine_l_coco"

    def loaded(release: str | None, weights: str = hub, source: str = "hub") -> ResultRecord:
        rec = record("evaluation", "dfine_l", {"AP": 53.0}, weights=weights, source=source, dataset=COCO_VAL)
        rec.model.extra["weights_release"] = release
        return rec

    assert weights_release(loaded("coco")) == "coco"
    assert weights_release(loaded("obj2coco")) == "obj2coco"
    folder = loaded(None, weights=hub, source="local")  # a folder called ustc-community/dfine_l_coco
    assert weights_release(folder) is None
    (res,) = results_for(claim, [folder])
    assert res.verdict == "not comparable" and "unknown origin" in res.reason
    (other,) = results_for(claim, [loaded("obj2coco")])
    assert other.verdict == "not measured" and "obj2coco" in other.reason
    renamed = loaded(None, weights="/ckpt/dfine_l_coco_finetuned.pth", source="official")
    assert weights_release(renamed) is None


def test_accuracy_claims_refuse_weights_of_unknown_origin() -> None:
    claim = "dfine_l.coco.AP.table_1"
    for weights, source in (("/models/my_finetune", "local"), (None, "local")):
        rec = record("evaluation", "dfine_l", {"AP": 54.0}, weights=weights, source=source, dataset=COCO_VAL)
        (res,) = results_for(claim, [rec])
        assert res.verdict == "not comparable" and res.measured == 54.0
        assert "weights of unknown origin (not a released checkpoint)" in res.reason
    (rand,) = results_for(claim, [record("evaluation", "dfine_l", {"AP": 0.1}, dataset=COCO_VAL)])
    assert "random-init" in rand.reason and "unknown origin" not in rand.reason


def with_bootstrap(*records: ResultRecord, spread: float = 0.1) -> None:
    """Give evaluation records paired bootstrap replicates of their AP (the same resampling for all,
    a spread of ``spread`` AP each), as the coco evaluator writes them."""
    noise = np.random.default_rng(0).normal(0, spread, (len(records), 200))
    for rec, values in zip(records, noise):
        rec.details["bootstrap"] = {
            "replicates": 200,
            "seed": 0,
            "confidence": 0.95,
            "images": rec.dataset.num_images if rec.dataset else None,
            "image_ids_sha256": "i" * 64,
            "weights_sha256": "w" * 64,
            "values": {"AP": list((rec.value("AP") or 0.0) + values)},
        }


def _ap_pair(a_ap: float, b_ap: float, **kw: object) -> list[ResultRecord]:
    weights_a = kw.pop("weights_a", HUB_L)
    weights_b = kw.pop("weights_b", "PekingU/rtdetr_r50vd")
    kw.setdefault("dataset", COCO_VAL)
    pair = [
        record("evaluation", "dfine_l", {"AP": a_ap}, weights=weights_a, **kw),  # type: ignore[arg-type]
        record("evaluation", "rtdetr_r50", {"AP": b_ap}, weights=weights_b, **kw),  # type: ignore[arg-type]
    ]
    with_bootstrap(*pair)
    return pair


def test_relative_coco_condition_is_the_full_val2017_at_640() -> None:
    claim = "dfine_l_more_ap_than_rtdetr_r50"
    (ok,) = results_for(claim, _ap_pair(54.0, 53.1))
    assert ok.verdict == "pass"
    subset = DatasetInfo(name="val2017", num_images=500, annotations_sha256=COCO_VAL2017_SHA256)
    (part,) = results_for(claim, _ap_pair(54.0, 53.1, dataset=subset))
    assert part.verdict == "not comparable" and "500 images, not the 5000" in part.reason
    other = DatasetInfo(name="my_val", num_images=5000, annotations_sha256="c" * 64)
    (mine,) = results_for(claim, _ap_pair(54.0, 53.1, dataset=other))
    assert mine.verdict == "not comparable" and "annotations are not COCO val2017" in mine.reason
    assert "c" * 64 in mine.reason  # the hash is named
    (small,) = results_for(claim, _ap_pair(54.0, 53.1, input_size=(320, 320)))
    assert small.verdict == "not comparable" and "input 320x320" in small.reason


def test_relative_real_weights_need_one_known_release() -> None:
    claim = "dfine_l_more_ap_than_rtdetr_r50"
    (mixed,) = results_for(claim, _ap_pair(57.1, 53.1, weights_a="ustc-community/dfine_l_obj2coco"))
    assert mixed.verdict == "not comparable" and "mixed weights releases" in mixed.reason
    (unknown,) = results_for(claim, _ap_pair(54.0, 53.1, weights_a="someone/dfine_l_coco"))
    assert unknown.verdict == "not comparable"
    assert "weights of unknown origin (not a released checkpoint) for dfine_l" in unknown.reason
    both_o365 = _ap_pair(
        57.1, 55.3, weights_a="ustc-community/dfine_l_obj2coco", weights_b="PekingU/rtdetr_r50vd_coco_o365"
    )
    (o365,) = results_for(claim, both_o365)
    assert o365.verdict == "not comparable" and "about the coco release" in o365.reason
    # a run with both releases of both models: the COCO pair is the one compared
    (paired,) = results_for(claim, both_o365 + _ap_pair(54.0, 53.1))
    assert paired.verdict == "pass" and paired.measured == pytest.approx(0.9)


def test_relative_claims_may_name_a_release(tmp_path: Path) -> None:
    path = write_claims(
        tmp_path,
        "relative:\n"
        "  - {id: o365, source: T1, metric: AP, a: dfine_l, relation: greater, b: rtdetr_r50,"
        " conditions: [real_weights, coco], release: obj2coco}\n",
    )
    records = _ap_pair(
        57.1, 55.3, weights_a="ustc-community/dfine_l_obj2coco", weights_b="PekingU/rtdetr_r50vd_coco_o365"
    )
    (res,) = check_claims(load_claims(path), records, registered=REGISTERED)
    assert res.verdict == "pass"
    (coco,) = check_claims(load_claims(path), _ap_pair(54.0, 53.1), registered=REGISTERED)
    assert coco.verdict == "not comparable" and "about the obj2coco release" in coco.reason


#: (file text, the error it must give): each names the file and the entry.
BAD_FILES = [
    ("defaults: {AP_tolerance: abc}\n", r"mine\.yaml: defaults\.AP_tolerance: expected a number"),
    (
        "defaults: {ap_tolerance: 0.3}\n",
        r"mine\.yaml: defaults: unknown key\(s\) ap_tolerance; allowed: AP_tol",
    ),
    ("defaults: [0.2]\n", r"mine\.yaml: 'defaults' must be a mapping"),
    (
        "row: []\n",
        r"mine\.yaml: unknown key\(s\) row; allowed: defaults, evidence, name, protocol, relative, rows",
    ),
    ("rows: dfine_n\n", r"mine\.yaml: 'rows' must be a list"),
    ("relative: {id: x}\n", r"mine\.yaml: 'relative' must be a list"),
    ("protocol: {input_size: 640}\n", r"mine\.yaml: protocol\.input_size: expected \[height, width\]"),
    ("protocol: {input_size: [640, x]}\n", r"mine\.yaml: protocol\.input_size: expected a positive integer"),
    ("protocol: {coco_images: many}\n", r"mine\.yaml: protocol\.coco_images: expected a positive integer"),
    ("protocol: {batch_size: true}\n", r"mine\.yaml: protocol\.batch_size: expected a positive integer"),
    ("protocol: {device: 4}\n", r"mine\.yaml: protocol\.device: expected a non-empty string"),
    ("protocol: {gpu: T4}\n", r"mine\.yaml: protocol: unknown key\(s\) gpu; allowed: .*timed"),
    ("rows:\n  - {model: dfine_n, source: 7}\n", r"rows\[0\]\.source: expected a non-empty string"),
]
_REL = "relative:\n  - {id: x, source: T, metric: latency_mean, a: m1, b: m2, "
BAD_FILES += [
    (
        _REL + "relation: less, conditions: gpu}\n",
        r"relative\[0\]: conditions must be a list such as \[gpu\]",
    ),
    (_REL + "relation: less, conditions: [coco]}\n", r"condition\(s\) coco do not apply to latency_mean"),
    (_REL + "relation: gain, claimed: 1}\n", r"relative\[0\]: relation gain needs 'claimed' and 'tolerance'"),
    (_REL + "relation: ratio, tolerance: 1}\n", r"relation ratio needs 'claimed' and 'tolerance'"),
    (_REL + "relation: less, claimed: 1}\n", r"apply to the relations gain and ratio only, not less"),
    (_REL + "relation: gain, claimed: 1, tolerance: -1}\n", r"tolerance: expected a number >= 0"),
    (_REL + "relation: less, release: coco}\n", r"'release' needs the condition real_weights"),
    (
        "relative:\n  - {id: x, source: T, metric: AP, a: m1, b: m2, relation: less, "
        "conditions: [real_weights], release: o365}\n",
        r"release 'o365' is not one of coco, obj2coco, obj365",
    ),
    (
        "relative:\n  - {id: x, source: T, metric: AP, a: m1, b: m1, relation: less}\n",
        r"a and b are both 'm1'",
    ),
]


@pytest.mark.parametrize(("text", "message"), BAD_FILES, ids=[f"bad{i}" for i in range(len(BAD_FILES))])
def test_claims_file_mistakes_are_one_clear_error(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_claims(write_claims(tmp_path, text))


def test_not_measured_says_why_a_record_did_not_count() -> None:
    failed = record("evaluation", "dfine_l", {}, weights=HUB_L, status="failed", reason="CUDA out of memory")
    (res,) = results_for("dfine_l.coco.AP.table_1", [failed])
    assert res.verdict == "not measured"
    assert res.reason == "the evaluation record of dfine_l failed: CUDA out of memory"
    skipped = record("latency", "dfine_l", {}, status="skipped", reason="TensorRT is not installed", **T4)
    (lat,) = results_for("dfine_l.coco.latency_mean.table_1", [skipped])
    assert lat.reason == "the latency record of dfine_l was skipped: TensorRT is not installed"
    pair = [skipped, record("latency", "rtdetr_r50", {"latency_mean": 9.0}, **T4)]
    (rel,) = results_for("dfine_l_faster_than_rtdetr_r50", pair)
    assert rel.verdict == "not measured"
    assert "the latency record of dfine_l was skipped: TensorRT is not installed" in rel.reason
    (none,) = results_for("dfine_l.coco.AP.table_1", [])
    assert none.reason == "no evaluation record of dfine_l with AP"


def test_verdict_counts_take_results_or_their_frame() -> None:
    results = results_for(
        "dfine_n.coco.params.readme_model_zoo_coco", [record("complexity", "dfine_n", {"params": 3.745})]
    ) + results_for("dfine_l.coco.AP.table_1", [])
    expected = {"pass": 1, "fail": 0, "not significant": 0, "not comparable": 0, "not measured": 1}
    assert verdict_counts(results) == expected == verdict_counts(claims_frame(results))
    assert list(verdict_counts(claims_frame(results))) == list(VERDICTS)


def test_the_paper_protocol_matches_the_profilers_preset(tmp_path: Path) -> None:
    """The claims' conditions and ``PAPER_T4`` describe one protocol: a change to either shows here."""
    paper = load_claims("dfine_paper").protocol
    overlap = (paper.device, paper.backend, paper.dtype, paper.batch_size, paper.input_size, paper.timed)
    preset = (PAPER_T4.reference_device, PAPER_T4.backend, PAPER_T4.dtype, PAPER_T4.batch_size)
    assert overlap == (*preset, PAPER_T4.input_size, PAPER_T4.timed)
    partial = load_claims(write_claims(tmp_path, "protocol: {description: mine, dtype: fp32}\n")).protocol
    assert partial == ClaimConditions(description="mine", dtype="fp32")
    assert (partial.device, partial.backend, partial.timed) == ("T4", "tensorrt", "model+postprocess")


# -- defect: claims trusted the file name and the image count (issue 15.8) -----------------------
def _fake_val2017(folder: Path) -> Path:
    """A file named instances_val2017.json with 5000 images (a handful repeated under new ids):
    the name and count of COCO val2017, but not its content."""
    import json

    folder.mkdir(parents=True, exist_ok=True)
    images = [
        {"id": i, "file_name": f"{i % 7:012d}.jpg", "width": 640, "height": 480} for i in range(1, 5001)
    ]
    annotations = [
        {"id": i, "image_id": i, "category_id": 1, "bbox": [10, 10, 50, 60], "area": 3000, "iscrowd": 0}
        for i in range(1, 5001)
    ]
    path = folder / "instances_val2017.json"
    coco = {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "person"}]}
    path.write_text(json.dumps(coco))
    return path


def test_a_fake_5000_image_val2017_is_not_coco(tmp_path: Path) -> None:
    """Probe: a 5000-image instances_val2017.json that is not COCO's got "pass" on an AP claim."""
    from dfine_bench.evaluation.outcome import evaluate_predictions

    path = _fake_val2017(tmp_path / "annotations")
    preds = tmp_path / "preds.json"
    preds.write_text('[{"image_id": 1, "category_id": 1, "bbox": [10, 10, 50, 60], "score": 0.9}]')
    outcome = evaluate_predictions(path, preds)  # how `dfine-bench evaluate` records the data
    assert outcome.dataset is not None and outcome.dataset.num_images == 5000
    assert outcome.dataset.name == "val2017" and outcome.dataset.annotations_sha256 != COCO_VAL2017_SHA256
    # the record says so itself: a deviation with its code, the official hash and this file's
    (annotations,) = [d for d in outcome.setup["deviations"] if d.code == "annotations"]
    assert (annotations.expected, annotations.actual) == (
        COCO_VAL2017_SHA256,
        outcome.dataset.annotations_sha256,
    )
    rec = record("evaluation", "dfine_l", {"AP": 54.0}, weights=HUB_L, dataset=outcome.dataset)
    (res,) = results_for("dfine_l.coco.AP.table_1", [rec])
    assert res.verdict == "not comparable", res.reason
    assert res.reason.startswith("annotations are not COCO val2017")
    assert outcome.dataset.annotations_sha256 in res.reason
    # the same record on the official file passes: only the hash changed the verdict
    official = DatasetInfo(name="val2017", num_images=5000, annotations_sha256=COCO_VAL2017_SHA256)
    (ok,) = results_for(
        "dfine_l.coco.AP.table_1",
        [record("evaluation", "dfine_l", {"AP": 54.0}, weights=HUB_L, dataset=official)],
    )
    assert ok.verdict == "pass"
