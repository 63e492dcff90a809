"""Helpers shared by the test modules: real image files and small recipes."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import skimage.data

REPO_ROOT = Path(__file__).resolve().parents[1]
# A small real COCO sample (annotations/instances_train2017.json and images/train2017/):
# $FERGEN_TINY_COCO, else shared/data/tiny_coco beside the repository.
TINY_COCO = Path(os.environ.get("FERGEN_TINY_COCO") or REPO_ROOT.parent / "shared" / "data" / "tiny_coco")


def write_rgb(path: Path, rgb: np.ndarray) -> Path:
    """Write an RGB uint8 array with OpenCV (the format follows the extension)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write {path}")
    return path


def face_on_black(variant: int = 0) -> np.ndarray:
    """The astronaut's face cut with an ellipse onto a black 160x160 image, tinted per variant."""
    image = skimage.data.astronaut()[40:200, 150:310].copy()
    mask = np.zeros(image.shape[:2], np.uint8)
    cv2.ellipse(mask, (80, 85), (52, 68), 0, 0, 360, 1, -1)
    image = image * mask[..., None]
    tint = np.array([1.0, 1.0 - 0.1 * (variant % 3), 1.0 - 0.1 * (variant % 2)])
    result = np.clip(image * tint, 0, 255).astype(np.uint8)
    # Keep the face's darkest pixels above the dark-background threshold.
    result[mask.astype(bool)] = np.maximum(result[mask.astype(bool)], 20)
    return result


def small_recipe(face_dir: Path, background_dir: Path, **sections) -> dict:
    """A recipe dict using the folder fixtures; keyword sections update the defaults."""
    recipe = {
        "version": 1, "name": "test", "seed": 7,
        "faces": {"kind": "folder", "path": str(face_dir), "subject_pattern": "^(S[0-9]+)_",
                  "mask": {"strategy": "dark-background"}},
        "backgrounds": {"kind": "folder", "path": str(background_dir)},
        "render": {"output_size": [64, 64], "face_size": 64, "padding": 4},
        "output": {"samples": 20, "samples_per_shard": 8},
    }
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(recipe.get(key), dict):
            recipe[key] = {**recipe[key], **value}
        else:
            recipe[key] = value
    return recipe
