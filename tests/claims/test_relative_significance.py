"""An AP ordering ("X beats Y") passes only when its paired bootstrap interval excludes zero."""

from __future__ import annotations

from test_claims import _ap_pair, results_for, with_bootstrap

CLAIM = "dfine_l_more_ap_than_rtdetr_r50"  # D-FINE-L more accurate than RT-DETR-R50


def test_a_clear_gain_passes_with_its_interval() -> None:
    (res,) = results_for(CLAIM, _ap_pair(54.0, 53.1))
    assert res.verdict == "pass"
    assert "paired bootstrap over images" in res.reason and "p=" in res.reason


def test_a_gain_inside_the_noise_is_not_significant() -> None:
    pair = _ap_pair(54.0, 53.9)
    with_bootstrap(*pair, spread=1.0)  # replicates spread ~1 AP: 0.1 AP is noise
    (res,) = results_for(CLAIM, pair)
    assert res.verdict == "not significant"
    assert res.reason.startswith("not significant on these images")
    assert res.measured is not None and abs(res.measured - 0.1) < 1e-9  # the measured ordering still shown


def test_a_clear_loss_fails() -> None:
    (res,) = results_for(CLAIM, _ap_pair(52.0, 53.1))
    assert res.verdict == "fail"


def test_records_without_intervals_cannot_pass() -> None:
    pair = _ap_pair(54.0, 53.1)
    del pair[1].details["bootstrap"]
    (res,) = results_for(CLAIM, pair)
    assert res.verdict == "not comparable" and "has no AP bootstrap" in res.reason


def test_records_on_other_images_are_not_paired() -> None:
    pair = _ap_pair(54.0, 53.1)
    pair[1].details["bootstrap"]["image_ids_sha256"] = "j" * 64
    (res,) = results_for(CLAIM, pair)
    assert res.verdict == "not comparable" and "different image sets" in res.reason
