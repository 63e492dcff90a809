"""Contact sheets: composites, targets and masks side by side, labelled, as PNG."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from .render import Sample

_LABEL_HEIGHT = 16
_GAP = 4


def _label_strip(texts: Sequence[str], column_width: int, width: int) -> np.ndarray:
    """Return a white strip with one label at the start of each column."""
    strip = np.full((_LABEL_HEIGHT, width, 3), 255, np.uint8)
    for column, text in enumerate(texts):
        cv2.putText(strip, text[: max(1, column_width // 7)], (3 + column * (column_width + _GAP), _LABEL_HEIGHT - 4),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.38, (0, 0, 0), 1, cv2.LINE_AA)
    return strip


def sample_tile(sample: Sample, class_name: str) -> np.ndarray:
    """Return one tile: composite, target and mask in a row, each under its label."""
    mask = np.repeat(sample.mask[..., None], 3, axis=2)
    gap = np.full((sample.composite.shape[0], _GAP, 3), 255, np.uint8)
    row = np.concatenate([sample.composite, gap, sample.target, gap, mask], axis=1)
    index = sample.metadata.get("index", "?")
    labels = (f"#{index} {class_name}", "target", "mask")
    return np.concatenate([_label_strip(labels, sample.composite.shape[1], row.shape[1]), row], axis=0)


def contact_sheet(samples: Sequence[Sample], class_names: Sequence[str], columns: int = 4) -> np.ndarray:
    """Arrange sample tiles in a grid with white gaps; returns RGB uint8."""
    if not samples:
        raise ValueError("contact_sheet needs at least one sample")
    tiles = [sample_tile(sample, class_names[sample.label]) for sample in samples]
    height, width = tiles[0].shape[:2]
    rows = -(-len(tiles) // columns)
    sheet = np.full((rows * (height + _GAP) + _GAP, min(columns, len(tiles)) * (width + _GAP) + _GAP, 3), 255,
                    np.uint8)
    for position, tile in enumerate(tiles):
        row, column = divmod(position, columns)
        y, x = _GAP + row * (height + _GAP), _GAP + column * (width + _GAP)
        sheet[y:y + tile.shape[0], x:x + tile.shape[1]] = tile
    return sheet


def write_png(path: str | Path, image: np.ndarray) -> Path:
    """Write an RGB uint8 image as PNG, creating the parent folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write {path}; check that the folder is writable and the name ends in .png")
    return path
