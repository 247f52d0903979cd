"""AP claims are checked on eager fp32 AP; AP through another backend never stands in for it, nor is
it compared with another model's AP of a different backend or precision."""

from __future__ import annotations

from test_claims import COCO_VAL, record, results_for, with_bootstrap

HUB_L = "ustc-community/dfine_l_coco"


def test_an_ap_claim_is_checked_on_eager_fp32_only() -> None:
    claim = "dfine_l.coco.AP.table_1"  # the paper's 54.0 (tolerance 0.2)
    eager = record("evaluation", "dfine_l", {"AP": 54.1}, weights=HUB_L, dataset=COCO_VAL)
    onnx = record(
        "evaluation", "dfine_l", {"AP": 40.0}, weights=HUB_L, dataset=COCO_VAL, backend="onnxruntime"
    )
    fp16 = record(
        "evaluation",
        "dfine_l",
        {"AP": 53.9},
        weights=HUB_L,
        dataset=COCO_VAL,
        backend="tensorrt",
        dtype="fp16",
    )
    (res,) = results_for(claim, [eager, onnx, fp16])
    assert res.verdict == "pass" and res.measured == 54.1
    assert (res.backend, res.dtype) == ("eager", "fp32") and res.record_ids == (eager.record_id,)
    # only AP of the deployed artifact: the claim is not judged on it
    (alone,) = results_for(claim, [onnx])
    assert alone.verdict == "not measured" and alone.measured is None


def test_a_relative_ap_claim_pairs_records_of_one_backend_and_precision() -> None:
    claim = "dfine_s_more_ap_than_rtdetr_r18"  # D-FINE-S (48.5) more accurate than RT-DETR-R18 (46.5)
    dfine = record(
        "evaluation", "dfine_s", {"AP": 48.5}, weights="ustc-community/dfine_s_coco", dataset=COCO_VAL
    )
    rtdetr_onnx = record(
        "evaluation",
        "rtdetr_r18",
        {"AP": 50.0},
        weights="PekingU/rtdetr_r18vd",
        dataset=COCO_VAL,
        backend="onnxruntime",
    )
    # eager D-FINE-S vs ONNX Runtime RT-DETR-R18: never compared
    (res,) = results_for(claim, [dfine, rtdetr_onnx])
    assert res.verdict == "not measured" and res.measured is None
    dfine_onnx = record(
        "evaluation",
        "dfine_s",
        {"AP": 48.0},
        weights="ustc-community/dfine_s_coco",
        dataset=COCO_VAL,
        backend="onnxruntime",
    )
    with_bootstrap(dfine_onnx, rtdetr_onnx)
    (res,) = results_for(claim, [dfine, rtdetr_onnx, dfine_onnx])
    assert (res.backend, res.dtype) == ("onnxruntime", "fp32")
    assert res.record_ids == (dfine_onnx.record_id, rtdetr_onnx.record_id)
    assert res.verdict == "fail" and res.measured == -2.0  # 48.0 vs 50.0, both through ONNX Runtime


def test_ap_measured_only_through_another_backend_says_so() -> None:
    onnx = record(
        "evaluation", "dfine_l", {"AP": 54.0}, weights=HUB_L, dataset=COCO_VAL, backend="onnxruntime"
    )
    (res,) = results_for("dfine_l.coco.AP.table_1", [onnx])
    assert res.verdict == "not measured"
    assert res.reason == "dfine_l's AP was measured through onnxruntime fp32 only, not eager fp32"
