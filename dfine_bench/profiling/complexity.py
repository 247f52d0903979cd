"""Parameters and GFLOPs, counted the way the D-FINE paper counted them, and by torch beside it.

The paper's numbers come from the official ``tools/benchmark/get_info.py``: ``calflops`` on the
*deploy-mode* model at 1x3x640x640, and ``sum(p.numel())`` over that model's parameters.
``deploy()`` drops what inference never runs (the decoder's score heads and quality
estimators of all but the last layer, training-only branches) but keeps the denoising class
embedding. We reproduce that on any adapter without family-specific surgery: one inference
forward with hooks records which modules ran; ``params`` is the (deduplicated) parameters owned
by those modules plus those of the modules ``deploy()`` keeps without running
(``deploy_view.DEPLOY_KEEPS``): exactly get_info.py's count (D-FINE N/S/M/L/X: 3,753,799 /
10,237,491 / 19,248,189 / 30,724,195 / 61,601,635). Its convention is stated in each record
(``details["params_convention"]``). The other counts have their own names: ``params_total`` (a
metric: every parameter of the model as built, ``ModelInfo.num_parameters``), and in the details
``params_run`` (only what inference runs) and ``params_not_run``. Weights the forward never
touches (training-only heads, the duplicated top-level heads of the Hugging Face port) are listed
in the details.

The FLOPs come from ``flop_counting``: calflops (the paper's counter, with attention run as the
official ``nn.MultiheadAttention`` runs it, late-bound functionals and the top-k box head
correction explained there) and ``torch.utils.flop_counter`` beside it. This module adds the
model-side half: the encoder's conv+BN layers are folded as D-FINE's ``deploy()`` folds them
(``deploy_view``; a bias costs calflops 1 FLOP per element where a batch norm costs 2, 0.015
GFLOPs).

What is left is the port's pixel-mask ``interpolate`` to each feature level (8,400 FLOPs at
640x640; the official model has no pixel mask): D-FINE N/S/M/L/X count 7.165 / 25.171 / 56.684
/ 91.034 / 202.486 GFLOPs, as get_info.py prints for the official models.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from typing import Any

import torch

from dfine_bench.adapters.base import DetectorAdapter
from dfine_bench.profiling.deploy_view import (
    FusedRepVgg,
    deploy_copy,
    deploy_kept_modules,
    find_topk_heads,
    num_queries,
)
from dfine_bench.profiling.flop_counting import (
    COUNTER_NOTES,
    _first_inputs,
    _late_bound_functionals,
    _mha_attention,
    _topk_head_correction,
    calflops_flops,
    torch_flops,
)
from dfine_bench.profiling.protocols import complexity_deviations
from dfine_bench.records.metrics import PARAMS_CONVENTION, metric
from dfine_bench.records.schema import TaskOutcome

log = logging.getLogger(__name__)


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


def deploy_parameters(module: torch.nn.Module, ran: set[int]) -> int:
    """get_info.py's count: parameters of the modules that ran plus those ``deploy()`` keeps
    without running them (``DEPLOY_KEEPS``), each parameter counted once."""
    params: dict[int, int] = {}
    for m in module.modules():
        if id(m) in ran:
            params.update({id(p): p.numel() for p in m.parameters(recurse=False)})
    for kept in deploy_kept_modules(module).values():
        params.update({id(p): p.numel() for p in kept.parameters()})
    return sum(params.values())


def complexity_key(input_size: Sequence[int]) -> str:
    """The outcome key of a params/GFLOPs count at ``input_size`` (h, w): ``"640x640"``."""
    h, w = (int(v) for v in input_size)
    return f"{h}x{w}"


def complexity(
    adapter: DetectorAdapter,
    input_size: tuple[int, int],
    *,
    with_calflops: bool = True,
) -> TaskOutcome:
    """The ``complexity`` outcome: params (M, paper-style), GFLOPs by calflops and by torch.

    Both counters count one forward of the deploy-mode view (``deploy_view.deploy_copy``) with
    attention run as ``nn.MultiheadAttention`` runs it (``_mha_attention``), then the box head's
    all-tokens work the official model never does is subtracted (``_topk_head_correction``).
    """
    original = adapter.model
    was_training = original.training
    adapter.eval()
    device = adapter.device
    # count on the deploy-mode view (RepVGG blocks and D-FINE's encoder conv+BN fused), as get_info.py
    model, fused = deploy_copy(original)
    h, w = input_size
    details: dict[str, Any] = {"input_shape": [1, 3, int(h), int(w)], "counter_notes": dict(COUNTER_NOTES)}
    notes: list[str] = []
    metrics = {}
    cal_correction: float | None = None
    attention: str | None = None
    # the adapter holds the fused copy only inside the try: whatever fails, later backends of
    # this model export and time the original
    adapter.model = model
    try:
        module = adapter.export_module().eval()
        example = adapter.example_input(1, input_size).to(device, torch.float32)
        heads = find_topk_heads(model)
        with _mha_attention(model) as attention, _late_bound_functionals(model):
            with _record_ran(model) as ran, _first_inputs(heads) as head_inputs:
                tflops, by_op, _by_module = torch_flops(module, example)
            used, unused_modules = used_parameters(model, ran)
            deployed = deploy_parameters(model, ran)
            cflops = None
            if with_calflops:
                try:
                    with torch.no_grad():
                        cflops = calflops_flops(module, example)
                except Exception as exc:  # calflops is a third-party patcher; report, don't crash
                    notes.append(f"calflops failed: {type(exc).__name__}: {exc}")
            try:
                correction, cal_correction, correction_notes = _topk_head_correction(
                    heads, head_inputs, num_queries(model), with_calflops=cflops is not None
                )
            except Exception as exc:  # counting a head alone failed: keep the uncorrected counts, say so
                correction, cal_correction = 0.0, 0.0 if cflops is not None else None
                correction_notes = [f"top-k head correction failed: {type(exc).__name__}: {exc}"]
    finally:
        adapter.model = original
        original.train(was_training)
    raw = {"flops_calflops_raw": cflops, "flops_torch_raw": tflops}
    tflops -= correction
    if cflops is not None and cal_correction is not None:
        cflops -= cal_correction
    notes.extend(correction_notes)
    n_repvgg = sum(isinstance(model.get_submodule(n), FusedRepVgg) for n in fused)
    if n_repvgg:
        notes.append(f"counted with {n_repvgg} RepVGG blocks fused into one 3x3 conv each (deploy mode)")
    if len(fused) > n_repvgg:
        notes.append(
            f"counted with {len(fused) - n_repvgg} encoder conv+BN layers folded into one conv with bias "
            "each (the official deploy mode)"
        )
    total = unique_parameters(original)
    metrics["params"] = metric("params", deployed / 1e6)
    metrics["params_total"] = metric("params_total", total / 1e6)
    metrics["gflops"] = metric("gflops", None if cflops is None else cflops / 1e9)
    metrics["gflops_torch"] = metric("gflops_torch", tflops / 1e9)
    details.update(
        {
            "params_counted": deployed,
            "params_convention": PARAMS_CONVENTION,
            "params_run": used,
            "params_kept_not_run": deployed - used,
            "params_total": total,
            "params_deploy_total": unique_parameters(model),
            "params_not_run": unique_parameters(model) - used,
            "modules_not_run": unused_modules[:200],
            "params_rule": (
                "parameters of the modules the inference forward runs, plus the modules the official "
                "deploy() keeps without running them (the denoising class embedding), each counted once "
                "(training-only heads dropped, RepVGG blocks and D-FINE's encoder conv+BN layers fused)"
            ),
            "params_by_part": {k: int(v) for k, v in adapter.parameter_groups().items()},
            "flops_calflops": cflops,
            "flops_torch": tflops,
            **raw,
            "deploy_fused_blocks": fused,
            "topk_head_correction_flops": cal_correction,
            "topk_head_correction_flops_torch": correction,
            "attention_implementation": attention,
            "flops_torch_by_op": by_op,
            "gflops_rule": "calflops FLOPs (2 per multiply-add) of one forward at batch 1, as get_info.py",
        }
    )
    if unique_parameters(model) != deployed:
        notes.append(
            f"{(unique_parameters(model) - deployed) / 1e6:.3f}M parameters are never run at inference "
            "and are not in params (the paper counts the deploy-mode model; params_total has them)"
        )
    return TaskOutcome(
        task="complexity",
        key=complexity_key(input_size),
        metrics=metrics,
        details=details,
        setup={
            "batch_size": 1,
            "input_size": [int(h), int(w)],
            "dtype": "fp32",
            "backend": "eager",
            "deviations": complexity_deviations((h, w)),
        },
        notes=notes,
    )
