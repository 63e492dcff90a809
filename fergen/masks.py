"""Mask strategies: from a face image to a cleaned binary face mask and crop box.

Every strategy returns a :class:`MaskResult` (a binary mask of the whole
image and the square crop box around the face) or raises :class:`NoMask`
with the reason, which the caller counts as a skipped face.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Optional

import cv2
import numpy as np

from .recipe import MaskConfig


class NoMask(Exception):
    """No usable mask for a face; ``reason`` is a short key for the skip summary."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class MaskResult:
    """A face mask (uint8 0/1, image size) and the square box (x0, y0, side) to crop."""

    mask: np.ndarray
    box: tuple[int, int, int]


def _kernel(size: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """Fill background regions not connected to the image border (uint8 0/1 in and out)."""
    height, width = mask.shape
    padded = np.zeros((height + 2, width + 2), np.uint8)
    padded[1:-1, 1:-1] = mask
    flood = padded.copy()
    cv2.floodFill(flood, np.zeros((height + 4, width + 4), np.uint8), (0, 0), 1)
    holes = flood[1:-1, 1:-1] == 0
    return (mask.astype(bool) | holes).astype(np.uint8)


def largest_component(mask: np.ndarray) -> np.ndarray:
    """Keep only the largest 8-connected foreground component."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if count <= 1:
        return np.zeros_like(mask, dtype=np.uint8)
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    return (labels == largest).astype(np.uint8)


def clean_mask(mask: np.ndarray, config: MaskConfig) -> np.ndarray:
    """Close small gaps, fill holes, keep the largest component, then erode the edge."""
    mask = (mask > 0).astype(np.uint8)
    if config.close_size > 1:
        mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, _kernel(config.close_size))
    mask = largest_component(fill_holes(mask))
    if config.erode_size > 1:
        mask = cv2.erode(mask, _kernel(config.erode_size))
    return mask


def square_box(x0: float, y0: float, x1: float, y1: float, expand: float = 1.0) -> tuple[int, int, int]:
    """Return the square (x0, y0, side) centred on a rectangle, grown by ``expand``; may leave the image."""
    side = max(x1 - x0, y1 - y0) * expand
    cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
    side_int = max(1, int(round(side)))
    return int(round(cx - side_int / 2.0)), int(round(cy - side_int / 2.0)), side_int


def box_of(mask: np.ndarray) -> tuple[int, int, int]:
    """Return the square box around the mask's foreground."""
    points = cv2.findNonZero(mask)
    x, y, w, h = cv2.boundingRect(points)
    return square_box(x, y, x + w, y + h)


def ellipse_mask(height: int, width: int, center: tuple[float, float], axes: tuple[float, float]) -> np.ndarray:
    """Return a filled ellipse (uint8 0/1); centre and semi-axes are fractions of width and height."""
    mask = np.zeros((height, width), np.uint8)
    cv2.ellipse(mask, (int(round(center[0] * width)), int(round(center[1] * height))),
                (max(1, int(round(axes[0] * width))), max(1, int(round(axes[1] * height)))),
                0, 0, 360, 1, thickness=-1)
    return mask


def _check_area(mask: np.ndarray, box: tuple[int, int, int], config: MaskConfig) -> MaskResult:
    area = float(mask.sum())
    if area == 0 or area < config.min_area * box[2] * box[2]:
        raise NoMask("mask too small")
    return MaskResult(mask=mask, box=box)


def mask_from_file(mask: Optional[np.ndarray], image_shape: tuple[int, ...], config: MaskConfig) -> MaskResult:
    """Threshold and clean a mask read from a file."""
    if mask is None:
        raise NoMask("mask file missing")
    if mask.shape != image_shape[:2]:
        raise NoMask("mask size differs from image")
    cleaned = clean_mask((mask >= 0.5).astype(np.uint8), config)
    if not cleaned.any():
        raise NoMask("mask empty")
    return _check_area(cleaned, box_of(cleaned), config)


def mask_from_dark_background(image: np.ndarray, config: MaskConfig) -> MaskResult:
    """Segment a face pre-cut onto a black background.

    The threshold is applied to the brightest channel; holes (dark hair,
    pupils) are filled and only the largest component is kept.
    """
    brightest = image.max(axis=2)
    mask = clean_mask((brightest > config.threshold).astype(np.uint8), config)
    if not mask.any():
        raise NoMask("mask empty")
    return _check_area(mask, box_of(mask), config)


def mask_from_ellipse(image: np.ndarray, config: MaskConfig) -> MaskResult:
    """Use a fixed ellipse for tight face crops (e.g. 48x48 expression crops)."""
    height, width = image.shape[:2]
    mask = ellipse_mask(height, width, config.ellipse_center, config.ellipse_axes)
    side = max(height, width)
    return MaskResult(mask=mask, box=((width - side) // 2, (height - side) // 2, side))


@lru_cache(maxsize=1)
def _face_detector() -> "cv2.CascadeClassifier":
    path = cv2.data.haarcascades + "haarcascade_frontalface_default.xml"
    detector = cv2.CascadeClassifier(path)
    if detector.empty():
        raise RuntimeError(f"OpenCV's Haar cascade {path} could not be loaded; reinstall "
                           "opencv-python-headless (a 4.x release ships the cascades).")
    return detector


def detect_face(image: np.ndarray, config: MaskConfig) -> Optional[tuple[int, int, int, int]]:
    """Return the largest detected face as (x, y, w, h), or ``None``."""
    grey = cv2.equalizeHist(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY))
    min_side = max(12, int(config.detector_min_size * min(grey.shape)))
    faces = _face_detector().detectMultiScale(grey, scaleFactor=1.1, minNeighbors=config.detector_min_neighbors,
                                              minSize=(min_side, min_side))
    if len(faces) == 0:
        return None
    x, y, w, h = max((tuple(int(v) for v in face) for face in faces), key=lambda f: (f[2] * f[3], f))
    return x, y, w, h


def face_ellipse(face: tuple[int, int, int, int]) -> tuple[tuple[float, float], tuple[float, float]]:
    """Return the (centre, semi-axes) of the face ellipse for a Haar detection (x, y, w, h).

    The Haar box covers brows to mouth; the ellipse is taller, to include chin and forehead.
    """
    x, y, w, h = face
    return (x + w / 2.0, y + h * 0.55), (w * 0.5, h * 0.68)


def ellipse_crop_box(center: tuple[float, float], axes: tuple[float, float],
                     config: MaskConfig) -> tuple[int, int, int]:
    """Return the square crop box (x0, y0, side) around a face ellipse, grown by ``config.face_expand``."""
    return square_box(center[0] - axes[0], center[1] - axes[1], center[0] + axes[0], center[1] + axes[1],
                      expand=config.face_expand)


def detected_face_box(image: np.ndarray, config: Optional[MaskConfig] = None) -> Optional[tuple[int, int, int]]:
    """Return the square crop box (x0, y0, side) that the ``auto`` strategy uses, or ``None`` without a face.

    The box may extend past the image border.
    """
    config = config or MaskConfig()
    face = detect_face(image, config)
    if face is None:
        return None
    return ellipse_crop_box(*face_ellipse(face), config)


def mask_from_detector(image: np.ndarray, config: MaskConfig) -> MaskResult:
    """Detect the largest face, place an ellipse on it and refine it with GrabCut."""
    face = detect_face(image, config)
    if face is None:
        raise NoMask("no face detected")
    w = face[2]
    height, width = image.shape[:2]
    center, axes = face_ellipse(face)
    ellipse = np.zeros((height, width), np.uint8)
    cv2.ellipse(ellipse, (int(round(center[0])), int(round(center[1]))),
                (int(round(axes[0])), int(round(axes[1]))), 0, 0, 360, 1, thickness=-1)
    mask = ellipse
    if config.grabcut_iterations > 0:
        mask = _grabcut(image, center, axes, config.grabcut_iterations)
        # GrabCut may leak into similar background; the face must stay near the ellipse.
        grown = cv2.dilate(ellipse, _kernel(max(3, int(0.1 * w) | 1)))
        mask = mask & grown
        if mask.sum() < 0.5 * ellipse.sum():
            mask = ellipse
    mask = clean_mask(mask, config)
    if not mask.any():
        raise NoMask("mask empty")
    return _check_area(mask, ellipse_crop_box(center, axes, config), config)


def _grabcut(image: np.ndarray, center: tuple[float, float], axes: tuple[float, float],
             iterations: int) -> np.ndarray:
    height, width = image.shape[:2]
    labels = np.full((height, width), cv2.GC_BGD, np.uint8)
    c = (int(round(center[0])), int(round(center[1])))

    def draw(scale: float, value: int) -> None:
        cv2.ellipse(labels, c, (max(1, int(axes[0] * scale)), max(1, int(axes[1] * scale))), 0, 0, 360, value, -1)

    draw(1.3, cv2.GC_PR_BGD)
    draw(1.0, cv2.GC_PR_FGD)
    draw(0.6, cv2.GC_FGD)
    background_model = np.zeros((1, 65), np.float64)
    foreground_model = np.zeros((1, 65), np.float64)
    # GrabCut's k-means initialisation draws from OpenCV's global RNG; reseed it so masks repeat exactly.
    cv2.setRNGSeed(0)
    cv2.grabCut(cv2.cvtColor(image, cv2.COLOR_RGB2BGR), labels, None, background_model, foreground_model,
                iterations, cv2.GC_INIT_WITH_MASK)
    return ((labels == cv2.GC_FGD) | (labels == cv2.GC_PR_FGD)).astype(np.uint8)


def compute_mask(image: np.ndarray, file_mask: Optional[np.ndarray], config: MaskConfig) -> MaskResult:
    """Apply the configured strategy; raises :class:`NoMask` with a reason."""
    if config.strategy == "file":
        return mask_from_file(file_mask, image.shape, config)
    if config.strategy == "dark-background":
        return mask_from_dark_background(image, config)
    if config.strategy == "ellipse":
        return mask_from_ellipse(image, config)
    return mask_from_detector(image, config)
