"""``params`` is exactly what the official ``tools/benchmark/get_info.py`` prints (issue 15.12),
and the other counts carry their own names."""

from __future__ import annotations

import pytest
import torch

from dfine_bench.profiling.complexity import complexity
from dfine_bench.records.metrics import PARAMS_CONVENTION

pytestmark = pytest.mark.slow

#: ``sum(p.numel() for p in model.parameters())`` of Peterande/D-FINE's ``cfg.model.deploy()``, as
#: get_info.py prints it for dfine_hgnetv2_{n,s,m,l,x}_coco.yml (issue 15.12).
OFFICIAL_GET_INFO = {
    "dfine_n": 3_753_799,
    "dfine_s": 10_237_491,
    "dfine_m": 19_248_189,
    "dfine_l": 30_724_195,
    "dfine_x": 61_601_635,
}


@pytest.mark.parametrize("name", list(OFFICIAL_GET_INFO))
def test_params_equal_the_official_get_info_count(name: str) -> None:
    """Probe: D-FINE-N's record said params 3,743,431 (what runs, without the denoising
    embedding the deploy model keeps) beside num_parameters 3,782,693, both called "params"."""
    from dfine_bench.adapters import create_model

    torch.set_num_threads(1)
    adapter = create_model(name, weights="random-init")
    # which modules run does not depend on the input size; 320x320 keeps the forward cheap
    out = complexity(adapter, (320, 320), with_calflops=False)
    assert out.details["params_counted"] == OFFICIAL_GET_INFO[name]
    assert round(out.metrics["params"].value * 1e6) == OFFICIAL_GET_INFO[name]
    assert out.details["params_convention"] == PARAMS_CONVENTION and "get_info.py" in PARAMS_CONVENTION
    # every other count under its own name
    assert (
        round(out.metrics["params_total"].value * 1e6) == adapter.num_parameters() > OFFICIAL_GET_INFO[name]
    )
    assert out.details["params_run"] < OFFICIAL_GET_INFO[name]
    assert out.details["params_kept_not_run"] == OFFICIAL_GET_INFO[name] - out.details["params_run"]
