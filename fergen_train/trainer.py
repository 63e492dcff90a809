"""The training run: loaders per epoch, checkpoints, metrics log, curves and resume.

Everything random is derived from ``config.seed``: the initial weights from a
torch generator seeded with it, and each epoch's shuffling and worker seeds
from ``SeedSequence([seed, epoch])``. A run resumed from the checkpoint of
epoch e therefore continues exactly as the uninterrupted run would, on the
same device, software versions and data.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import nn
from torch.utils.data import DataLoader, Dataset, IterableDataset

from fergen.errors import DataError
from fergen_train.checkpoint import (
    CheckpointError,
    checkpoint_config,
    epoch_checkpoint_name,
    list_epoch_checkpoints,
    load_checkpoint,
    save_checkpoint,
)
from fergen_train.config import TrainConfig, check_class_count, config_to_dict
from fergen_train.engine import EpochStats, Runtime, evaluate, resolve_runtime, train_one_epoch
from fergen_train.losses import FERAttLoss
from fergen_train.metrics import classification_report
from fergen_train.models import build_model
from fergen_train.plots import plot_curves

logger = logging.getLogger(__name__)

METRICS_FILE = "metrics.jsonl"
CURVES_FILE = "curves.png"
BEST_FILE = "best.pt"
CONFIG_FILE = "config.yaml"

#: Factory for a progress bar: ``progress(total, description)`` returns an
#: object with ``update(n)``, ``set_postfix(mapping)`` and ``close()``, as tqdm does.
ProgressFactory = Callable[[int | None, str], Any]


def epoch_seed(seed: int, epoch: int) -> int:
    """Derive the 63-bit seed of an epoch's shuffling and worker seeds."""
    state = np.random.SeedSequence([seed, epoch]).generate_state(2, dtype=np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


def make_loader(
    dataset: Dataset,
    batch_size: int,
    train: bool,
    seed: int,
    epoch: int,
    num_workers: int,
    pin_memory: bool = False,
    collate_fn: Callable[[list[Any]], Any] | None = None,
) -> DataLoader:
    """Build the DataLoader of one epoch.

    Map-style training data is shuffled by a generator seeded from
    (seed, epoch), and the same generator draws the workers' base seed.
    Training drops the last incomplete batch, because batch norm and the
    class means of the Gaussian loss are unreliable on a handful of samples.
    """
    generator = torch.Generator().manual_seed(epoch_seed(seed, epoch))
    shuffle = train and not isinstance(dataset, IterableDataset)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        drop_last=train,
        num_workers=num_workers,
        generator=generator,
        pin_memory=pin_memory,
        collate_fn=collate_fn,
    )


def _set_epoch(dataset: Dataset | None, epoch: int) -> None:
    if dataset is not None and hasattr(dataset, "set_epoch"):
        dataset.set_epoch(epoch)


def build_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """Build the optimiser that ``config.optim`` names."""
    optim = config.optim
    if optim.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=optim.lr, betas=optim.betas, weight_decay=optim.weight_decay)
    if optim.optimizer == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=optim.lr, betas=optim.betas, weight_decay=optim.weight_decay)
    return torch.optim.SGD(
        model.parameters(), lr=optim.lr, momentum=optim.betas[0], weight_decay=optim.weight_decay
    )


def build_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig) -> torch.optim.lr_scheduler.LRScheduler:
    """Build the per-epoch learning-rate schedule that ``config.optim.schedule`` names."""
    if config.optim.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.optim.epochs)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: 1.0)


@dataclass(frozen=True)
class FitResult:
    """Output files of a finished run and its per-epoch metrics."""

    output_dir: Path
    last_checkpoint: Path
    best_checkpoint: Path | None
    history: list[dict[str, Any]]


def _read_history(path: Path, epochs: int) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [row for row in rows if row["epoch"] <= epochs]


def _write_history(path: Path, history: Sequence[dict[str, Any]]) -> None:
    text = "".join(json.dumps(row, sort_keys=True) + "\n" for row in history)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(path)


def _epoch_row(epoch: int, train: EpochStats, val: dict[str, float] | None, lr: float) -> dict[str, Any]:
    row: dict[str, Any] = {
        "epoch": epoch,
        "lr": lr,
        "train_seconds": round(train.seconds, 3),
        "train_samples": train.samples,
        "train_samples_per_second": round(train.samples_per_second, 3),
    }
    row.update({f"train_{name}": value for name, value in train.metrics.items()})
    if val is not None:
        row.update({f"val_{name}": value for name, value in val.items()})
    return row


def _check_resume(payload: dict[str, Any], config: TrainConfig, class_names: Sequence[str],
                  recipe_sha256: str | None, source: str) -> None:
    stored = checkpoint_config(payload, source)
    for section in ("model", "loss"):
        if getattr(stored, section) != getattr(config, section):
            raise CheckpointError(
                f"{source}: the {section} section differs from the checkpoint's; resume with the "
                "config the run started with, or train into a new --output folder"
            )
    if stored.seed != config.seed:
        raise CheckpointError(f"{source}: seed {config.seed} differs from the checkpoint's {stored.seed}")
    if list(payload["class_names"]) != list(class_names):
        raise CheckpointError(
            f"{source}: class names {list(class_names)} differ from the checkpoint's {payload['class_names']}"
        )
    if payload.get("recipe_sha256") != recipe_sha256:
        raise CheckpointError(
            f"{source}: the training recipe sha256 {recipe_sha256} differs from the checkpoint's "
            f"{payload.get('recipe_sha256')}; the data changed since the run started"
        )


def fit(
    config: TrainConfig,
    train_data: Dataset,
    class_names: Sequence[str],
    output_dir: str | Path,
    val_data: Dataset | None = None,
    recipe_sha256: str | None = None,
    resume: bool = False,
    progress: ProgressFactory | None = None,
    collate_fn: Callable[[list[Any]], Any] | None = None,
) -> FitResult:
    """Train ``config.model.variant`` on ``train_data`` and write the run to ``output_dir``.

    Writes ``config.yaml``, ``epoch_NNN.pt`` after every epoch (keeping the
    last ``runtime.keep_checkpoints``), ``best.pt`` (highest validation macro
    F1, when there is validation data), ``metrics.jsonl`` (one JSON object an
    epoch) and ``curves.png``.

    Args:
        train_data: Map-style or iterable dataset yielding the batch contract
            of :mod:`fergen_train.engine`. ``set_epoch(epoch)`` is called
            before each epoch when the dataset has it.
        class_names: Names of the label indices.
        val_data: Evaluated after every epoch when given.
        recipe_sha256: sha256 of the training recipe, stored in checkpoints.
        resume: Continue from the newest ``epoch_NNN.pt`` in ``output_dir``.
        progress: Optional progress-bar factory (see :data:`ProgressFactory`).
        collate_fn: DataLoader ``collate_fn`` for both datasets, such as
            ``fergen.torch.collate``; ``None`` uses torch's default.

    Raises:
        ConfigError: if ``loss.priors`` does not have one value per class.
        FileExistsError: if ``output_dir`` has checkpoints and ``resume`` is false.
        DataError: if a map-style training set is smaller than one batch.
        CheckpointError: if ``resume`` finds no checkpoint, or one from another config.
    """
    check_class_count(config, class_names)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    existing = list_epoch_checkpoints(output_dir)
    if existing and not resume:
        raise FileExistsError(
            f"{output_dir} already has checkpoints up to {existing[-1][1].name}; pass --resume to "
            "continue that run, or choose a new output folder"
        )
    if resume and not existing:
        raise CheckpointError(f"--resume: no epoch_NNN.pt checkpoint in {output_dir}; start without --resume")

    num_classes = len(class_names)
    runtime = resolve_runtime(config.runtime)
    if config.runtime.deterministic:
        # NOTE: this switches a process-wide torch setting on and leaves it on.
        # warn_only because adaptive average pooling has no deterministic CUDA
        # backward; such ops warn instead of failing the run.
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False

    model = build_model(
        config.model, num_classes, torch.Generator().manual_seed(config.seed), load_weights=not resume
    )
    criterion = FERAttLoss(config.loss, config.model.variant, num_classes, config.model.representation_dim)
    start_epoch = 0
    best_metric: float | None = None
    history: list[dict[str, Any]] = []
    payload = None
    if resume:
        checkpoint_path = existing[-1][1]
        payload = load_checkpoint(checkpoint_path)
        _check_resume(payload, config, class_names, recipe_sha256, str(checkpoint_path))
        model.load_state_dict(payload["model"])
        if payload.get("loss") is not None:
            criterion.load_state_dict(payload["loss"])
        start_epoch = int(payload["epoch"])
        best_metric = payload.get("best_metric")
        history = _read_history(output_dir / METRICS_FILE, start_epoch)
        logger.info("resuming %s after epoch %d", checkpoint_path, start_epoch)

    memory_format = torch.channels_last if runtime.channels_last else torch.contiguous_format
    model = model.to(runtime.device, memory_format=memory_format)
    criterion = criterion.to(runtime.device)
    optimizer = build_optimizer(model, config)
    scheduler = build_scheduler(optimizer, config)
    if payload is not None:
        optimizer.load_state_dict(payload["optimizer"])
        scheduler.load_state_dict(payload["scheduler"])

    (output_dir / CONFIG_FILE).write_text(yaml.safe_dump(config_to_dict(config), sort_keys=False), encoding="utf-8")
    input_size = config.model.input_size
    if hasattr(train_data, "__len__") and not isinstance(train_data, IterableDataset):
        if len(train_data) < config.optim.batch_size:
            raise DataError(
                f"the training data has {len(train_data)} samples, fewer than optim.batch_size "
                f"{config.optim.batch_size}; lower optim.batch_size or render more samples"
            )

    last_path = existing[-1][1] if existing else None
    for epoch in range(start_epoch, config.optim.epochs):
        _set_epoch(train_data, epoch)
        loader = make_loader(
            train_data, config.optim.batch_size, True, config.seed, epoch,
            config.data.num_workers, pin_memory=runtime.device.type == "cuda", collate_fn=collate_fn,
        )
        total = config.runtime.steps_per_epoch
        if total is None:
            try:
                total = len(loader)
            except TypeError:  # an iterable dataset without a length, such as remote shards
                total = None
        bar = progress(total, f"epoch {epoch + 1}/{config.optim.epochs}") if progress else None
        on_step = _progress_callback(bar)
        lr = optimizer.param_groups[0]["lr"]
        try:
            train_stats = train_one_epoch(
                model, criterion, optimizer, loader, runtime, num_classes, input_size,
                max_steps=config.runtime.steps_per_epoch,
                grad_clip_norm=config.optim.grad_clip_norm,
                on_step=on_step,
            )
        finally:
            if bar is not None:
                bar.close()
        scheduler.step()

        val_metrics = None
        if val_data is not None:
            val_metrics = _validate(model, criterion, val_data, runtime, config, class_names, epoch, collate_fn)
        completed = epoch + 1
        history.append(_epoch_row(completed, train_stats, val_metrics, lr))

        improved = val_metrics is not None and (best_metric is None or val_metrics["macro_f1"] > best_metric)
        if improved:
            best_metric = val_metrics["macro_f1"]
        save_kwargs = dict(
            model=model, config=config, class_names=class_names, optimizer=optimizer, scheduler=scheduler,
            criterion=criterion, recipe_sha256=recipe_sha256, best_metric=best_metric, epoch=completed,
        )
        last_path = save_checkpoint(output_dir / epoch_checkpoint_name(completed), **save_kwargs)
        if improved:
            save_checkpoint(output_dir / BEST_FILE, **save_kwargs)
        for _, old in list_epoch_checkpoints(output_dir)[: -config.runtime.keep_checkpoints]:
            old.unlink()
        _write_history(output_dir / METRICS_FILE, history)
        plot_curves(history, output_dir / CURVES_FILE)
        logger.info("epoch %d/%d: %s", completed, config.optim.epochs, _summary(history[-1]))

    best_path = output_dir / BEST_FILE
    return FitResult(
        output_dir=output_dir,
        last_checkpoint=last_path,
        best_checkpoint=best_path if best_path.is_file() else None,
        history=history,
    )


def _validate(model: nn.Module, criterion: FERAttLoss, dataset: Dataset, runtime: Runtime, config: TrainConfig,
              class_names: Sequence[str], epoch: int, collate_fn: Callable[[list[Any]], Any] | None) -> dict[str, float]:
    _set_epoch(dataset, 0)  # the same validation renders every epoch
    loader = make_loader(dataset, config.optim.batch_size, False, config.seed, epoch, config.data.num_workers,
                         collate_fn=collate_fn)
    result = evaluate(model, criterion, loader, runtime, len(class_names), config.model.input_size,
                      attention_examples=0)
    report = classification_report(result.labels, result.predictions, class_names)
    metrics = dict(result.stats.metrics)
    metrics["macro_f1"] = report.macro_f1
    return metrics


def _progress_callback(bar: Any) -> Callable[[int, Any], None] | None:
    if bar is None:
        return None
    last = {"step": 0}

    def update(step: int, running: Any) -> None:
        bar.update(step - last["step"])
        last["step"] = step
        bar.set_postfix({name: f"{value:.4f}" for name, value in running.items()})

    return update


def _summary(row: dict[str, Any]) -> str:
    keys = ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "val_macro_f1")
    return ", ".join(f"{key} {row[key]:.4f}" for key in keys if key in row)
