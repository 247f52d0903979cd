"""`dfine-bench train`: determinism, resume after a kill, outputs, and bad input caught up front."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from dfine_bench.adapters import create_model
from dfine_bench.config.settings import DatasetSettings
from dfine_bench.data.resolve import resolve_dataset
from dfine_bench.errors import ConfigError, DatasetError
from dfine_bench.training import TrainingSamples, TrainSettings, train
from dfine_bench.training.data import targets_for_image

TINY = TrainSettings(steps=4, batch_size=2, lr=1e-4, warmup_steps=1, checkpoint_every=2, log_every=1, seed=3)


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("train-data")
    cfg = DatasetSettings(kind="generated", num_images=6, image_size=[64, 96], seed=11)
    return resolve_dataset(cfg, root)


def _adapter():
    torch.set_num_threads(1)
    return create_model("dfine_n", weights="random_init", seed=3, input_size=(256, 256))


def _weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_targets_are_normalised_cxcywh_without_crowd() -> None:
    anns = [
        {"bbox": [10, 20, 30, 40], "category_id": 3, "iscrowd": 0},
        {"bbox": [0, 0, 50, 50], "category_id": 3, "iscrowd": 1},
    ]
    target = targets_for_image(anns, height=100, width=200, category_to_label={3: 2})
    assert target["class_labels"].tolist() == [2]
    assert target["boxes"][0].tolist() == pytest.approx([25 / 200, 40 / 100, 30 / 200, 40 / 100])


def test_sample_order_is_a_function_of_seed_and_step(tiny_data) -> None:
    samples = TrainingSamples(tiny_data, _adapter())
    first = [samples.indices(s, 4, seed=1) for s in range(3)]
    assert first == [samples.indices(s, 4, seed=1) for s in range(3)]
    assert first != [samples.indices(s, 4, seed=2) for s in range(3)]
    epoch = samples.indices(0, 4, 1) + samples.indices(1, 4, 1)[:2]  # 6 images: one full epoch
    assert sorted(epoch) == list(range(6))


def test_killed_run_resumes_to_the_same_weights(tiny_data, tmp_path: Path) -> None:
    straight = _adapter()
    train(straight, TrainingSamples(tiny_data, straight), TINY, tmp_path / "a", progress=False)

    class Killed(Exception):
        pass

    def kill_after_step_2(done: int, row: object) -> None:
        if done == 2:
            raise Killed

    interrupted = _adapter()
    with pytest.raises(Killed):
        train(
            interrupted,
            TrainingSamples(tiny_data, interrupted),
            TINY,
            tmp_path / "b",
            on_step=kill_after_step_2,
        )
    assert (tmp_path / "b" / "checkpoint.pt").is_file() and not (tmp_path / "b" / "model").exists()
    resumed = _adapter()  # a fresh process would rebuild the model from scratch, then resume
    result = train(resumed, TrainingSamples(tiny_data, resumed), TINY, tmp_path / "b", progress=False)

    a, b = _weights(straight.model), _weights(resumed.model)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [r["loss"] for r in result.losses] == [
        float(row["loss"]) for row in csv.DictReader((tmp_path / "a" / "loss.csv").read_text().splitlines())
    ]
    assert (tmp_path / "b" / "model" / "model.safetensors").is_file()
    assert (tmp_path / "b" / "model" / "config.json").is_file()


def test_training_lowers_the_loss(tiny_data, tmp_path: Path) -> None:
    adapter = _adapter()
    settings = TrainSettings(steps=12, batch_size=2, lr=4e-4, warmup_steps=2, checkpoint_every=50, seed=0)
    result = train(adapter, TrainingSamples(tiny_data, adapter), settings, tmp_path, progress=False)
    losses = [r["loss"] for r in result.losses]
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3
    assert {"loss_vfl", "loss_bbox", "loss_giou"} <= set(result.losses[-1])


def test_a_checkpoint_of_other_settings_is_not_resumed(tiny_data, tmp_path: Path) -> None:
    adapter = _adapter()
    train(adapter, TrainingSamples(tiny_data, adapter), TINY, tmp_path, progress=False)
    other = TrainSettings(**{**TINY.__dict__, "lr": 2e-4})
    with pytest.raises(ConfigError, match="other settings"):
        train(_adapter(), TrainingSamples(tiny_data, _adapter()), other, tmp_path, progress=False)


@pytest.mark.parametrize(
    ("field", "value"),
    [("steps", 0), ("batch_size", 0), ("lr", 0.0), ("warmup_steps", -1), ("ema_decay", 1.0)],
)
def test_bad_settings_fail_before_any_work(field: str, value: float) -> None:
    with pytest.raises(ConfigError, match=f"train.{field}"):
        TrainSettings(**{field: value}).validate()


def test_dataset_without_annotations_is_refused(tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    ann = tmp_path / "empty.json"
    ann.write_text(json.dumps({
        "images": [{"id": 1, "file_name": "a.png", "height": 64, "width": 64}],
        "annotations": [],
        "categories": [{"id": 1, "name": "person"}],
    }))  # fmt: skip
    from dfine_bench.data.dataset import ResolvedDataset

    with pytest.raises(DatasetError, match="no annotations"):
        TrainingSamples(ResolvedDataset("empty", images, ann), _adapter())


def test_model_without_a_loss_is_refused(tiny_data, tmp_path: Path) -> None:
    adapter = _adapter()
    samples = TrainingSamples(tiny_data, adapter)

    class NoLoss(torch.nn.Module):
        def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
            return pixel_values

    adapter.model = NoLoss()
    with pytest.raises(ConfigError, match="does not compute its own loss"):
        train(adapter, samples, TINY, tmp_path)
    assert not any(tmp_path.iterdir())  # refused before writing anything
