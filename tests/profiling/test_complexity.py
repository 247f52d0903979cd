"""Params and GFLOPs: the deploy-style parameter count and the two FLOP counters."""

from __future__ import annotations

import pytest
import torch
from profiling_toys import NUM_CLASSES, NUM_QUERIES, ToyAdapter, inference_params

from dfine_bench.profiling.complexity import COUNTER_NOTES, _record_ran, complexity, used_parameters


def _matmul_flops(adapter: ToyAdapter, h: int, w: int) -> int:
    """2 FLOPs per multiply-add of every conv and linear the toy's inference forward runs."""
    total, shape = 0, (3, h, w)
    for m in adapter.model.backbone:
        if isinstance(m, torch.nn.Conv2d):
            ho = (shape[1] + 2 * m.padding[0] - m.kernel_size[0]) // m.stride[0] + 1
            wo = (shape[2] + 2 * m.padding[1] - m.kernel_size[1]) // m.stride[1] + 1
            total += 2 * m.out_channels * ho * wo * m.in_channels * m.kernel_size[0] * m.kernel_size[1]
            shape = (m.out_channels, ho, wo)
    for lin in (adapter.model.encoder, adapter.model.class_head, adapter.model.box_head):
        total += 2 * lin.in_features * lin.out_features
    return total


def test_params_leave_out_what_inference_never_runs(toy: ToyAdapter) -> None:
    out = complexity(toy, (64, 64))
    assert out.task == "complexity" and out.status == "ok"
    assert out.details["params_counted"] == inference_params(toy)
    assert out.details["params_total"] == toy.num_parameters()
    assert out.details["modules_not_run"] == ["aux_head"]
    assert out.metrics["params"].value == inference_params(toy) / 1e6
    assert out.metrics["params"].unit == "M"
    assert out.details["params_by_part"]["backbone"] == sum(
        p.numel() for p in toy.model.backbone.parameters()
    )
    assert any("never run at inference" in n for n in out.notes)


def test_torch_counter_matches_the_conv_and_linear_arithmetic(toy: ToyAdapter) -> None:
    for h, w in ((64, 64), (96, 128)):
        out = complexity(toy, (h, w))
        assert out.details["flops_torch"] == _matmul_flops(toy, h, w)
        assert out.metrics["gflops_torch"].value == _matmul_flops(toy, h, w) / 1e9
        assert out.details["input_shape"] == [1, 3, h, w]


def test_calflops_also_counts_elementwise_work(toy: ToyAdapter) -> None:
    out = complexity(toy, (64, 64))
    cal, tor = out.details["flops_calflops"], out.details["flops_torch"]
    # calflops adds biases, batch norm, relu and pooling on top of the multiply-adds
    assert tor < cal < 1.2 * tor
    assert out.metrics["gflops"].value == cal / 1e9
    assert set(out.details["counter_notes"]) == set(COUNTER_NOTES)
    assert "grid_sample" in out.details["counter_notes"]["calflops"]


def test_tied_parameters_are_counted_once() -> None:
    shared = torch.nn.Linear(4, 4)

    class Tied(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = shared, shared
            self.c = torch.nn.Linear(4, 4)  # unused

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.b(x)

    m = Tied()
    with _record_ran(m) as ran:
        m(torch.zeros(1, 4))
    used, unused = used_parameters(m, ran)
    assert used == 20
    assert unused == ["c"]


def test_complexity_restores_training_mode() -> None:
    toy = ToyAdapter()
    toy.model.train()
    complexity(toy, (64, 64), with_calflops=False)
    assert toy.model.training
    assert toy.model.class_head.out_features == NUM_QUERIES * NUM_CLASSES


class _ConvNorm(torch.nn.Module):
    def __init__(self, cin: int, cout: int, k: int) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(cin, cout, k, 1, padding=k // 2, bias=False)
        self.norm = torch.nn.BatchNorm2d(cout)
        self.activation = torch.nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(self.norm(self.conv(x)))


class ToyRepVggBlock(torch.nn.Module):
    """The RepVGG block of the HF RT-DETR/D-FINE encoders: act(conv3x3+BN (x) + conv1x1+BN (x))."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv1, self.conv2 = _ConvNorm(c, c, 3), _ConvNorm(c, c, 1)
        self.activation = torch.nn.SiLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(self.conv1(x) + self.conv2(x))


def test_repvgg_blocks_are_fused_like_deploy_and_compute_the_same() -> None:
    from dfine_bench.profiling.deploy_view import FusedRepVgg, deploy_copy

    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1), ToyRepVggBlock(8), ToyRepVggBlock(8)
    ).eval()
    for m in model.modules():  # non-trivial batch-norm statistics, so the folding is exercised
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)
    fused, names = deploy_copy(model)
    assert names == ["1", "2"]
    assert isinstance(fused[1], FusedRepVgg) and isinstance(model[1], ToyRepVggBlock)  # original untouched
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(fused(x), model(x), atol=1e-5, rtol=1e-5)
    # one 3x3 conv with bias replaces 3x3 + 1x1 convs and two batch norms
    assert sum(p.numel() for p in fused[1].parameters()) == 8 * 8 * 9 + 8


# --- what calflops sees: the official models' nn.MultiheadAttention, folds and functionals ---

#: FLOPs the official tools/benchmark/get_info.py prints for D-FINE-S (Peterande/D-FINE at 4a1f73a,
#: random init, deploy(), calflops 0.3.2 at 1x3x640x640, torch 2.13 on CPU; paper Table 7: 25.2).
OFFICIAL_DFINE_S_FLOPS = 25_171_350_256


class _HFStyleAttention(torch.nn.Module):
    """q/k/v/o projections around a transformers attention function, like the HF DETR ports."""

    def __init__(self, mha: torch.nn.MultiheadAttention) -> None:
        super().__init__()
        e, self.heads = mha.embed_dim, mha.num_heads
        self.q_proj, self.k_proj, self.v_proj, self.o_proj = (torch.nn.Linear(e, e) for _ in range(4))
        with torch.no_grad():  # the same weights as ``mha``
            for proj, w, b in zip(
                (self.q_proj, self.k_proj, self.v_proj),
                mha.in_proj_weight.chunk(3),
                mha.in_proj_bias.chunk(3),
                strict=True,
            ):
                proj.weight.copy_(w)
                proj.bias.copy_(b)
            self.o_proj.weight.copy_(mha.out_proj.weight)
            self.o_proj.bias.copy_(mha.out_proj.bias)

    def forward(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None
    ) -> torch.Tensor:
        from dfine_bench.profiling.flop_counting import _nn_mha_attention

        b, lq, e = q.shape

        def split(x: torch.Tensor) -> torch.Tensor:
            return x.view(b, -1, self.heads, e // self.heads).transpose(1, 2)

        out, _ = _nn_mha_attention(
            self, split(self.q_proj(q)), split(self.k_proj(k)), split(self.v_proj(v)), mask
        )
        return self.o_proj(out.reshape(b, lq, e))


class _SelfAttnWithPos(torch.nn.Module):
    """D-FINE's use of attention: q = k = x + pos, v = x (so no fused fast path), optional key mask."""

    def __init__(self, attn: torch.nn.Module, masked: bool) -> None:
        super().__init__()
        self.attn, self.masked = attn, masked

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        qk = x + 1.0
        pad = torch.zeros(x.shape[0], x.shape[1], dtype=torch.bool)
        pad[:, -3:] = True  # the last 3 keys are padding
        if isinstance(self.attn, torch.nn.MultiheadAttention):
            return self.attn(qk, qk, x, key_padding_mask=pad if self.masked else None)[0]
        mask = torch.zeros(pad.shape, dtype=x.dtype).masked_fill(pad, torch.finfo(x.dtype).min)[:, None, None]
        return self.attn(qk, qk, x, mask if self.masked else None)


def test_attention_counts_like_nn_multihead_attention_under_calflops() -> None:
    """The official models' nn.MultiheadAttention computes QK^T and AV with torch.bmm, which calflops
    does not patch (QK^T with torch.baddbmm, which it does, when there is a mask); the HF eager
    attention's torch.matmul is counted. ``_nn_mha_attention`` makes calflops see what it sees in
    nn.MultiheadAttention, with the same outputs."""
    from dfine_bench.profiling.complexity import calflops_flops

    torch.manual_seed(0)
    mha = torch.nn.MultiheadAttention(32, 4, batch_first=True).eval()
    x = torch.randn(2, 20, 32)
    for masked in (False, True):
        official, ours = (
            _SelfAttnWithPos(mha, masked).eval(),
            _SelfAttnWithPos(_HFStyleAttention(mha), masked).eval(),
        )
        with torch.no_grad():
            torch.testing.assert_close(ours(x), official(x), atol=1e-5, rtol=1e-5)
            assert calflops_flops(ours, x) == calflops_flops(official, x)
    projections = 4 * 2 * 2 * 20 * 32 * 32  # q, k, v, out: 2 FLOPs per multiply-add, batch 2
    softmax = 2 * 4 * 20 * 20
    with torch.no_grad():
        assert (
            calflops_flops(_SelfAttnWithPos(mha, False).eval(), x) == projections + softmax
        )  # no QK^T, no AV


def test_attention_is_switched_for_hf_configs_and_restored() -> None:
    from types import SimpleNamespace

    from dfine_bench.profiling.flop_counting import MHA_ATTENTION, _mha_attention

    model = torch.nn.Linear(2, 2)
    model.config = SimpleNamespace(_attn_implementation_internal="sdpa")  # type: ignore[assignment]
    with _mha_attention(model) as implementation:
        assert implementation == MHA_ATTENTION == model.config._attn_implementation_internal
    assert model.config._attn_implementation_internal == "sdpa"
    with _mha_attention(torch.nn.Linear(2, 2)) as implementation:  # not a transformers model
        assert implementation is None


def test_functionals_captured_before_calflops_patches_are_counted() -> None:
    """transformers' GELUActivation keeps ``nn.functional.gelu`` from construction: calflops' patch
    of ``F.gelu`` misses it unless it is looked up at call time (the official nn.GELU is counted)."""
    from dfine_bench.profiling.complexity import _late_bound_functionals, calflops_flops

    class CapturedGelu(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = torch.nn.Linear(7, 7)
            self.act = torch.nn.functional.gelu

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.act(self.linear(x))

    m, x = CapturedGelu(), torch.randn(3, 7)
    linear = 2 * 3 * 7 * 7
    assert calflops_flops(m, x) == linear
    with _late_bound_functionals(m):
        assert calflops_flops(m, x) == linear + x.numel()
    assert m.act is torch.nn.functional.gelu


def test_a_failing_calflops_count_leaves_torch_unpatched() -> None:
    """calflops restores torch only when its forward returns; one failure must not double later counts."""
    from dfine_bench.profiling.complexity import calflops_flops

    class Fails(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = torch.nn.Linear(4, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.linear(x)
            raise RuntimeError("boom")

    linear, x = torch.nn.functional.linear, torch.zeros(1, 4)
    with pytest.raises(RuntimeError):
        calflops_flops(Fails(), x)
    assert torch.nn.functional.linear is linear
    assert calflops_flops(torch.nn.Linear(4, 4), x) == 2 * 4 * 4


class ToyConvNormLayer(_ConvNorm):
    """The HF D-FINE/RT-DETR encoder's conv+BN(+activation) layer (``*ConvNormLayer``)."""

    def __init__(self, cin: int, cout: int, k: int) -> None:
        super().__init__(cin, cout, k)
        self.activation = torch.nn.SiLU()


class ToyHybridEncoder(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lateral = ToyConvNormLayer(8, 8, 1)
        self.block = ToyRepVggBlock(8)
        self.down = ToyConvNormLayer(8, 8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(self.block(self.lateral(x)))


class ToyHFDetector(torch.nn.Module):
    def __init__(self, model_type: str) -> None:
        from types import SimpleNamespace

        super().__init__()
        self.config = SimpleNamespace(model_type=model_type)
        self.input_proj = ToyConvNormLayer(3, 8, 1)  # outside the encoder: the official keeps its BN
        self.encoder = ToyHybridEncoder()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(self.input_proj(x))


def test_dfine_encoder_conv_norm_layers_are_folded_like_deploy() -> None:
    """D-FINE's deploy() folds every conv+BN of its hybrid encoder (ConvNormLayer_fuse) into one
    conv with bias, which calflops counts at 1 FLOP per output element instead of BN's 2."""
    from dfine_bench.profiling.complexity import calflops_flops
    from dfine_bench.profiling.deploy_view import FusedConvNorm, FusedRepVgg, deploy_copy

    torch.manual_seed(0)
    model = ToyHFDetector("d_fine").eval()
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
    fused, names = deploy_copy(model)
    assert names == ["encoder.block", "encoder.lateral", "encoder.down"]
    assert isinstance(fused.encoder.block, FusedRepVgg) and isinstance(fused.encoder.lateral, FusedConvNorm)
    assert isinstance(fused.input_proj, ToyConvNormLayer) and isinstance(
        model.encoder.lateral, ToyConvNormLayer
    )
    x = torch.randn(1, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(fused(x), model(x), atol=1e-5, rtol=1e-5)
    rtdetr, names = deploy_copy(ToyHFDetector("rt_detr").eval())  # RT-DETR's deploy() keeps these BNs
    assert names == ["encoder.block"] and isinstance(rtdetr.encoder.lateral, ToyConvNormLayer)
    with torch.no_grad():  # lateral and down: a BN (2 FLOPs per element) becomes a bias (1 per element)
        assert calflops_flops(rtdetr, x) - calflops_flops(fused, x) == 2 * 8 * 16 * 16


def test_torch_counter_accepts_views_of_parameters_taken_under_no_grad() -> None:
    """Deformable-DETR splits its query embedding inside the forward; under no_grad that view
    requires grad without a grad_fn, which the counter's module tracker used to reject."""
    from dfine_bench.profiling.complexity import torch_flops

    class SplitsParameter(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = torch.nn.Embedding(4, 6)
            self.head = torch.nn.Linear(3, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            a, _b = torch.split(self.embed.weight, 3, dim=1)
            return self.head(a) + x

    m = SplitsParameter()
    total, _ops, _mods = torch_flops(m, torch.zeros(4, 2))
    assert total == 2 * 4 * 3 * 2
    assert all(p.requires_grad for p in m.parameters())


@pytest.mark.slow
def test_dfine_s_gflops_reproduce_the_official_get_info() -> None:
    """D-FINE-S at 640 (~10 s): calflops on our deploy view gives what the official get_info.py
    gives (25.17 GFLOPs; paper 25.2). The eager-attention count was 25.63 (rounds to 26)."""
    from dfine_bench.adapters.registry import list_models

    if "dfine_s" not in list_models():
        pytest.skip("dfine_s is not registered")
    from dfine_bench.adapters import create_model

    torch.set_num_threads(2)
    out = complexity(create_model("dfine_s", weights="random-init"), (640, 640))
    gflops = out.metrics["gflops"].value
    assert abs(out.details["flops_calflops"] - OFFICIAL_DFINE_S_FLOPS) < 1e-5 * OFFICIAL_DFINE_S_FLOPS
    assert round(gflops, 1) == 25.2 and round(gflops) == 25
    assert round(out.metrics["params"].value, 1) == 10.2
    assert out.details["attention_implementation"] == "dfine_bench_nn_mha"
    # the torch counter sees the attention products calflops does not, and no elementwise work
    assert out.metrics["gflops_torch"].value > gflops
