"""`dfine-bench list`: family names as `compare --family` reads them, and what its params count is."""

from __future__ import annotations

import pytest

from dfine_bench.cli import list_cmd, main


def test_family_ignores_case_and_dashes_like_compare(plugin_site, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "models", "--family", "d-fine", "--no-params"]) == 0
    out = capsys.readouterr().out
    assert "dfine_n" in out and "dfine_x" in out and "(none)" not in out
    assert "rtdetr_r18" not in out and "deim_dfine_n" not in out
    assert main(["list", "models", "--family", "RT-DETR", "--no-params"]) == 0
    out = capsys.readouterr().out
    assert "rtdetr_r18" in out and "rtdetrv2_r18" not in out and "dfine_n" not in out


def test_unknown_family_is_an_error_listing_the_families(
    plugin_site, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["list", "models", "--family", "dfin", "--no-params"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "unknown model family 'dfin'" in err and "Did you mean: dfine" in err
    assert "Available:" in err and "rtdetr" in err and "toy" in err


def test_params_column_is_named_total_and_explained(plugin_site, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "models", "--family", "toy"]) == 0
    out = capsys.readouterr().out
    assert "params_total_m" in out and "params_m " not in out
    assert list_cmd.PARAMS_NOTE in out
    frame = list_cmd.models_frame("toy")
    assert set(frame["name"]) >= {"toy_det", "toy_det_b"} and frame["params_total_m"].notna().all()
    # without counts there is nothing to explain
    assert main(["list", "models", "--family", "toy", "--no-params"]) == 0
    assert list_cmd.PARAMS_NOTE not in capsys.readouterr().out


def test_every_kind_is_documented() -> None:
    assert list_cmd.__doc__ is not None
    for kind in list_cmd.KINDS:
        assert kind in list_cmd.__doc__, kind
