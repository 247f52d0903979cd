"""Run under ``torchrun --nproc_per_node=N``: evaluate the tiny adapter, rank 0 writes the outcome.

Usage: eval_dist_script.py <annotations> <images dir> <work dir> <output json>
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

from eval_tiny_adapter import TinyAdapter

from dfine_bench.config.settings import EvaluationSettings
from dfine_bench.data import ResolvedDataset
from dfine_bench.evaluation import evaluate_model
from dfine_bench.evaluation.distributed import init_distributed, is_main_process


def main() -> None:
    torch.set_num_threads(1)
    ann, images, work, out = map(Path, sys.argv[1:5])
    rank, world = init_distributed()
    ds = ResolvedDataset(name="generated", images_dir=images, annotations=ann, generated=True)
    outcomes = evaluate_model(
        TinyAdapter(), ds, EvaluationSettings(batch_size=2, num_workers=0), work, progress=False
    )
    assert bool(outcomes) == is_main_process(), (rank, outcomes)
    for outcome in outcomes[:1]:
        out.write_text(
            json.dumps(
                {
                    "world": world,
                    "metrics": {k: m.value for k, m in outcome.metrics.items()},
                    "per_category_ap": outcome.details["per_category_ap"],
                    "world_size": outcome.details["world_size"],
                }
            )
        )
    torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
