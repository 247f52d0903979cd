"""Hydra structured configs: one dataclass per config group, the schema of every suite.

Every YAML file under ``suites/<group>/`` is validated against the dataclass of its
group, so a misspelled key or a value of the wrong type fails at start-up. Choices
with a fixed set of values are ``Enum``s, so OmegaConf names the allowed values.

Groups: model, weights, dataset, evaluation, profiling, backend, protocol, suite, output.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from omegaconf import MISSING


class WeightsSource(str, Enum):
    auto = "auto"  # the HF cache if it holds the model's hub weights, else random-init (labelled)
    random_init = "random-init"
    hub = "hub"
    local = "local"
    official = "official"


class DatasetKind(str, Enum):
    auto = "auto"  # COCO val2017 if DFINE_BENCH_COCO (or root) points at one, else generated
    coco = "coco"
    generated = "generated"


class Engine(str, Enum):
    faster_coco_eval = "faster_coco_eval"
    pycocotools = "pycocotools"


class DType(str, Enum):
    fp32 = "fp32"
    fp16 = "fp16"
    bf16 = "bf16"
    int8 = "int8"  # quantized with calibration images (the backends listing it: dfine-bench list backends)


class Timed(str, Enum):
    model = "model"
    model_postprocess = "model+postprocess"
    end_to_end = "end-to-end"  # preprocess + model + postprocess


class ProfileInput(str, Enum):
    fixed = "fixed"  # one fixed random tensor
    dataset = "dataset"  # real dataset images, as in the paper


@dataclass
class ModelConfig:
    """One model from the registry; ``model=<name>`` picks it (every registered name is an option)."""

    name: str = MISSING
    num_classes: int | None = None  # None: the model's default head (COCO: 80)
    input_size: list[int] | None = None  # [h, w]; None: the model's own (640x640 for D-FINE)


@dataclass
class WeightsConfig:
    source: WeightsSource = WeightsSource.auto
    path: str | None = None  # hub id, local directory or checkpoint file (hub/local/official)
    revision: str | None = None
    seed: int = 0  # random-init
    trust_remote_code: bool = False  # never run code from a checkpoint unless the user opts in


@dataclass
class DatasetConfig:
    kind: DatasetKind = DatasetKind.auto
    name: str = "auto"
    root: str | None = None  # COCO root; None: $DFINE_BENCH_COCO
    images: str = "val2017"  # relative to root, or absolute
    annotations: str = "annotations/instances_val2017.json"  # relative to root, or absolute
    subset: int | None = None  # first N image ids in sorted order
    # generated dataset
    num_images: int = 24
    image_size: list[int] = field(default_factory=lambda: [480, 640])  # [h, w]
    seed: int = 0
    cache_dir: str | None = None  # where generated data is written; None: <results>/_generated
    # EXIF orientation: ``ignore`` reads the stored pixels (the official code and pycocotools do),
    # ``apply`` rotates as a viewer displays them (annotation tools label what they display)
    exif: str = "ignore"
    # an image whose real size differs from its width/height in the annotation file: ``error``
    # names it; ``warn`` evaluates anyway and counts them (console, record notes, report)
    size_mismatch: str = "error"


#: The most images ``dataset.kind=generated`` writes (a typo such as 1000000000 must not fill the disk).
MAX_GENERATED_IMAGES = 100_000
EXIF_MODES = ("ignore", "apply")
SIZE_MISMATCH_MODES = ("error", "warn")


@dataclass
class BootstrapConfig:
    """AP confidence intervals: a percentile bootstrap over images (``evaluation/bootstrap.py``).

    The seed is fixed (not the run's seed) so that evaluations of the same images in different
    runs are resampled identically and can be compared pairwise (a run against its baseline).
    """

    enabled: bool = True
    replicates: int = 1000  # B; fewer than 100 is refused at start-up
    seed: int = 0
    confidence: float = 0.95


@dataclass
class EvaluationConfig:
    enabled: bool = True
    engine: Engine = Engine.faster_coco_eval
    batch_size: int = 1
    num_workers: int = 2
    resume: bool = True  # reuse predictions already streamed to disk
    per_category: bool = True
    pr_curves: bool = True
    max_failed_fraction: float = 0.01  # more unreadable images than this fails the evaluation
    # Registered evaluators (`dfine_bench.evaluation.list_evaluators()`); each writes its own record.
    evaluators: list[str] = field(default_factory=lambda: ["coco"])
    # Backends the inference runs through: a registered backend name, optionally with a precision
    # (onnxruntime, eager-fp16, tensorrt-fp16); options come from the run's backend config of that
    # name. One record per evaluator, backend and precision; eager-fp32 keeps the plain record id.
    backends: list[str] = field(default_factory=lambda: ["eager"])
    worst_images: int = 10  # error_analysis: how many of the worst images to list
    # AP, AP50 and AP75 confidence intervals in every COCO record (details["bootstrap"])
    bootstrap: BootstrapConfig = field(default_factory=BootstrapConfig)


@dataclass
class ProfilingConfig:
    enabled: bool = True
    complexity: bool = True  # params and GFLOPs
    latency: bool = True
    throughput: bool = True
    trace: bool = False
    timed: Timed = Timed.model
    input: ProfileInput = ProfileInput.fixed
    # with input=dataset: how many of the dataset's images (spread evenly over it) the timings cycle
    # through; every stage is timed at least once on each (protocol=end_to_end takes 64)
    num_images: int = 8
    warmup: int = 10
    iters: int = 50  # timed iterations (at least), stops early past max_time_s
    min_iters: int = 10
    max_time_s: float = 20.0
    batch_sizes: list[int] = field(default_factory=lambda: [1, 2, 4, 8])
    max_batch_size: int = 64
    throughput_iters: int = 10
    threads: int | None = None  # CPU threads; None: torch's default (recorded either way)
    cv_warn: float = 0.10  # above this coefficient of variation the latency is marked unstable
    # where schedstat is unreadable (not Linux; max_cpu_wait judges otherwise): (other work + timed
    # threads) per core from the load average above which the latency is marked unstable; 1.25,
    # not 1.0: on a quiet 2-core machine the load average still shows ~1 of the run's own helper
    # threads (1.01 per core measured in CI), while one other busy process already gives ~1.5
    max_load_per_core: float = 1.25
    # share of the timed window each timed thread spent waiting for a CPU (Linux schedstat) above
    # which the latency is marked unstable; where schedstat is readable it judges contention, the
    # load average (which lags a minute behind) only where it is not
    max_cpu_wait: float = 0.10
    # GPU timing discipline (CUDA only; CPU records say "n/a"), trtexec's rules by default: warm up for
    # at least warmup_time_s, then time at least min_iters calls *and* min_time_s seconds
    warmup_time_s: float = 0.2
    min_time_s: float = 3.0
    cuda_graph: bool = False  # replay the timed call from a CUDA graph (refused on the CPU)
    spin_wait: bool = False  # busy-wait on the end event instead of a blocking wait (refused on the CPU)
    tf32: bool | None = None  # TF32 matmuls/convolutions on CUDA; null: torch's default; recorded either way
    stages: bool = True  # time decode, preprocess, h2d, forward, d2h and postprocess each on its own
    stage_iters: int = 20  # timed calls per stage (at least min_iters, within max_time_s / 4)
    # [height, width] params/GFLOPs are counted at; null: each model's own input size (its spec's
    # ``input_size``, or model.input_size where set), so a model whose native size is not 640x640
    # (RF-DETR at 560) is counted where it runs; protocol=paper_t4 sets the paper's [640, 640]
    flops_input_size: list[int] | None = None
    trace_steps: int = 5


@dataclass
class BackendConfig:
    """One inference backend. ``name`` is any registered backend (``dfine-bench list backends``:
    the registry in ``dfine_bench/backends/``, checked at start-up, so a new backend
    needs no edit here); ``options`` are that backend's own settings (``backend.options.mode``
    for compile, ``providers``/``opset`` for onnxruntime, ``workspace_gb`` for tensorrt, ...),
    checked by the backend at start-up."""

    name: str = "eager"
    dtype: DType = DType.fp32
    options: dict[str, Any] = field(default_factory=dict)
    atol: float = 1e-2  # max |backend - eager| above which the backend's timing is not trusted


@dataclass
class ProtocolConfig:
    """A named measurement protocol; ``paper_t4`` is the paper's (TensorRT FP16, bs 1, 640, deploy engine)."""

    name: str = "custom"
    description: str = ""
    reference_device: str | None = None  # latency claims compare only on this device (e.g. "T4")


@dataclass
class SuiteConfig:
    name: str = "default"
    description: str = ""
    models: list[str] = field(default_factory=list)
    backends: list[str] = field(default_factory=list)  # empty: just ${backend.name}
    input_size: list[int] | None = None  # [h, w] for every model (e.g. small inputs in suite=ci)
    claims: str | None = "dfine_paper"  # claims file under suites/claims/ to check against
    baseline: str | None = None  # baseline file for `check`
    # per-metric tolerances for `check` (metric -> tolerance; latency ones are relative; also the
    # timing rule's settings timing_alpha and timing_min_delta_ms): dfine_bench/checks/rules.py
    tolerances: dict[str, float] = field(default_factory=dict)
    report: bool = True
    # per-model weights that override the `weights` group for that model: auto | random-init |
    # fixture (e.g. suite=ci keeps random-init for every model but the trained dfine_fixture)
    weights: dict[str, str] = field(default_factory=dict)


@dataclass
class OutputConfig:
    results_dir: str = "results"
    reports_dir: str = "reports"
    run_id: str | None = None  # None: resume the last unfinished run of the same config, or start anew
    resume: bool = True
    report_name: str | None = None  # None: reports/<run-id>
    progress: str = "auto"  # auto (only on a terminal) | on | off
    log_level: str = "INFO"


@dataclass
class RunConfig:
    """The root config of ``dfine-bench run`` / ``profile``."""

    suite: SuiteConfig = field(default_factory=SuiteConfig)
    model: ModelConfig | None = None  # set: run just this model instead of the suite's list
    weights: WeightsConfig = field(default_factory=WeightsConfig)
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    profiling: ProfilingConfig = field(default_factory=ProfilingConfig)
    backend: BackendConfig = field(default_factory=BackendConfig)
    protocol: ProtocolConfig = field(default_factory=ProtocolConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    device: str = "cpu"  # cpu | cuda | cuda:N
    seed: int = 0


#: group name -> schema dataclass, for validating group files and for `list`.
GROUP_SCHEMAS: dict[str, type] = {
    "suite": SuiteConfig,
    "model": ModelConfig,
    "weights": WeightsConfig,
    "dataset": DatasetConfig,
    "evaluation": EvaluationConfig,
    "profiling": ProfilingConfig,
    "backend": BackendConfig,
    "protocol": ProtocolConfig,
    "output": OutputConfig,
}
