"""The progress bar (tqdm): auto/on/off, counts, resumed start, the postfix the trainer sets."""

from __future__ import annotations

import io

from dfine_bench.utils.progress import Progress, progress_enabled


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_draws_counts_unit_and_postfix() -> None:
    out = io.StringIO()
    with Progress(10, "dfine_n eval", unit="img", enabled="on", stream=out, min_interval_s=0) as bar:
        bar.update(3)
        bar.postfix = "loss 0.412"
        bar.update(2)
    text = out.getvalue()
    assert "dfine_n eval" in text and "5/10" in text and "img" in text and "loss 0.412" in text
    assert bar.done == 5


def test_resumed_loop_starts_at_initial() -> None:
    out = io.StringIO()
    with Progress(8, "train", unit="step", enabled=True, stream=out, initial=6, min_interval_s=0) as bar:
        bar.update(2)
    assert bar.done == 8 and "8/8" in out.getvalue()


def test_off_and_auto_without_terminal_are_silent() -> None:
    for setting in ("off", "auto", False):
        out = io.StringIO()
        with Progress(4, "quiet", enabled=setting, stream=out) as bar:
            bar.update(4)
            bar.postfix = "x"
        assert out.getvalue() == "" and bar.done == 4


def test_auto_follows_the_terminal() -> None:
    assert progress_enabled("auto", _Tty()) and not progress_enabled("auto", io.StringIO())
    assert progress_enabled("on", io.StringIO()) and not progress_enabled("off", _Tty())
    out = _Tty()
    with Progress(None, "profile dfine_n", unit="task", stream=out, min_interval_s=0) as bar:
        bar.update()
    assert "profile dfine_n" in out.getvalue()  # no total: a counter, no ETA
