"""The model registry: entry-point plug-ins, close matches for unknown names."""

from __future__ import annotations

import pytest

from dfine_bench.adapters import create_model, list_models
from dfine_bench.adapters.registry import get_registered
from dfine_bench.errors import UnknownNameError


def test_third_party_adapter_registers_through_entry_point(plugin_site) -> None:
    assert {"toy_det", "toy_det_slow"} <= set(list_models())
    assert get_registered("toy_det").origin == "toy_detectors"
    adapter = create_model("toy_det", weights="random-init", seed=3)
    assert adapter.weights.is_random_init and adapter.weights.seed == 3
    assert not adapter.model.training


def test_entry_point_models_appear_in_list_command(plugin_site, capsys) -> None:
    from dfine_bench.cli import main

    assert main(["list", "models", "--no-params"]) == 0
    assert "toy_det" in capsys.readouterr().out


def test_unknown_model_lists_close_matches(plugin_site) -> None:
    with pytest.raises(UnknownNameError) as info:
        create_model("toy_dte")
    message = str(info.value)
    assert "toy_dte" in message and "Did you mean: toy_det" in message


def test_unknown_model_in_run_is_one_line_exit_2(plugin_site, cli_env, capsys) -> None:
    from dfine_bench.cli import main

    assert main(["run", "model=toy_dte"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "toy_det" in err
