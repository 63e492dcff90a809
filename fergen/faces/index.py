"""The face index: a dataset's faces as aligned numpy arrays, cached on disk.

A reader scans a dataset once and stores what it found (ids, subjects,
labels, dataset codes, relative paths and per-face metadata columns) in a
:class:`FaceIndex`. The index is saved as an uncompressed ``.npz`` in the
fergen cache folder. Its key is a fingerprint of the dataset's file listing:
relative paths, sizes and modification times. A later run with an unchanged
tree therefore loads the arrays instead of parsing the dataset again.
Records are built from the arrays only when a caller requests them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence

import numpy as np

from ..errors import DataError
from .base import FaceRecord

log = logging.getLogger(__name__)

#: Bumped whenever the saved layout changes, so old cache files are ignored.
INDEX_FORMAT = 1
# Meta column that carries JSON text when the records' metadata has no common typed layout.
_JSON_COLUMN = "__json__"
_META_PREFIX = "meta__"
_COLUMNS = ("ids", "subjects", "labels", "codes", "paths", "mask_paths")


@dataclass
class FaceIndex:
    """Faces of one dataset as aligned arrays, one entry per face, sorted by id.

    Attributes:
        ids: str (N,): unique face id (usually the path relative to ``root``).
        subjects: str (N,): subject (person) id.
        labels: str (N,): canonical expression label.
        codes: str (N,): the dataset's own label code.
        paths: str (N,): image path relative to ``root``, or empty when the image is in ``pixels``.
        mask_paths: str (N,): mask or landmarks path relative to ``root``, or empty when there is none.
        meta: per-face metadata columns (int64, float64, bool or str arrays of length N).
        unmatched: dataset files that did not match the naming scheme, each with the reason.
        stats: counts the reader reports in the summary (e.g. unlabelled CK+ sequences).
        fingerprint: key of the file listing the index was built from.
        root: folder the relative paths resolve against.
        pixels: decoded images for sources without image files (FER2013), indexed by ``meta['row']``.
    """

    ids: np.ndarray
    subjects: np.ndarray
    labels: np.ndarray
    codes: np.ndarray
    paths: np.ndarray
    mask_paths: np.ndarray
    meta: dict[str, np.ndarray] = field(default_factory=dict)
    unmatched: tuple[str, ...] = ()
    stats: dict[str, int] = field(default_factory=dict)
    fingerprint: str = ""
    root: str = ""
    pixels: Optional[np.ndarray] = None

    def __len__(self) -> int:
        return len(self.ids)

    def take(self, indices: np.ndarray | Sequence[int]) -> "FaceIndex":
        """Return the faces at ``indices`` (an index array or a boolean mask), keeping the summary fields."""
        indices = np.asarray(indices)
        columns = {name: getattr(self, name)[indices] for name in _COLUMNS}
        meta = {name: column[indices] for name, column in self.meta.items()}
        return replace(self, meta=meta, **columns)

    def with_columns(self, **columns: np.ndarray) -> "FaceIndex":
        """Return a copy with some of ``ids``, ``subjects``, ``labels``, ``codes``... replaced."""
        return replace(self, **columns)

    def record(self, position: int) -> FaceRecord:
        """Build the :class:`FaceRecord` of the face at ``position``."""
        return self.records([position])[0]

    def records(self, positions: Optional[Iterable[int]] = None) -> list[FaceRecord]:
        """Build the :class:`FaceRecord` of each face at ``positions`` (default: every face)."""
        positions = np.arange(len(self)) if positions is None else np.asarray(list(positions), dtype=np.int64)
        ids = self.ids[positions].tolist()
        subjects = self.subjects[positions].tolist()
        labels = self.labels[positions].tolist()
        codes = self.codes[positions].tolist()
        paths = [self._absolute(path) for path in self.paths[positions].tolist()]
        mask_paths = [self._absolute(path) for path in self.mask_paths[positions].tolist()]
        metas = self._meta_dicts(positions)
        return [FaceRecord(id=face_id, subject=subject, label=label, path=path, mask_path=mask_path,
                           code=code, meta=meta)
                for face_id, subject, label, code, path, mask_path, meta
                in zip(ids, subjects, labels, codes, paths, mask_paths, metas)]

    def _absolute(self, path: str) -> Optional[str]:
        if not path:
            return None
        return os.path.join(self.root, path) if self.root else path

    def _meta_dicts(self, positions: np.ndarray) -> list[dict[str, Any]]:
        if _JSON_COLUMN in self.meta:
            return [json.loads(text) for text in self.meta[_JSON_COLUMN][positions].tolist()]
        columns = {name: column[positions].tolist() for name, column in self.meta.items()}
        return [{name: values[i] for name, values in columns.items()} for i in range(len(positions))]

    @classmethod
    def from_records(cls, records: Sequence[FaceRecord], unmatched: Sequence[str] = ()) -> "FaceIndex":
        """Build an index of already created records, keeping their paths as given (``root`` is empty)."""
        records = sorted(records, key=lambda record: record.id)
        builder = IndexBuilder()
        for record in records:
            builder.add(record.id, record.subject, record.label, record.code, record.path or "",
                        record.mask_path or "", **record.meta)
        for entry in unmatched:
            builder.unmatched.append(entry)
        return builder.build()

    def save(self, path: Path) -> None:
        """Write the index to ``path`` (``.npz``) and its pixels next to it, replacing files atomically."""
        header = {"format": INDEX_FORMAT, "fingerprint": self.fingerprint, "stats": self.stats,
                  "meta": sorted(self.meta), "pixels": self.pixels is not None}
        arrays = {name: getattr(self, name) for name in _COLUMNS}
        arrays.update({_META_PREFIX + name: column for name, column in self.meta.items()})
        arrays["unmatched"] = np.array(self.unmatched, dtype=str)
        arrays["header"] = np.frombuffer(json.dumps(header).encode("utf-8"), np.uint8)
        path.parent.mkdir(parents=True, exist_ok=True)
        if self.pixels is not None:
            _write_atomically(_pixels_path(path), lambda handle: np.save(handle, self.pixels))
        _write_atomically(path, lambda handle: np.savez(handle, **arrays))

    @classmethod
    def load(cls, path: Path, root: str = "") -> "FaceIndex":
        """Read an index written by :meth:`save`, with ``pixels`` memory-mapped.

        Raises:
            OSError, ValueError, KeyError: if the file is missing, truncated or of another format.
        """
        with np.load(path, allow_pickle=False) as data:
            header = json.loads(data["header"].tobytes().decode("utf-8"))
            if header.get("format") != INDEX_FORMAT:
                raise ValueError(f"index format {header.get('format')}, expected {INDEX_FORMAT}")
            columns = {name: data[name] for name in _COLUMNS}
            meta = {name: data[_META_PREFIX + name] for name in header["meta"]}
            unmatched = tuple(data["unmatched"].tolist())
        pixels = np.load(_pixels_path(path), mmap_mode="r", allow_pickle=False) if header["pixels"] else None
        return cls(meta=meta, unmatched=unmatched, stats=dict(header["stats"]), fingerprint=header["fingerprint"],
                   root=root, pixels=pixels, **columns)


def _pixels_path(path: Path) -> Path:
    return path.with_name(path.stem + ".pixels.npy")


def _write_atomically(path: Path, write: Callable[[Any], None]) -> None:
    temporary = path.with_name(f"{path.name}.tmp{os.getpid()}")
    try:
        with open(temporary, "wb") as handle:
            write(handle)
        os.replace(temporary, path)
    finally:
        if temporary.exists():
            temporary.unlink()


class IndexBuilder:
    """Collect faces, rejected files and counts while a reader scans a dataset, then build a :class:`FaceIndex`."""

    def __init__(self, where: str = "") -> None:
        self.where = where
        self._columns: dict[str, list[str]] = {name: [] for name in _COLUMNS}
        self._meta: list[dict[str, Any]] = []
        self.unmatched: list[str] = []
        self.stats: Counter = Counter()

    def __len__(self) -> int:
        return len(self._meta)

    def add(self, face_id: str, subject: str, label: str, code: str, path: str = "", mask_path: str = "",
            **meta: Any) -> None:
        """Add one face, with ``path`` and ``mask_path`` relative to the dataset root."""
        for name, value in zip(_COLUMNS, (face_id, subject, label, code, path, mask_path)):
            self._columns[name].append(value)
        self._meta.append(meta)

    def reject(self, path: str, reason: str) -> None:
        """Record a dataset file that is not used, with the reason shown in the summary."""
        self.unmatched.append(f"{path} ({reason})")

    def build(self, pixels: Optional[np.ndarray] = None) -> FaceIndex:
        """Return the index sorted by id.

        Raises:
            DataError: if two faces have the same id.
        """
        columns = {name: np.array(values, dtype=str) for name, values in self._columns.items()}
        duplicated = [face_id for face_id, count in Counter(self._columns["ids"]).items() if count > 1]
        if duplicated:
            raise DataError(f"{self.where or 'face index'}: duplicate face ids {sorted(duplicated)[:5]}; "
                            "each face needs a unique id.")
        unmatched = tuple(sorted(self.unmatched, key=_natural_key))
        index = FaceIndex(meta=_meta_columns(self._meta), unmatched=unmatched, stats=dict(sorted(self.stats.items())),
                          pixels=pixels, **columns)
        return index.take(np.argsort(columns["ids"], kind="stable"))


def _natural_key(text: str) -> list[Any]:
    """Return a sort key that orders numbers by value, so ``line 9`` comes before ``line 10``."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def _meta_columns(metas: Sequence[Mapping[str, Any]]) -> dict[str, np.ndarray]:
    """Turn per-face metadata dicts into typed columns, or one JSON column when they differ in layout."""
    if not metas:
        return {}
    names = set(metas[0])
    if any(set(meta) != names for meta in metas):
        return {_JSON_COLUMN: np.array([json.dumps(dict(meta), sort_keys=True) for meta in metas], dtype=str)}
    columns = {}
    for name in sorted(names):
        values = [meta[name] for meta in metas]
        kinds = {type(value) for value in values}
        if kinds == {bool}:
            columns[name] = np.array(values, dtype=bool)
        elif kinds == {int}:
            columns[name] = np.array(values, dtype=np.int64)
        elif kinds <= {int, float}:
            columns[name] = np.array(values, dtype=np.float64)
        elif kinds == {str}:
            columns[name] = np.array(values, dtype=str)
        else:
            return {_JSON_COLUMN: np.array([json.dumps(dict(meta), sort_keys=True) for meta in metas], dtype=str)}
    return columns


@dataclass(frozen=True)
class FileListing:
    """Files below a dataset root, with sizes and modification times, sorted by relative path.

    Names starting with a dot (``.DS_Store``, ``._S005``) are left out, folders included.
    """

    root: Path
    files: tuple[str, ...]
    sizes: tuple[int, ...]
    mtimes: tuple[int, ...]

    def fingerprint(self) -> str:
        """Return the sha256 of the relative paths, sizes and modification times (ns)."""
        digest = hashlib.sha256()
        for name, size, mtime in zip(self.files, self.sizes, self.mtimes):
            digest.update(f"{name}\0{size}\0{mtime}\n".encode("utf-8", "surrogateescape"))
        return digest.hexdigest()

    def under(self, folder: str) -> list[str]:
        """Return the listed files below ``folder`` (a path relative to the root)."""
        prefix = folder.rstrip("/") + "/"
        return [name for name in self.files if name.startswith(prefix)]


def list_files(root: Path, entries: Sequence[str]) -> FileListing:
    """List the files at or below each of ``entries`` (paths relative to ``root``), skipping missing entries."""
    found: list[tuple[str, int, int]] = []
    for entry in entries:
        path = root / entry
        if path.is_file():
            stat = path.stat()
            found.append((Path(entry).as_posix(), stat.st_size, stat.st_mtime_ns))
        elif path.is_dir():
            _walk(path, Path(entry).as_posix().strip("/") if entry not in ("", ".") else "", found)
    found.sort()
    return FileListing(root=root, files=tuple(name for name, _, _ in found),
                       sizes=tuple(size for _, size, _ in found), mtimes=tuple(mtime for _, _, mtime in found))


def _walk(folder: Path, relative: str, found: list[tuple[str, int, int]]) -> None:
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.name.startswith("."):
                continue
            name = f"{relative}/{entry.name}" if relative else entry.name
            if entry.is_dir():
                _walk(Path(entry.path), name, found)
            elif entry.is_file():
                stat = entry.stat()
                found.append((name, stat.st_size, stat.st_mtime_ns))


def cache_key(kind: str, reader_version: int, root: Path, listing: FileListing) -> str:
    """Return the key of an index: the reader, its version, the resolved root and the listing fingerprint."""
    settings = json.dumps({"kind": kind, "reader": reader_version, "format": INDEX_FORMAT,
                           "root": str(root.resolve())}, sort_keys=True)
    return hashlib.sha256(f"{settings}\n{listing.fingerprint()}".encode("utf-8")).hexdigest()


def default_index_dir() -> Path:
    """Return the folder cached indexes are kept in: ``index/`` below the fergen cache folder."""
    from ..assets import default_cache_dir  # imported here: fergen.assets imports this package

    return default_cache_dir() / "index"


def load_or_build(kind: str, reader_version: int, root: Path, listing: FileListing,
                  build: Callable[[FileListing], FaceIndex], cache_dir: Optional[Path] = None) -> FaceIndex:
    """Return the cached index of ``listing``, or build it with ``build`` and cache it.

    An unreadable or stale cache file is logged and rebuilt. When the cache
    folder cannot be written, the error is logged and the built index is
    returned anyway.
    """
    key = cache_key(kind, reader_version, root, listing)
    path = (cache_dir or default_index_dir()) / f"{kind}-{key[:32]}.npz"
    if path.is_file():
        try:
            index = FaceIndex.load(path, root=str(root))
        except (OSError, ValueError, KeyError) as error:
            log.warning("ignoring unreadable face index %s: %s", path, error)
        else:
            if index.fingerprint == key:
                log.debug("loaded the %s index of %d faces from %s", kind, len(index), path)
                return index
            log.warning("ignoring face index %s: it belongs to another file listing", path)
    index = build(listing)
    index = replace(index, fingerprint=key, root=str(root))
    try:
        index.save(path)
    except OSError as error:
        log.warning("could not write the face index %s: %s", path, error)
    else:
        log.debug("saved the %s index of %d faces to %s", kind, len(index), path)
    return index
