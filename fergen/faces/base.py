"""Face records and the interface every face source implements."""

from __future__ import annotations

import difflib
import hashlib
import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional

import numpy as np

from ..errors import DataError
from ..imageio import read_image, read_mask

if TYPE_CHECKING:
    from .index import FaceIndex

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
        mask_path: Optional mask image (white face on black), or a file the
            source turns into a mask (CK+ landmarks).
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
    """Base class of face sources: lists faces and loads their pixels.

    A subclass implements :meth:`scan` (records built in memory) or
    :meth:`full_index` (arrays, possibly cached on disk), and may override
    :meth:`admit` to apply its own options and :meth:`draw` for options that
    need the recipe seed. Files that don't match the naming scheme are
    collected in ``unmatched`` so the summary can report them.
    """

    #: Canonical label names this source can produce, in canonical order.
    labels: tuple[str, ...] = ()
    #: True when the dataset carries subject ids (RAF-DB and FER2013 do not).
    has_subjects: bool = True

    def __init__(self, config: Any, root: Path):
        self.config = config
        self.root = Path(root)
        self.unmatched: list[str] = []
        self._index: Optional["FaceIndex"] = None
        self._records: Optional[list[FaceRecord]] = None

    def scan(self) -> list[FaceRecord]:
        """List every face record of the source."""
        raise NotImplementedError

    def full_index(self) -> "FaceIndex":
        """Return every face of the dataset before the source's options apply (default: :meth:`scan`)."""
        from .index import FaceIndex

        records = self.scan()
        ids = Counter(record.id for record in records)
        duplicated = [face_id for face_id, count in ids.items() if count > 1]
        if duplicated:
            raise DataError(f"{self.root}: duplicate face ids {duplicated[:5]}; each face needs a unique id.")
        return FaceIndex.from_records(records, self.unmatched)

    def admit(self, index: "FaceIndex") -> "FaceIndex":
        """Return the faces of ``index`` that the source's options keep (default: all)."""
        return index

    def index(self) -> "FaceIndex":
        """Return the faces the source's options admit, as arrays sorted by id (built once)."""
        if self._index is None:
            full = self.full_index()
            self.unmatched = list(full.unmatched)
            self._index = self.admit(full)
        return self._index

    def draw(self, seed: int) -> "FaceIndex":
        """Return :meth:`index` after the source's seeded draws (default: no draw).

        CK+ overrides it to pick the subjects whose first frame is a neutral face.
        """
        return self.index()

    def records(self) -> list[FaceRecord]:
        """Return the records of :meth:`index`, sorted by id (before seeded draws)."""
        if self._records is None:
            self._records = self.index().records()
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
        """Return a hash of the file list with sizes and modification times.

        A source with a cached index returns the index key, which already
        covers the listing; other sources hash each record's files.
        """
        index = self.index()
        if index.fingerprint:
            return index.fingerprint
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
    """Return a hint naming :func:`nearest_path` of ``path``, or an empty string."""
    candidate = nearest_path(path)
    return f" Did you mean {candidate}?" if candidate is not None else ""


def nearest_path(path: Path) -> Optional[Path]:
    """Return an existing file or folder that ``path`` probably meant, or ``None``.

    Tried in order: the same name in another letter case, the same name one
    level down (``parent/*/name``), one level up (``grandparent/name``), in a
    sibling of the parent (``grandparent/*/name``), then a close spelling in
    the same folder (``difflib``, ratio >= 0.75).
    """
    parent = path.parent
    siblings = _subfolders(parent)
    candidates = [folder for folder in siblings if folder.name.lower() == path.name.lower()]
    candidates += [folder / path.name for folder in siblings]
    candidates.append(parent.parent / path.name)
    candidates += [folder / path.name for folder in _subfolders(parent.parent)]
    names = [entry.name for entry in _entries(parent)]
    candidates += [parent / name for name in difflib.get_close_matches(path.name, names, n=3, cutoff=0.75)]
    for candidate in candidates:
        if candidate != path and candidate.exists():
            return candidate
    return None


# Folders with more entries than this are not searched for suggestions, so a typo next to a
# folder of 100,000 images does not stall the error message.
_MAX_ENTRIES_SEARCHED = 2000


def _entries(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    entries = []
    try:
        for entry in folder.iterdir():
            if len(entries) >= _MAX_ENTRIES_SEARCHED:
                return []
            if not entry.name.startswith("."):
                entries.append(entry)
    except OSError:
        return []
    return sorted(entries)


def _subfolders(folder: Path) -> list[Path]:
    return [entry for entry in _entries(folder) if entry.is_dir()]


SourceFactory = Callable[[Any, Path], FaceSource]
