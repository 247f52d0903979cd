"""FLOP counting of one forward, by calflops (the D-FINE paper's counter) and by torch's counter.

calflops counts only the functions it patches (``COUNTER_NOTES``), so the same network counts
differently depending on which functions its code calls. To get the official number from the
Hugging Face ports (measured module by module against Peterande/D-FINE's model and get_info.py,
calflops 0.3.2; D-FINE-S numbers):

* attention runs as ``nn.MultiheadAttention`` runs it (``_mha_attention``). The official models
  call ``nn.MultiheadAttention``, whose weights-returning path (the one they take) computes QK^T
  with ``torch.bmm`` (``torch.baddbmm`` when a mask is passed) and AV with ``torch.bmm``;
  calflops does not patch ``bmm`` (nor ``scaled_dot_product_attention``), so without a mask those
  products are not in the paper's GFLOPs. The HF eager attention uses ``torch.matmul``, which
  calflops counts: +0.164 GFLOPs in AIFI and +0.277 in the decoder self-attention (+1.7 %).
  That code path is the same from torch 2.0 (the paper's ``torch>=2.0.1``) to 2.13 (measured);
* the box head the HF port runs on all encoder tokens is counted on the top ``num_queries``
  tokens only, as the official code runs it (``_topk_head_correction``; 2.144 GFLOPs);
* functionals that transformers' activations captured at construction (``GELUActivation``
  holds ``nn.functional.gelu``) are looked up at call time, so calflops' patch sees them as it
  sees the official ``nn.GELU`` (``_late_bound_functionals``; 0.4 MFLOPs).

``torch.utils.flop_counter`` counts the same forward beside it; the two differ by what each can
see (``COUNTER_NOTES``). ``dfine_bench.profiling.complexity`` puts these counts into the
``complexity`` outcome.
"""

from __future__ import annotations

import contextlib
import functools
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.nn.functional as F

COUNTER_NOTES = {
    "calflops": (
        "patches torch.nn.functional and a few torch/Tensor functions: counts conv, linear, torch.matmul, "
        "addmm, torch.baddbmm, einsum, norms, activations, pooling, softmax, interpolate and "
        "torch.add/mul / Tensor.add/mul; misses torch.bmm (nn.MultiheadAttention's QK^T without a mask "
        "and its AV, so the paper's GFLOPs leave them out and we run attention through the same ops), "
        "scaled_dot_product_attention, grid_sample (deformable-attention sampling), the @ / + / * "
        "operators, sigmoid/exp/topk/gather, and functionals a module captured before the patch"
    ),
    "torch.utils.flop_counter": (
        "counts aten matmul-like ops (mm, addmm, bmm, baddbmm, convolution, scaled_dot_product_attention) "
        "at 2 FLOPs per multiply-add, attention products included; misses every elementwise op, "
        "normalisation, activation, softmax, interpolation and grid_sample"
    ),
}

#: The name under which ``_nn_mha_attention`` is registered with transformers' attention interface.
MHA_ATTENTION = "dfine_bench_nn_mha"


def _nn_mha_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    **_kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention computed with the ops ``nn.MultiheadAttention`` uses when it returns weights.

    A transformers attention function (query/key/value ``[batch, heads, tokens, head_dim]``):
    scaled QK^T by ``torch.bmm`` (``torch.baddbmm`` onto the mask when there is one), softmax,
    AV by ``torch.bmm``, as ``F.multi_head_attention_forward`` does (torch 2.x). Same result as
    the eager attention; it exists so calflops sees exactly what it sees in the official models.
    """
    b, h, lq, d = query.shape
    lk = key.shape[-2]
    q = (query * (d**-0.5 if scaling is None else scaling)).reshape(b * h, lq, d)
    k = key.reshape(b * h, lk, d)
    v = value.reshape(b * h, lk, value.shape[-1])
    if attention_mask is None:
        weights = torch.bmm(q, k.transpose(1, 2))
    else:
        mask = attention_mask
        if mask.dtype == torch.bool:  # True = attend (transformers' convention)
            mask = torch.zeros(mask.shape, dtype=q.dtype, device=q.device).masked_fill(
                ~mask, torch.finfo(q.dtype).min
            )
        mask = torch.broadcast_to(mask.to(q.dtype), (b, h, mask.shape[-2], lk)).reshape(b * h, -1, lk)
        weights = torch.baddbmm(mask, q, k.transpose(1, 2))
    weights = F.softmax(weights, dim=-1)
    weights = F.dropout(weights, p=dropout, training=module.training)
    out = torch.bmm(weights, v).reshape(b, h, lq, -1).transpose(1, 2).contiguous()
    return out, weights.reshape(b, h, lq, lk)


def _register_mha_attention() -> str:
    """Register ``_nn_mha_attention`` (and the eager mask format) with transformers; its name, or
    ``"eager"`` where this transformers has no attention registry."""
    try:
        from transformers import AttentionInterface, AttentionMaskInterface
        from transformers.masking_utils import eager_mask
    except ImportError:
        return "eager"
    AttentionInterface.register(MHA_ATTENTION, _nn_mha_attention)
    AttentionMaskInterface.register(MHA_ATTENTION, eager_mask)
    return MHA_ATTENTION


@contextlib.contextmanager
def _mha_attention(model: torch.nn.Module) -> Iterator[str | None]:
    """Hugging Face models: count with ``_nn_mha_attention`` (the ops of the official models'
    ``nn.MultiheadAttention``), restoring each config's attention choice afterwards.

    Yields the implementation set, or None for a model without a transformers config (left as it
    is). Models that do not dispatch through transformers' attention interface are unaffected."""
    configs = {}
    for m in model.modules():
        config = getattr(m, "config", None)
        if config is not None and hasattr(config, "_attn_implementation_internal"):
            configs[id(config)] = config
    if not configs:
        yield None
        return
    implementation = _register_mha_attention()
    saved = {k: c._attn_implementation_internal for k, c in configs.items()}
    try:
        for c in configs.values():
            c._attn_implementation_internal = implementation
        yield implementation
    finally:
        for k, c in configs.items():
            c._attn_implementation_internal = saved[k]


def _call_functional(name: str, *args: Any, **kwargs: Any) -> Any:
    return getattr(F, name)(*args, **kwargs)


@contextlib.contextmanager
def _late_bound_functionals(model: torch.nn.Module) -> Iterator[None]:
    """Make modules that stored a ``torch.nn.functional`` function look it up at call time.

    calflops replaces ``F.gelu`` and friends in the ``torch.nn.functional`` namespace; a reference
    taken earlier (transformers' ``GELUActivation`` keeps ``self.act = nn.functional.gelu``) calls
    the original and is not counted, while the official ``nn.GELU`` module is."""
    saved: list[tuple[torch.nn.Module, str, Any]] = []
    for m in model.modules():
        for attr, value in list(vars(m).items()):
            name = getattr(value, "__name__", None)
            if isinstance(name, str) and callable(value) and getattr(F, name, None) is value:
                saved.append((m, attr, value))
                setattr(m, attr, functools.partial(_call_functional, name))
    try:
        yield
    finally:
        for m, attr, value in saved:
            setattr(m, attr, value)


#: What calflops replaces while it counts (``calflops.pytorch_ops``): functionals and a few torch /
#: Tensor functions. ``_calflops_guard`` puts back any it leaves behind.
_CALFLOPS_TORCH_NAMES = ("matmul", "addmm", "mul", "add", "einsum", "baddbmm", "bmm", "mm")
_CALFLOPS_MODULE_ATTRS = (
    "__pre_hook_handle__",
    "__post_hook_handle__",
    "__flops_handle__",
    "__flops__",
    "__macs__",
    "__params__",
)


@contextlib.contextmanager
def _calflops_guard(module: torch.nn.Module) -> Iterator[None]:
    """Undo whatever calflops leaves patched or hooked when its forward raises.

    ``calculate_flops`` restores torch only when it finishes: an exception in the counted forward
    would leave ``F.linear``, ``torch.matmul``... wrapped for the rest of the process (every later
    count doubled) and its hooks on the model's modules."""
    saved_f = {k: v for k, v in vars(F).items() if callable(v)}
    saved_torch = {k: getattr(torch, k) for k in _CALFLOPS_TORCH_NAMES if hasattr(torch, k)}
    saved_tensor = {k: getattr(torch.Tensor, k) for k in _CALFLOPS_TORCH_NAMES if hasattr(torch.Tensor, k)}
    try:
        yield
    finally:
        _restore_attributes(F, saved_f)
        _restore_attributes(torch, saved_torch)
        _restore_attributes(torch.Tensor, saved_tensor)
        _remove_calflops_hooks(module)


def _restore_attributes(owner: Any, saved: dict[str, Any]) -> None:
    """Set back each of ``saved`` on ``owner`` where something else has replaced it."""
    for name, value in saved.items():
        if getattr(owner, name, None) is not value:
            setattr(owner, name, value)


def _remove_calflops_hooks(module: torch.nn.Module) -> None:
    """Drop the counters calflops stores on each submodule, removing the hooks among them."""
    for m in module.modules():
        for attr in _CALFLOPS_MODULE_ATTRS:
            handle = m.__dict__.pop(attr, None)
            if attr.endswith("_handle__") and handle is not None:
                handle.remove()


def calflops_flops(module: torch.nn.Module, example: torch.Tensor) -> float:
    """FLOPs of ``module(example)`` as calflops counts them (what the paper's get_info.py prints)."""
    from calflops import calculate_flops

    with warnings.catch_warnings(), contextlib.redirect_stdout(None), _calflops_guard(module):
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
    # The counter's module tracker hooks every input that requires grad; a view of a parameter
    # taken under no_grad (Deformable-DETR splits its query embedding) requires grad yet has no
    # grad_fn, which the hook rejects. Counting needs no grad at all: freeze the parameters.
    trainable = [p for p in module.parameters() if p.requires_grad]
    try:
        for p in trainable:
            p.requires_grad_(False)
        with counter, torch.no_grad():
            module(example)
    finally:
        for p in trainable:
            p.requires_grad_(True)
    counts = counter.get_flop_counts()
    by_op = {str(op): float(n) for op, n in counts.get("Global", {}).items()}
    by_module = {k: float(sum(v.values())) for k, v in counts.items() if k != "Global"}
    return float(counter.get_total_flops()), by_op, by_module


@contextlib.contextmanager
def _first_inputs(modules: dict[str, torch.nn.Module]) -> Iterator[dict[str, torch.Tensor]]:
    """The first positional input each of ``modules`` receives inside the block, by name."""
    seen: dict[str, torch.Tensor] = {}

    def remember(name: str) -> Callable[[torch.nn.Module, tuple[Any, ...]], None]:
        def hook(_module: torch.nn.Module, args: tuple[Any, ...]) -> None:  # must return None
            if args and isinstance(args[0], torch.Tensor):
                seen.setdefault(name, args[0].detach())

        return hook

    hooks = [m.register_forward_pre_hook(remember(n)) for n, m in modules.items()]
    try:
        yield seen
    finally:
        for h in hooks:
            h.remove()


def _topk_head_correction(
    heads: dict[str, torch.nn.Module], inputs: dict[str, torch.Tensor], q: int | None, *, with_calflops: bool
) -> tuple[float, float | None, list[str]]:
    """FLOPs the HF ports add by running ``enc_bbox_head`` on all tokens rather than the top-k:
    (by torch's counter, by calflops or None, notes).

    Each head is counted again by each counter on the tokens it saw and on ``q`` of them (a
    token-wise MLP costs the same on any ``q`` tokens); the difference is what the official code,
    which selects the top ``q`` tokens first, never computes."""
    torch_extra, cal_extra = 0.0, (0.0 if with_calflops else None)
    notes: list[str] = []
    if q is None:
        return torch_extra, cal_extra, notes
    for name, head in heads.items():
        x = inputs.get(name)
        if x is None or x.dim() < 2 or x.shape[-2] <= q:
            continue
        n_tok, top = int(x.shape[-2]), x[..., :q, :]
        t_extra = torch_flops(head, x)[0] - torch_flops(head, top)[0]
        torch_extra += t_extra
        c_extra = None
        if cal_extra is not None:
            with torch.no_grad():
                c_extra = calflops_flops(head, x) - calflops_flops(head, top)
            cal_extra += c_extra
        shown = t_extra if c_extra is None else c_extra
        notes.append(
            f"{name} runs on all {n_tok} encoder tokens in this port but on the top {q} in the official "
            f"model: {shown / 1e9:.3f} GFLOPs not counted"
        )
    return torch_extra, cal_extra, notes
