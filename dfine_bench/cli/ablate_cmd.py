"""``dfine-bench ablate``: the small-scale FDR / GO-LSD ablation (baseline, +FDR, +FDR+GO-LSD)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

EXAMPLES = """\
examples:
  dfine-bench ablate              # default: 3 arms x 3 seeds x 500 steps, ~30 min on 2 CPU cores
  dfine-bench ablate --seeds 5 --steps 3000 --device cuda
  dfine-bench ablate --steps 20 --train-images 40 --eval-images 12 --out /tmp/quick   # a smoke test

Each run trains a reduced RT-DETR-R18 at 128x128 on generated data with the project's trainer and
evaluates COCO AP on a generated held-out split; the report (ablation.md) gives AP mean +- std per
arm, the differences to the baseline with Welch's t-test and an exact permutation test, beside the
paper's Table 2 claim. It is a small-scale check on generated data, not a COCO reproduction.
A rerun of the same command skips finished runs and resumes an interrupted one.
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    from dfine_bench.training.ablation import AblationSettings

    d = AblationSettings()
    p = sub.add_parser(
        "ablate",
        help="small-scale FDR / GO-LSD ablation: baseline vs +FDR vs +FDR+GO-LSD over seeds",
        description=(
            "Train one small baseline three ways (baseline, +FDR, +FDR+GO-LSD) over several seeds with the "
            "same step budget, evaluate each on generated held-out data and test the AP differences."
        ),
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--baseline", default=d.baseline, help=f"an RT-DETR baseline with an FDR variant ({d.baseline})"
    )
    p.add_argument("--seeds", type=int, default=len(d.seeds), help=f"seeds per arm, 0..N-1 ({len(d.seeds)})")
    p.add_argument("--steps", type=int, default=d.steps, help=f"training steps per run ({d.steps})")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help=f"({d.batch_size})")
    p.add_argument("--lr", type=float, default=d.lr, help=f"({d.lr})")
    p.add_argument("--input-size", type=int, default=d.input_size, help=f"square input side ({d.input_size})")
    p.add_argument("--full-size", action="store_true", help="the baseline's full layout, not the reduced one")
    p.add_argument("--train-images", type=int, default=d.train_images, help=f"({d.train_images})")
    p.add_argument("--eval-images", type=int, default=d.eval_images, help=f"({d.eval_images})")
    p.add_argument("--device", default=d.device, help="cpu or cuda[:N]")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--out", type=Path, default=None, help="output folder (default results/ablation/<key>)")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    import torch

    from dfine_bench.training.ablation import AblationSettings, run_ablation
    from dfine_bench.training.ablation_report import write_markdown

    if args.threads:
        torch.set_num_threads(args.threads)
    settings = AblationSettings(
        baseline=args.baseline,
        seeds=tuple(range(args.seeds)),
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        input_size=args.input_size,
        reduced=not args.full_size,
        train_images=args.train_images,
        eval_images=args.eval_images,
        device=args.device,
    )
    settings.validate()
    out = args.out or Path("results") / "ablation" / f"{settings.baseline}-{settings.key()}"
    total = len(settings.seeds) * len(settings.arms)
    count = 0

    def on_run(row: Mapping[str, Any]) -> None:
        nonlocal count
        count += 1
        ap = row.get("AP")
        print(
            f"[{count}/{total}] {row['arm']} seed {row['seed']}: AP {ap:.2f} ({row['wall_s']:.0f} s)",
            file=sys.stderr,
        )

    result = run_ablation(settings, out, on_run=on_run)
    path = write_markdown(result.summary, settings, out / "ablation.md")
    print(path.read_text())
    print(f"wrote {out / 'ablation.json'} and {path}", file=sys.stderr)
    return 0
