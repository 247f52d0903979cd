"""Parameters and GFLOPs, counted the way the D-FINE paper counted them, and by torch beside it.

The paper's numbers come from the official ``tools/benchmark/get_info.py``: ``calflops`` on the
*deploy-mode* model at 1x3x640x640, and ``sum(p.numel())`` over that model's parameters.
``deploy()`` drops what inference never runs (the decoder's score heads and quality
estimators of all but the last layer, training-only branches). We reproduce that on any
adapter without family-specific surgery: one inference forward with hooks records which
modules ran, and the paper-style parameter count is the (deduplicated) parameters owned by
those modules. Weights the forward never touches (training-only heads, the duplicated
top-level heads of the Hugging Face port) are listed in the details instead.

Beside calflops, ``torch.utils.flop_counter`` counts the same forward; the two differ by
what each can see (``COUNTER_NOTES``).
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator
from typing import Any

import torch

from dfine_bench.adapters.base import DetectorAdapter
from dfine_bench.profiling.deploy_view import deploy_copy, find_topk_heads, num_queries
from dfine_bench.records.metrics import metric
from dfine_bench.records.schema import TaskOutcome

log = logging.getLogger(__name__)

COUNTER_NOTES = {
    "calflops": (
        "patches torch.nn.functional and a few torch/Tensor functions: counts conv, linear, matmul/bmm "
        "(function forms), norms, activations, softmax, interpolate and Tensor.add/mul; misses "
        "grid_sample (deformable-attention sampling), scaled_dot_product_attention, the @ / + / * "
        "operators, sigmoid/exp/topk/gather"
    ),
    "torch.utils.flop_counter": (
        "counts aten matmul-like ops (mm, addmm, bmm, baddbmm, convolution, scaled_dot_product_attention) "
        "at 2 FLOPs per multiply-add; misses every elementwise op, normalisation, activation, softmax, "
        "interpolation and grid_sample"
    ),
}


@contextlib.contextmanager
def _record_ran(module: torch.nn.Module) -> Iterator[set[int]]:
    """Ids of the submodules whose ``forward`` ran inside the block."""
    ran: set[int] = set()
    handles = [m.register_forward_pre_hook(lambda mod, _args: ran.add(id(mod))) for m in module.modules()]
    try:
        yield ran
    finally:
        for h in handles:
            h.remove()


def used_parameters(module: torch.nn.Module, ran: set[int]) -> tuple[int, list[str]]:
    """(parameters owned by modules that ran, counted once; names of modules whose weights never ran)."""
    used: dict[int, int] = {}
    unused_modules: list[str] = []
    for name, m in module.named_modules():
        own = list(m.parameters(recurse=False))
        if not own:
            continue
        if id(m) in ran:
            for p in own:
                used[id(p)] = p.numel()
        else:
            unused_modules.append(name)
    # a tied parameter owned by a module that ran and one that did not is used
    used_ids = set(used)
    unused_modules = [
        n
        for n in unused_modules
        if not all(id(p) in used_ids for p in module.get_submodule(n).parameters(recurse=False))
    ]
    return sum(used.values()), unused_modules


def unique_parameters(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in {id(p): p for p in module.parameters()}.values())


@contextlib.contextmanager
def _eager_attention(model: torch.nn.Module) -> Iterator[None]:
    """Hugging Face models: count with the eager attention (explicit matmuls calflops can see, as
    in the official models' ``nn.MultiheadAttention``), restoring each config's choice afterwards."""
    configs = {}
    for m in model.modules():
        config = getattr(m, "config", None)
        if config is not None and hasattr(config, "_attn_implementation_internal"):
            configs[id(config)] = config
    saved = {k: c._attn_implementation_internal for k, c in configs.items()}
    try:
        for c in configs.values():
            c._attn_implementation_internal = "eager"
        yield
    finally:
        for k, c in configs.items():
            c._attn_implementation_internal = saved[k]


def calflops_flops(module: torch.nn.Module, example: torch.Tensor) -> float:
    """FLOPs of ``module(example)`` as calflops counts them (what the paper's get_info.py prints)."""
    from calflops import calculate_flops

    with warnings.catch_warnings(), contextlib.redirect_stdout(None):
        warnings.simplefilter("ignore")
        flops, _macs, _params = calculate_flops(
            model=module,
            args=[example],
            print_results=False,
            print_detailed=False,
            output_as_string=False,
        )
    return float(flops)


def torch_flops(
    module: torch.nn.Module, example: torch.Tensor, *, depth: int = 2
) -> tuple[float, dict[str, float], dict[str, float]]:
    """FLOPs of ``module(example)`` by ``torch.utils.flop_counter``: total, per op, per module path."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False, depth=depth)
    with counter, torch.no_grad():
        module(example)
    counts = counter.get_flop_counts()
    by_op = {str(op): float(n) for op, n in counts.get("Global", {}).items()}
    by_module = {k: float(sum(v.values())) for k, v in counts.items() if k != "Global"}
    return float(counter.get_total_flops()), by_op, by_module


def _topk_head_correction(
    model: torch.nn.Module, module: torch.nn.Module, example: torch.Tensor, by_module: dict[str, float]
) -> tuple[float, list[str]]:
    """FLOPs the HF ports add by running ``enc_bbox_head`` on all tokens rather than the top-k."""
    q = num_queries(model)
    heads = find_topk_heads(model)
    if q is None or not heads:
        return 0.0, []
    tokens: dict[str, int] = {}

    def remember(name: str) -> Any:
        def hook(_module: torch.nn.Module, args: tuple[Any, ...]) -> None:  # must return None
            tokens.setdefault(name, int(args[0].shape[-2]))

        return hook

    hooks = [h.register_forward_pre_hook(remember(n)) for n, h in heads.items()]
    try:
        _total, _ops, by_module = torch_flops(module, example, depth=64)
    finally:
        for h in hooks:
            h.remove()
    correction, notes = 0.0, []
    for name in heads:
        n_tok = tokens.get(name)
        flops = next((v for k, v in by_module.items() if k.endswith("." + name) or k == name), 0.0)
        if not n_tok or n_tok <= q or not flops:
            continue
        extra = flops * (1.0 - q / n_tok)
        correction += extra
        notes.append(
            f"{name} runs on all {n_tok} encoder tokens in this port but on the top {q} in the official "
            f"model: {extra / 1e9:.3f} GFLOPs not counted"
        )
    return correction, notes


def complexity(
    adapter: DetectorAdapter,
    input_size: tuple[int, int],
    *,
    with_calflops: bool = True,
) -> TaskOutcome:
    """The ``complexity`` outcome: params (M, paper-style), GFLOPs by calflops and by torch."""
    original = adapter.model
    was_training = original.training
    adapter.eval()
    device = adapter.device
    # count on the deploy-mode view (RepVGG blocks fused), as the paper's get_info.py does
    model, fused = deploy_copy(original)
    adapter.model = model
    module = adapter.export_module().eval()
    example = adapter.example_input(1, input_size).to(device, torch.float32)
    h, w = input_size
    details: dict[str, Any] = {"input_shape": [1, 3, int(h), int(w)], "counter_notes": dict(COUNTER_NOTES)}
    notes: list[str] = []
    metrics = {}
    try:
        with _eager_attention(model):
            with _record_ran(model) as ran:
                tflops, by_op, by_module = torch_flops(module, example)
            used, unused_modules = used_parameters(model, ran)
            correction, correction_notes = _topk_head_correction(model, module, example, by_module)
            cflops = None
            if with_calflops:
                try:
                    with torch.no_grad():
                        cflops = calflops_flops(module, example)
                except Exception as exc:  # calflops is a third-party patcher; report, don't crash
                    notes.append(f"calflops failed: {type(exc).__name__}: {exc}")
    finally:
        adapter.model = original
        original.train(was_training)
    raw = {"flops_calflops_raw": cflops, "flops_torch_raw": tflops}
    tflops -= correction
    if cflops is not None:
        cflops -= correction
    notes.extend(correction_notes)
    if fused:
        notes.append(f"counted with {len(fused)} RepVGG blocks fused into one 3x3 conv each (deploy mode)")
    total = unique_parameters(original)
    metrics["params"] = metric("params", used / 1e6)
    metrics["gflops"] = metric("gflops", None if cflops is None else cflops / 1e9)
    metrics["gflops_torch"] = metric("gflops_torch", tflops / 1e9)
    details.update(
        {
            "params_counted": used,
            "params_total": total,
            "params_deploy_total": unique_parameters(model),
            "params_not_run": unique_parameters(model) - used,
            "modules_not_run": unused_modules[:200],
            "params_rule": (
                "parameters of the modules the inference forward runs, each counted once "
                "(as the official deploy() model: training-only heads dropped, RepVGG blocks fused)"
            ),
            "params_by_part": {k: int(v) for k, v in adapter.parameter_groups().items()},
            "flops_calflops": cflops,
            "flops_torch": tflops,
            **raw,
            "deploy_fused_blocks": fused,
            "topk_head_correction_flops": correction,
            "flops_torch_by_op": by_op,
            "gflops_rule": "calflops FLOPs (2 per multiply-add) of one forward at batch 1, as get_info.py",
        }
    )
    if unique_parameters(model) != used:
        notes.append(
            f"{(unique_parameters(model) - used) / 1e6:.3f}M parameters are never run at inference "
            "and are not counted (the paper counts the deploy-mode model)"
        )
    return TaskOutcome(
        task="complexity",
        key=f"{h}x{w}",
        metrics=metrics,
        details=details,
        setup={"batch_size": 1, "input_size": [int(h), int(w)], "dtype": "fp32", "backend": "eager"},
        notes=notes,
    )
