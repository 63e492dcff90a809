"""RAF-DB basic: the Real-world Affective Faces database, single-label subset.

Layout as distributed (the label file's misspelt name is the dataset's own)::

    EmoLabel/list_patition_label.txt     lines "train_00001.jpg 5"
    Image/aligned/train_00001_aligned.jpg
    Image/original/train_00001.jpg

Codes: 1 surprise, 2 fear, 3 disgust, 4 happy, 5 sadness, 6 anger, 7 neutral.
RAF-DB carries no subject ids, so each image is its own subject: folds split
by image, and one person may appear in two folds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional

import numpy as np

from ..schema import fail, spec
from . import register
from .dataset import DatasetConfig, DatasetSource
from .index import FaceIndex, FileListing, IndexBuilder
from .layout import RequiredPart

RAFDB_CODES = {"1": "surprise", "2": "fear", "3": "disgust", "4": "happy", "5": "sadness", "6": "anger",
               "7": "neutral"}

LABEL_FILE = "list_patition_label.txt"
# The label file's places, tried in order: as distributed, then next to Image/.
LABEL_FILES = (f"EmoLabel/{LABEL_FILE}", LABEL_FILE)
_LINE = re.compile(r"(?P<name>(?P<partition>train|test)_\d+)\.jpg\s+(?P<code>\S+)")
_IMAGE_NAMES = {"aligned": re.compile(r"(?P<name>(?:train|test)_\d+)_aligned\.jpg"),
                "original": re.compile(r"(?P<name>(?:train|test)_\d+)\.jpg")}
_IMAGE_EXAMPLES = {"aligned": "train_00001_aligned.jpg", "original": "train_00001.jpg"}
LABEL_PART = RequiredPart("EmoLabel", re.compile(re.escape(LABEL_FILE)), lambda match: match.group(0),
                          example=LABEL_FILE, content="label file", fix=f"Put RAF-DB's {LABEL_FILE} in {{folder}}.",
                          also=("",))


@register("rafdb")
@dataclass(frozen=True)
class RafdbFacesConfig(DatasetConfig):
    """RAF-DB basic (``EmoLabel/list_patition_label.txt`` and ``Image/aligned/``), without subject ids."""

    path: str = spec("", help="the RAF-DB 'basic' folder containing EmoLabel/ and Image/")
    partitions: tuple[Literal["train", "test"], ...] = spec(
        ("train",), help="RAF-DB partitions to keep; render training data from 'train' only")
    images: Literal["aligned", "original"] = spec(
        "aligned", help="aligned: the 100x100 crops in Image/aligned/; original: the photos in Image/original/")

    def check(self, key: str) -> None:
        super().check(key)
        if not self.partitions:
            fail(f"{key}.partitions", [], "a non-empty list of 'train' and 'test'",
                 f"Set '{key}.partitions' to [train].")

    def open(self, data_root: Path) -> "RafdbFaceSource":
        return RafdbFaceSource(self, self.dataset_path(data_root), data_root)


class RafdbFaceSource(DatasetSource):
    name = "RAF-DB"
    kind = "rafdb"
    codes = RAFDB_CODES
    has_subjects = False
    layout = (f"EmoLabel/{LABEL_FILE}   (lines 'train_00001.jpg 5', codes 1-7)",
              "Image/aligned/train_00001_aligned.jpg")

    def looks_like(self, folder: Path) -> bool:
        return (folder / "Image").is_dir() and _label_file(folder) is not None

    def required_parts(self) -> tuple[RequiredPart, ...]:
        images = self.config.images
        other = "original" if images == "aligned" else "aligned"
        image_part = RequiredPart(
            f"Image/{images}", _IMAGE_NAMES[images], lambda match: match.group(0), example=_IMAGE_EXAMPLES[images],
            content=f"{images} images",
            fix=f"Unpack the {images} images into {{folder}}, or set 'faces.images: {other}' to read Image/{other}.")
        return LABEL_PART, image_part

    def inputs(self) -> list[str]:
        return [*LABEL_FILES, f"Image/{self.config.images}"]

    def build_index(self, listing: FileListing) -> FaceIndex:
        builder = IndexBuilder(str(self.root))
        label_file = _label_file(self.root)
        labels = self._read_labels(label_file, builder) if label_file is not None else {}
        folder = f"Image/{self.config.images}"
        pattern = _IMAGE_NAMES[self.config.images]
        seen = set()
        for name in listing.under(folder):
            match = pattern.fullmatch(name[len(folder) + 1:])
            if match is None:
                builder.reject(name, f"name does not match {folder}/{_IMAGE_EXAMPLES[self.config.images]}")
                continue
            image = match["name"]
            if image not in labels:
                builder.reject(name, f"no line for {image}.jpg in {label_file}")
                continue
            seen.add(image)
            code, line = labels[image]
            builder.add(name, image, RAFDB_CODES[code], code, path=name, partition=image.split("_")[0], line=line)
        for image in sorted(set(labels) - seen):
            builder.reject(f"{label_file} line {labels[image][1]}", f"no image for {image}.jpg in {folder}")
        return builder.build()

    def _read_labels(self, label_file: str, builder: IndexBuilder) -> dict[str, tuple[str, int]]:
        """Return image name (without extension) -> (code, line number); reject invalid lines."""
        labels: dict[str, tuple[str, int]] = {}
        text = (self.root / label_file).read_text(encoding="utf-8", errors="replace")
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            match = _LINE.fullmatch(line.strip())
            if match is None or match["code"] not in RAFDB_CODES:
                builder.reject(f"{label_file} line {number}",
                               f"{line.strip()[:40]!r} is not '<train|test>_<number>.jpg <code 1-7>'")
                continue
            if match["name"] in labels:
                builder.reject(f"{label_file} line {number}", f"{match['name']}.jpg is labelled twice")
                continue
            labels[match["name"]] = (match["code"], number)
        return labels

    def admit(self, index: FaceIndex) -> FaceIndex:
        return index.take(np.flatnonzero(np.isin(index.meta["partition"], self.config.partitions)))


def _label_file(folder: Path) -> Optional[str]:
    for name in LABEL_FILES:
        if (folder / name).is_file():
            return name
    return None
