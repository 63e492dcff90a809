"""Fixtures for the torch tests: small recipes, their renderers and shards written by fergen's engine.

This folder has no ``__init__.py`` on purpose: as a package it would be
named ``torch`` and hide the real torch.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fergen.engine import render_to_folder
from fergen.pipeline import Renderer
from fergen.recipe import load_recipe, load_recipe_text

# Four classes of 48x48 faces in a non-square 48x64 output; a PNG composite keeps shard pixels exact.
SMALL_RECIPE = """\
version: 1
name: torch-tests
seed: 11
faces: {kind: lfw-subset, count: 4, mask: {strategy: ellipse}}
backgrounds: {kind: skimage, images: [coffee, chelsea, brick, grass, rocket]}
render:
  output_size: [48, 64]
  face_size: 48
  padding: 6
  blur_probability: 0.5
output: {samples: 40, samples_per_shard: 10, composite_format: png}
"""


@pytest.fixture(scope="session")
def face_cache(tmp_path_factory) -> Path:
    """A face cache folder private to this test session."""
    return tmp_path_factory.mktemp("face-cache")


@pytest.fixture(scope="session")
def small_recipe():
    return load_recipe_text(SMALL_RECIPE, source="tests/torch/conftest.py")


@pytest.fixture(scope="session")
def small_renderer(small_recipe, face_cache) -> Renderer:
    return Renderer(small_recipe, cache_dir=face_cache)


@pytest.fixture(scope="session")
def small_shards(small_recipe, small_renderer, tmp_path_factory) -> Path:
    """The small recipe rendered by fergen's engine: 4 shards of 10 samples and a manifest."""
    out = tmp_path_factory.mktemp("small-shards")
    render_to_folder(small_recipe, out, renderer=small_renderer)
    return out


@pytest.fixture(scope="session")
def demo_renderer(face_cache) -> Renderer:
    """The bundled demo recipe: a colour face at 128x128 with perspective, blur and noise."""
    return Renderer(load_recipe("demo"), cache_dir=face_cache)
