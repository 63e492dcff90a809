"""Training and evaluation loops over any DataLoader that yields fergen batches.

A batch is a dict, as ``fergen.torch.collate`` builds it, with:

- ``composite``: float32 (B, 3, H, W) in [0, 1], the model input;
- ``target``: float32 (B, 3, H, W) in [0, 1], the face-only image (needed by
  variants with an attention loss);
- ``label``: int64 (B,) class indices;
- optionally ``mask`` and ``theta``, which the loops ignore;
- optionally ``meta``, a list of B dicts, from which :func:`evaluate` keeps
  the keys it is given so that results can be traced to their samples.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from fergen_train.config import ConfigError, RuntimeConfig
from fergen_train.losses import FERAttLoss

logger = logging.getLogger(__name__)

#: Steps between host synchronisations that read the running loss on CUDA.
SYNC_EVERY = 20


class BatchError(ValueError):
    """A batch does not follow the batch contract described in this module."""


@dataclass(frozen=True)
class Runtime:
    """Resolved device and precision settings."""

    device: torch.device
    #: Autocast dtype (``torch.bfloat16``) or ``None`` for full precision.
    amp_dtype: torch.dtype | None
    channels_last: bool

    def autocast(self) -> contextlib.AbstractContextManager:
        """Return the autocast context for forward passes (a no-op without AMP)."""
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)


def resolve_runtime(config: RuntimeConfig) -> Runtime:
    """Turn ``auto`` settings into a device, an autocast dtype and a memory format.

    Raises:
        ConfigError: if CUDA is requested but not available, or bf16 is requested on the CPU.
    """
    if config.device == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(config.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"runtime.device is {config.device!r} but CUDA is not available; set it to auto or cpu")

    if config.amp == "bf16" and device.type != "cuda":
        raise ConfigError("runtime.amp bf16 needs a CUDA device; set runtime.amp to auto or off on the CPU")
    use_amp = config.amp == "bf16" or (config.amp == "auto" and device.type == "cuda")
    amp_dtype = torch.bfloat16 if use_amp else None

    channels_last = config.channels_last == "on" or (config.channels_last == "auto" and device.type == "cuda")
    # NOTE: the CUDA settings (bf16 autocast, channels_last, pinned memory) have
    # not run on a GPU yet; the tests cover the CPU path only.
    return Runtime(device=device, amp_dtype=amp_dtype, channels_last=channels_last)


def prepare_batch(
    batch: Mapping[str, Any],
    runtime: Runtime,
    num_classes: int,
    need_target: bool,
    input_size: tuple[int, int] | None = None,
) -> dict[str, torch.Tensor]:
    """Check a batch against the contract and move its tensors to the device.

    Returns:
        A dict with ``composite``, ``label`` and, when ``need_target``, ``target``.

    Raises:
        BatchError: naming the key, the expected and the actual shape, dtype or range.
    """
    if not isinstance(batch, Mapping):
        raise BatchError(f"expected a batch dict with 'composite' and 'label', got {type(batch).__name__}")
    required = ("composite", "label", "target") if need_target else ("composite", "label")
    missing = [key for key in required if key not in batch]
    if missing:
        raise BatchError(f"batch is missing {missing}; it has keys {sorted(batch)}")

    composite = batch["composite"]
    labels = batch["label"]
    if not torch.is_tensor(composite) or composite.dim() != 4 or composite.shape[1] != 3:
        shape = tuple(composite.shape) if torch.is_tensor(composite) else type(composite).__name__
        raise BatchError(f"batch['composite'] must be a (B, 3, H, W) tensor, got {shape}")
    if composite.dtype != torch.float32:
        raise BatchError(f"batch['composite'] must be float32 in [0, 1], got {composite.dtype}")
    if input_size is not None and tuple(composite.shape[-2:]) != tuple(input_size):
        raise BatchError(
            f"batch['composite'] is {composite.shape[-2]}x{composite.shape[-1]} but model.input_size is "
            f"{input_size[0]}x{input_size[1]}; make the recipe's output size and model.input_size agree"
        )
    if not torch.is_tensor(labels) or labels.dtype != torch.int64 or labels.shape != composite.shape[:1]:
        description = f"{labels.dtype} {tuple(labels.shape)}" if torch.is_tensor(labels) else type(labels).__name__
        raise BatchError(f"batch['label'] must be int64 of shape ({composite.shape[0]},), got {description}")
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise BatchError(
            f"batch['label'] has values in [{int(labels.min())}, {int(labels.max())}] but the model has "
            f"{num_classes} classes; check that the data and the class names match"
        )

    memory_format = torch.channels_last if runtime.channels_last else torch.contiguous_format
    non_blocking = runtime.device.type == "cuda"
    prepared = {
        "composite": composite.to(runtime.device, non_blocking=non_blocking, memory_format=memory_format),
        "label": labels.to(runtime.device, non_blocking=non_blocking),
    }
    if need_target:
        target = batch["target"]
        if not torch.is_tensor(target) or target.shape != composite.shape:
            shape = tuple(target.shape) if torch.is_tensor(target) else type(target).__name__
            raise BatchError(f"batch['target'] must match composite {tuple(composite.shape)}, got {shape}")
        prepared["target"] = target.to(runtime.device, non_blocking=non_blocking, dtype=torch.float32)
    return prepared


@dataclass
class _Averages:
    """Sample-weighted sums kept on the device until read."""

    sums: dict[str, torch.Tensor] = field(default_factory=dict)
    correct: torch.Tensor | None = None
    samples: int = 0

    def add(self, terms: Mapping[str, torch.Tensor], total: torch.Tensor, correct: torch.Tensor, count: int) -> None:
        for name, value in {"loss": total, **terms}.items():
            weighted = value.detach().float() * count
            self.sums[name] = weighted if name not in self.sums else self.sums[name] + weighted
        self.correct = correct if self.correct is None else self.correct + correct
        self.samples += count

    def means(self) -> dict[str, float]:
        if self.samples == 0:
            return {}
        values = {name: float(value) / self.samples for name, value in self.sums.items()}
        values["accuracy"] = float(self.correct) / self.samples
        return values


@dataclass(frozen=True)
class EpochStats:
    """Mean loss terms and accuracy over one pass, with its size and duration."""

    #: ``loss`` (the weighted total), each loss term, and ``accuracy``.
    metrics: dict[str, float]
    samples: int
    steps: int
    seconds: float

    @property
    def samples_per_second(self) -> float:
        return self.samples / self.seconds if self.seconds > 0 else 0.0


StepCallback = Callable[[int, Mapping[str, float]], None]


def _check_finite(metrics: Mapping[str, float], step: int) -> None:
    bad = {name: value for name, value in metrics.items() if not math.isfinite(value)}
    if bad:
        raise FloatingPointError(
            f"non-finite training loss at step {step}: {bad}; lower optim.lr or set optim.grad_clip_norm"
        )


def train_one_epoch(
    model: nn.Module,
    criterion: FERAttLoss,
    optimizer: torch.optim.Optimizer,
    loader: Iterable[Mapping[str, Any]],
    runtime: Runtime,
    num_classes: int,
    input_size: tuple[int, int] | None = None,
    max_steps: int | None = None,
    grad_clip_norm: float | None = None,
    on_step: StepCallback | None = None,
) -> EpochStats:
    """Run one training pass over ``loader``.

    Args:
        max_steps: Stop after this many optimiser steps; ``None`` runs the whole loader.
        on_step: Called as ``on_step(step, running_means)`` every step on the
            CPU and every :data:`SYNC_EVERY` steps on CUDA, where reading the
            loss waits for the device.

    Raises:
        FloatingPointError: if the loss becomes NaN or infinite.
        BatchError: if a batch breaks the batch contract.
    """
    model.train()
    criterion.train()
    averages = _Averages()
    started = time.perf_counter()
    steps = 0
    sync_every = SYNC_EVERY if runtime.device.type == "cuda" else 1
    for batch in loader:
        batch = prepare_batch(batch, runtime, num_classes, criterion.use_attention, input_size)
        with runtime.autocast():
            output = model(batch["composite"])
        result = criterion(output, batch)
        optimizer.zero_grad(set_to_none=True)
        result.total.backward()
        if grad_clip_norm is not None:
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip_norm)
        optimizer.step()

        correct = (output.logits.detach().argmax(dim=1) == batch["label"]).sum()
        averages.add(result.terms, result.total, correct, batch["label"].shape[0])
        steps += 1
        if steps % sync_every == 0:
            running = averages.means()
            _check_finite(running, steps)
            if on_step is not None:
                on_step(steps, running)
        if max_steps is not None and steps >= max_steps:
            break

    metrics = averages.means()
    _check_finite(metrics, steps)
    if steps == 0:
        raise BatchError("the training loader yielded no batches; check the data and optim.batch_size")
    return EpochStats(metrics=metrics, samples=averages.samples, steps=steps, seconds=time.perf_counter() - started)


@dataclass(frozen=True)
class EvaluationResult:
    """Loss, labels, predictions and a few attention examples from one evaluation pass."""

    stats: EpochStats
    labels: np.ndarray
    predictions: np.ndarray
    #: Softmax probabilities, float32 (N, K).
    probabilities: np.ndarray
    #: First samples as float32 numpy arrays: ``composite`` (n, 3, H, W),
    #: ``attention_map`` (n, C, H, W), ``attention_image`` (n, 3, 32, 32).
    #: Empty for the baseline.
    attention_examples: dict[str, np.ndarray]
    #: One dict per sample with the ``meta_keys`` that its batch ``meta`` has;
    #: empty dicts when the batches carry no ``meta``.
    sample_meta: list[dict[str, Any]] = field(default_factory=list)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    criterion: FERAttLoss | None,
    loader: Iterable[Mapping[str, Any]],
    runtime: Runtime,
    num_classes: int,
    input_size: tuple[int, int] | None = None,
    attention_examples: int = 8,
    on_step: StepCallback | None = None,
    meta_keys: Sequence[str] = (),
) -> EvaluationResult:
    """Run the model in eval mode over ``loader`` and collect predictions.

    Args:
        criterion: Loss to report; ``None`` skips the loss, so batches need no
            ``target`` (real photos have none).
        attention_examples: Number of leading samples whose attention map and
            attention image are kept for plotting.
        meta_keys: Keys of each sample's ``meta`` dict (such as ``key`` or
            ``face_id``) to keep in :attr:`EvaluationResult.sample_meta`.

    Raises:
        BatchError: if the loader yields no batches, or a batch breaks the batch contract.
    """
    model.eval()
    need_target = False
    if criterion is not None:
        criterion.eval()
        need_target = criterion.use_attention
    averages = _Averages()
    labels, predictions, probabilities = [], [], []
    sample_meta: list[dict[str, Any]] = []
    examples: dict[str, list[np.ndarray]] = {"composite": [], "attention_map": [], "attention_image": []}
    collected_examples = 0
    started = time.perf_counter()
    steps = 0
    for raw_batch in loader:
        batch = prepare_batch(raw_batch, runtime, num_classes, need_target, input_size)
        sample_meta.extend(_select_meta(raw_batch, batch["label"].shape[0], meta_keys))
        with runtime.autocast():
            output = model(batch["composite"])
        probability = torch.softmax(output.logits.float(), dim=1)
        prediction = probability.argmax(dim=1)
        count = batch["label"].shape[0]
        correct = (prediction == batch["label"]).sum()
        if criterion is not None:
            result = criterion(output, batch)
            averages.add(result.terms, result.total, correct, count)
        else:
            averages.add({}, torch.zeros((), device=runtime.device), correct, count)

        labels.append(batch["label"].cpu().numpy())
        predictions.append(prediction.cpu().numpy())
        probabilities.append(probability.cpu().numpy())
        if output.attention_map is not None and collected_examples < attention_examples:
            take = min(attention_examples - collected_examples, count)
            examples["composite"].append(batch["composite"][:take].float().cpu().numpy())
            examples["attention_map"].append(output.attention_map[:take].float().cpu().numpy())
            examples["attention_image"].append(output.attention_image[:take].float().cpu().numpy())
            collected_examples += take
        steps += 1
        if on_step is not None:
            on_step(steps, {})

    if steps == 0:
        raise BatchError("the evaluation loader yielded no batches; check that the evaluation data is not empty")
    metrics = averages.means()
    if criterion is None:
        metrics.pop("loss", None)
    stats = EpochStats(metrics=metrics, samples=averages.samples, steps=steps, seconds=time.perf_counter() - started)
    return EvaluationResult(
        stats=stats,
        labels=np.concatenate(labels) if labels else np.zeros(0, dtype=np.int64),
        predictions=np.concatenate(predictions) if predictions else np.zeros(0, dtype=np.int64),
        probabilities=np.concatenate(probabilities) if probabilities else np.zeros((0, num_classes), np.float32),
        attention_examples={key: np.concatenate(value) for key, value in examples.items() if value},
        sample_meta=sample_meta,
    )


def _select_meta(batch: Mapping[str, Any], count: int, keys: Sequence[str]) -> list[dict[str, Any]]:
    """Return the ``keys`` of each sample's ``meta`` dict, or ``count`` empty dicts when the batch has no ``meta``."""
    metas = batch.get("meta")
    if not keys or not isinstance(metas, Sequence):
        return [{} for _ in range(count)]
    if len(metas) != count:
        raise BatchError(f"batch['meta'] has {len(metas)} entries but the batch has {count} samples; "
                         "collate one meta dict per sample")
    return [{key: meta[key] for key in keys if key in meta} for meta in metas]
