"""One guard for image arrays: layout, dtype and size, with expected versus actual."""

from __future__ import annotations

from typing import Optional

import numpy as np


def check_image(image: np.ndarray, name: str, channels: Optional[int] = 3, dtype: type = np.uint8,
                size: Optional[tuple[int, int]] = None) -> None:
    """Raise ``TypeError``/``ValueError`` unless ``image`` is (H, W[, channels]) of ``dtype``.

    Args:
        image: the array to check.
        name: argument name used in the message.
        channels: expected channel count, or ``None`` for a 2-D (H, W) array.
        dtype: expected numpy dtype.
        size: expected (height, width), if fixed.
    """
    if not isinstance(image, np.ndarray):
        raise TypeError(f"{name}: expected a numpy array, got {type(image).__name__}")
    expected_ndim = 2 if channels is None else 3
    layout = "(H, W)" if channels is None else f"(H, W, {channels})"
    if image.ndim != expected_ndim or (channels is not None and image.shape[2] != channels):
        raise ValueError(f"{name}: expected shape {layout}, got {image.shape}")
    if image.dtype != dtype:
        raise TypeError(f"{name}: expected dtype {np.dtype(dtype).name}, got {image.dtype.name}")
    if size is not None and tuple(image.shape[:2]) != tuple(size):
        raise ValueError(f"{name}: expected height and width {tuple(size)}, got {image.shape[:2]}")
