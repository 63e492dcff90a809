"""Sampled render parameters and the geometry they imply.

:func:`sample_params` draws every random quantity of one sample from an
explicit generator; :func:`fergen.render.render` then applies them with no
randomness of its own, so a sample can be replayed from its metadata.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .recipe import RenderConfig


@dataclass(frozen=True)
class RenderParams:
    """Every value that determines one rendered sample (besides the face and background pixels).

    Geometry maps the face canvas (``face_size`` square) into the output
    image: the canvas is scaled to fit the output, times ``scale``, flipped,
    rotated ``rotation`` degrees counter-clockwise, tilted by ``perspective``
    and moved by ``translation`` (fractions of output width and height).
    """

    output_size: tuple[int, int]
    face_size: int
    scale: float
    flip: bool
    rotation: float
    translation: tuple[float, float]
    perspective: tuple[float, float]
    background_crop: tuple[float, float, float]
    luminance_match: bool
    luminance_clip: tuple[float, float]
    brightness: float
    contrast: float
    blur_sigma: float
    noise_sigma: float
    noise_seed: int
    grayscale: bool

    def to_dict(self) -> dict[str, Any]:
        """Return the params as plain JSON data (tuples become lists)."""
        result = {}
        for name in _PARAM_NAMES:
            value = getattr(self, name)
            result[name] = list(value) if isinstance(value, tuple) else value
        return result

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RenderParams":
        fields = {field.name for field in dataclasses.fields(cls)}
        return cls(**{key: tuple(value) if isinstance(value, list) else value
                      for key, value in data.items() if key in fields})


_PARAM_NAMES = tuple(field.name for field in dataclasses.fields(RenderParams))


def sample_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """Return the generator of sample ``index`` of ``epoch``: PCG64 seeded by SeedSequence([seed, epoch, index])."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, epoch, index])))


def sample_params(rng: np.random.Generator, config: RenderConfig) -> RenderParams:
    """Draw the render parameters of one sample.

    Draws happen in a fixed order, so equal generators give equal params.
    """
    scale = float(rng.uniform(*config.scale_range))
    flip = bool(rng.random() < config.flip_probability)
    rotation = float(rng.uniform(*config.rotation_range))
    translation = (float(rng.uniform(-config.translation, config.translation)),
                   float(rng.uniform(-config.translation, config.translation)))
    perspective = (float(rng.uniform(-config.perspective, config.perspective)),
                   float(rng.uniform(-config.perspective, config.perspective)))
    background_crop = (float(rng.uniform(*config.background_crop_range)), float(rng.random()), float(rng.random()))
    brightness = float(rng.uniform(*config.brightness_range))
    contrast = float(rng.uniform(*config.contrast_range))
    blurred = rng.random() < config.blur_probability
    blur_sigma = float(rng.uniform(*config.blur_sigma_range))
    noise_sigma = float(rng.uniform(*config.noise_sigma_range))
    noise_seed = int(rng.integers(0, 2**63 - 1))
    return RenderParams(
        output_size=tuple(config.output_size), face_size=config.face_size, scale=scale, flip=flip,
        rotation=rotation, translation=translation, perspective=perspective, background_crop=background_crop,
        luminance_match=config.luminance_match, luminance_clip=tuple(config.luminance_clip),
        brightness=brightness, contrast=contrast, blur_sigma=blur_sigma if blurred else 0.0,
        noise_sigma=noise_sigma, noise_seed=noise_seed, grayscale=config.grayscale)


def face_to_output_matrix(params: RenderParams) -> np.ndarray:
    """Return the 3x3 homography from face canvas pixels to output pixels (pixel centres at integers)."""
    height, width = params.output_size
    size = params.face_size
    half = size / 2.0
    fit = min(height, width) / size
    k = fit * params.scale
    angle = math.radians(params.rotation)
    cos, sin = math.cos(angle), math.sin(angle)
    to_centre = np.array([[1, 0, -(size - 1) / 2.0], [0, 1, -(size - 1) / 2.0], [0, 0, 1]])
    tilt = np.array([[1, 0, 0], [0, 1, 0], [params.perspective[0] / half, params.perspective[1] / half, 1]])
    flip = np.diag([-1.0 if params.flip else 1.0, 1.0, 1.0])
    # Counter-clockwise on screen, where y points down.
    rotate_scale = np.array([[k * cos, k * sin, 0], [-k * sin, k * cos, 0], [0, 0, 1]])
    centre_x = (width - 1) / 2.0 + params.translation[0] * width
    centre_y = (height - 1) / 2.0 + params.translation[1] * height
    to_output = np.array([[1, 0, centre_x], [0, 1, centre_y], [0, 0, 1]])
    return to_output @ rotate_scale @ flip @ tilt @ to_centre


def pixel_to_normalized(height: int, width: int) -> np.ndarray:
    """Return the 3x3 map from pixel indices to ``affine_grid`` coordinates (align_corners=False)."""
    return np.array([[2.0 / width, 0, 1.0 / width - 1.0], [0, 2.0 / height, 1.0 / height - 1.0], [0, 0, 1]])


def normalized_homography(params: RenderParams, matrix: np.ndarray | None = None) -> np.ndarray:
    """Return the 3x3 map from output to face-canvas coordinates, both normalised to [-1, 1].

    ``matrix`` is :func:`face_to_output_matrix` of ``params`` when already computed.
    """
    height, width = params.output_size
    size = params.face_size
    inverse = np.linalg.inv(face_to_output_matrix(params) if matrix is None else matrix)
    homography = pixel_to_normalized(size, size) @ inverse @ np.linalg.inv(pixel_to_normalized(height, width))
    return homography / homography[2, 2]


def affine_theta(params: RenderParams) -> np.ndarray:
    """Return ``theta`` (2x3, float32) for ``torch.nn.functional.affine_grid`` with align_corners=False.

    ``grid_sample(face, affine_grid(theta, (N, C, H, W)))`` warps the face
    canvas to the output. It is exact when ``perspective`` is zero; with a
    perspective tilt it is the affine part only, and the exact map is
    :func:`normalized_homography`.
    """
    return normalized_homography(params)[:2].astype(np.float32)
