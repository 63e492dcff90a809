"""KDEF: the Karolinska Directed Emotional Faces.

Layout as distributed: one folder per session and person (``AF01``:
session ``A``, female, id ``01``) containing ``AF01ANS.JPG`` (expression ``AN``
seen straight on, ``S``). Angles are ``FL`` and ``FR`` (full profile left
and right), ``HL`` and ``HR`` (half profile) and ``S`` (frontal). A person
is the same subject in both sessions: ``AF01`` and ``BF01`` are subject ``F01``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from ..schema import fail, spec
from . import register
from .dataset import DatasetConfig, DatasetSource, NamingScheme, has_matching_entry
from .index import FaceIndex, FileListing, IndexBuilder
from .layout import RequiredPart

KDEF_CODES = {"AF": "fear", "AN": "anger", "DI": "disgust", "HA": "happy", "NE": "neutral", "SA": "sadness",
              "SU": "surprise"}

_PERSON = re.compile(r"[AB][FM]\d{2}", re.IGNORECASE)
SCHEME = NamingScheme(
    pattern=re.compile(r"(?P<folder>[^/]+)/(?P<session>[AB])(?P<gender>[FM])(?P<id>\d{2})"
                       r"(?P<code>AF|AN|DI|HA|NE|SA|SU)(?P<angle>FL|HL|S|HR|FR)\.jpe?g", re.IGNORECASE),
    example="AF01/AF01ANS.JPG",
    extensions=(".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff"))
SESSION_FOLDERS = RequiredPart(
    "", re.compile(r"(?P<person>[AB][FM]\d{2})(AF|AN|DI|HA|NE|SA|SU)(FL|HL|S|HR|FR)\.jpe?g", re.IGNORECASE),
    lambda match: f"{match['person']}/{match.group(0)}", example="AF01ANS.JPG", content="session folders with images")


@register("kdef")
@dataclass(frozen=True)
class KdefFacesConfig(DatasetConfig):
    """KDEF images (``AF01/AF01ANS.JPG``), frontal only by default."""

    path: str = spec("", help="the KDEF folder containing the session folders AF01 ... BM35")
    angles: tuple[Literal["FL", "HL", "S", "HR", "FR"], ...] = spec(
        ("S",), help="camera angles to keep: S frontal, HL/HR half profile, FL/FR full profile")
    sessions: tuple[Literal["A", "B"], ...] = spec(("A", "B"), help="photo sessions to keep")

    def check(self, key: str) -> None:
        super().check(key)
        for name in ("angles", "sessions"):
            if not getattr(self, name):
                fail(f"{key}.{name}", [], "a non-empty list", f"List at least one value in '{key}.{name}'.")

    def open(self, data_root: Path) -> "KdefFaceSource":
        return KdefFaceSource(self, self.dataset_path(data_root), data_root)


class KdefFaceSource(DatasetSource):
    name = "KDEF"
    kind = "kdef"
    codes = KDEF_CODES
    layout = ("AF01/AF01ANS.JPG   (session A/B, gender F/M, id, expression AF AN DI HA NE SA SU, "
              "angle FL HL S HR FR)",)
    parts = (SESSION_FOLDERS,)

    def looks_like(self, folder: Path) -> bool:
        return has_matching_entry(folder, _PERSON, folders=True)

    def build_index(self, listing: FileListing) -> FaceIndex:
        builder = IndexBuilder(str(self.root))
        for match in SCHEME.match(listing.files, builder):
            name = match.group(0)
            person = (match["session"] + match["gender"] + match["id"]).upper()
            if match["folder"].upper() != person:
                builder.reject(name, f"file of {person} in folder {match['folder']}")
                continue
            code = match["code"].upper()
            builder.add(name, person[1:], KDEF_CODES[code], code, path=name, session=person[0], gender=person[1],
                        angle=match["angle"].upper())
        return builder.build()

    def admit(self, index: FaceIndex) -> FaceIndex:
        keep = np.isin(index.meta["angle"], self.config.angles) & np.isin(index.meta["session"], self.config.sessions)
        return index.take(np.flatnonzero(keep))
