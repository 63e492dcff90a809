"""Image files for ``fergen-train predict``: listing, face cropping and conversion to model input."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch

from fergen.faces.base import IMAGE_EXTENSIONS, list_images
from fergen.masks import detected_face_box
from fergen.recipe import MaskConfig

logger = logging.getLogger(__name__)


def collect_image_paths(inputs: Sequence[str | Path]) -> list[Path]:
    """Expand files and folders into a list of image files.

    Folders are searched recursively for the image extensions fergen reads
    (case-insensitive), in sorted order. Files are kept in the order given.

    Raises:
        FileNotFoundError: if an input does not exist, or a folder has no images.
    """
    paths: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = list_images(path)
            if not found:
                raise FileNotFoundError(
                    f"folder {str(path)!r} contains no images with extensions {', '.join(IMAGE_EXTENSIONS)}"
                )
            paths.extend(found)
        elif path.is_file():
            paths.append(path)
        else:
            raise FileNotFoundError(f"image or folder {str(path)!r} not found")
    return paths


def face_crop_box(image: np.ndarray, config: MaskConfig | None = None) -> tuple[int, int, int] | None:
    """Find the largest face with fergen's Haar detector and return its square crop box.

    The box is framed as fergen frames faces for its ``auto`` mask strategy
    (:func:`fergen.masks.detected_face_box`).

    Returns:
        ``(x0, y0, side)`` in pixels, possibly extending past the image, or
        ``None`` when no face is found.
    """
    return detected_face_box(image, config)


def crop_square(image: np.ndarray, box: tuple[int, int, int]) -> np.ndarray:
    """Crop a square ``(x0, y0, side)`` box; parts outside the image are black."""
    x0, y0, side = box
    height, width = image.shape[:2]
    crop = np.zeros((side, side) + image.shape[2:], dtype=image.dtype)
    left, top = max(0, x0), max(0, y0)
    right, bottom = min(width, x0 + side), min(height, y0 + side)
    if right > left and bottom > top:
        crop[top - y0 : bottom - y0, left - x0 : right - x0] = image[top:bottom, left:right]
    return crop


def to_model_input(image: np.ndarray, input_size: Sequence[int]) -> torch.Tensor:
    """Resize an RGB uint8 (H, W, 3) image and return float32 (3, h, w) in [0, 1].

    Downscaling uses area interpolation and upscaling bilinear.
    """
    height, width = int(input_size[0]), int(input_size[1])
    shrinking = image.shape[0] > height or image.shape[1] > width
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    resized = cv2.resize(image, (width, height), interpolation=interpolation)
    return torch.from_numpy(np.ascontiguousarray(resized.transpose(2, 0, 1))).float().div_(255.0)
