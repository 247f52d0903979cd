"""The typed config inside: every range or type error fails at start-up, one line naming the key.

The CLI probes are issue 15's defect 11: each used to fail late (after the evaluation ran), be
recorded as given though something else ran, or be ignored. Now each exits 2 before any model is
built or any run folder is made.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from dfine_bench.cli import main
from dfine_bench.config.loading import compose_config, load_settings
from dfine_bench.config.settings import ProfileSettings, RunSettings
from dfine_bench.errors import ConfigError

TOY_SUITES = Path(__file__).resolve().parents[1] / "fixtures" / "suites"
QUICK = ["--suites-dir", str(TOY_SUITES), "suite=toy_quick", "suite.models=[toy_det]"]


def _settings(*overrides: str, dirs: tuple[Path, ...] = (), hardware: bool = True) -> RunSettings:
    return load_settings(
        compose_config(list(overrides), dirs), list(overrides), dirs, check_hardware=hardware
    )


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("profiling.warmup=-1", "profiling.warmup"),
        ("profiling.iters=0", "profiling.iters"),
        ("profiling.batch_sizes=[0]", "profiling.batch_sizes"),
        ("profiling.batch_sizes=[]", "profiling.batch_sizes"),
        ("profiling.threads=0", "profiling.threads"),
        ("profiling.flops_input_size=[0,640]", "profiling.flops_input_size"),
        ("evaluation.batch_size=0", "evaluation.batch_size"),
        ("evaluation.batch_size=-2", "evaluation.batch_size"),
        ("evaluation.max_failed_fraction=2", "evaluation.max_failed_fraction"),
        ("suite.input_size=[0,0]", "suite.input_size"),
        ("dataset.subset=0", "dataset.subset"),
        ("backend.dtype=int4", "backend.dtype"),
        ("output.progress=sometimes", "output.progress"),
        ("seed=-1", "seed"),
    ],
)
def test_bad_values_fail_at_start_up_naming_the_key(
    plugin_site, cli_env: Path, capsys: pytest.CaptureFixture[str], override: str, key: str
) -> None:
    assert main(["run", *QUICK, override]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert key in err and "Traceback" not in err
    assert not (cli_env / "results").exists(), "nothing may run before the config is checked"


def test_model_input_size_and_num_classes_are_checked(plugin_site, cli_env: Path, capsys) -> None:
    for override, key in (
        ("model.input_size=[0,0]", "model.input_size"),
        ("model.num_classes=0", "model.num_classes"),
    ):
        assert main(["run", *QUICK[:3], "model=toy_det", override]) == 2
        err = capsys.readouterr().err.strip()
        assert key in err and len(err.splitlines()) == 1, err
    assert not (cli_env / "results").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_is_one_line(plugin_site, cli_env: Path, capsys) -> None:
    assert main(["run", *QUICK, "device=cuda"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "device=cuda" in err and "CUDA is not available" in err
    assert not (cli_env / "results").exists()


def test_profile_settings_are_frozen_and_checked_when_built() -> None:
    s = ProfileSettings(warmup=0, iters=1, batch_sizes=(1, 2))
    with pytest.raises(AttributeError):
        s.warmup = 3  # type: ignore[misc]
    with pytest.raises(ConfigError, match=r"^profiling\.warmup=-1: must be >= 0$"):
        replace(s, warmup=-1)
    with pytest.raises(ConfigError, match=r"profiling\.timed"):
        ProfileSettings(timed="wall-clock")


def test_settings_are_plain_values() -> None:
    s = _settings("suite=default")
    assert s.suite.models == ("dfine_fixture", "dfine_n", "dfine_s", "rtdetr_r18")
    assert [b.key for b in s.backends] == ["eager-fp32", "onnxruntime-fp32"]
    assert s.profile.batch_sizes == (1, 2, 4) and isinstance(s.profile.timed, str)
    assert s.evaluation.engine == "faster_coco_eval" and type(s.evaluation.engine) is str


def test_the_paper_protocol_fixes_its_settings() -> None:
    s = _settings(
        "suite=paper_speed", "profiling.batch_sizes=[1,2,4]", "profiling.timed=end_to_end", hardware=False
    )
    assert s.profile.batch_sizes == (1,) and s.profile.timed == "model+postprocess"  # the deploy graph
    assert [b.key for b in s.backends] == ["tensorrt-fp16"]


def test_seed_seeds_weights_and_generated_data() -> None:
    s = _settings("seed=5", "weights=random_init", "dataset=generated")
    assert (s.seed, s.weights.seed, s.dataset.seed, s.profile.seed) == (5, 5, 5, 5)
    own = _settings("seed=5", "weights.seed=2", "dataset=generated")
    assert (own.weights.seed, own.dataset.seed) == (2, 5)


def test_suite_backends_resolve_through_hydra_with_user_folders(tmp_path: Path) -> None:
    """A backend file from --suites-dir works in suite.backends, as it does as backend=<name>."""
    (tmp_path / "backend").mkdir()
    (tmp_path / "backend" / "loose.yaml").write_text("name: eager\natol: 0.5\n")
    s = _settings("suite.backends=[loose,onnxruntime]", dirs=(tmp_path,))
    assert [(b.key, b.atol) for b in s.backends] == [("eager-fp32", 0.5), ("onnxruntime-fp32", 0.01)]
    assert [b.atol for b in _settings("backend=loose", dirs=(tmp_path,)).backends] == [0.5]
    with pytest.raises(ConfigError, match=r"suite\.backends: unknown backend 'nope'"):
        _settings("suite.backends=[nope]", dirs=(tmp_path,))


def test_a_run_composes_its_config_once(plugin_site, cli_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 19: `run` composed the config 3 times (validation, then settings twice): now the run
    config once, plus one composition per other backend the suite lists (its group file)."""
    import dfine_bench.config.loading as loading

    calls: list[list[str]] = []
    real = loading.compose

    def counting(*args, **kwargs):
        calls.append(list(kwargs.get("overrides", [])))
        return real(*args, **kwargs)

    monkeypatch.setattr(loading, "compose", counting)
    overrides = [
        *QUICK,
        "suite.backends=[eager,onnxruntime]",
        "profiling.enabled=false",
        "suite.report=false",
    ]
    assert main(["run", *overrides, "output.run_id=once"]) == 0
    assert len(calls) == 2, calls
    assert sum("backend=onnxruntime" in c for c in calls) == 1
