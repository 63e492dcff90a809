"""JAFFE: the Japanese Female Facial Expression database.

Layout as distributed: one folder of 213 TIFF images named
``KA.AN1.39.tiff`` (poser ``KA``, expression ``AN`` take ``1``, image number
``39``). The semantic-ratings file and the README in the same folder are not
images and are ignored. The images are tight grey face crops, so the
``ellipse`` mask strategy fits them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..schema import spec
from . import register
from .dataset import DatasetConfig, DatasetSource, NamingScheme, has_matching_entry
from .index import FaceIndex, FileListing, IndexBuilder
from .layout import RequiredPart

JAFFE_CODES = {"AN": "anger", "DI": "disgust", "FE": "fear", "HA": "happy", "NE": "neutral", "SA": "sadness",
               "SU": "surprise"}

_FILE = re.compile(r"(?P<poser>[A-Z]{2})\.(?P<code>AN|DI|FE|HA|NE|SA|SU)(?P<take>\d)\.(?P<number>\d+)\.tiff?",
                   re.IGNORECASE)
SCHEME = NamingScheme(pattern=_FILE, example="KA.AN1.39.tiff",
                      extensions=(".tiff", ".tif", ".png", ".jpg", ".jpeg", ".bmp"))
IMAGES = RequiredPart("", _FILE, lambda match: match.group(0), example="KA.AN1.39.tiff", content="JAFFE images")


@register("jaffe")
@dataclass(frozen=True)
class JaffeFacesConfig(DatasetConfig):
    """JAFFE images (``KA.AN1.39.tiff``), one folder."""

    path: str = spec("", help="the JAFFE folder containing the .tiff images (jaffedbase)")

    def open(self, data_root: Path) -> "JaffeFaceSource":
        return JaffeFaceSource(self, self.dataset_path(data_root), data_root)


class JaffeFaceSource(DatasetSource):
    name = "JAFFE"
    kind = "jaffe"
    codes = JAFFE_CODES
    layout = ("KA.AN1.39.tiff   (poser, expression AN DI FE HA NE SA SU with take number, image number)",)
    parts = (IMAGES,)

    def looks_like(self, folder: Path) -> bool:
        return has_matching_entry(folder, _FILE)

    def build_index(self, listing: FileListing) -> FaceIndex:
        builder = IndexBuilder(str(self.root))
        for match in SCHEME.match(listing.files, builder):
            code = match["code"].upper()
            builder.add(match.group(0), match["poser"].upper(), JAFFE_CODES[code], code, path=match.group(0),
                        take=int(match["take"]), number=int(match["number"]))
        return builder.build()
