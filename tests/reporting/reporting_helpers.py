"""Result records built in code for the reporting tests (no run needed)."""

from __future__ import annotations

from typing import Any

from dfine_bench.claims import Claim, ClaimResult
from dfine_bench.profiling.protocols import deviations_from_paper
from dfine_bench.records import DatasetInfo, ModelInfo, ResultRecord, Setup, metric
from dfine_bench.reporting.claims_table import ClaimsTable

ENV = {
    "python": "3.11.7",
    "torch": "2.13.0+cpu",
    "dfine_bench": "0.1.0",
    "git_revision": "0123456789abcdef0123456789abcdef01234567",
    "git_dirty": False,
    "cpu_model": "Test CPU 9000",
    "onnxruntime": "1.32.0",
}
CPU = "Test CPU 9000"
GPU = "NVIDIA H100 80GB HBM3"
WEIGHTS_SHA = "ab" * 32
ANNOTATIONS_SHA = "cd" * 32


def model(name: str, family: str = "dfine", *, real: bool = False) -> ModelInfo:
    if real:
        return ModelInfo(
            name=name,
            family=family,
            weights_source="hub",
            weights_id=f"org/{name}_coco",
            weights_sha256=WEIGHTS_SHA,
            random_init=False,
        )
    return ModelInfo(name=name, family=family, weights_source="random-init", weights_seed=0, random_init=True)


def coco(*, generated: bool = False) -> DatasetInfo:
    if generated:
        return DatasetInfo(
            name="generated", kind="generated", generated=True, num_images=6, annotations_sha256="ef" * 32
        )
    return DatasetInfo(
        name="coco_val2017",
        kind="coco",
        annotations="/data/coco/annotations/instances_val2017.json",
        annotations_sha256=ANNOTATIONS_SHA,
        num_images=5000,
    )


def record(
    task: str,
    name: str,
    metrics: dict[str, float],
    *,
    family: str = "dfine",
    real: bool = False,
    generated: bool = False,
    device: str = "cpu",
    device_name: str = CPU,
    backend: str = "eager",
    dtype: str = "fp32",
    batch_size: int = 1,
    run_id: str = "run-a",
    status: str = "ok",
    reason: str | None = None,
    details: dict[str, Any] | None = None,
    key: str = "",
) -> ResultRecord:
    """One record; speed records get the deviations the profiler would write."""
    deviations: list[str] = []
    if task in ("latency", "throughput"):
        deviations = deviations_from_paper(
            device_name, backend, dtype, batch_size, (640, 640), "model", "fixed"
        )
    setup = Setup(
        device=device,
        device_name=device_name,
        backend=backend,
        dtype=dtype,
        batch_size=batch_size,
        input_size=[640, 640],
        timed="model" if task in ("latency", "throughput") else None,
        engine="faster_coco_eval" if task == "evaluation" else None,
        deviations=deviations,
    )
    rid = "-".join(p for p in (task, name, backend, dtype, device, key) if p)
    return ResultRecord(
        run_id=run_id,
        record_id=rid,
        task=task,
        model=model(name, family, real=real),
        setup=setup,
        environment=dict(ENV),
        metrics={k: metric(k, v) for k, v in metrics.items()},
        dataset=coco(generated=generated) if task == "evaluation" else None,
        status=status,
        reason=reason,
        details=dict(details or {}),
    )


def pr_curve(scale: float) -> dict[str, Any]:
    recall = [i / 100 for i in range(101)]
    return {
        "iou": "0.50:0.95",
        "area": "all",
        "max_dets": 100,
        "recall": recall,
        "precision": [max(0.0, scale * (1 - r)) if r < 0.9 else -1.0 for r in recall],
    }


def sweep(latencies: dict[int, float], oom_at: int | None = None) -> dict[str, Any]:
    rows: list[dict[str, Any]] = [
        {
            "batch_size": bs,
            "status": "ok",
            "throughput": 1000.0 * bs / ms,
            "latency_median_ms": ms,
            "reason": None,
        }
        for bs, ms in latencies.items()
    ]
    if oom_at:
        rows.append({"batch_size": oom_at, "status": "oom", "throughput": None, "latency_median_ms": None})
    best = max(rows[: len(latencies)], key=lambda r: r["throughput"])
    return {"by_batch_size": rows, "best_batch_size": best["batch_size"]}


def suite_records(*, generated: bool = True, real: bool = False, run_id: str = "run-a") -> list[ResultRecord]:
    """A small but complete set: two D-FINE models and one RT-DETR with every task, on the CPU."""
    out: list[ResultRecord] = []
    specs = [("dfine_n", "dfine", 42.8, 3.7, 7.1, 30.0), ("dfine_s", "dfine", 48.5, 10.2, 25.2, 60.0)]
    specs.append(("rtdetr_r18", "rtdetr", 46.5, 20.0, 60.0, 80.0))
    for i, (name, fam, ap, params, gflops, lat) in enumerate(specs):
        kw: dict[str, Any] = {"family": fam, "real": real, "run_id": run_id}
        coco_metrics = {
            "AP": ap,
            "AP50": ap + 17,
            "AP75": ap + 4,
            "APs": ap - 20,
            "APm": ap + 3,
            "APl": ap + 15,
        }
        out.append(
            record(
                "evaluation",
                name,
                {**coco_metrics, "images_seen": 6 if generated else 5000, "images_failed": 0},
                generated=generated,
                details={"pr_curve": pr_curve(0.5 + 0.1 * i), "per_category_ap": {"person": ap}},
                **kw,
            )
        )
        out.append(
            record("complexity", name, {"params": params, "gflops": gflops, "gflops_torch": gflops}, **kw)
        )
        out.append(
            record(
                "latency",
                name,
                {
                    "latency_median": lat,
                    "latency_p90": lat * 1.1,
                    "latency_mean": lat * 1.02,
                    "fps": 1000 / lat,
                },
                details={"samples_ms": [lat] * 5},
                **kw,
            )
        )
        tput = sweep({1: lat, 2: lat * 1.6, 4: lat * 3.0}, oom_at=8 if i == 0 else None)
        best = max(tput["by_batch_size"][:3], key=lambda r: r["throughput"])
        out.append(
            record(
                "throughput",
                name,
                {"throughput": best["throughput"], "max_batch_size": 4},
                batch_size=best["batch_size"],
                details=tput,
                **kw,
            )
        )
    return out


def claim(
    claim_id: str,
    model: str,
    metric: str,
    claimed: float,
    measured: float | None,
    verdict: str,
    *,
    unit: str = "",
    reason: str = "",
) -> ClaimResult:
    """One checked claim as the checker returns it; its text is its id (what tables show)."""
    delta = None if measured is None or verdict not in ("pass", "fail") else measured - claimed
    where = {"device_name": CPU, "backend": "eager", "dtype": "fp32"} if measured is not None else {}
    return ClaimResult(
        claim=Claim(
            id=claim_id,
            source="Table 1",
            kind="exact",
            metric=metric,
            unit=unit,
            claimed=claimed,
            model=model,
            text=claim_id,
        ),
        verdict=verdict,
        reason=reason,
        measured=measured,
        delta=delta,
        run_id="run-a" if measured is not None else None,
        **where,
    )


def claims_table(results: list[ClaimResult], name: str = "test_claims") -> ClaimsTable:
    return ClaimsTable(name, results)


def error_analysis_details(classes: int = 3, worst: int = 2) -> dict[str, Any]:
    """``details`` as the error_analysis evaluator writes them (``evaluation/error_analysis.py``)."""
    kinds = ("classification", "localization", "both", "duplicate", "background", "missed")
    return {
        "error_analysis": {
            "method": "TIDE (tidecv)",
            "pos_threshold": 0.5,
            "background_threshold": 0.1,
            "max_dets": 100,
            "ap50": 71.25,
            "dap": {k: 0.5 + i for i, k in enumerate(kinds)},
            "dap_special": {"false_positives": 9.75, "false_negatives": 8.5},
            "error_counts": {k: 10 + i for i, k in enumerate(kinds)},
            "per_class_ap": {
                f"class_{c:02d}": {"AP": 80.0 - 5 * c, "AP50_tide": 90.0 - 5 * c} for c in range(classes)
            },
            "per_size_ap": {"APs": None, "APm": 41.5, "APl": 63.25},
            "worst_images": [
                {
                    "image_id": 100 + i,
                    "file_name": f"img_{100 + i}.png",
                    "error_mass": 3.5 - i,
                    "errors": {"missed": 2, "background": 1},
                }
                for i in range(worst)
            ],
        }
    }


def error_analysis_record(
    name: str, *, fixture: bool = False, backend: str = "eager", status: str = "ok", **kw: Any
) -> ResultRecord:
    """An error-analysis record on generated data (``fixture``: the trained fixture's weights)."""
    rec = record(
        "error_analysis",
        name,
        {"tide_AP50": 71.25, "dAP_cls": 0.5},
        backend=backend,
        status=status,
        details=error_analysis_details(**kw) if status == "ok" else {},
        reason=None if status == "ok" else "tidecv is not installed",
        key="tide",
    )
    rec.dataset = coco(generated=True)
    if fixture:
        rec.model = ModelInfo(
            name=name,
            family="dfine",
            weights_source="fixture",
            weights_id="dfine_fixture.safetensors",
            weights_sha256=WEIGHTS_SHA,
            random_init=False,
        )
    return rec
