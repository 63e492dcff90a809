"""Faces bundled with scikit-image: no download, used by the demo and tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..recipe import FaceSourceConfig
from ..schema import fail, spec
from . import register
from .base import FaceRecord, FaceSource

# scikit-image photos that show a human face.
FACE_PHOTOS = ("astronaut",)


@register("skimage")
@dataclass(frozen=True)
class SkimageFacesConfig(FaceSourceConfig):
    """Faces cut from scikit-image's bundled photos (``astronaut``)."""

    images: tuple[str, ...] = spec(FACE_PHOTOS, help=f"photo names from skimage.data: {', '.join(FACE_PHOTOS)}")
    label: str = spec("neutral", help="expression label given to every face")

    def check(self, key: str) -> None:
        for index, name in enumerate(self.images):
            if name not in FACE_PHOTOS:
                fail(f"{key}.images[{index}]", name, "one of " + ", ".join(FACE_PHOTOS),
                     "Only these bundled photos contain a face.")

    def open(self, data_root: Path) -> "SkimageFaceSource":
        return SkimageFaceSource(self, data_root)


class SkimageFaceSource(FaceSource):
    def scan(self) -> list[FaceRecord]:
        self.labels = (self.config.label,)
        return [FaceRecord(id=f"skimage:{name}", subject=name, label=self.config.label, code=self.config.label,
                           meta={"file": f"skimage.data.{name}"}) for name in self.config.images]

    def load_image(self, record: FaceRecord) -> np.ndarray:
        import skimage.data

        return np.ascontiguousarray(getattr(skimage.data, record.subject)()[..., :3])


@register("lfw-subset")
@dataclass(frozen=True)
class LfwSubsetFacesConfig(FaceSourceConfig):
    """The first ``count`` faces of ``skimage.data.lfw_subset()``, each its own subject and class.

    These 25x25 grey crops are tight, so use ``mask.strategy: ellipse``.
    """

    count: int = spec(10, low=1, high=100, help="number of faces (each becomes a class)")

    def open(self, data_root: Path) -> "LfwSubsetFaceSource":
        if self.mask.strategy not in ("ellipse", "auto"):
            raise DataError("faces.mask.strategy: lfw-subset faces have no mask files; use 'ellipse'.")
        return LfwSubsetFaceSource(self, data_root)


class LfwSubsetFaceSource(FaceSource):
    def scan(self) -> list[FaceRecord]:
        names = [f"lfw{index:03d}" for index in range(self.config.count)]
        self.labels = tuple(names)
        return [FaceRecord(id=f"lfw-subset:{index:03d}", subject=name, label=name, code=str(index),
                           meta={"file": f"skimage.data.lfw_subset()[{index}]", "index": index})
                for index, name in enumerate(names)]

    def load_image(self, record: FaceRecord) -> np.ndarray:
        import skimage.data

        grey = skimage.data.lfw_subset()[int(record.meta["index"])]
        grey = np.clip(grey * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
