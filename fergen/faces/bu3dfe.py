"""BU-3DFE: the frontal 2D images of the Binghamton University 3D facial expression database.

Layout as distributed: one folder per subject (``F0001`` to ``F0056``,
``M0001`` to ``M0044``), containing ``F0001_AN04WH_F2D.bmp`` for expression
``AN`` at intensity 4 of a white (``WH``) subject, and ``F0001_NE00WH_F2D.bmp``
for the neutral face. The 3D models, texture maps and landmark files in the
same folders (``_F3D``, ``_RAW``, ``.wrl``, ``.bnd``, ``.pse``) are ignored.
The 2D images show the face on a black background, so the
``dark-background`` mask strategy fits them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from ..schema import fail, spec
from . import register
from .dataset import DatasetConfig, DatasetSource, NamingScheme, has_matching_entry
from .index import FaceIndex, FileListing, IndexBuilder
from .layout import RequiredPart

BU3DFE_CODES = {"AN": "anger", "DI": "disgust", "FE": "fear", "HA": "happy", "NE": "neutral", "SA": "sadness",
                "SU": "surprise"}

_SUBJECT = re.compile(r"[FM]\d{4}")
SCHEME = NamingScheme(
    pattern=re.compile(r"(?P<subject>[FM]\d{4})/(?P=subject)_(?P<code>AN|DI|FE|HA|NE|SA|SU)(?P<intensity>\d\d)"
                       r"(?P<race>[A-Z]{2})_F2D\.bmp", re.IGNORECASE),
    example="F0001/F0001_AN04WH_F2D.bmp",
    extensions=(".bmp", ".png", ".jpg", ".jpeg", ".tif", ".tiff"),
    companions=re.compile(r".*_(F3D|RAW)\.[A-Za-z0-9]+", re.IGNORECASE))
SUBJECT_FOLDERS = RequiredPart(
    "", re.compile(r"(?P<subject>[FM]\d{4})_(AN|DI|FE|HA|NE|SA|SU)\d\d[A-Z]{2}_F2D\.bmp", re.IGNORECASE),
    lambda match: f"{match['subject']}/{match.group(0)}", example="F0001_AN04WH_F2D.bmp",
    content="subject folders with 2D images")


@register("bu3dfe")
@dataclass(frozen=True)
class Bu3dfeFacesConfig(DatasetConfig):
    """BU-3DFE frontal 2D images (``F0001/F0001_AN04WH_F2D.bmp``)."""

    path: str = spec("", help="the BU-3DFE folder containing the subject folders F0001 ... M0044")
    intensities: tuple[int, ...] = spec((1, 2, 3, 4), low=1, high=4,
                                        help="expression intensities to keep (1 weakest, 4 strongest)")
    neutral: bool = spec(True, help="keep each subject's neutral face (NE00)")

    def check(self, key: str) -> None:
        super().check(key)
        if not self.intensities:
            fail(f"{key}.intensities", list(self.intensities), "a non-empty list of 1, 2, 3 or 4",
                 "List the intensities to keep, e.g. [4] for the strongest.")

    def open(self, data_root: Path) -> "Bu3dfeFaceSource":
        return Bu3dfeFaceSource(self, self.dataset_path(data_root), data_root)


class Bu3dfeFaceSource(DatasetSource):
    name = "BU-3DFE"
    kind = "bu3dfe"
    codes = BU3DFE_CODES
    layout = ("F0001/F0001_AN04WH_F2D.bmp   (subject, expression AN DI FE HA SA SU, intensity 01-04, race)",
              "F0001/F0001_NE00WH_F2D.bmp   (neutral, intensity 00)")
    parts = (SUBJECT_FOLDERS,)

    def __init__(self, config: Bu3dfeFacesConfig, root: Path, data_root: Optional[Path] = None):
        super().__init__(config, root, data_root)
        if not config.neutral:
            self.labels = tuple(label for label in self.labels if label != "neutral")

    def looks_like(self, folder: Path) -> bool:
        return has_matching_entry(folder, _SUBJECT, folders=True)

    def build_index(self, listing: FileListing) -> FaceIndex:
        builder = IndexBuilder(str(self.root))
        for match in SCHEME.match(listing.files, builder):
            name = match.group(0)
            code = match["code"].upper()
            intensity = int(match["intensity"])
            if (code == "NE") != (intensity == 0) or intensity > 4:
                builder.reject(name, f"intensity {match['intensity']} is invalid for {code}: neutral faces "
                                     "have 00, expressions 01 to 04")
                continue
            subject = match["subject"].upper()
            builder.add(name, subject, BU3DFE_CODES[code], code, path=name, intensity=intensity,
                        race=match["race"].upper(), gender=subject[0])
        return builder.build()

    def admit(self, index: FaceIndex) -> FaceIndex:
        intensity = index.meta["intensity"]
        keep = np.isin(intensity, self.config.intensities)
        if self.config.neutral:
            keep |= intensity == 0
        return index.take(np.flatnonzero(keep))
