"""fit(): files written, checkpoints, exact resume and evaluation of the saved model."""

import json
import math

import pytest
import torch
import yaml
from torch.utils.data import DataLoader, Subset

from fergen_train.checkpoint import CheckpointError, load_checkpoint, model_from_checkpoint
from fergen_train.config import ConfigError, config_from_dict, replace_section
from fergen_train.engine import evaluate, resolve_runtime
from fergen_train.losses import FERAttLoss
from fergen_train.metrics import classification_report
from fergen_train.trainer import epoch_seed, fit, make_loader

from .synthetic import SquaresDataset, tiny_config

TIMING_KEYS = ("train_seconds", "train_samples_per_second")


def run_fit(tmp_path, name, config, resume=False):
    train = SquaresDataset(length=48)
    val = SquaresDataset(length=16, seed=99)
    return fit(config, train, train.class_names, tmp_path / name, val_data=val, recipe_sha256="ab" * 32, resume=resume)


def without_timing(history):
    return [{k: v for k, v in row.items() if k not in TIMING_KEYS} for row in history]


def test_fit_writes_run_files(tmp_path):
    result = run_fit(tmp_path, "run", tiny_config(epochs=2))

    names = sorted(path.name for path in result.output_dir.iterdir())
    assert names == ["best.pt", "config.yaml", "curves.png", "epoch_002.pt", "metrics.jsonl"]
    assert result.last_checkpoint.name == "epoch_002.pt"
    assert (result.output_dir / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = [json.loads(line) for line in (result.output_dir / "metrics.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in rows] == [1, 2]
    for key in ("train_loss", "train_accuracy", "train_attention", "train_classification",
                "train_representation", "val_loss", "val_accuracy", "val_macro_f1", "lr"):
        assert math.isfinite(rows[-1][key]), key
    assert rows[0]["train_samples"] == 48
    stored = yaml.safe_load((result.output_dir / "config.yaml").read_text())
    assert config_from_dict(stored) == tiny_config(epochs=2)


def test_checkpoint_loads_weights_only(tmp_path):
    result = run_fit(tmp_path, "run", tiny_config(epochs=1))

    payload = torch.load(result.last_checkpoint, map_location="cpu", weights_only=True)

    assert payload["epoch"] == 1
    assert payload["class_names"] == ["corner0", "corner1", "corner2", "corner3"]
    assert payload["input_size"] == [32, 32]
    assert payload["recipe_sha256"] == "ab" * 32
    assert payload["config"]["model"]["variant"] == "feratt-rep-cls"
    assert payload["preprocessing"]["range"] == [0.0, 1.0]
    assert set(payload["optimizer"]) == {"state", "param_groups"}
    assert sorted(payload["loss"]) == ["representation.running_means", "representation.running_seen"]


def test_resume_continues_exactly(tmp_path):
    straight = run_fit(tmp_path, "straight", tiny_config(epochs=3))
    run_fit(tmp_path, "split", tiny_config(epochs=1))

    resumed = run_fit(tmp_path, "split", tiny_config(epochs=3), resume=True)

    straight_state = load_checkpoint(straight.last_checkpoint)
    resumed_state = load_checkpoint(resumed.last_checkpoint)
    for key, value in straight_state["model"].items():
        assert torch.equal(value, resumed_state["model"][key]), key
    for key in ("representation.running_means", "representation.running_seen"):
        assert torch.equal(straight_state["loss"][key], resumed_state["loss"][key]), key
    assert without_timing(resumed.history) == without_timing(straight.history)
    assert [row["epoch"] for row in resumed.history] == [1, 2, 3]


def test_keep_checkpoints(tmp_path):
    config = replace_section(tiny_config(epochs=3), "runtime", keep_checkpoints=2)

    result = run_fit(tmp_path, "run", config)

    assert sorted(p.name for p in result.output_dir.glob("epoch_*.pt")) == ["epoch_002.pt", "epoch_003.pt"]


def test_existing_run_needs_resume(tmp_path):
    run_fit(tmp_path, "run", tiny_config(epochs=1))

    with pytest.raises(FileExistsError, match="already has checkpoints up to epoch_001.pt; pass --resume"):
        run_fit(tmp_path, "run", tiny_config(epochs=2))


def test_resume_without_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="no epoch_NNN.pt checkpoint"):
        run_fit(tmp_path, "empty", tiny_config(epochs=1), resume=True)


def test_resume_other_model_rejected(tmp_path):
    run_fit(tmp_path, "run", tiny_config(epochs=1))
    changed = replace_section(tiny_config(epochs=2), "model", feature_channels=16)

    with pytest.raises(CheckpointError, match="the model section differs from the checkpoint's"):
        run_fit(tmp_path, "run", changed, resume=True)


def test_resume_other_recipe_rejected(tmp_path):
    train = SquaresDataset()
    fit(tiny_config(epochs=1), train, train.class_names, tmp_path / "run", recipe_sha256="a" * 64)

    with pytest.raises(CheckpointError, match="recipe sha256 bbbb.* differs from the checkpoint's aaaa"):
        fit(tiny_config(epochs=2), train, train.class_names, tmp_path / "run", recipe_sha256="b" * 64, resume=True)


def test_batch_larger_than_data(tmp_path):
    train = SquaresDataset(length=8)

    with pytest.raises(ValueError, match="has 8 samples, fewer than optim.batch_size 16"):
        fit(tiny_config(epochs=1), train, train.class_names, tmp_path / "run")


def test_saved_model_evaluates_like_validation(tmp_path):
    result = run_fit(tmp_path, "run", tiny_config(epochs=2))
    payload = load_checkpoint(result.last_checkpoint)
    model = model_from_checkpoint(payload)
    config = tiny_config(epochs=2)
    criterion = FERAttLoss(config.loss, "feratt-rep-cls", 4, 8)
    criterion.load_state_dict(payload["loss"])
    loader = DataLoader(SquaresDataset(length=16, seed=99), batch_size=16)

    evaluation = evaluate(model, criterion, loader, resolve_runtime(config.runtime), 4, (32, 32))

    assert evaluation.stats.metrics["accuracy"] == result.history[-1]["val_accuracy"]
    assert evaluation.stats.metrics["loss"] == pytest.approx(result.history[-1]["val_loss"], rel=1e-6)


def test_fit_with_workers(tmp_path):
    result = run_fit(tmp_path, "workers", tiny_config(epochs=1, num_workers=2))
    reference = run_fit(tmp_path, "main", tiny_config(epochs=1, num_workers=0))

    assert without_timing(result.history) == without_timing(reference.history)


def test_epoch_shuffle_differs_and_repeats():
    data = SquaresDataset(length=32)

    def order(epoch):
        loader = make_loader(data, 32, True, seed=1, epoch=epoch, num_workers=0)
        return next(iter(loader))["meta"]["index"].tolist()

    assert order(0) == order(0)
    assert order(0) != order(1)
    assert sorted(order(1)) == list(range(32))


def test_epoch_seed_values():
    assert epoch_seed(0, 0) != epoch_seed(0, 1)
    assert epoch_seed(0, 1) != epoch_seed(1, 0)
    assert 0 <= epoch_seed(5, 7) < 2**63


def test_best_metric_skips_classes_missing_from_val(tmp_path):
    train = SquaresDataset(length=48)
    val = Subset(SquaresDataset(length=16, seed=99), [i for i in range(16) if i % 4 < 2])  # corner0 and corner1
    config = tiny_config(epochs=1)

    result = fit(config, train, train.class_names, tmp_path / "run", val_data=val)

    best = load_checkpoint(result.best_checkpoint)
    criterion = FERAttLoss(config.loss, "feratt-rep-cls", 4, 8)
    criterion.load_state_dict(best["loss"])
    evaluation = evaluate(model_from_checkpoint(best), criterion, DataLoader(val, batch_size=16),
                          resolve_runtime(config.runtime), 4, (32, 32))
    report = classification_report(evaluation.labels, evaluation.predictions, train.class_names)
    assert report.macro_class_names == ("corner0", "corner1")
    assert result.history[0]["val_macro_f1"] == report.macro_f1
    assert best["best_metric"] == report.macro_f1
    assert best["best_metric"] == pytest.approx((report.f1[0] + report.f1[1]) / 2)
    assert best["best_metric"] > 0  # so that a mean over all four classes would differ


def test_fit_rejects_priors_count(tmp_path):
    config = replace_section(tiny_config(epochs=1), "loss", priors=(1.0, 2.0))
    train = SquaresDataset()

    with pytest.raises(ConfigError, match=r"<config>: loss.priors: expected 4 values, one per class "
                                          r"\(corner0, corner1, corner2, corner3\), got 2: \[1.0, 2.0\]"):
        fit(config, train, train.class_names, tmp_path / "run")

    assert not (tmp_path / "run").exists()
