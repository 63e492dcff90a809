"""PNG figures are written, decodable and of the expected size."""

import numpy as np
import pytest
from PIL import Image

from fergen_train.plots import draw_curves, plot_attention_grid, plot_confusion_matrix, plot_curves


def read_png(path):
    with Image.open(path) as image:
        assert image.format == "PNG"
        return np.asarray(image.convert("RGB"))


def test_curves_png(tmp_path):
    history = [
        {"epoch": 1, "train_loss": 2.0, "val_loss": 2.5, "train_accuracy": 0.3, "val_accuracy": 0.25},
        {"epoch": 2, "train_loss": 1.0, "val_loss": 1.5, "train_accuracy": 0.6, "val_accuracy": 0.5},
    ]

    pixels = read_png(plot_curves(history, tmp_path / "curves.png"))

    assert pixels.shape == (400, 1000, 3)


def test_curves_without_validation(tmp_path):
    history = [{"epoch": 1, "train_loss": 2.0, "train_accuracy": 0.3}]

    assert read_png(plot_curves(history, tmp_path / "curves.png")).shape == (400, 1000, 3)


def visible_ticks(axes):
    low, high = axes.get_xlim()
    return [float(tick) for tick in axes.get_xticks() if low <= tick <= high]


@pytest.mark.parametrize("epochs, expected", [
    ([1], [1.0]),
    ([4], [4.0]),
    ([1, 2], [1.0, 2.0]),
    (list(range(1, 61)), [6.0, 12.0, 18.0, 24.0, 30.0, 36.0, 42.0, 48.0, 54.0, 60.0]),
])
def test_curves_whole_epoch_ticks(epochs, expected):
    history = [{"epoch": epoch, "train_loss": 1.0 / epoch, "train_accuracy": 0.5} for epoch in epochs]

    figure = draw_curves(history)
    figure.canvas.draw()

    loss_axes, accuracy_axes = figure.axes
    assert visible_ticks(loss_axes) == expected
    assert visible_ticks(accuracy_axes) == expected


def test_confusion_matrix_png(tmp_path):
    confusion = np.array([[5, 1, 0], [0, 3, 2], [0, 0, 0]])

    pixels = read_png(plot_confusion_matrix(confusion, ["happy", "sad", "neutral"], tmp_path / "cm.png"))

    assert pixels.shape == (400, 500, 3)
    assert pixels.std() > 0


def test_attention_grid_png(tmp_path):
    generator = np.random.default_rng(0)
    images = generator.random((3, 3, 64, 64), dtype=np.float32)
    maps = generator.random((3, 1, 64, 64), dtype=np.float32)
    attention_images = generator.random((3, 3, 32, 32), dtype=np.float32) * 1.4 - 0.2

    path = plot_attention_grid(images, maps, attention_images, tmp_path / "grid.png",
                               captions=["true a / predicted a"] * 3)

    assert read_png(path).shape == (750, 750, 3)


def test_attention_grid_count_mismatch(tmp_path):
    images = np.zeros((2, 3, 32, 32))

    with pytest.raises(ValueError, match="2 images, 1 attention maps and 2 attention images"):
        plot_attention_grid(images, np.zeros((1, 1, 32, 32)), np.zeros((2, 3, 32, 32)), tmp_path / "g.png")


def test_attention_grid_empty(tmp_path):
    with pytest.raises(ValueError, match="no samples to draw"):
        plot_attention_grid(np.zeros((0, 3, 32, 32)), np.zeros((0, 1, 32, 32)), np.zeros((0, 3, 32, 32)),
                            tmp_path / "g.png")
