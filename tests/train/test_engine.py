"""Training and evaluation loops on real DataLoaders over a synthetic dataset."""

import math

import pytest
import torch
from torch.utils.data import DataLoader

from fergen_train.config import LossConfig, RuntimeConfig
from fergen_train.engine import BatchError, Runtime, evaluate, prepare_batch, resolve_runtime, train_one_epoch
from fergen_train.losses import FERAttLoss
from fergen_train.models import build_model

from .synthetic import TINY_MODEL, SquaresDataset

CPU = Runtime(device=torch.device("cpu"), amp_dtype=None, channels_last=False)


def tiny_model(variant="feratt-rep-cls"):
    config = TINY_MODEL.__class__(**{**TINY_MODEL.__dict__, "variant": variant})
    model = build_model(config, 4, torch.Generator().manual_seed(0))
    criterion = FERAttLoss(LossConfig(), variant, 4, config.representation_dim)
    return model, criterion


def test_resolve_runtime_cpu():
    runtime = resolve_runtime(RuntimeConfig(device="cpu"))

    assert runtime.device == torch.device("cpu")
    assert runtime.amp_dtype is None
    assert runtime.channels_last is False


def test_resolve_runtime_forced_channels_last():
    assert resolve_runtime(RuntimeConfig(device="cpu", channels_last="on")).channels_last is True


def test_resolve_runtime_bf16_on_cpu_rejected():
    with pytest.raises(ValueError, match="runtime.amp bf16 needs a CUDA device"):
        resolve_runtime(RuntimeConfig(device="cpu", amp="bf16"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised without CUDA")
def test_resolve_runtime_missing_cuda():
    with pytest.raises(ValueError, match="runtime.device is 'cuda' but CUDA is not available"):
        resolve_runtime(RuntimeConfig(device="cuda"))


def test_train_epoch_real_workers(squares):
    model, criterion = tiny_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = DataLoader(squares, batch_size=8, shuffle=True, num_workers=2, drop_last=True,
                        generator=torch.Generator().manual_seed(0))
    steps = []

    stats = train_one_epoch(model, criterion, optimizer, loader, CPU, 4, (32, 32),
                            on_step=lambda step, running: steps.append((step, dict(running))))

    assert stats.samples == 48
    assert stats.steps == 6
    assert [step for step, _ in steps] == [1, 2, 3, 4, 5, 6]
    assert sorted(stats.metrics) == ["accuracy", "attention", "classification", "loss", "representation"]
    assert all(math.isfinite(value) for value in stats.metrics.values())
    assert 0.0 <= stats.metrics["accuracy"] <= 1.0
    assert stats.metrics == pytest.approx(steps[-1][1])


def test_train_epoch_max_steps(squares):
    model, criterion = tiny_model("baseline")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)

    stats = train_one_epoch(model, criterion, optimizer, DataLoader(squares, batch_size=8), CPU, 4, max_steps=2)

    assert stats.steps == 2
    assert stats.samples == 16
    assert sorted(stats.metrics) == ["accuracy", "classification", "loss"]


def test_channels_last_same_loss(squares):
    batch = next(iter(DataLoader(squares, batch_size=8)))
    losses = []
    for channels_last in (False, True):
        model, criterion = tiny_model()
        runtime = Runtime(device=torch.device("cpu"), amp_dtype=None, channels_last=channels_last)
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        prepared = prepare_batch(batch, runtime, 4, True)
        if channels_last:
            assert prepared["composite"].is_contiguous(memory_format=torch.channels_last)
        with torch.no_grad():
            losses.append(float(criterion(model(prepared["composite"]), prepared).total))

    assert losses[0] == pytest.approx(losses[1], rel=1e-4)


def test_evaluate_collects_predictions(squares):
    model, criterion = tiny_model()

    result = evaluate(model, criterion, DataLoader(squares, batch_size=20), CPU, 4, (32, 32), attention_examples=5)

    assert result.labels.tolist() == [index % 4 for index in range(48)]
    assert result.predictions.shape == (48,)
    assert result.probabilities.shape == (48, 4)
    assert result.probabilities.sum(axis=1) == pytest.approx([1.0] * 48, abs=1e-5)
    assert result.stats.metrics["accuracy"] == pytest.approx(float((result.labels == result.predictions).mean()))
    assert result.attention_examples["composite"].shape == (5, 3, 32, 32)
    assert result.attention_examples["attention_map"].shape == (5, 1, 32, 32)
    assert result.attention_examples["attention_image"].shape == (5, 3, 32, 32)


def test_evaluate_leaves_model_unchanged(squares):
    model, criterion = tiny_model()
    before = {key: value.clone() for key, value in model.state_dict().items()}

    evaluate(model, criterion, DataLoader(squares, batch_size=16), CPU, 4)

    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_evaluate_without_target_or_loss(squares):
    model, _ = tiny_model()
    batches = [{"composite": b["composite"], "label": b["label"]} for b in DataLoader(squares, batch_size=16)]

    result = evaluate(model, None, batches, CPU, 4)

    assert "loss" not in result.stats.metrics
    assert result.stats.samples == 48


def test_evaluate_keeps_requested_meta(squares):
    from fergen.torch import collate

    model, criterion = tiny_model("baseline")
    loader = DataLoader(squares, batch_size=20, collate_fn=collate)

    result = evaluate(model, criterion, loader, CPU, 4, meta_keys=("index", "absent"))

    assert result.sample_meta == [{"index": index} for index in range(48)]


def test_evaluate_without_meta_keys(squares):
    from fergen.torch import collate

    model, criterion = tiny_model("baseline")

    result = evaluate(model, criterion, DataLoader(squares, batch_size=20, collate_fn=collate), CPU, 4)

    assert result.sample_meta == [{}] * 48


def test_evaluate_meta_count_mismatch(squares):
    model, criterion = tiny_model("baseline")
    batches = [dict(batch, meta=[{"index": 0}]) for batch in DataLoader(squares, batch_size=16)]

    with pytest.raises(BatchError, match=r"batch\['meta'\] has 1 entries but the batch has 16 samples"):
        evaluate(model, criterion, batches, CPU, 4, meta_keys=("index",))


def test_evaluate_baseline_no_attention_examples(squares):
    model, criterion = tiny_model("baseline")

    result = evaluate(model, criterion, DataLoader(squares, batch_size=16), CPU, 4)

    assert result.attention_examples == {}


def make_batch(**changes):
    batch = {
        "composite": torch.rand(2, 3, 32, 32),
        "target": torch.rand(2, 3, 32, 32),
        "label": torch.tensor([0, 1]),
    }
    batch.update(changes)
    return batch


@pytest.mark.parametrize(
    "batch, message",
    [
        ({"composite": torch.rand(2, 3, 32, 32)}, r"batch is missing \['label', 'target'\]"),
        (make_batch(composite=torch.rand(2, 32, 32)), r"must be a \(B, 3, H, W\) tensor, got \(2, 32, 32\)"),
        (make_batch(composite=torch.rand(2, 3, 32, 32).double()), "must be float32 in \\[0, 1\\], got torch.float64"),
        (make_batch(composite=torch.rand(2, 3, 40, 32)), "is 40x32 but model.input_size is 32x32"),
        (make_batch(label=torch.tensor([0, 1], dtype=torch.int32)), r"must be int64 of shape \(2,\), got torch.int32"),
        (make_batch(label=torch.tensor([0, 4])), r"values in \[0, 4\] but the model has 4 classes"),
        (make_batch(target=torch.rand(2, 3, 16, 16)), r"batch\['target'\] must match composite"),
        ([torch.rand(2, 3, 32, 32)], "expected a batch dict"),
    ],
)
def test_prepare_batch_rejects(batch, message):
    with pytest.raises(BatchError, match=message):
        prepare_batch(batch, CPU, 4, True, (32, 32))


def test_nan_loss_raises(squares):
    model, criterion = tiny_model("baseline")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    batch = next(iter(DataLoader(squares, batch_size=8)))
    batch["composite"][0, 0, 0, 0] = float("nan")

    with pytest.raises(FloatingPointError, match="non-finite training loss at step 1"):
        train_one_epoch(model, criterion, optimizer, [batch], CPU, 4)


def test_evaluate_empty_loader_raises():
    model, criterion = tiny_model("baseline")

    with pytest.raises(BatchError, match="the evaluation loader yielded no batches"):
        evaluate(model, criterion, [], CPU, 4)


def test_empty_loader_raises():
    model, criterion = tiny_model("baseline")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)

    with pytest.raises(BatchError, match="the training loader yielded no batches"):
        train_one_epoch(model, criterion, optimizer, [], CPU, 4)


def test_squares_dataset_deterministic():
    first = SquaresDataset()[5]
    second = SquaresDataset()[5]

    assert torch.equal(first["composite"], second["composite"])
