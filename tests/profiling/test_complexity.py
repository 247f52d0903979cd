"""Params and GFLOPs: the deploy-style parameter count and the two FLOP counters."""

from __future__ import annotations

import torch
from conftest import NUM_CLASSES, NUM_QUERIES, ToyAdapter, inference_params

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
