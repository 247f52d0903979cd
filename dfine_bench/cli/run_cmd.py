"""``dfine-bench run``: run a suite (Hydra overrides, ``-m`` for multirun sweeps)."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Sequence

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import OverrideParseException
from omegaconf import DictConfig, OmegaConf

from dfine_bench.cli.summary import print_summary
from dfine_bench.config.loading import (
    compose_config,
    describe_config,
    group_options,
    load_settings,
    register_configs,
    search_path_override,
    suites_dir,
)
from dfine_bench.config.settings import RunSettings
from dfine_bench.errors import ConfigError

EXAMPLES = """\
examples:
  dfine-bench run                                   # the default suite, offline, built-in defaults
  dfine-bench run suite=paper_coco model=dfine_s device=cuda
  dfine-bench run -m model=dfine_n,dfine_s          # a Hydra multirun sweep, one run per model
  dfine-bench run dataset=coco_val2017 dataset.root=/data/coco dataset.subset=500
  dfine-bench run weights=official weights.path=dfine_s_coco.pth model=dfine_s
  dfine-bench run protocol=paper_t4 device=cuda     # the paper's TensorRT FP16 latency protocol
  dfine-bench run -m hydra/launcher=joblib model=dfine_n,dfine_s   # parallel sweep (joblib launcher)

config groups (pick with GROUP=OPTION, change a value with GROUP.KEY=VALUE):
"""


def _groups_epilog() -> str:
    lines = []
    for group in ("suite", "dataset", "weights", "evaluation", "profiling", "backend", "protocol", "output"):
        with contextlib.suppress(ConfigError):
            lines.append(f"  {group:<11} {', '.join(group_options(group))}")
    lines.append("  model       any name from `dfine-bench list models` (default: the suite's list)")
    lines.append("  device      cpu | cuda | cuda:N")
    return EXAMPLES + "\n".join(lines)


def add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--suites-dir",
        action="append",
        default=[],
        metavar="DIR",
        help="an extra folder of suites/groups (same layout as the built-in suites/); repeatable",
    )
    p.add_argument("-m", "--multirun", action="store_true", help="sweep comma-separated override values")
    p.add_argument("--cfg", action="store_true", help="print the composed config and exit")
    p.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. suite=paper_coco model=dfine_s")
    p.set_defaults(accepts_overrides=True)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run",
        help="run a suite: evaluation + profiling per model, records, report (default command)",
        description=(
            "Run a suite of models: COCO evaluation, params/GFLOPs, latency and throughput, "
            "written as result records under results/<run-id>/ and rendered as a report under "
            "reports/<run-id>/. With no arguments: the default suite, offline, on built-in defaults "
            "(random-init weights and a generated dataset stand in for what is not on disk, and "
            "every output says so). Re-running the same command resumes an interrupted run."
        ),
        epilog=_groups_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_common(p)
    p.set_defaults(func=main, preset_overrides=[])


def expand_for_validation(overrides: Sequence[str]) -> list[list[str]]:
    """Each sweep value on its own (with the other overrides at their first value), to check them all."""
    try:
        parsed = OverridesParser.create().parse_overrides(list(overrides))
    except OverrideParseException as exc:
        raise ConfigError(f"cannot parse override: {str(exc).splitlines()[0]}") from None
    choices: list[list[str]] = []
    for o in parsed:
        if o.is_sweep_override():
            key = o.get_key_element()
            choices.append([f"{key}={v}" for v in o.sweep_string_iterator()])
        else:
            choices.append([o.input_line or ""])
    variants = [[c[0] for c in choices]]
    for i, c in enumerate(choices):
        for value in c[1:]:
            variant = [cc[0] for cc in choices]
            variant[i] = value
            variants.append(variant)
    return variants


def main(args: argparse.Namespace) -> int:
    overrides = [*args.preset_overrides, *args.overrides]
    variants = expand_for_validation(overrides)
    is_sweep = len(variants) > 1 or any(",".join(v) != ",".join(variants[0]) for v in variants)
    if is_sweep and not args.multirun:
        raise ConfigError("comma-separated values sweep several runs: add -m (multirun)")
    # each variant is composed and checked once: a typo or a bad value in any sweep value fails
    # now, before any work; a single run then runs the config and settings checked here
    for variant in variants:
        cfg = compose_config(variant, args.suites_dir)
        settings = load_settings(cfg, variant, args.suites_dir, check_hardware=not args.cfg)
    if args.cfg:
        print(OmegaConf.to_yaml(cfg))
        return 0
    if args.multirun:
        return _multirun(overrides, args.suites_dir)
    return run_once(cfg, settings)


def run_once(cfg: DictConfig, settings: RunSettings) -> int:
    """Run one composed config and its checked settings; the summary on rank 0."""
    from dfine_bench.runner import run_suite  # torch: imported only once a run starts

    rank = int(os.environ.get("RANK", "0"))  # under torchrun only rank 0 talks
    _setup_console_logging(settings.output.log_level if rank == 0 else "WARNING")
    outcome = run_suite(
        settings, resolved_config=describe_config(cfg), command=["dfine-bench", *sys.argv[1:]]
    )
    if rank == 0:
        print_summary(outcome)
    return outcome.exit_code


def _setup_console_logging(level: str) -> None:
    logger = logging.getLogger("dfine_bench")
    if not any(getattr(h, "_dfine_console", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
        handler._dfine_console = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
        logger.propagate = False
    logger.setLevel(getattr(logging, level.upper(), logging.INFO))


def _multirun(overrides: Sequence[str], extra_dirs: Sequence[str]) -> int:
    """Hand the sweep to Hydra, so launcher plugins (joblib, submitit, ray) work as documented."""
    import hydra
    from hydra.core.hydra_config import HydraConfig

    register_configs(extra_dirs)
    exit_codes: list[int] = []

    def job(cfg: DictConfig) -> int:
        task_overrides = list(HydraConfig.get().overrides.task)
        code = run_once(cfg, load_settings(cfg, task_overrides, extra_dirs))
        exit_codes.append(code)
        return code

    argv = sys.argv
    sys.argv = ["dfine-bench", "-m", *overrides, *search_path_override(extra_dirs)]
    try:
        hydra.main(config_path=str(suites_dir()), config_name="run", version_base="1.3")(job)()
    finally:
        sys.argv = argv
    return max(exit_codes, default=0)
