"""Torch image operations against the OpenCV calls the numpy renderer makes."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fergen.assets import feather_alpha
from fergen.torch import ops


def to_nchw(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None]


def to_hwc(tensor: torch.Tensor) -> np.ndarray:
    return tensor[0].numpy().transpose(1, 2, 0)


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    """A non-square float32 RGB image with smooth and sharp parts."""
    rng = np.random.default_rng(5)
    noise = rng.random((37, 53, 3), dtype=np.float32)
    return cv2.GaussianBlur(noise, (0, 0), 2.0) * 0.5 + noise * 0.5


@pytest.mark.parametrize("sigma", [0.3, 0.77, 1.2, 5.0, 30.0])
def test_gaussian_blur_matches_opencv(image, sigma):
    expected = cv2.GaussianBlur(image, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)

    blurred = ops.gaussian_blur(to_nchw(image), ops.gaussian_kernels([sigma]))

    np.testing.assert_allclose(to_hwc(blurred), expected, rtol=0, atol=2e-6)


def test_gaussian_blur_per_sample_sigma(image):
    batch = torch.cat([to_nchw(image)] * 3)

    blurred = ops.gaussian_blur(batch, ops.gaussian_kernels([0.0, 0.5, 2.0]))

    assert torch.equal(blurred[0], batch[0])
    for row, sigma in ((1, 0.5), (2, 2.0)):
        expected = cv2.GaussianBlur(image, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
        np.testing.assert_allclose(blurred[row].numpy().transpose(1, 2, 0), expected, rtol=0, atol=2e-6)


def test_gaussian_kernel_size_matches_opencv():
    for sigma in (0.3, 0.5, 0.8125, 1.2, 3.0):
        size = ops.gaussian_kernel_size(sigma)
        assert size == int(np.round(sigma * 8 + 1)) | 1
        kernel = cv2.getGaussianKernel(size, sigma, cv2.CV_32F)[:, 0]
        np.testing.assert_allclose(ops.gaussian_kernels([sigma])[0].numpy(), kernel, rtol=0, atol=1e-7)


def test_reflect_indices_match_border_reflect():
    row = np.arange(4, dtype=np.float32)[None, :]

    for radius in (1, 3, 9):
        padded = cv2.copyMakeBorder(row, 0, 0, radius, radius, cv2.BORDER_REFLECT)[0]
        assert ops.reflect_indices(4, radius).tolist() == padded.astype(int).tolist()


def test_lab_matches_opencv(image):
    expected = cv2.cvtColor(image, cv2.COLOR_RGB2Lab)

    lab = to_hwc(ops.rgb_to_lab(to_nchw(image)))

    # OpenCV's float path interpolates a lookup table, which moves L by up to about 0.2.
    np.testing.assert_allclose(lab[..., 0], expected[..., 0], rtol=0, atol=0.3)
    np.testing.assert_allclose(lab[..., 1:], expected[..., 1:], rtol=0, atol=0.7)
    assert np.abs(lab - expected).mean() < 0.1
    np.testing.assert_allclose(to_hwc(ops.lab_lightness(to_nchw(image)))[..., 0], lab[..., 0], atol=1e-4)


def test_lab_to_rgb_matches_opencv(image):
    lab = cv2.cvtColor(image, cv2.COLOR_RGB2Lab)
    lab[..., 0] = np.minimum(lab[..., 0] * 1.4, 100.0)
    expected = np.clip(cv2.cvtColor(lab, cv2.COLOR_Lab2RGB), 0.0, 1.0)

    rgb = to_hwc(ops.lab_to_rgb(to_nchw(lab)))

    np.testing.assert_allclose(rgb, expected, rtol=0, atol=2e-4)


def test_lab_round_trip(image):
    rgb = to_nchw(image)

    assert torch.allclose(ops.lab_to_rgb(ops.rgb_to_lab(rgb)), rgb, atol=2e-5)


def test_grey_matches_opencv(image):
    expected = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)

    np.testing.assert_allclose(to_hwc(ops.rgb_to_grey(to_nchw(image)))[..., 0], expected, rtol=0, atol=1e-6)


def test_warp_perspective_matches_opencv(image):
    height, width = 41, 30
    source_height, source_width = image.shape[:2]
    # Face-to-output homography in pixels with a rotation, a shift and a tilt.
    forward = np.array([[0.8, -0.3, 6.0], [0.25, 0.9, 2.0], [0.004, -0.003, 1.0]])
    expected = cv2.warpPerspective(image, forward, (width, height), flags=cv2.INTER_LINEAR,
                                   borderMode=cv2.BORDER_CONSTANT, borderValue=0)

    def to_normalised(rows: int, columns: int) -> np.ndarray:
        return np.array([[2.0 / columns, 0, 1.0 / columns - 1], [0, 2.0 / rows, 1.0 / rows - 1], [0, 0, 1]])

    inverse = to_normalised(source_height, source_width) @ np.linalg.inv(forward) @ np.linalg.inv(
        to_normalised(height, width))
    homography = torch.from_numpy((inverse / inverse[2, 2]).astype(np.float32))[None]

    warped = to_hwc(ops.warp_perspective(to_nchw(image), homography, (height, width)))

    # OpenCV rounds source coordinates to 1/32 pixel.
    assert np.abs(warped - expected).max() < 0.03
    assert np.abs(warped - expected).mean() < 0.003


def test_homography_grid_equals_affine_grid():
    theta = torch.tensor([[[0.9, -0.2, 0.1], [0.3, 1.1, -0.05]]])
    homography = torch.cat((theta, torch.tensor([[[0.0, 0.0, 1.0]]])), dim=1)

    grid = ops.homography_grid(homography, 20, 33)

    expected = F.affine_grid(theta, (1, 3, 20, 33), align_corners=False)
    assert torch.allclose(grid, expected, atol=1e-6)


def test_reflect101_indices_match_opencv_default():
    row = np.arange(4, dtype=np.float32)[None, :]

    for radius in (1, 3, 9):
        padded = cv2.copyMakeBorder(row, 0, 0, radius, radius, cv2.BORDER_REFLECT_101)[0]
        assert ops.reflect_indices(4, radius, border="reflect101").tolist() == padded.astype(int).tolist()
    assert ops.reflect_indices(1, 2, border="reflect101").tolist() == [0, 0, 0, 0, 0]


@pytest.mark.parametrize("sigma", [0.2, 1.0, 2.6])
def test_feather_masks_match_face_asset_steps(sigma):
    # A hard ellipse touching the right border, feathered as fergen.assets feathers each face.
    binary = np.zeros((40, 36), np.uint8)
    cv2.ellipse(binary, (24, 20), (12, 16), 15, 0, 360, 1, -1)
    expected = feather_alpha(binary, sigma)

    feathered = ops.feather_masks(torch.from_numpy(binary.astype(np.float32))[None, None] * 0.9, sigma)

    np.testing.assert_allclose(feathered[0, 0].numpy(), expected, rtol=0, atol=2e-6)
