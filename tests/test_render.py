"""Render steps against hand-computed values, theta against torch's affine_grid, and invariants."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fergen.params import (RenderParams, affine_theta, face_to_output_matrix, sample_params, sample_rng)
from fergen.recipe import RenderConfig
from fergen.render import (composite, crop_background, crop_box, gaussian_noise, lab_lightness, luminance_ratio,
                           match_lightness, photometric, premultiply, render, scale_lightness, to_float, to_uint8,
                           unpremultiply)


def plain_params(**changes) -> RenderParams:
    """Identity geometry, no photometric change; 64x64 face on a 64x64 output."""
    base = RenderParams(output_size=(64, 64), face_size=64, scale=1.0, flip=False, rotation=0.0,
                        translation=(0.0, 0.0), perspective=(0.0, 0.0), background_crop=(1.0, 0.0, 0.0),
                        luminance_match=False, luminance_clip=(0.5, 1.5), brightness=0.0, contrast=1.0,
                        blur_sigma=0.0, noise_sigma=0.0, noise_seed=0, grayscale=False)
    return dataclasses.replace(base, **changes)


def disc_face(size: int = 64, colour=(200, 60, 40), radius: int = 20) -> np.ndarray:
    """A uniform disc with a soft edge, RGBA uint8."""
    rgba = np.zeros((size, size, 4), np.uint8)
    rgba[..., :3] = colour
    alpha = np.zeros((size, size), np.float32)
    cv2.circle(alpha, (size // 2, size // 2), radius, 1.0, -1)
    alpha = cv2.GaussianBlur(alpha, (0, 0), 2.0)
    rgba[..., 3] = np.round(alpha * 255).astype(np.uint8)
    return rgba


def test_identity_geometry_keeps_pixels():
    matrix = face_to_output_matrix(plain_params())
    np.testing.assert_allclose(matrix, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(affine_theta(plain_params()), [[1, 0, 0], [0, 1, 0]], atol=1e-6)


def test_rotation_flip_and_translation_matrix_by_hand():
    params = plain_params(rotation=90.0, translation=(0.25, 0.0))
    matrix = face_to_output_matrix(params)
    # Face canvas centre (31.5, 31.5) moves to the output centre shifted by 0.25 * 64 = 16 px.
    centre = matrix @ [31.5, 31.5, 1.0]
    np.testing.assert_allclose(centre[:2] / centre[2], [47.5, 31.5], atol=1e-9)
    # Counter-clockwise by 90 degrees on screen: a point right of the centre moves up.
    right = matrix @ [41.5, 31.5, 1.0]
    np.testing.assert_allclose(right[:2] / right[2], [47.5, 21.5], atol=1e-9)
    flipped = face_to_output_matrix(plain_params(flip=True)) @ [41.5, 31.5, 1.0]
    np.testing.assert_allclose(flipped[:2], [21.5, 31.5], atol=1e-9)


def test_scale_fits_canvas_into_output():
    params = plain_params(output_size=(128, 96), face_size=64, scale=0.5)
    matrix = face_to_output_matrix(params)
    # fit = min(128, 96) / 64 = 1.5, times 0.5 = 0.75.
    np.testing.assert_allclose(matrix[0, 0], 0.75)
    np.testing.assert_allclose(matrix[1, 1], 0.75)


def test_theta_matches_grid_sample_of_canonical_face():
    torch = pytest.importorskip("torch")
    import torch.nn.functional as functional

    face = disc_face(64)
    face[10:20, 30:50, :3] = (20, 220, 90)  # an asymmetric patch, so rotations and flips matter
    face[10:20, 30:50, 3] = 255
    background = np.full((80, 80, 3), 128, np.uint8)
    rng = sample_rng(3, 0, 0)
    config = RenderConfig(output_size=(96, 80), face_size=64, padding=4, perspective=0.0)
    for _ in range(5):
        params = dataclasses.replace(sample_params(rng, config), luminance_match=False, noise_sigma=0.0)
        sample, _ = render(face, 50.0, background, params)
        canonical = torch.from_numpy(to_float(premultiply(face))).permute(2, 0, 1)[None, :3]
        theta = torch.from_numpy(sample.theta)[None]
        grid = functional.affine_grid(theta, (1, 3, 96, 80), align_corners=False)
        warped = functional.grid_sample(canonical, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        expected = to_uint8(warped[0].permute(1, 2, 0).numpy())
        difference = np.abs(expected.astype(int) - sample.target.astype(int))
        # OpenCV interpolates with 5-bit fixed-point weights: up to 1/64 of a 0-to-220 edge, about 4 levels.
        assert difference.max() <= 5, params
        assert difference.mean() < 0.2, params
        assert sample.target.shape == (96, 80, 3)


def test_premultiplied_warp_has_no_dark_ring():
    face = disc_face(64, colour=(240, 240, 240))
    background = np.full((64, 64, 3), 240, np.uint8)
    params = plain_params(scale=0.83, rotation=17.0, translation=(0.05, -0.03))
    sample, _ = render(face, 50.0, background, params)
    # Same colour inside and outside: any interpolation with the black outside the face would darken the edge.
    assert sample.composite.min() >= 239


def test_premultiply_rounds_by_hand():
    rgba = np.array([[[200, 100, 3, 128], [255, 255, 255, 0], [10, 20, 30, 255]]], np.uint8)
    np.testing.assert_array_equal(premultiply(rgba)[0], [[100, 50, 2, 128], [0, 0, 0, 0], [10, 20, 30, 255]])


def test_unpremultiply_recovers_straight_colour():
    premultiplied = np.array([[[0.25, 0.1, 0.05], [0.0, 0.0, 0.0], [0.8, 0.8, 0.8]]], np.float32)
    alpha = np.array([[0.5, 0.0, 1.0]], np.float32)
    colour = unpremultiply(premultiplied, alpha)
    np.testing.assert_allclose(colour[0, 0], [0.5, 0.2, 0.1], rtol=1e-6)
    np.testing.assert_allclose(colour[0, 1], [0, 0, 0])
    np.testing.assert_allclose(colour[0, 2], [0.8, 0.8, 0.8])


def test_match_lightness_keeps_premultiplied_form():
    alpha = np.array([[0.0, 0.5, 1.0]], np.float32)
    straight = np.full((1, 3, 3), 0.5, np.float32)
    premultiplied = straight * alpha[..., None]
    result = match_lightness(premultiplied, alpha, 1.2)
    expected = scale_lightness(straight, 1.2) * alpha[..., None]
    np.testing.assert_allclose(result, expected, atol=1e-6)
    assert match_lightness(premultiplied, alpha, 1.0) is premultiplied


def test_crop_box_keeps_aspect_inside_photo():
    assert crop_box((100, 200), (64, 64), (1.0, 0.0, 0.0)) == (0, 0, 100, 100)
    assert crop_box((100, 200), (64, 64), (0.5, 1.0, 1.0)) == (150, 50, 200, 100)
    # A 2:1 output from a square photo: the full width, half the height.
    assert crop_box((100, 100), (32, 64), (1.0, 0.5, 0.5)) == (0, 25, 100, 75)


def test_small_photo_is_enlarged_evenly():
    photo = np.zeros((20, 40, 3), np.uint8)
    photo[:, 20:] = 255
    result = crop_background(photo, (64, 64), (1.0, 0.0, 0.0))
    assert result.shape == (64, 64, 3)
    # The crop is the left 20x20 square, all black: nothing of the white half may appear.
    assert result.max() == 0


def test_pyramid_level_gives_same_crop_as_full_photo():
    photo = cv2.resize(np.ascontiguousarray(np.tile(np.arange(256, dtype=np.uint8), (256, 1))[..., None]
                                            .repeat(3, axis=2)), (512, 512))
    pyramid = (photo, cv2.pyrDown(photo), cv2.pyrDown(cv2.pyrDown(photo)))
    direct = crop_background(photo, (64, 64), (0.5, 0.3, 0.6)).astype(int)
    from_pyramid = crop_background(pyramid, (64, 64), (0.5, 0.3, 0.6)).astype(int)
    assert np.abs(direct - from_pyramid).mean() < 2.0


def test_lab_lightness_reference_values():
    black_white = np.array([[[0, 0, 0], [255, 255, 255]]], np.uint8)
    np.testing.assert_allclose(lab_lightness(black_white), [[0.0, 100.0]], atol=0.5)
    grey = np.full((1, 1, 3), 0.5, np.float32)
    # L* of sRGB 0.5 is 53.39 (CIE formula with the sRGB transfer curve).
    np.testing.assert_allclose(lab_lightness(grey), [[53.39]], atol=0.05)


def test_luminance_ratio_by_hand_and_clipped():
    background = np.full((4, 4, 3), 0.5, np.float32)
    alpha = np.zeros((4, 4), np.float32)
    alpha[1:3, 1:3] = 1.0
    assert luminance_ratio(53.39, background, alpha, (0.5, 1.5)) == pytest.approx(1.0, abs=1e-3)
    assert luminance_ratio(26.695, background, alpha, (0.5, 1.5)) == pytest.approx(1.5)
    assert luminance_ratio(200.0, background, alpha, (0.5, 1.5)) == pytest.approx(0.5)
    assert luminance_ratio(50.0, background, np.zeros((4, 4), np.float32), (0.5, 1.5)) == 1.0


def test_scale_lightness_changes_only_l():
    rgb = np.full((2, 2, 3), (0.6, 0.4, 0.3), np.float32)
    scaled = scale_lightness(rgb, 0.8)
    before = cv2.cvtColor(rgb, cv2.COLOR_RGB2Lab)[0, 0]
    after = cv2.cvtColor(scaled, cv2.COLOR_RGB2Lab)[0, 0]
    assert after[0] == pytest.approx(before[0] * 0.8, abs=0.2)
    np.testing.assert_allclose(after[1:], before[1:], atol=0.5)
    assert scale_lightness(rgb, 1.0) is rgb


def test_composite_by_hand():
    alpha = np.array([[0.25, 1.0]], np.float32)
    premultiplied_white = np.repeat(alpha[..., None], 3, axis=2)
    background = np.full((1, 2, 3), 0.2, np.float32)
    # 0.25 * 1.0 + 0.75 * 0.2 = 0.4.
    np.testing.assert_allclose(composite(premultiplied_white, alpha, background)[0, :, 0], [0.4, 1.0], rtol=1e-6)


def test_contrast_and_brightness_by_hand():
    image = np.array([[[0.2, 0.2, 0.2], [0.6, 0.6, 0.6]]], np.float32)
    result = photometric(image.copy(), plain_params(contrast=2.0, brightness=0.1))
    # mean 0.4: (0.2 - 0.4) * 2 + 0.4 + 0.1 = 0.1 and (0.6 - 0.4) * 2 + 0.5 = 0.9.
    np.testing.assert_allclose(result[0, :, 0], [0.1, 0.9], atol=1e-6)


def test_noise_is_repeatable_and_has_requested_sigma():
    first = gaussian_noise(12345, (128, 128, 3))
    np.testing.assert_array_equal(first, gaussian_noise(12345, (128, 128, 3)))
    assert not np.array_equal(first, gaussian_noise(54321, (128, 128, 3)))
    image = np.full((128, 128, 3), 0.5, np.float32)
    noisy = photometric(image, plain_params(noise_sigma=10.0, noise_seed=3))
    assert (noisy * 255).std() == pytest.approx(10.0, rel=0.05)


def test_grayscale_output_has_equal_channels():
    image = np.random.default_rng(0).random((8, 8, 3), dtype=np.float32)
    result = photometric(image, plain_params(grayscale=True, noise_sigma=5.0, noise_seed=1))
    np.testing.assert_array_equal(result[..., 0], result[..., 1])
    np.testing.assert_array_equal(result[..., 0], result[..., 2])


def test_to_uint8_clips_and_never_wraps():
    values = np.array([-0.5, -0.001, 0.0, 0.5, 1.0, 1.2], np.float32)
    np.testing.assert_array_equal(to_uint8(values), [0, 0, 0, 128, 255, 255])


def test_face_partly_outside_is_clipped():
    face = disc_face(64, radius=28)
    background = np.full((64, 64, 3), 90, np.uint8)
    partial, facts = render(face, 50.0, background, plain_params(translation=(0.5, 0.0)))
    assert 0.3 < facts["visible_fraction"] < 0.7
    assert facts["face_box"][2] > 64  # the unclipped box reaches past the right edge
    gone, facts = render(face, 50.0, background, plain_params(translation=(1.0, 1.0)))
    assert facts["visible_fraction"] == 0.0
    assert gone.mask.max() == 0
    np.testing.assert_array_equal(gone.composite, background[:64, :64])


def test_visible_fraction_is_one_inside():
    _, facts = render(disc_face(64), 50.0, np.full((64, 64, 3), 90, np.uint8), plain_params(scale=0.8))
    assert facts["visible_fraction"] == pytest.approx(1.0, abs=0.02)


def test_render_rejects_wrong_face_layout():
    with pytest.raises(ValueError, match=r"face_rgba: expected shape \(H, W, 4\)"):
        render(np.zeros((64, 64, 3), np.uint8), 50.0, np.zeros((8, 8, 3), np.uint8), plain_params())
    with pytest.raises(TypeError, match="expected dtype uint8"):
        render(np.zeros((64, 64, 4), np.float32), 50.0, np.zeros((8, 8, 3), np.uint8), plain_params())


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), height=st.integers(16, 80), width=st.integers(16, 80),
       grayscale=st.booleans())
def test_render_invariants(seed, height, width, grayscale):
    config = RenderConfig(output_size=(height, width), face_size=48, padding=4, grayscale=grayscale,
                          translation=0.6, scale_range=(0.3, 2.0))
    params = sample_params(sample_rng(seed, 0, 0), config)
    photo = np.random.default_rng(seed).integers(0, 256, (37, 53, 3), dtype=np.uint8)
    sample, facts = render(disc_face(48, radius=15), 50.0, photo, params)
    assert sample.composite.shape == (height, width, 3)
    assert sample.target.shape == (height, width, 3)
    assert sample.mask.shape == (height, width)
    assert sample.composite.dtype == np.uint8
    assert 0.0 <= facts["visible_fraction"] <= 1.0
    assert 0.5 <= facts["luminance_ratio"] <= 1.5
    # The target is premultiplied: no channel may exceed the alpha.
    assert (sample.target.astype(int) <= sample.mask[..., None].astype(int) + 1).all()
    if grayscale:
        np.testing.assert_array_equal(sample.composite[..., 0], sample.composite[..., 2])


def test_sample_params_are_repeatable_and_in_range():
    config = RenderConfig()
    first = sample_params(sample_rng(5, 2, 9), config)
    assert first == sample_params(sample_rng(5, 2, 9), config)
    assert first != sample_params(sample_rng(5, 3, 9), config)
    for index in range(200):
        params = sample_params(sample_rng(0, 0, index), config)
        assert 0.8 <= params.scale <= 1.2
        assert -45 <= params.rotation <= 45
        assert all(abs(t) <= 0.3 for t in params.translation)
        assert all(abs(p) <= 0.1 for p in params.perspective)
        assert params.blur_sigma == 0.0 or 0.3 <= params.blur_sigma <= 1.2
    assert RenderParams.from_dict(first.to_dict()) == first
