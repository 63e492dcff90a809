"""PNG figures: training curves, confusion matrix and attention-map grid.

Figures are drawn on matplotlib's Agg canvas without pyplot, so no global
backend or figure state changes. matplotlib is imported when a figure is drawn.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np


def _new_figure(width: float, height: float) -> Any:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ImportError(
            "plots need matplotlib; install it with pip install 'fergen[eval]'"
        ) from error
    figure = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(figure)
    return figure


def _save(figure: Any, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png")
    return path


def plot_curves(history: Sequence[Mapping[str, Any]], path: str | Path) -> Path:
    """Draw loss and accuracy per epoch for training and validation into a PNG file.

    Args:
        history: One mapping per epoch with ``epoch`` and any of
            ``train_loss``, ``val_loss``, ``train_accuracy``, ``val_accuracy``.
        path: PNG file to write.
    """
    return _save(draw_curves(history), path)


def draw_curves(history: Sequence[Mapping[str, Any]]) -> Any:
    """Return the matplotlib Figure that :func:`plot_curves` saves."""
    figure = _new_figure(10, 4)
    loss_axes, accuracy_axes = figure.subplots(1, 2)
    epochs = [row["epoch"] for row in history]
    for axes, metric in ((loss_axes, "loss"), (accuracy_axes, "accuracy")):
        for split in ("train", "val"):
            key = f"{split}_{metric}"
            points = [(epoch, row[key]) for epoch, row in zip(epochs, history) if row.get(key) is not None]
            if points:
                xs, ys = zip(*points)
                axes.plot(xs, ys, marker="o", label=split)
        _set_epoch_axis(axes, epochs)
        axes.set_ylabel(metric)
        axes.grid(alpha=0.3)
        if axes.lines:
            axes.legend()
    accuracy_axes.set_ylim(0.0, 1.0)
    figure.tight_layout()
    return figure


def _set_epoch_axis(axes: Any, epochs: Sequence[int]) -> None:
    """Label the x axis with whole epochs only."""
    from matplotlib.ticker import MaxNLocator

    axes.set_xlabel("epoch")
    # min_n_ticks=1 stops the locator from falling back to fractional ticks
    # when the axis spans a single epoch.
    axes.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    if epochs:
        # Half an epoch of margin on each side, so one epoch still spans a whole tick interval.
        axes.set_xlim(min(epochs) - 0.5, max(epochs) + 0.5)


def plot_confusion_matrix(confusion: np.ndarray, class_names: Sequence[str], path: str | Path) -> Path:
    """Draw a confusion matrix coloured by row-normalised rate and annotated with counts.

    Args:
        confusion: int (K, K); rows are true classes, columns predictions.
        class_names: K names.
        path: PNG file to write.
    """
    confusion = np.asarray(confusion)
    count = len(class_names)
    rows = confusion.sum(axis=1, keepdims=True).astype(np.float64)
    rates = np.divide(confusion, rows, out=np.zeros(confusion.shape), where=rows > 0)

    side = max(4.0, 0.6 * count + 2.0)
    figure = _new_figure(side + 1.0, side)
    axes = figure.subplots()
    image = axes.imshow(rates, cmap="Blues", vmin=0.0, vmax=1.0)
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04, label="fraction of true class")
    axes.set_xticks(range(count), labels=list(class_names), rotation=45, ha="right")
    axes.set_yticks(range(count), labels=list(class_names))
    axes.set_xlabel("predicted class")
    axes.set_ylabel("true class")
    for row in range(count):
        for column in range(count):
            colour = "white" if rates[row, column] > 0.5 else "black"
            axes.text(column, row, str(int(confusion[row, column])), ha="center", va="center", color=colour, fontsize=8)
    figure.tight_layout()
    return _save(figure, path)


def _to_image(array: np.ndarray) -> np.ndarray:
    """Convert (3, H, W) or (H, W) float to an (H, W, 3) or (H, W) array clipped to [0, 1]."""
    if array.ndim == 3:
        array = np.transpose(array, (1, 2, 0))
    return np.clip(array, 0.0, 1.0)


def plot_attention_grid(
    images: np.ndarray,
    attention_maps: np.ndarray,
    attention_images: np.ndarray,
    path: str | Path,
    captions: Sequence[str] | None = None,
) -> Path:
    """Draw one row per sample: input image, attention map, attention image.

    Args:
        images: float (N, 3, H, W) in [0, 1].
        attention_maps: float (N, C, H, W) in [0, 1]; the mean over C is shown.
        attention_images: float (N, 3, h, w), clipped to [0, 1] for display.
        path: PNG file to write.
        captions: Optional N strings shown above each input, such as
            "true happy / predicted sad".
    """
    count = len(images)
    if count == 0:
        raise ValueError("no samples to draw in the attention grid")
    if not len(attention_maps) == len(attention_images) == count:
        raise ValueError(
            f"{count} images, {len(attention_maps)} attention maps and "
            f"{len(attention_images)} attention images; expected equal counts"
        )
    figure = _new_figure(7.5, 2.5 * count)
    axes = np.asarray(figure.subplots(count, 3, squeeze=False))
    titles = ("input", "attention map", "attention image")
    for row in range(count):
        panels = (
            (_to_image(images[row]), {}),
            (_to_image(attention_maps[row].mean(axis=0)), {"cmap": "jet", "vmin": 0.0, "vmax": 1.0}),
            (_to_image(attention_images[row]), {}),
        )
        for column, (picture, options) in enumerate(panels):
            cell = axes[row, column]
            cell.imshow(picture, **options)
            cell.set_xticks([])
            cell.set_yticks([])
            if row == 0:
                cell.set_title(titles[column])
        if captions is not None:
            axes[row, 0].set_ylabel(captions[row], fontsize=8)
    figure.tight_layout()
    return _save(figure, path)
