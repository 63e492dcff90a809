"""Image reading and encoding with OpenCV, in RGB order."""

from __future__ import annotations

import os

import cv2
import numpy as np

from .errors import DataError

# OpenCV's own threads fight with joblib and DataLoader worker processes.
cv2.setNumThreads(1)


def _decode(path: str | os.PathLike, flags: int) -> np.ndarray:
    try:
        data = np.fromfile(os.fspath(path), dtype=np.uint8)
    except FileNotFoundError:
        raise DataError(f"image {os.fspath(path)} not found. Check the path and the data root.") from None
    except OSError as error:
        raise DataError(f"image {os.fspath(path)} could not be read: {error}") from None
    image = cv2.imdecode(data, flags) if data.size else None
    if image is None:
        raise DataError(f"image {os.fspath(path)} is not a readable image (corrupt or unsupported format). "
                        "Replace or delete the file.")
    return image


def to_rgb_uint8(image: np.ndarray) -> np.ndarray:
    """Convert a decoded OpenCV image (grey, BGR or BGRA; 8 or 16 bit) to RGB uint8."""
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype != np.uint8:
        image = np.clip(image, 0, 255).astype(np.uint8)
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as RGB uint8, shape (H, W, 3).

    Raises:
        DataError: if the file is missing, empty or not a decodable image.
    """
    return to_rgb_uint8(_decode(path, cv2.IMREAD_UNCHANGED | cv2.IMREAD_ANYDEPTH))


def read_mask(path: str | os.PathLike) -> np.ndarray:
    """Read a mask image as float32 (H, W) in [0, 1]; any colour image is reduced to its maximum channel."""
    image = _decode(path, cv2.IMREAD_UNCHANGED | cv2.IMREAD_ANYDEPTH)
    if image.ndim == 3:
        image = image[..., 3] if image.shape[2] == 4 and image[..., 3].min() < 255 else image[..., :3].max(axis=2)
    scale = 65535.0 if image.dtype == np.uint16 else 255.0
    return (image.astype(np.float32) / scale).clip(0.0, 1.0)


def encode_jpeg(rgb: np.ndarray, quality: int) -> bytes:
    """Encode RGB uint8 as baseline JPEG bytes."""
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("OpenCV failed to encode a JPEG")
    return data.tobytes()


def encode_png(image: np.ndarray, compression: int = 1) -> bytes:
    """Encode an RGB (H, W, 3) or grey (H, W) uint8 image as PNG bytes (lossless)."""
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    # The Sub filter with run-length zlib is about 3x faster than OpenCV's adaptive default and only
    # slightly larger on rendered faces, which are black outside the face.
    ok, data = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, compression,
                                            cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_SUB,
                                            cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE])
    if not ok:
        raise RuntimeError("OpenCV failed to encode a PNG")
    return data.tobytes()


def decode_image_bytes(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Decode encoded image bytes to RGB uint8 (grey PNGs become (H, W))."""
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise DataError(f"{name}: not a decodable image")
    if image.ndim == 2:
        return image
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
