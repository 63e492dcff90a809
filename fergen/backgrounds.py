"""Background photo sources: a folder, COCO through pycocotools, or scikit-image's photos.

Sources list photo ids once. Photos are decoded on demand and downscaled
so the longer side is at most ``max_side`` pixels. Each process keeps them in
an LRU cache bounded by ``cache_mb``.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import cv2
import numpy as np

from .errors import DataError, MissingDependencyError
from .faces.base import list_images, require_folder
from .imageio import read_image
from .recipe import BackgroundSourceConfig, resolve_path
from .schema import fail, registrar, spec

log = logging.getLogger(__name__)

BACKGROUND_KINDS: dict[str, type] = {}
BACKGROUND_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
# scikit-image's bundled photos without people (grey ones become three equal channels).
SKIMAGE_PHOTOS = ("coffee", "chelsea", "rocket", "brick", "grass", "gravel", "hubble_deep_field",
                  "immunohistochemistry", "coins", "retina", "colorwheel")

#: Class decorator: ``@register("coco")`` adds a background source config class to BACKGROUND_KINDS.
register = registrar(BACKGROUND_KINDS)


class BackgroundSource:
    """Base class: an ordered list of photo ids and a cached loader."""

    def __init__(self, config: BackgroundSourceConfig, ids: list[str], names: Optional[list[str]] = None):
        if not ids:
            raise DataError("backgrounds: the source lists no photos.")
        self.config = config
        self.ids = ids
        #: Machine-independent names (relative to the source folder) recorded in sample metadata.
        self.names = names if names is not None else list(ids)
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._cache_bytes = 0

    def __len__(self) -> int:
        return len(self.ids)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_cache"] = OrderedDict()
        state["_cache_bytes"] = 0
        return state

    def read(self, index: int) -> np.ndarray:
        """Decode photo ``index`` as RGB uint8 (subclasses implement)."""
        raise NotImplementedError

    def load(self, index: int) -> tuple[np.ndarray, ...]:
        """Return photo ``index`` as an image pyramid of RGB uint8 levels, from the cache when possible.

        Level 0 is the photo downscaled to ``max_side``; each next level is
        half the size (``cv2.pyrDown``), down to a shorter side of 16 pixels.

        Raises:
            DataError: if the photo cannot be read.
        """
        cached = self._cache.get(index)
        if cached is not None:
            self._cache.move_to_end(index)
            return cached
        levels = build_pyramid(limit_side(self.read(index), self.config.max_side))
        size = sum(level.nbytes for level in levels)
        budget = self.config.cache_mb * 2**20
        if size <= budget:
            self._cache[index] = levels
            self._cache_bytes += size
            while self._cache_bytes > budget:
                _, evicted = self._cache.popitem(last=False)
                self._cache_bytes -= sum(level.nbytes for level in evicted)
        return levels

    def fingerprint(self) -> str:
        return hashlib.sha256("\n".join(self.ids).encode()).hexdigest()


def build_pyramid(image: np.ndarray, min_side: int = 16) -> tuple[np.ndarray, ...]:
    """Return (image, image / 2, image / 4, ...) made with ``cv2.pyrDown``, read-only."""
    levels = [np.ascontiguousarray(image)]
    while min(levels[-1].shape[:2]) >= 2 * min_side:
        levels.append(cv2.pyrDown(levels[-1]))
    for level in levels:
        level.setflags(write=False)
    return tuple(levels)


def limit_side(image: np.ndarray, max_side: int) -> np.ndarray:
    """Downscale (area interpolation) so the longer side is at most ``max_side``."""
    height, width = image.shape[:2]
    scale = max_side / max(height, width)
    if scale >= 1.0:
        return np.ascontiguousarray(image)
    size = (max(1, int(round(width * scale))), max(1, int(round(height * scale))))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


@register("folder")
@dataclass(frozen=True)
class FolderBackgroundsConfig(BackgroundSourceConfig):
    """All photos below a folder (recursive; jpg, jpeg, png, bmp, webp, tif in any letter case)."""

    path: str = spec("", help="folder of background photos")

    def check(self, key: str) -> None:
        if not self.path:
            fail(f"{key}.path", self.path, "a folder path", f"Set '{key}.path' to the photo folder.")

    def open(self, data_root: Path) -> "FileBackgroundSource":
        folder = require_folder(resolve_path(self.path, data_root, "backgrounds.path"), "backgrounds.path")
        files = list_images(folder, BACKGROUND_EXTENSIONS)
        if not files:
            raise DataError(f"backgrounds.path: no photos in {folder} (looked for "
                            f"{', '.join(BACKGROUND_EXTENSIONS)}, recursively). Add photos or fix the path.")
        return FileBackgroundSource(self, [str(path) for path in files],
                                    [path.relative_to(folder).as_posix() for path in files])


class FileBackgroundSource(BackgroundSource):
    def read(self, index: int) -> np.ndarray:
        return read_image(self.ids[index])

    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        for path in self.ids:
            stat = os.stat(path)
            digest.update(f"{path}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
        return digest.hexdigest()


@register("coco")
@dataclass(frozen=True)
class CocoBackgroundsConfig(BackgroundSourceConfig):
    """COCO images selected with pycocotools: images showing an excluded category are dropped."""

    annotations: str = spec("", help="instances_*.json annotation file")
    images: str = spec("", help="folder with the images the annotation file lists")
    exclude_categories: tuple[str, ...] = spec(("person",), help="drop images with any of these categories "
                                                                 "(crowd annotations included)")
    min_size: int = spec(64, low=1, help="drop images whose shorter side is below this many pixels")

    def check(self, key: str) -> None:
        for name in ("annotations", "images"):
            if not getattr(self, name):
                fail(f"{key}.{name}", "", "a path", f"Set '{key}.{name}'.")

    def open(self, data_root: Path) -> "FileBackgroundSource":
        annotations = resolve_path(self.annotations, data_root, "backgrounds.annotations")
        folder = require_folder(resolve_path(self.images, data_root, "backgrounds.images"), "backgrounds.images")
        ids = coco_background_files(annotations, folder, self.exclude_categories, self.min_size)
        if not ids:
            raise DataError(f"backgrounds: no image in {annotations} is free of {list(self.exclude_categories)} "
                            f"and at least {self.min_size} px. Lower 'backgrounds.min_size' or use more images.")
        return FileBackgroundSource(self, ids, [Path(path).relative_to(folder).as_posix() for path in ids])


def coco_background_files(annotations: Path, folder: Path, exclude: tuple[str, ...], min_size: int) -> list[str]:
    """Return the image files of a COCO split that show none of the ``exclude`` categories.

    Images without any annotation are kept. Crowd annotations count as
    showing their category.
    """
    try:
        from pycocotools.coco import COCO
    except ImportError:
        raise MissingDependencyError("backgrounds.kind 'coco' needs pycocotools: pip install 'fergen[coco]'") from None
    if not annotations.is_file():
        raise DataError(f"backgrounds.annotations: {annotations} not found. Expected a COCO instances_*.json file.")
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress to stdout
        try:
            coco = COCO(str(annotations))
        except (ValueError, KeyError, TypeError) as error:
            raise DataError(f"backgrounds.annotations: {annotations} is not a COCO annotation file: {error}") from None
    categories = {category["name"]: category["id"] for category in coco.loadCats(coco.getCatIds())}
    unknown = sorted(set(exclude) - set(categories))
    if unknown:
        raise DataError(f"backgrounds.exclude_categories: {unknown} not in {annotations}; "
                        f"categories include {sorted(categories)[:10]}...")
    excluded_ids = [categories[name] for name in exclude]
    excluded_images: set[int] = set()
    for category_id in excluded_ids:
        excluded_images.update(coco.getImgIds(catIds=[category_id]))
    files = []
    for image_id in sorted(coco.getImgIds()):
        info = coco.loadImgs(image_id)[0]
        if image_id in excluded_images or min(info["height"], info["width"]) < min_size:
            continue
        path = folder / info["file_name"]
        if path.is_file():
            files.append(str(path))
        else:
            log.warning("COCO image %s listed in %s is missing from %s", info["file_name"], annotations, folder)
    return files


@register("skimage")
@dataclass(frozen=True)
class SkimageBackgroundsConfig(BackgroundSourceConfig):
    """scikit-image's bundled photos (no download)."""

    images: tuple[str, ...] = spec(SKIMAGE_PHOTOS, help="names of skimage.data photos")

    def check(self, key: str) -> None:
        import skimage.data

        for index, name in enumerate(self.images):
            if not callable(getattr(skimage.data, name, None)) or name in ("lfw_subset", "download_all"):
                fail(f"{key}.images[{index}]", name, "a photo name from skimage.data",
                     f"Use names such as {', '.join(SKIMAGE_PHOTOS[:4])}.")
        if not self.images:
            fail(f"{key}.images", [], "at least one photo name", "List one or more photos.")

    def open(self, data_root: Path) -> "SkimageBackgroundSource":
        return SkimageBackgroundSource(self, [f"skimage:{name}" for name in self.images])


class SkimageBackgroundSource(BackgroundSource):
    def read(self, index: int) -> np.ndarray:
        import skimage.data

        image = getattr(skimage.data, self.ids[index].split(":", 1)[1])()
        if image.dtype != np.uint8:
            image = np.clip(image * (255.0 if image.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8)
        if image.ndim == 2:
            image = np.repeat(image[..., None], 3, axis=2)
        return np.ascontiguousarray(image[..., :3])
