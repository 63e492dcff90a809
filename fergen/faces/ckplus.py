"""CK+: the extended Cohn-Kanade dataset.

Layout as distributed::

    cohn-kanade-images/S005/001/S005_001_00000011.png
    Emotion/S005/001/S005_001_00000011_emotion.txt
    Landmarks/S005/001/S005_001_00000011_landmarks.txt   (optional)

Each sequence runs from a neutral first frame to the expression's peak. A
sequence is labelled when its ``Emotion`` folder contains a file named after
the peak frame. That file contains one float code (0 neutral, 1 anger,
2 contempt, 3 disgust, 4 fear, 5 happy, 6 sadness, 7 surprise). Unlabelled sequences are
counted in the summary and not used.

The reader keeps the last ``last_frames`` frames of each labelled sequence,
up to and including the peak, as the sequence's expression, and optionally
the first frame as a neutral face. The first frame is never an expression
face, even in a sequence shorter than ``last_frames + 1``.
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional

import cv2
import numpy as np

from ..errors import DataError, RecipeError
from ..imageio import read_image
from ..masks import NoMask, mask_from_detector
from ..schema import spec
from . import register
from .base import FaceRecord
from .dataset import DatasetConfig, DatasetSource, NamingScheme
from .index import FaceIndex, FileListing, IndexBuilder
from .layout import RequiredPart

log = logging.getLogger(__name__)

CKPLUS_CODES = {"0": "neutral", "1": "anger", "2": "contempt", "3": "disgust", "4": "fear", "5": "happy",
                "6": "sadness", "7": "surprise"}

IMAGES, EMOTION, LANDMARKS = "cohn-kanade-images", "Emotion", "Landmarks"
_SEQUENCE_PATH = r"(?P<subject>S\d{3})/(?P<sequence>\d{3})/(?P=subject)_(?P=sequence)_(?P<frame>\d{8})"
SCHEME = NamingScheme(pattern=re.compile(rf"{IMAGES}/{_SEQUENCE_PATH}\.(?i:png)"),
                      example=f"{IMAGES}/S005/001/S005_001_00000011.png",
                      extensions=(".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"))
_EMOTION_FILE = re.compile(rf"{EMOTION}/{_SEQUENCE_PATH}_emotion\.txt")
_EMOTION_EXAMPLE = f"{EMOTION}/S005/001/S005_001_00000011_emotion.txt"

_FRAME_NAME = r"(?P<subject>S\d{3})_(?P<sequence>\d{3})_\d{8}"
PARTS = (
    RequiredPart(IMAGES, re.compile(rf"{_FRAME_NAME}\.(?i:png)"),
                 lambda match: f"{match['subject']}/{match['sequence']}/{match.group(0)}",
                 example="S005_001_00000011.png", content="CK+ frames", fix="Unpack the CK+ images into {folder}."),
    RequiredPart(EMOTION, re.compile(rf"{_FRAME_NAME}_emotion\.txt"),
                 lambda match: f"{match['subject']}/{match['sequence']}/{match.group(0)}",
                 example="S005_001_00000011_emotion.txt", content="emotion files",
                 fix="Unpack the CK+ emotion labels into {folder}."),
)

#: The 68-point landmarks that outline the face: jaw (0-16) and both brows (17-26).
FACE_OUTLINE_POINTS = slice(0, 27)
LANDMARK_COUNT = 68
# Domain tag mixed into the recipe seed for the draw of neutral subjects.
_NEUTRAL_STREAM = 0xC4


@register("ckplus")
@dataclass(frozen=True)
class CkplusFacesConfig(DatasetConfig):
    """CK+ sequences (``cohn-kanade-images/`` with ``Emotion/`` labels and optional ``Landmarks/``).

    With ``mask.strategy: file`` the mask is the convex hull of the face
    outline and brow landmarks. A frame without a landmarks file gets its
    mask from the ``auto`` strategy (face detector) instead.
    """

    path: str = spec("", help="the CK+ folder containing cohn-kanade-images/ and Emotion/")
    last_frames: int = spec(1, low=1, high=100,
                            help="frames taken from the end of each labelled sequence, the peak included")
    neutral: bool = spec(True, help="use the first frame of labelled sequences as neutral faces")
    neutral_subjects: Optional[int] = spec(
        None, low=1, help="neutral faces of only this many subjects, drawn with the recipe seed (default: all)")
    neutral_sequences: Literal["first", "all"] = spec(
        "first", help="first: one neutral face per subject, from its first labelled sequence; all: one per sequence")

    def open(self, data_root: Path) -> "CkplusFaceSource":
        return CkplusFaceSource(self, self.dataset_path(data_root), data_root)


class CkplusFaceSource(DatasetSource):
    name = "CK+"
    kind = "ckplus"
    codes = CKPLUS_CODES
    layout = (f"{IMAGES}/S005/001/S005_001_00000011.png",
              f"{_EMOTION_EXAMPLE}   (one float code 0-7, for labelled sequences)",
              f"{LANDMARKS}/S005/001/S005_001_00000011_landmarks.txt   (optional, 68 'x y' lines)")
    parts = PARTS

    def __init__(self, config: CkplusFacesConfig, root: Path, data_root: Optional[Path] = None):
        super().__init__(config, root, data_root)
        if not config.neutral:
            self.labels = tuple(label for label in self.labels if label != "neutral")
        self._fallback_logged = False

    def looks_like(self, folder: Path) -> bool:
        return (folder / IMAGES).is_dir() and (folder / EMOTION).is_dir()

    def inputs(self) -> list[str]:
        return [IMAGES, EMOTION, LANDMARKS]

    def build_index(self, listing: FileListing) -> FaceIndex:
        builder = IndexBuilder(str(self.root))
        frames: dict[tuple[str, str], list[tuple[int, str]]] = defaultdict(list)
        for match in SCHEME.match(listing.under(IMAGES), builder):
            frames[match["subject"], match["sequence"]].append((int(match["frame"]), match.group(0)))
        landmarks = set(listing.under(LANDMARKS))
        labelled = set()
        for name in listing.under(EMOTION):
            match = _EMOTION_FILE.fullmatch(name)
            if match is None:
                builder.reject(name, f"name does not match {_EMOTION_EXAMPLE}")
                continue
            sequence = (match["subject"], match["sequence"])
            code = self._read_code(name, builder)
            if code is None:
                continue
            if sequence in labelled:
                builder.reject(name, "a second emotion file for the same sequence")
                continue
            if self._add_sequence(builder, sequence, int(match["frame"]), code, sorted(frames.get(sequence, [])),
                                  landmarks, name):
                labelled.add(sequence)
        builder.stats["unlabelled_sequences"] = len(set(frames) - labelled)
        builder.stats["labelled_sequences"] = len(labelled)
        return builder.build()

    def _read_code(self, name: str, builder: IndexBuilder) -> Optional[str]:
        text = (self.root / name).read_text(encoding="utf-8", errors="replace").strip()
        try:
            value: Optional[float] = float(text)
        except ValueError:
            value = None
        if value is None or not value.is_integer() or str(int(value)) not in CKPLUS_CODES:
            builder.reject(name, f"invalid emotion code {text[:20]!r}; expected one number from 0 to 7")
            return None
        return str(int(value))

    @staticmethod
    def _add_sequence(builder: IndexBuilder, sequence: tuple[str, str], peak: int, code: str,
                      frames: list[tuple[int, str]], landmarks: set[str], emotion_file: str) -> bool:
        """Add every frame of a labelled sequence up to the peak, or return False if the peak image is missing."""
        numbers = [number for number, _ in frames]
        if peak not in numbers:
            builder.reject(emotion_file, f"no image {IMAGES}/{sequence[0]}/{sequence[1]}/"
                                         f"{sequence[0]}_{sequence[1]}_{peak:08d}.png for this label")
            return False
        peak_position = numbers.index(peak)
        builder.stats["frames_after_peak"] += len(frames) - peak_position - 1
        subject, sequence_id = sequence
        for position, (number, name) in enumerate(frames[:peak_position + 1]):
            landmark = f"{LANDMARKS}/{subject}/{sequence_id}/{subject}_{sequence_id}_{number:08d}_landmarks.txt"
            builder.add(name, subject, CKPLUS_CODES[code], code, path=name,
                        mask_path=landmark if landmark in landmarks else "", sequence=sequence_id, frame=number,
                        position=position, from_end=peak_position - position)
        return True

    def admit(self, index: FaceIndex) -> FaceIndex:
        position, from_end = index.meta["position"], index.meta["from_end"]
        expression = (position > 0) & (from_end < self.config.last_frames)
        neutral = position == 0 if self.config.neutral else np.zeros(len(index), bool)
        if self.config.neutral and self.config.neutral_sequences == "first":
            # Ids sort by subject, then sequence, so a subject's first neutral row is its first sequence.
            rows = np.flatnonzero(neutral)
            _, first = np.unique(index.subjects[rows], return_index=True)
            neutral = np.zeros(len(index), bool)
            neutral[rows[first]] = True
        admitted = index.take(np.flatnonzero(expression | neutral))
        is_neutral = neutral[expression | neutral]
        return admitted.with_columns(labels=np.where(is_neutral, "neutral", admitted.labels),
                                     codes=np.where(is_neutral, "0", admitted.codes))

    def draw(self, seed: int) -> FaceIndex:
        """Keep the neutral faces of ``neutral_subjects`` subjects drawn with ``seed`` (all when unset).

        Raises:
            RecipeError: if fewer subjects have a neutral face than requested.
        """
        index = self.index()
        count = self.config.neutral_subjects
        if count is None or not self.config.neutral:
            return index
        neutral = index.meta["position"] == 0
        subjects = np.unique(index.subjects[neutral])
        if count > len(subjects):
            raise RecipeError(
                f"recipe key 'faces.neutral_subjects': invalid value {count}; the CK+ folder {self.root} has "
                f"{len(subjects)} subjects with a labelled sequence. Set it to at most {len(subjects)}, "
                "or remove it to use every subject.")
        rng = np.random.default_rng(np.random.SeedSequence([seed, _NEUTRAL_STREAM]))
        chosen = rng.choice(subjects, size=count, replace=False)
        keep = ~neutral | np.isin(index.subjects, chosen)
        return index.take(np.flatnonzero(keep))

    def load_mask(self, record: FaceRecord) -> Optional[np.ndarray]:
        """Return the convex hull of the face outline and brow landmarks, or the ``auto`` mask without landmarks."""
        if record.mask_path is None:
            return self._detector_mask(record)
        points = read_landmarks(record.mask_path)
        height, width = _image_size(record.path)
        return outline_mask(points, height, width)

    def _detector_mask(self, record: FaceRecord) -> Optional[np.ndarray]:
        if not self._fallback_logged:
            log.info("CK+ frames without a landmarks file in %s get masks from the auto strategy (face detector)",
                     self.root / LANDMARKS)
            self._fallback_logged = True
        try:
            result = mask_from_detector(self.load_image(record), self.config.mask)
        except NoMask as reason:
            # NOTE: the caller then skips the face as "mask file missing", not with the detector's reason.
            log.debug("no auto mask for %s: %s", record.id, reason.reason)
            return None
        return result.mask.astype(np.float32)


def read_landmarks(path: str) -> np.ndarray:
    """Read a CK+ landmarks file: 68 lines of ``x y`` in pixels, returned as float64 (68, 2).

    Raises:
        DataError: if the file is missing or not 68 pairs of numbers.
    """
    try:
        points = np.loadtxt(path, dtype=np.float64, ndmin=2)
    except (OSError, ValueError) as error:
        raise DataError(f"landmarks file {path} could not be read ({error}), so its face mask cannot be drawn. "
                        "Replace the file or use another mask strategy.") from None
    if points.shape != (LANDMARK_COUNT, 2):
        raise DataError(f"landmarks file {path}: expected {LANDMARK_COUNT} lines of 'x y', found shape "
                        f"{points.shape}, so its face mask cannot be drawn. Replace the file or use another "
                        "mask strategy.")
    return points


def outline_mask(points: np.ndarray, height: int, width: int) -> np.ndarray:
    """Return float32 (height, width): 1 inside the convex hull of the jaw and brow points, else 0."""
    outline = np.round(points[FACE_OUTLINE_POINTS]).astype(np.int32)
    mask = np.zeros((height, width), np.uint8)
    cv2.fillConvexPoly(mask, cv2.convexHull(outline), 1)
    return mask.astype(np.float32)


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _image_size(path: Optional[str]) -> tuple[int, int]:
    """Return (height, width) of an image, from the PNG header when possible, else by decoding it."""
    if path is None:
        raise DataError("a CK+ record has no image path, so its landmark mask has no size")
    try:
        with open(path, "rb") as handle:
            header = handle.read(24)
    except OSError as error:
        raise DataError(f"image {path} could not be read ({error}), so its landmark mask has no size. "
                        "Check the CK+ folder.") from None
    if header[:8] == _PNG_SIGNATURE and header[12:16] == b"IHDR":
        return int.from_bytes(header[20:24], "big"), int.from_bytes(header[16:20], "big")
    return read_image(path).shape[:2]
