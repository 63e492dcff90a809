"""Shared fixtures: real image files written to tmp_path, and an isolated face cache."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import skimage.data

from testdata import face_on_black, write_rgb


@pytest.fixture(autouse=True, scope="session")
def isolated_cache(tmp_path_factory):
    """Keep the face cache of every test run out of the user's ~/.cache."""
    previous = os.environ.get("FERGEN_CACHE_DIR")
    os.environ["FERGEN_CACHE_DIR"] = str(tmp_path_factory.mktemp("fergen-cache"))
    yield
    if previous is None:
        os.environ.pop("FERGEN_CACHE_DIR", None)
    else:
        os.environ["FERGEN_CACHE_DIR"] = previous


@pytest.fixture
def face_folder(tmp_path) -> Path:
    """A class-per-folder tree: 3 labels x 4 subjects, faces pre-cut on black, PNG."""
    root = tmp_path / "faces"
    for label_index, label in enumerate(["anger", "happy", "neutral"]):
        for subject in range(4):
            write_rgb(root / label / f"S{subject:03d}_{label_index:02d}.png", face_on_black(subject + label_index))
    return root


@pytest.fixture
def background_folder(tmp_path) -> Path:
    """Five real photos in nested folders, with mixed-case extensions."""
    root = tmp_path / "backgrounds"
    write_rgb(root / "coffee.jpg", skimage.data.coffee())
    write_rgb(root / "animals" / "chelsea.JPG", skimage.data.chelsea())
    write_rgb(root / "space" / "rocket.png", skimage.data.rocket())
    write_rgb(root / "space" / "hubble.Jpeg", skimage.data.hubble_deep_field()[:300, :400])
    write_rgb(root / "bricks.bmp", np.repeat(skimage.data.brick()[..., None], 3, axis=2))
    return root
