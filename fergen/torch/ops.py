"""Batched torch versions of the image operations that the numpy renderer takes from OpenCV.

Every function works on float tensors in NCHW layout on any device. The
colour conversions use the constants of OpenCV's float path
(``cv2.COLOR_RGB2Lab`` and ``cv2.COLOR_Lab2RGB``: sRGB primaries, D65 white,
L in [0, 100]), and the blur builds the same kernels and borders as
``cv2.GaussianBlur`` on float32 images, so results agree with
:mod:`fergen.render` to within float rounding.
"""

from __future__ import annotations

from typing import Literal, Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F

# Linear sRGB to XYZ (rows X, Y, Z) and back, D65 white: the matrices of the "Color conversions"
# page of the OpenCV documentation (RGB <-> CIE XYZ.Rec 709).
_RGB_TO_XYZ = ((0.412453, 0.357580, 0.180423),
               (0.212671, 0.715160, 0.072169),
               (0.019334, 0.119193, 0.950227))
_XYZ_TO_RGB = ((3.240479, -1.53715, -0.498535),
               (-0.969256, 1.875991, 0.041556),
               (0.055648, -0.204043, 1.057311))
_WHITE_D65 = (0.950456, 1.0, 1.088754)
# CIE Lab constants as the same page rounds them: (6/29)^3, (29/3)^3 and (29/3)^3 / (29 * 4).
_LAB_EPSILON = 0.008856
_LAB_KAPPA = 903.3
_LAB_SLOPE = 7.787
_LAB_OFFSET = 16.0 / 116.0
# ITU-R BT.601 luma weights of cv2.COLOR_RGB2GRAY.
_GREY_WEIGHTS = (0.299, 0.587, 0.114)


def srgb_to_linear(rgb: torch.Tensor) -> torch.Tensor:
    """Undo the sRGB transfer curve after clipping the input to [0, 1]."""
    rgb = rgb.clamp(0.0, 1.0)
    return torch.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055).pow(2.4))


def linear_to_srgb(linear: torch.Tensor) -> torch.Tensor:
    """Apply the sRGB transfer curve after clipping the input to [0, 1], as ``COLOR_Lab2RGB`` does."""
    linear = linear.clamp(0.0, 1.0)
    return torch.where(linear <= 0.0031308, linear * 12.92, 1.055 * linear.pow(1.0 / 2.4) - 0.055)


def _mix_channels(image: torch.Tensor, matrix: Sequence[Sequence[float]]) -> torch.Tensor:
    """Multiply the channel vector of every pixel of (N, C, H, W) by a (K, C) matrix; returns (N, K, H, W)."""
    weights = torch.tensor(matrix, dtype=image.dtype, device=image.device)
    count, channels, height, width = image.shape
    # A broadcast matrix product; measured faster on the CPU than einsum or a 1x1 convolution.
    return (weights @ image.reshape(count, channels, height * width)).view(count, -1, height, width)


def _lab_f(t: torch.Tensor) -> torch.Tensor:
    return torch.where(t > _LAB_EPSILON, t.clamp_min(0.0).pow(1.0 / 3.0), _LAB_SLOPE * t + _LAB_OFFSET)


def lightness_from_luminance(y: torch.Tensor) -> torch.Tensor:
    """Return Lab L (0-100) from relative luminance Y (white = 1)."""
    return torch.where(y > _LAB_EPSILON, 116.0 * y.clamp_min(0.0).pow(1.0 / 3.0) - 16.0, _LAB_KAPPA * y)


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """Convert sRGB to CIE Lab like ``cv2.cvtColor(float32, COLOR_RGB2Lab)``.

    Args:
        rgb: float (N, 3, H, W) in [0, 1] (values outside are clipped).

    Returns:
        float (N, 3, H, W): L in [0, 100], a and b roughly in [-127, 127].
    """
    matrix = [[value / _WHITE_D65[row] for value in _RGB_TO_XYZ[row]] for row in range(3)]
    xyz = _mix_channels(srgb_to_linear(rgb), matrix)
    fx, fy, fz = _lab_f(xyz).unbind(1)
    lightness = lightness_from_luminance(xyz[:, 1])
    return torch.stack((lightness, 500.0 * (fx - fy), 200.0 * (fy - fz)), dim=1)


def lab_to_rgb(lab: torch.Tensor) -> torch.Tensor:
    """Convert CIE Lab to sRGB in [0, 1] like ``cv2.cvtColor(float32, COLOR_Lab2RGB)``.

    Args:
        lab: float (N, 3, H, W), L in [0, 100].
    """
    lightness, a, b = lab.unbind(1)
    threshold = _LAB_EPSILON * _LAB_KAPPA
    fy_low = _LAB_SLOPE * (lightness / _LAB_KAPPA) + _LAB_OFFSET
    fy_high = (lightness + 16.0) / 116.0
    y = torch.where(lightness <= threshold, lightness / _LAB_KAPPA, fy_high ** 3)
    fy = torch.where(lightness <= threshold, fy_low, fy_high)
    f_threshold = _LAB_SLOPE * _LAB_EPSILON + _LAB_OFFSET

    def inverse_f(f: torch.Tensor) -> torch.Tensor:
        return torch.where(f <= f_threshold, (f - _LAB_OFFSET) / _LAB_SLOPE, f ** 3)

    xyz = torch.stack((inverse_f(a / 500.0 + fy), y, inverse_f(fy - b / 200.0)), dim=1)
    matrix = [[_XYZ_TO_RGB[row][column] * _WHITE_D65[column] for column in range(3)] for row in range(3)]
    return linear_to_srgb(_mix_channels(xyz, matrix))


def lab_lightness(rgb: torch.Tensor) -> torch.Tensor:
    """Return Lab L (N, 1, H, W) in [0, 100] of sRGB (N, 3, H, W) in [0, 1].

    L depends on Y only, so this skips the X and Z rows of :func:`rgb_to_lab`.
    """
    return lightness_from_luminance(_mix_channels(srgb_to_linear(rgb), [_RGB_TO_XYZ[1]]))


def rgb_to_grey(rgb: torch.Tensor) -> torch.Tensor:
    """Return BT.601 luma (N, 1, H, W) of (N, 3, H, W), like ``cv2.COLOR_RGB2GRAY``."""
    return _mix_channels(rgb, [_GREY_WEIGHTS])


def gaussian_kernel_size(sigma: float) -> int:
    """Return the kernel size ``cv2.GaussianBlur`` picks for ``ksize=(0, 0)`` on float32 images.

    OpenCV covers four sigmas on each side for float images (three for uint8)
    and rounds half to even, as Python's ``round`` does.
    """
    return int(round(sigma * 8.0 + 1.0)) | 1


def gaussian_kernels(sigmas: Sequence[float], device: torch.device | str = "cpu") -> torch.Tensor:
    """Return one normalised 1-D Gaussian kernel per sigma, zero-padded to a common odd length.

    Kernels are computed in float64 and rounded to float32, as
    ``cv2.getGaussianKernel`` does for float32 images. A sigma of 0 gives the
    identity kernel.

    Returns:
        float32 (len(sigmas), K) with K the largest kernel size.
    """
    sizes = [gaussian_kernel_size(sigma) if sigma > 0 else 1 for sigma in sigmas]
    length = max(sizes, default=1)
    radius = length // 2
    offsets = torch.arange(length, dtype=torch.float64) - radius
    kernels = torch.zeros((len(sigmas), length), dtype=torch.float64)
    for row, (sigma, size) in enumerate(zip(sigmas, sizes)):
        inside = offsets.abs() <= size // 2
        if sigma > 0:
            values = torch.exp(-0.5 * (offsets / sigma) ** 2) * inside
        else:
            values = inside.to(torch.float64)
        kernels[row] = values / values.sum()
    return kernels.to(device=device, dtype=torch.float32)


Border = Literal["reflect", "reflect101"]


def reflect_indices(length: int, radius: int, device: torch.device | str = "cpu",
                    border: Border = "reflect") -> torch.Tensor:
    """Return source indices of a row of ``length`` padded by ``radius`` on both sides.

    ``"reflect"`` is ``cv2.BORDER_REFLECT``, which repeats the edge pixel
    (``fedcba|abcdefgh|hgfedcb``). ``"reflect101"`` is ``cv2.BORDER_REFLECT_101``,
    OpenCV's default border and torch's ``reflect`` padding
    (``gfedcb|abcdefgh|gfedcba``). Pads wider than the row keep reflecting.
    """
    positions = torch.arange(-radius, length + radius, device=device)
    if border == "reflect":
        positions = positions % (2 * length)
        return torch.where(positions >= length, 2 * length - 1 - positions, positions)
    if length == 1:
        return torch.zeros_like(positions)
    positions = positions % (2 * length - 2)
    return torch.where(positions >= length, 2 * length - 2 - positions, positions)


def gaussian_blur(images: torch.Tensor, kernels: torch.Tensor, border: Border = "reflect") -> torch.Tensor:
    """Blur each image with its own separable kernel, like ``cv2.GaussianBlur`` on float32 images.

    Args:
        images: float (N, C, H, W).
        kernels: float (N, K) with K odd, from :func:`gaussian_kernels`.
        border: ``"reflect"`` (``cv2.BORDER_REFLECT``, as the numpy renderer's blur uses)
            or ``"reflect101"`` (``cv2.BORDER_REFLECT_101``, OpenCV's default).

    Returns:
        float (N, C, H, W).
    """
    height, width = images.shape[-2:]
    length = kernels.shape[1]
    radius = length // 2
    taps = kernels.to(images.dtype)[:, :, None, None, None]

    padded = images.index_select(-1, reflect_indices(width, radius, images.device, border))
    rows = taps[:, 0] * padded[..., 0:width]
    for k in range(1, length):
        rows = rows + taps[:, k] * padded[..., k:k + width]

    padded = rows.index_select(-2, reflect_indices(height, radius, images.device, border))
    result = taps[:, 0] * padded[..., 0:height, :]
    for k in range(1, length):
        result = result + taps[:, k] * padded[..., k:k + height, :]
    return result


def homography_grid(homographies: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Return a ``grid_sample`` grid (N, H, W, 2) from 3x3 maps between normalised coordinates.

    ``homographies`` (N, 3, 3) maps output coordinates to input coordinates,
    both normalised to [-1, 1] with ``align_corners=False`` (pixel centres at
    ``(2 * i + 1) / size - 1``). With a last row of (0, 0, 1) this equals
    ``affine_grid(homographies[:, :2], (N, C, height, width))``.
    """
    dtype, device = homographies.dtype, homographies.device
    xs = ((2.0 * torch.arange(width, dtype=dtype, device=device) + 1.0) / width - 1.0).view(1, 1, width)
    ys = ((2.0 * torch.arange(height, dtype=dtype, device=device) + 1.0) / height - 1.0).view(1, height, 1)
    h = homographies.view(-1, 9, 1, 1).unbind(1)
    mapped_x = h[0] * xs + h[1] * ys + h[2]
    mapped_y = h[3] * xs + h[4] * ys + h[5]
    depth = h[6] * xs + h[7] * ys + h[8]
    # Divide as cv2.warpPerspective does; points on the horizon (depth 0) are sent outside, so they sample zeros.
    on_horizon = depth.abs() < 1e-12
    depth = torch.where(on_horizon, torch.full_like(depth, 1e-12), depth)
    grid = torch.stack((mapped_x / depth, mapped_y / depth), dim=-1)
    return torch.where(on_horizon.unsqueeze(-1), torch.full_like(grid, -4.0), grid)


def warp_perspective(images: torch.Tensor, homographies: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Warp (N, C, h, w) images to (N, C, H, W), bilinear, zeros outside, like ``cv2.warpPerspective``.

    Args:
        images: float (N, C, h, w).
        homographies: float (N, 3, 3), output to input, normalised coordinates
            (see :func:`homography_grid`).
        size: output (H, W).
    """
    grid = homography_grid(homographies.to(images.dtype), *size)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def feather_masks(masks: torch.Tensor, sigma: float) -> torch.Tensor:
    """Turn hard masks into soft alpha mattes, as :func:`fergen.assets.feather_alpha` does for each face.

    The mask (thresholded at 0.5) is eroded with an ellipse of radius
    ``round(2 * sigma)``, blurred with ``sigma`` and multiplied by the eroded
    mask dilated by the same radius, so the soft edge lies inside the face. A
    sigma of 0.3 or less returns the thresholded mask.

    Args:
        masks: float (N, 1, H, W) in [0, 1].
        sigma: blur sigma in pixels; a recipe's is ``faces.mask.feather * (face_size - 2 * padding) / 4``.

    Returns:
        float (N, 1, H, W) in [0, 1].
    """
    binary = (masks >= 0.5).to(masks.dtype)
    if sigma <= 0.3:
        return binary
    radius = max(1, int(round(2.0 * sigma)))
    side = 2 * radius + 1
    ellipse = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (side, side)).astype(np.float32)
    weights = torch.from_numpy(ellipse).to(masks.device, masks.dtype)[None, None]
    # Erosion keeps a pixel when no background pixel lies under the ellipse. Pixels outside the
    # image count as foreground, which is OpenCV's default border for erosion.
    background_under_ellipse = F.conv2d(1.0 - binary, weights, padding=radius)
    eroded = (background_under_ellipse < 0.5).to(masks.dtype)
    blurred = gaussian_blur(eroded, gaussian_kernels([sigma] * len(masks), masks.device), border="reflect101")
    # Dilating ``radius`` times with a 3x3 square equals one dilation with a (2r + 1) square.
    dilated = F.max_pool2d(eroded, side, stride=1, padding=radius)
    return blurred * dilated
