"""Checkpoints that load with ``torch.load(weights_only=True)``.

A checkpoint is a dict of state_dicts, plain Python values and strings, so
loading it never unpickles arbitrary objects. It carries what inference needs
besides the weights: the config, class names, input size, preprocessing and
the sha256 of the recipe the training data came from.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

import fergen
from fergen_train.config import ConfigError, TrainConfig, config_from_dict, config_to_dict
from fergen_train.models import build_model

logger = logging.getLogger(__name__)

#: Version of the checkpoint layout; raise it when keys change meaning.
CHECKPOINT_FORMAT = 1

#: Input convention of the model, recorded for other tools that read the file.
PREPROCESSING = {
    "color": "RGB",
    "range": [0.0, 1.0],
    "resize": "area",
    "normalization": "inside the model (ImageNet mean and std)",
}

REQUIRED_KEYS = ("format", "model", "epoch", "config", "class_names", "input_size")

_EPOCH_FILE = re.compile(r"^epoch_(\d+)\.pt$")


class CheckpointError(ValueError):
    """A checkpoint file is unreadable, incomplete or does not fit the current run."""


def epoch_checkpoint_name(epoch: int) -> str:
    """Return the file name of the checkpoint written after ``epoch`` completed epochs."""
    return f"epoch_{epoch:03d}.pt"


def list_epoch_checkpoints(folder: str | Path) -> list[tuple[int, Path]]:
    """List ``epoch_NNN.pt`` files in ``folder`` as (epoch, path), oldest first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = []
    for path in folder.iterdir():
        match = _EPOCH_FILE.match(path.name)
        if match:
            found.append((int(match.group(1)), path))
    return sorted(found)


def save_checkpoint(
    path: str | Path,
    *,
    model: nn.Module,
    config: TrainConfig,
    class_names: Sequence[str],
    epoch: int,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any | None = None,
    criterion: nn.Module | None = None,
    recipe_sha256: str | None = None,
    best_metric: float | None = None,
) -> Path:
    """Write a checkpoint atomically: to a temporary file, then renamed over ``path``.

    Args:
        epoch: Number of completed training epochs.
        best_metric: Best validation macro F1 so far, for resuming best.pt tracking.

    Returns:
        ``path`` as a Path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "model": model.state_dict(),
        "optimizer": None if optimizer is None else optimizer.state_dict(),
        "scheduler": None if scheduler is None else scheduler.state_dict(),
        "loss": None if criterion is None else criterion.state_dict(),
        "epoch": int(epoch),
        "config": config_to_dict(config),
        "class_names": [str(name) for name in class_names],
        "input_size": list(config.model.input_size),
        "preprocessing": dict(PREPROCESSING),
        "recipe_sha256": recipe_sha256,
        "best_metric": best_metric,
        "fergen_version": str(fergen.__version__),
        "torch_version": str(torch.__version__),  # TorchVersion is not allowed by weights_only
    }
    temporary = path.with_name(f".{path.name}.tmp")
    with open(temporary, "wb") as handle:
        torch.save(payload, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    return path


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint onto the CPU with ``weights_only=True`` and check its keys.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        CheckpointError: if the file is not a fergen_train checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} not found")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises UnpicklingError, RuntimeError or EOFError here
        raise CheckpointError(f"{path}: cannot read the checkpoint ({type(error).__name__}: {error})") from error
    if not isinstance(payload, Mapping):
        raise CheckpointError(f"{path}: expected a checkpoint dict, got {type(payload).__name__}")
    missing = [key for key in REQUIRED_KEYS if key not in payload]
    if missing:
        raise CheckpointError(
            f"{path}: missing keys {missing}; this file was not written by fergen-train fit"
        )
    if payload["format"] != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{path}: checkpoint format {payload['format']!r}, this version reads format {CHECKPOINT_FORMAT}"
        )
    return dict(payload)


def checkpoint_config(payload: Mapping[str, Any], source: str = "<checkpoint>") -> TrainConfig:
    """Rebuild the :class:`TrainConfig` stored in a checkpoint."""
    try:
        return config_from_dict(payload["config"], source=f"{source} (stored config)")
    except ConfigError as error:
        raise CheckpointError(str(error)) from error


def model_from_checkpoint(payload: Mapping[str, Any], source: str = "<checkpoint>") -> nn.Module:
    """Build the checkpoint's model variant and load its weights, in eval mode on the CPU."""
    config = checkpoint_config(payload, source)
    model = build_model(config.model, num_classes=len(payload["class_names"]), load_weights=False)
    try:
        model.load_state_dict(payload["model"], strict=True)
    except RuntimeError as error:
        raise CheckpointError(f"{source}: the model weights do not fit the stored config: {error}") from error
    return model.eval()
