"""Face records and the interface every face source implements."""

from __future__ import annotations

import hashlib
import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from ..errors import DataError
from ..imageio import read_image, read_mask

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".pgm", ".ppm")


@dataclass(frozen=True)
class FaceRecord:
    """One face image of a dataset, before any mask or render step.

    Attributes:
        id: Unique, stable id within the source (usually the relative path).
        subject: Subject (person) id, used for subject-independent splits.
        label: Canonical expression label (e.g. ``happy``) before class mapping.
        path: Image file, or ``None`` when the source decodes pixels itself.
        mask_path: Optional mask image (white face on black).
        code: The dataset's own label code (e.g. ``5`` in CK+, ``HA`` in BU-3DFE).
        meta: Extra facts recorded in every sample's metadata (frame, intensity...).
    """

    id: str
    subject: str
    label: str
    path: Optional[str] = None
    mask_path: Optional[str] = None
    code: str = ""
    meta: dict[str, Any] = field(default_factory=dict, compare=False)


class FaceSource:
    """Base class of face sources: lists records and loads their pixels.

    Subclasses set ``config`` and implement :meth:`scan`. Records are listed
    once and kept in memory; files that don't match the naming scheme are
    collected in ``unmatched`` so the summary can report them.
    """

    #: Canonical label names this source can produce, in the dataset's order.
    labels: tuple[str, ...] = ()
    #: True when the dataset carries subject ids (RAF-DB does not).
    has_subjects: bool = True

    def __init__(self, config: Any, root: Path):
        self.config = config
        self.root = Path(root)
        self.unmatched: list[str] = []
        self._records: Optional[list[FaceRecord]] = None

    def scan(self) -> list[FaceRecord]:
        """List every face record of the source, sorted by id."""
        raise NotImplementedError

    def records(self) -> list[FaceRecord]:
        if self._records is None:
            records = self.scan()
            ids = Counter(record.id for record in records)
            duplicated = [face_id for face_id, count in ids.items() if count > 1]
            if duplicated:
                raise DataError(f"{self.root}: duplicate face ids {duplicated[:5]}; each face needs a unique id.")
            self._records = sorted(records, key=lambda record: record.id)
        return self._records

    def load_image(self, record: FaceRecord) -> np.ndarray:
        """Return the face image as RGB uint8, shape (H, W, 3)."""
        if record.path is None:
            raise NotImplementedError(f"{type(self).__name__} must override load_image")
        return read_image(record.path)

    def load_mask(self, record: FaceRecord) -> Optional[np.ndarray]:
        """Return the record's mask as float32 (H, W) in [0, 1], or ``None`` if it has none."""
        if record.mask_path is None:
            return None
        return read_mask(record.mask_path)

    def fingerprint(self) -> str:
        """Return a hash of the file list with sizes and modification times."""
        digest = hashlib.sha256(type(self).__name__.encode())
        for record in self.records():
            digest.update(record.id.encode())
            for path in (record.path, record.mask_path):
                if path is not None:
                    stat = os.stat(path)
                    digest.update(f"{path}|{stat.st_size}|{stat.st_mtime_ns}".encode())
        return digest.hexdigest()


def list_images(folder: Path, extensions: tuple[str, ...] = IMAGE_EXTENSIONS) -> list[Path]:
    """List image files below ``folder`` recursively; extensions match case-insensitively."""
    extensions = tuple(ext.lower() for ext in extensions)
    return sorted(path for path in folder.rglob("*")
                  if path.is_file() and path.suffix.lower() in extensions and not path.name.startswith("."))


def require_folder(path: Path, key: str, expected: str = "") -> Path:
    """Raise a :class:`DataError` naming ``key`` unless ``path`` is an existing folder."""
    if path.is_dir():
        return path
    layout = f" Expected layout: {expected}." if expected else ""
    near = suggest_nearby(path)
    if path.exists():
        raise DataError(f"{key}: {path} is a file, not a folder.{layout}")
    raise DataError(f"{key}: folder {path} not found.{layout}{near} "
                    "Check the path and --data-root (or FERGEN_DATA_ROOT).")


def suggest_nearby(path: Path) -> str:
    """Return a hint naming an existing folder with the same name one level up or down."""
    candidates = []
    parent = path.parent
    if parent.parent.is_dir():
        candidates += [p / path.name for p in parent.parent.iterdir() if p.is_dir()]
    if parent.is_dir():
        candidates += [p / path.name for p in parent.iterdir() if p.is_dir()]
        candidates += [p for p in parent.iterdir() if p.is_dir() and p.name.lower() == path.name.lower()]
    for candidate in candidates:
        if candidate.exists() and candidate != path:
            return f" Did you mean {candidate}?"
    return ""


SourceFactory = Callable[[Any, Path], FaceSource]
