"""Mask strategies and cleanup on real images."""

from __future__ import annotations

import numpy as np
import pytest
import skimage.data

from fergen.masks import (NoMask, clean_mask, compute_mask, ellipse_mask, fill_holes, largest_component,
                          mask_from_dark_background)
from fergen.recipe import MaskConfig
from testdata import face_on_black


def test_fill_holes_fills_enclosed_region_only():
    mask = np.zeros((9, 9), np.uint8)
    mask[2:7, 2:7] = 1
    mask[4, 4] = 0  # enclosed hole
    mask[2, 3] = 0  # a notch on the square's top edge, open to the outside
    filled = fill_holes(mask)
    assert filled[4, 4] == 1
    assert filled[2, 3] == 0
    assert filled.sum() == 24


def test_largest_component_keeps_biggest():
    mask = np.zeros((10, 10), np.uint8)
    mask[0:2, 0:2] = 1
    mask[5:9, 5:9] = 1
    kept = largest_component(mask)
    assert kept.sum() == 16
    assert kept[0, 0] == 0


def test_dark_background_fills_dark_pupil_and_drops_speck():
    image = np.zeros((60, 60, 3), np.uint8)
    image[10:50, 15:45] = 180
    image[25:28, 22:25] = 0  # a dark pupil inside the face
    image[2, 2] = 255  # a bright speck outside
    config = MaskConfig(strategy="dark-background", close_size=0, erode_size=0)
    result = mask_from_dark_background(image, config)
    assert result.mask.sum() == 40 * 30
    assert result.mask[26, 23] == 1
    assert result.mask[2, 2] == 0
    assert result.box == (10, 10, 40)


def test_dark_background_on_real_face_keeps_one_component():
    result = compute_mask(face_on_black(), None, MaskConfig(strategy="dark-background"))
    assert result.mask.dtype == np.uint8
    area = result.mask.sum()
    # The ellipse drawn by face_on_black has semi-axes 52 and 68: area pi * 52 * 68 = 11,109 pixels.
    assert 10_000 < area < 11_200


def test_ellipse_mask_area_and_box():
    config = MaskConfig(strategy="ellipse", ellipse_axes=(0.4, 0.5), ellipse_center=(0.5, 0.5))
    result = compute_mask(np.zeros((48, 48, 3), np.uint8), None, config)
    assert result.box == (0, 0, 48)
    # Semi-axes round to 19 and 24 pixels; a filled raster ellipse covers about pi * 19.5 * 24.5 pixels.
    assert abs(int(result.mask.sum()) - np.pi * 19.5 * 24.5) < 20
    assert ellipse_mask(10, 20, (0.5, 0.5), (0.25, 0.3)).shape == (10, 20)


def test_auto_mask_finds_astronaut_face():
    result = compute_mask(skimage.data.astronaut(), None, MaskConfig(strategy="auto"))
    ys, xs = np.nonzero(result.mask)
    # The astronaut's face is around x 177-272, y 66-161 in the 512x512 photo.
    assert 180 < xs.mean() < 260
    assert 80 < ys.mean() < 170
    assert result.mask.sum() > 5000


def test_auto_mask_without_face_raises_reason():
    with pytest.raises(NoMask) as error:
        compute_mask(skimage.data.coffee(), None, MaskConfig(strategy="auto"))
    assert error.value.reason == "no face detected"


def test_file_mask_missing_and_empty():
    config = MaskConfig(strategy="file")
    with pytest.raises(NoMask, match="mask file missing"):
        compute_mask(np.zeros((8, 8, 3), np.uint8), None, config)
    with pytest.raises(NoMask, match="mask empty"):
        compute_mask(np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8), np.float32), config)
    with pytest.raises(NoMask, match="differs"):
        compute_mask(np.zeros((8, 8, 3), np.uint8), np.ones((9, 8), np.float32), config)


def test_clean_mask_closes_gap():
    mask = np.zeros((30, 30), np.uint8)
    mask[5:25, 5:14] = 1
    mask[5:25, 15:25] = 1  # a one-pixel gap in the middle column
    cleaned = clean_mask(mask, MaskConfig(close_size=3, erode_size=0))
    assert cleaned[15, 14] == 1
