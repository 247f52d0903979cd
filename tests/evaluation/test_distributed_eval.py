"""Sharded evaluation under torchrun (2 CPU processes, gloo) reports exactly the single-process AP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from eval_tiny_adapter import TinyAdapter

from dfine_bench.config.settings import EvaluationSettings
from dfine_bench.data import ResolvedDataset
from dfine_bench.evaluation import evaluate_model
from dfine_bench.evaluation.distributed import shard

SCRIPT = Path(__file__).parent / "eval_dist_script.py"


def test_shard_covers_every_item_once() -> None:
    items = list(range(11))
    parts = [shard(items, r, 3) for r in range(3)]
    assert sorted(i for p in parts for i in p) == items
    assert [len(p) for p in parts] == [4, 4, 3]


@pytest.mark.slow
def test_torchrun_two_processes_equals_single_process(gen_dataset: ResolvedDataset, tmp_path: Path) -> None:
    (single,) = evaluate_model(
        TinyAdapter(), gen_dataset, EvaluationSettings(batch_size=2, num_workers=0), tmp_path / "s"
    )
    out = tmp_path / "dist.json"
    env = {
        k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR")
    }
    env["OMP_NUM_THREADS"] = "1"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        str(SCRIPT), str(gen_dataset.annotations), str(gen_dataset.images_dir), str(tmp_path / "d"), str(out),
    ]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    dist = json.loads(out.read_text())
    assert dist["world"] == 2 and dist["world_size"] == 2
    assert dist["metrics"] == {k: m.value for k, m in single.metrics.items()}
    assert dist["per_category_ap"] == single.details["per_category_ap"]
    # each rank streamed its own half
    parts = sorted((tmp_path / "d").glob("part-*.jsonl"))
    assert len(parts) == 2 and all(len(p.read_text().splitlines()) == 12 for p in parts)
