"""The render steps as small pure functions, and :func:`render` that chains them.

Images are float32 in [0, 1] between steps and RGB throughout. Steps 1, 2
and 6 (canvas, mask cleanup, feathering) run once per face in
:mod:`fergen.assets`; this module runs the per-sample steps:

3. geometry: one homography warps the premultiplied face and its alpha (uint8, 4 channels);
4. background: an aspect-preserving crop of the photo, resized to the output;
5. luminance: the face's Lab L scaled by mean L(background) / mean L(face) under the alpha;
7. composite: ``alpha * face + (1 - alpha) * background``; target = face x alpha;
8. photometric: contrast, brightness, blur, grayscale and noise on the composite only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Sequence

import cv2
import numpy as np

from .arrays import check_image
from .params import RenderParams, face_to_output_matrix, normalized_homography

_EPSILON = 1e-6


@dataclass
class Sample:
    """One rendered sample.

    Attributes:
        composite: uint8 (H, W, 3) RGB, the face blended into the background.
        target: uint8 (H, W, 3) RGB, the warped face times its alpha (black elsewhere), before
            luminance matching and photometric augmentation.
        mask: uint8 (H, W), the warped alpha scaled to 0-255.
        label: output class id.
        theta: float32 (2, 3), ``affine_grid`` matrix from the output to the face canvas.
        metadata: JSON-serialisable facts: ids, every sampled parameter, luminance ratio, face box.
    """

    composite: np.ndarray
    target: np.ndarray
    mask: np.ndarray
    label: int
    theta: np.ndarray
    metadata: dict[str, Any] = field(default_factory=dict)


def to_float(image: np.ndarray) -> np.ndarray:
    """uint8 to float32 in [0, 1]."""
    return image.astype(np.float32) * np.float32(1.0 / 255.0)


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Float in [0, 1] to uint8, clipping first so values never wrap around."""
    scaled = np.multiply(image, np.float32(255.0), dtype=np.float32)
    np.add(scaled, np.float32(0.5), out=scaled)
    np.clip(scaled, 0.0, 255.0, out=scaled)
    return scaled.astype(np.uint8)


def premultiply(rgba: np.ndarray) -> np.ndarray:
    """uint8 RGBA with straight alpha to uint8 RGBA with premultiplied colour (rounded)."""
    alpha = rgba[..., 3:4].astype(np.uint16)
    result = rgba.copy()
    result[..., :3] = (rgba[..., :3].astype(np.uint16) * alpha + 127) // 255
    return result


def warp_face(premultiplied: np.ndarray, matrix: np.ndarray, output_size: tuple[int, int]) -> np.ndarray:
    """Step 3: warp premultiplied RGBA (uint8 or float32) with a face-to-output homography.

    Interpolating premultiplied colour keeps edge pixels from mixing with the
    black outside the face, so the composite has no dark ring. Parts that land
    outside the output are clipped.
    """
    height, width = output_size
    return cv2.warpPerspective(premultiplied, matrix, (width, height), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0, 0))


def unpremultiply(premultiplied: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Return straight colour (H, W, 3) from premultiplied colour and alpha (float32, [0, 1]).

    Colour is zero where alpha is zero. Interpolated premultiplied colour stays
    at or below alpha up to rounding, so straight colour stays near [0, 1].
    """
    inverse = np.float32(1.0) / np.maximum(alpha, np.float32(_EPSILON))
    return premultiplied * inverse[..., None]


def crop_box(photo_shape: tuple[int, ...], output_size: tuple[int, int],
             crop: tuple[float, float, float]) -> tuple[int, int, int, int]:
    """Return the integer crop (x0, y0, x1, y1) with the output's aspect ratio inside the photo.

    ``crop`` is (side fraction of the largest such crop, x position, y position),
    positions being fractions of the free space.
    """
    photo_height, photo_width = photo_shape[:2]
    height, width = output_size
    largest_width = min(photo_width, photo_height * width / height)
    crop_width = max(1.0, crop[0] * largest_width)
    crop_height = max(1.0, crop_width * height / width)
    x0 = crop[1] * (photo_width - crop_width)
    y0 = crop[2] * (photo_height - crop_height)
    x0i, y0i = int(round(x0)), int(round(y0))
    x1i = min(photo_width, max(x0i + 1, int(round(x0 + crop_width))))
    y1i = min(photo_height, max(y0i + 1, int(round(y0 + crop_height))))
    return x0i, y0i, x1i, y1i


def pick_level(levels: Sequence[np.ndarray], output_size: tuple[int, int],
               crop: tuple[float, float, float]) -> np.ndarray:
    """Return the smallest pyramid level whose crop is still at least the output size."""
    chosen = levels[0]
    for level in levels[1:]:
        x0, y0, x1, y1 = crop_box(level.shape, output_size, crop)
        if y1 - y0 < output_size[0] or x1 - x0 < output_size[1]:
            break
        chosen = level
    return chosen


def crop_background(photo: np.ndarray | Sequence[np.ndarray], output_size: tuple[int, int],
                    crop: tuple[float, float, float]) -> np.ndarray:
    """Step 4: an aspect-preserving crop of the photo, resized to ``output_size``; uint8 (H, W, 3).

    ``photo`` is one RGB uint8 image or a pyramid (level 0 first, each next
    level half the size). With a pyramid, the crop is taken from the smallest
    level that still has enough pixels, so the resize stays cheap.
    The crop never leaves the photo and is scaled equally in x and y, so a
    photo smaller than the output is enlarged, never stretched unevenly.
    """
    if not isinstance(photo, np.ndarray):
        photo = pick_level(photo, output_size, crop)
    x0, y0, x1, y1 = crop_box(photo.shape, output_size, crop)
    height, width = output_size
    region = photo[y0:y1, x0:x1]
    # Below a factor of 2 (always the case with a pyramid) bilinear is close to area averaging and much faster.
    interpolation = cv2.INTER_AREA if region.shape[0] >= 2 * height else cv2.INTER_LINEAR
    return cv2.resize(region, (width, height), interpolation=interpolation)


def lab_lightness(rgb: np.ndarray) -> np.ndarray:
    """Return Lab L (0-100) of RGB: float32 in [0, 1], or uint8 (OpenCV, D65)."""
    if rgb.dtype == np.uint8:
        return cv2.cvtColor(rgb, cv2.COLOR_RGB2Lab)[..., 0].astype(np.float32) * np.float32(100.0 / 255.0)
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2Lab)[..., 0]


def weighted_mean(values: np.ndarray, weights: np.ndarray) -> float:
    total = float(weights.sum())
    return float((values * weights).sum() / total) if total > _EPSILON else 0.0


def luminance_ratio(face_lightness: float, background: np.ndarray, alpha: np.ndarray,
                    clip: tuple[float, float]) -> float:
    """Step 5a: mean L(background under alpha) / mean L(face), clipped to ``clip``.

    ``background`` is RGB (uint8, or float32 in [0, 1]) at the output size.
    """
    if face_lightness <= _EPSILON or float(alpha.sum()) <= _EPSILON:
        return 1.0
    background_lightness = weighted_mean(lab_lightness(background), alpha)
    return float(np.clip(background_lightness / face_lightness, clip[0], clip[1]))


def scale_lightness(rgb: np.ndarray, ratio: float) -> np.ndarray:
    """Step 5b: multiply the Lab L of straight RGB (float32) by ``ratio``, clipped to 0-100; a and b are kept."""
    if ratio == 1.0:
        return rgb
    lab = cv2.cvtColor(np.ascontiguousarray(rgb, np.float32), cv2.COLOR_RGB2Lab)
    lightness = lab[..., 0]
    lightness *= np.float32(ratio)
    np.minimum(lightness, np.float32(100.0), out=lightness)
    converted = cv2.cvtColor(lab, cv2.COLOR_Lab2RGB)
    np.clip(converted, 0.0, 1.0, out=converted)
    return converted


def alpha_box(alpha: np.ndarray) -> tuple[int, int, int, int]:
    """Return the box (x, y, width, height) around ``alpha > 0``; width 0 when alpha is all zero."""
    return cv2.boundingRect(alpha if alpha.dtype == np.uint8 else (alpha > 0).view(np.uint8))


def match_lightness(premultiplied: np.ndarray, alpha: np.ndarray, ratio: float,
                    box: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """Step 5b on a premultiplied face: unpremultiply, scale L, premultiply again.

    Only ``box`` (default: :func:`alpha_box`) is converted; outside it the face is zero.
    """
    if ratio == 1.0:
        return premultiplied
    x, y, width, height = alpha_box(alpha) if box is None else box
    if width == 0:
        return premultiplied
    box = (slice(y, y + height), slice(x, x + width))
    region_alpha = alpha[box]
    straight = scale_lightness(unpremultiply(premultiplied[box], region_alpha), ratio)
    result = premultiplied.copy()
    result[box] = straight * region_alpha[..., None]
    return result


# Standard normal values shared by all samples; each sample reads a window at an offset
# drawn from its noise seed. Drawing 49,152 fresh normals per 128x128 sample costs about
# as much as the rest of the render, and a window of an i.i.d. bank is i.i.d. itself.
_NOISE_BANK_SIZE = 1 << 22
_NOISE_BANK_SEED = 20190208


@lru_cache(maxsize=1)
def noise_bank() -> np.ndarray:
    """Return the read-only bank of 2**22 float32 standard normal values (PCG64, fixed seed)."""
    bank = np.random.Generator(np.random.PCG64(_NOISE_BANK_SEED)).standard_normal(_NOISE_BANK_SIZE, np.float32)
    bank.setflags(write=False)
    return bank


def gaussian_noise(seed: int, shape: tuple[int, ...]) -> np.ndarray:
    """Return standard normal noise of ``shape``: a window of :func:`noise_bank` at an offset from ``seed``.

    Windows of two samples may overlap (shifted), which is harmless for
    augmentation; larger images than the bank draw fresh values from PCG64(seed).
    """
    count = int(np.prod(shape))
    if count * 4 > _NOISE_BANK_SIZE:
        return np.random.Generator(np.random.PCG64(seed)).standard_normal(shape, np.float32)
    offset = seed % (_NOISE_BANK_SIZE - count)
    return noise_bank()[offset:offset + count].reshape(shape)


def composite(premultiplied: np.ndarray, alpha: np.ndarray, background: np.ndarray) -> np.ndarray:
    """Step 7: ``alpha * face + (1 - alpha) * background``, with the face already premultiplied by alpha."""
    result = background * (np.float32(1.0) - alpha)[..., None]
    result += premultiplied
    return result


def photometric(image: np.ndarray, params: RenderParams) -> np.ndarray:
    """Step 8: contrast around the mean, brightness, Gaussian blur, grayscale, Gaussian noise.

    Contrast and brightness form one affine map ``x * c + (b + mean * (1 - c))``.
    The noise is :func:`gaussian_noise` for ``params.noise_seed``, scaled so
    ``noise_sigma`` is in grey levels (0-255). May modify ``image`` in place.
    """
    result = image
    if params.contrast != 1.0 or params.brightness != 0.0:
        mean = float(result.mean()) if params.contrast != 1.0 else 0.0
        result *= np.float32(params.contrast)
        result += np.float32(params.brightness + mean * (1.0 - params.contrast))
    if params.blur_sigma > 0.0:
        result = cv2.GaussianBlur(result, (0, 0), params.blur_sigma, borderType=cv2.BORDER_REFLECT)
    if params.grayscale:
        np.clip(result, 0.0, 1.0, out=result)
        grey = cv2.cvtColor(result, cv2.COLOR_RGB2GRAY)
        result = cv2.merge([grey, grey, grey])
    if params.noise_sigma > 0.0:
        height, width = result.shape[:2]
        noise = gaussian_noise(params.noise_seed, (height, width, 1 if params.grayscale else 3))
        result += noise * np.float32(params.noise_sigma / 255.0)
    return result


def face_box(matrix: np.ndarray, face_alpha: np.ndarray) -> list[float]:
    """Return the unclipped box (x0, y0, x1, y1) of the warped face in output pixels."""
    x, y, w, h = cv2.boundingRect(face_alpha)
    if w == 0:
        return [0.0, 0.0, 0.0, 0.0]
    corners = np.array([[[x, y]], [[x + w - 1, y]], [[x, y + h - 1]], [[x + w - 1, y + h - 1]]], np.float64)
    warped = cv2.perspectiveTransform(corners, matrix)[:, 0]
    return [round(float(v), 3) for v in (*warped.min(axis=0), *warped.max(axis=0))]


def render(face_rgba: np.ndarray, face_lightness: float, background: np.ndarray | Sequence[np.ndarray],
           params: RenderParams, premultiplied: np.ndarray | None = None) -> tuple[Sample, dict[str, Any]]:
    """Render one sample from a prepared face and a background photo.

    Args:
        face_rgba: uint8 (S, S, 4), RGB with straight alpha on the face canvas.
        face_lightness: mean Lab L (0-100) of the face under its alpha (from the face table).
        background: uint8 (h, w, 3) RGB photo of any size, or its pyramid (see :func:`crop_background`).
        params: sampled parameters (``params.face_size`` must equal S).
        premultiplied: optional cached ``premultiply(face_rgba)`` (uint8), to skip that conversion.

    Returns:
        The sample (label 0 and empty metadata; the caller fills them in) and the
        render facts: luminance ratio, visible fraction, face box, homography.
    """
    check_image(face_rgba, "face_rgba", channels=4, size=(params.face_size, params.face_size))
    for level in ([background] if isinstance(background, np.ndarray) else background):
        check_image(level, "background", channels=3)
    matrix = face_to_output_matrix(params)
    canonical = premultiply(face_rgba) if premultiplied is None else premultiplied
    warped = warp_face(canonical, matrix, params.output_size)
    target = cv2.cvtColor(warped, cv2.COLOR_RGBA2RGB)
    mask = cv2.extractChannel(warped, 3)
    alpha = to_float(mask)
    face = to_float(target)
    backdrop_uint8 = crop_background(background, params.output_size, params.background_crop)

    ratio = 1.0
    if params.luminance_match:
        # Only the box around the face matters for both the mean and the scaling.
        box = alpha_box(mask)
        region = (slice(box[1], box[1] + box[3]), slice(box[0], box[0] + box[2]))
        ratio = luminance_ratio(face_lightness, backdrop_uint8[region], alpha[region], params.luminance_clip)
        face = match_lightness(face, alpha, ratio, box)
    image = photometric(composite(face, alpha, to_float(backdrop_uint8)), params)

    homography = normalized_homography(params, matrix)
    canonical_area = float(canonical[..., 3].sum(dtype=np.int64)) / 255.0
    # Local area scale of the homography at the canvas centre: det(H) / w^3.
    centre = (params.face_size - 1) / 2.0
    w = float(matrix[2] @ np.array([centre, centre, 1.0]))
    area_scale = abs(float(np.linalg.det(matrix))) / abs(w) ** 3
    visible = float(alpha.sum()) / max(canonical_area * area_scale, _EPSILON)
    facts = {"luminance_ratio": round(ratio, 6), "visible_fraction": round(min(1.0, visible), 4),
             "face_box": face_box(matrix, face_rgba[..., 3]),
             "homography": [[round(float(v), 8) for v in row] for row in homography]}
    sample = Sample(composite=to_uint8(image), target=target, mask=mask, label=0,
                    theta=homography[:2].astype(np.float32))
    return sample, facts
