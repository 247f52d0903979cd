"""What one latency sample times: its inputs, the graph the backend runs, and the call itself.

``profiling.timed`` says what a sample covers: ``model`` (the backend's forward pass on prepared
pixels), ``model+postprocess`` (forward and the top-k postprocessor) or ``end-to-end``
(preprocess, forward, postprocess from the decoded image). For ``model+postprocess`` the backend
runs the deploy graph (``backends/export/deploy.py``: the model with its postprocessor inside, as
the paper's deployment export and engine) when the adapter has one and the backend builds it;
otherwise the adapter's postprocessor runs in Python after the backend, and the record says why.

``reference_check`` compares a runner with the eager fp32 reference on the same input: the raw
outputs for the model graph, the detections (``compare_deploy``) for the deploy graph.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from dfine_bench.adapters.base import DetectorAdapter
from dfine_bench.backends import BackendRunner, BackendSpec, supports_graph
from dfine_bench.backends.export.deploy import (
    compare_deploy,
    deploy_check_failure,
    deploy_unsupported,
    sizes_tensor,
)
from dfine_bench.profiling.output_check import OutputDifference, compare_outputs


class TimingInputs:
    """The inputs a timed call sees: a fixed random tensor, or real images (cycled, as the paper)."""

    def __init__(
        self,
        adapter: DetectorAdapter,
        input_size: tuple[int, int],
        images: list[np.ndarray] | None,
        images_kind: str = "dataset",
        seed: int = 0,
    ) -> None:
        self.adapter = adapter
        self.input_size = input_size
        self.images = list(images) if images else None
        self.kind = images_kind if self.images else "fixed"
        self._tensors: dict[int, list[tuple[torch.Tensor, list[tuple[int, int]]]]] = {}
        if self.images is None:
            # end-to-end timing needs an image to preprocess: a fixed, seeded random one
            rng = np.random.default_rng(seed)
            self._fixed_image = rng.integers(0, 256, (*input_size, 3), dtype=np.uint8)

    def image_batches(self, batch_size: int) -> list[list[np.ndarray]]:
        pool = self.images or [self._fixed_image]
        n = max(1, len(pool) // batch_size) if len(pool) >= batch_size else 1
        cyc = itertools.cycle(pool)
        return [[next(cyc) for _ in range(batch_size)] for _ in range(n)]

    def tensors(self, batch_size: int) -> list[tuple[torch.Tensor, list[tuple[int, int]]]]:
        """Model-ready batches with the original sizes postprocessing maps boxes back to; made once
        per batch size (the check, the trace and the latency all time the same batches)."""
        if batch_size not in self._tensors:
            if self.images is None:
                x = self.adapter.example_input(batch_size, self.input_size).to("cpu", torch.float32)
                self._tensors[batch_size] = [(x, [self.input_size] * batch_size)]
            else:
                self._tensors[batch_size] = [
                    (pre.pixel_values.float(), pre.original_sizes)
                    for pre in (self.adapter.preprocess(batch) for batch in self.image_batches(batch_size))
                ]
        return self._tensors[batch_size]

    def check_images(self, count: int = 2) -> list[np.ndarray]:
        """A few images to check a deploy graph on (the fixed image when there are none)."""
        return (self.images or [self._fixed_image])[:count]


def graph_for(adapter: DetectorAdapter, backend: BackendSpec, timed: str) -> tuple[str, str | None]:
    """The graph a backend runs for ``timed``, and why it is not the deploy graph when it could be.

    ``model+postprocess`` times the deploy graph where the adapter has one and the backend builds
    it; otherwise the model graph with the postprocessor in Python (the reason says why)."""
    if timed != "model+postprocess":
        return "model", None
    reason = deploy_unsupported(adapter)
    if reason is None and not supports_graph(backend, "deploy"):
        reason = f"the {backend.name} backend builds the model graph only"
    if reason is not None:
        return "model", f"postprocessor timed in Python after the backend, not inside it: {reason}"
    return "deploy", None


def graph_inputs(
    runner: BackendRunner, x: torch.Tensor, sizes: list[tuple[int, int]]
) -> tuple[torch.Tensor, ...]:
    """What ``runner.prepare`` takes for a batch: the pixels, and for the deploy graph the sizes."""
    return (x, sizes_tensor(sizes)) if runner.graph == "deploy" else (x,)


def timed_fn(
    runner: BackendRunner, adapter: DetectorAdapter, inputs: TimingInputs, timed: str, batch_size: int
) -> Callable[[], Any]:
    """The zero-argument callable whose latency is measured, per ``timed`` mode and graph."""
    if timed == "end-to-end":
        batches = itertools.cycle(inputs.image_batches(batch_size))

        def end_to_end() -> Any:
            images = next(batches)
            pre = adapter.preprocess(images)
            out = runner.to_torch(runner.call(runner.prepare(pre.pixel_values)))
            return adapter.postprocess(adapter.outputs_from_tuple(out), pre.original_sizes)

        return end_to_end
    prepared = [
        (runner.prepare(*graph_inputs(runner, x, sizes)), sizes) for x, sizes in inputs.tensors(batch_size)
    ]
    items = itertools.cycle(prepared)
    if timed == "model" or runner.graph == "deploy":  # the deploy graph holds the postprocessor
        if len(prepared) == 1:
            native = prepared[0][0]
            return lambda: runner.call(native)
        return lambda: runner.call(next(items)[0])

    def model_postprocess() -> Any:
        native, sizes = next(items)
        out = runner.to_torch(runner.call(native))
        return adapter.postprocess(adapter.outputs_from_tuple(out), sizes)

    return model_postprocess


def reference_check(
    runner: BackendRunner, adapter: DetectorAdapter, inputs: TimingInputs, atol: float
) -> tuple[float, dict[str, Any], str | None]:
    """``(difference, check details, failure)`` of a runner against eager fp32 on the same input.

    The model graph: raw outputs, queries matched one-to-one (zero for eager fp32 itself). The
    deploy graph: its detections against eager + the adapter's postprocessor on a few images.
    ``failure`` is why the backend's timings cannot count (None: they can)."""
    if runner.graph == "deploy":
        check = compare_deploy(adapter, runner, inputs.check_images(), tie=atol)
        diff = max(check["max_score_diff"], check["max_box_diff_rel"])
        failure = deploy_check_failure(check, atol)
        return diff, {"output_max_abs_diff": diff, **check, "atol": atol, "graph": "deploy"}, failure
    difference = _model_difference(runner, adapter, inputs)
    diff = difference.matched_max_abs_diff
    check = {
        "output_max_abs_diff": diff,
        **difference.to_dict(),
        "atol": atol,
        "graph": "model",
        "reference": "eager fp32, same input; queries matched one-to-one (top-k near-ties may reorder them)",
    }
    failure = None
    if not diff <= atol:
        failure = (
            f"outputs differ from eager fp32 by {diff:.4g} > backend.atol={atol:g} "
            "on the same input (after matching queries)"
        )
    return diff, check, failure


def _model_difference(
    runner: BackendRunner, adapter: DetectorAdapter, inputs: TimingInputs
) -> OutputDifference:
    x, _ = inputs.tensors(1)[0]
    if runner.name == "eager" and runner.dtype == "fp32":
        return OutputDifference(0.0, 0.0, 0)
    with torch.inference_mode():
        ref = tuple(adapter.export_module().eval()(x.to(adapter.device, torch.float32)))
    got = runner(x)
    return compare_outputs(ref, got)
