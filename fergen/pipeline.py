"""From a recipe and an index to a sample: the sampling pipeline shared by every engine.

:class:`Renderer` contains the prepared faces and the background source. Sample
``index`` of ``epoch`` depends only on the recipe and those two numbers, so
shard writers, torch datasets and any worker process render the same pixels.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from . import __version__
from .assets import FaceTable, build_face_table
from .backgrounds import BackgroundSource
from .errors import DataError
from .params import RenderParams, sample_params, sample_rng
from .recipe import Recipe, resolve_data_root
from .render import Sample, premultiply, render

log = logging.getLogger(__name__)

# Draws made to replace an unreadable background before a sample gives up.
_BACKGROUND_RETRIES = 32
# Memory for premultiplied uint8 faces kept per process (64 KiB per 128x128 face).
_PREMULTIPLIED_CACHE_BYTES = 256 * 2**20


class Renderer:
    """Render sample ``index`` of ``epoch`` for a recipe.

    Args:
        recipe: the validated recipe.
        data_root: folder relative recipe paths resolve against (default:
            ``FERGEN_DATA_ROOT`` or the current folder).
        faces: an already prepared face table (otherwise built, using the disk cache).
        cache_dir: face cache folder (default ``~/.cache/fergen``).
        use_cache: read and write the face cache.
        workers: threads used to prepare faces.
        face_progress, on_face_start: progress callbacks of :func:`~fergen.assets.build_face_table`.
    """

    def __init__(self, recipe: Recipe, data_root: str | os.PathLike | None = None,
                 faces: Optional[FaceTable] = None, cache_dir: Optional[Path] = None,
                 use_cache: bool = True, workers: int = 1,
                 face_progress: Optional[Callable[[int], None]] = None,
                 on_face_start: Optional[Callable[[int], None]] = None):
        self.recipe = recipe
        self.data_root = resolve_data_root(data_root)
        self.faces = faces if faces is not None else build_face_table(
            recipe, self.data_root, cache_dir=cache_dir, use_cache=use_cache, workers=workers,
            progress=face_progress, on_start=on_face_start)
        self.backgrounds: BackgroundSource = recipe.backgrounds.open(self.data_root)
        self._faces_of_class = [indices for indices in self.faces.faces_of_class() if len(indices)]
        self.unreadable_backgrounds: Counter = Counter()
        self._bad_backgrounds: set[int] = set()
        self._premultiplied: dict[int, np.ndarray] = {}
        self._recipe_sha256 = recipe.sha256
        #: Changes when the recipe, the prepared faces or the background files change.
        self.data_fingerprint = hashlib.sha256(
            f"{recipe.sha256}|{self.faces.fingerprint}|{self.backgrounds.fingerprint()}".encode()).hexdigest()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_premultiplied"] = {}
        return state

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.faces.class_names

    def choose(self, rng: np.random.Generator, index: int) -> tuple[int, int]:
        """Draw the face and background indices of a sample (before its render params)."""
        choice = self.recipe.sampling.face_choice
        count = len(self.faces)
        if choice == "sequential":
            face = index % count
        elif choice == "class-balanced":
            members = self._faces_of_class[int(rng.integers(len(self._faces_of_class)))]
            face = int(members[int(rng.integers(len(members)))])
        else:
            face = int(rng.integers(count))
        background = int(rng.integers(len(self.backgrounds)))
        return face, background

    def plan(self, index: int, epoch: int = 0) -> tuple[int, int, RenderParams, np.random.Generator]:
        """Return (face index, background index, params, generator) of a sample without rendering it."""
        rng = sample_rng(self.recipe.seed, epoch, index)
        face, background = self.choose(rng, index)
        params = sample_params(rng, self.recipe.render)
        return face, background, params, rng

    def premultiplied(self, face: int) -> np.ndarray:
        """Return face ``face`` as premultiplied uint8 RGBA, cached up to ``_PREMULTIPLIED_CACHE_BYTES``."""
        cached = self._premultiplied.get(face)
        if cached is None:
            cached = premultiply(self.faces.rgba[face])
            if (len(self._premultiplied) + 1) * cached.nbytes <= _PREMULTIPLIED_CACHE_BYTES:
                self._premultiplied[face] = cached
        return cached

    def load_background(self, background: int, rng: np.random.Generator) -> tuple[int, tuple[np.ndarray, ...]]:
        """Load a background; an unreadable photo is counted and replaced by another draw.

        ``unreadable_backgrounds`` counts draws that hit each unreadable photo,
        which depends only on the samples rendered, not on the worker count.
        """
        for _ in range(_BACKGROUND_RETRIES):
            if background in self._bad_backgrounds:
                self.unreadable_backgrounds[self.backgrounds.names[background]] += 1
            else:
                try:
                    return background, self.backgrounds.load(background)
                except DataError as error:
                    self._bad_backgrounds.add(background)
                    self.unreadable_backgrounds[self.backgrounds.names[background]] += 1
                    log.warning("skipping unreadable background: %s", error)
                    limit = self.recipe.backgrounds.max_unreadable
                    if len(self._bad_backgrounds) > limit:
                        raise DataError(
                            f"backgrounds: more than {limit} unreadable photos (last: {error}). Fix or delete "
                            "them, or raise 'backgrounds.max_unreadable'.") from None
            background = int(rng.integers(len(self.backgrounds)))
        raise DataError(f"backgrounds: {_BACKGROUND_RETRIES} draws in a row hit unreadable photos; "
                        "check the background folder.")

    def sample(self, index: int, epoch: int = 0) -> Sample:
        """Render sample ``index`` of ``epoch`` (deterministic)."""
        face, background, params, rng = self.plan(index, epoch)
        background, photo = self.load_background(background, rng)
        sample, facts = render(self.faces.rgba[face], float(self.faces.luminance[face]), photo, params,
                               premultiplied=self.premultiplied(face))
        sample.label = int(self.faces.labels[face])
        facts["theta"] = [[round(float(v), 8) for v in row] for row in sample.theta]
        sample.metadata = self.metadata(index, epoch, face, background, params, facts)
        return sample

    def metadata(self, index: int, epoch: int, face: int, background: int, params: RenderParams,
                 facts: dict[str, Any]) -> dict[str, Any]:
        faces = self.faces
        return {
            "index": index, "epoch": epoch, "label": int(faces.labels[face]),
            "class_name": faces.class_names[int(faces.labels[face])], "subject": faces.subjects[face],
            "face_id": faces.ids[face], "face_code": faces.codes[face], "face_meta": faces.meta[face],
            "background_id": self.backgrounds.names[background], "params": params.to_dict(),
            **facts, "recipe_sha256": self._recipe_sha256, "fergen_version": __version__,
        }
