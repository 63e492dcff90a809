"""Generic face sources: a class-per-folder tree and a CSV manifest."""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..errors import DataError
from ..recipe import FaceSourceConfig, resolve_path
from ..schema import fail, spec
from . import register
from .base import IMAGE_EXTENSIONS, FaceRecord, FaceSource, list_images, require_folder


def _compile_pattern(pattern: str, key: str) -> re.Pattern:
    try:
        compiled = re.compile(pattern)
    except re.error as error:
        fail(key, pattern, "a Python regular expression", f"Fix the expression: {error}.")
    if compiled.groups < 1:
        fail(key, pattern, "a regular expression with one capture group",
             "Wrap the subject part in parentheses, e.g. '^([^_]+)_'.")
    return compiled


@register("folder")
@dataclass(frozen=True)
class FolderFacesConfig(FaceSourceConfig):
    """Faces in ``path/<label>/<file>``; the subject id comes from the file name."""

    path: str = spec("", help="root folder with one subfolder per expression label")
    subject_pattern: str = spec(r"^([^_]+)_", help="regular expression on the file stem; group 1 is the subject")
    mask_suffix: str = spec("_mask", help="mask files next to the faces are named <stem><suffix>.<ext>")
    mask_path: Optional[str] = spec(None, help="optional folder mirroring 'path' with one mask per face")

    def check(self, key: str) -> None:
        _compile_pattern(self.subject_pattern, f"{key}.subject_pattern")
        if not self.path:
            fail(f"{key}.path", self.path, "a folder path", f"Set '{key}.path' to the face folder.")

    def open(self, data_root: Path) -> "FolderFaceSource":
        mask_root = None
        if self.mask_path is not None:
            mask_root = require_folder(resolve_path(self.mask_path, data_root, "faces.mask_path"), "faces.mask_path",
                                       "a tree mirroring faces.path with one mask per face: <label>/<stem>.png")
        return FolderFaceSource(self, resolve_path(self.path, data_root, "faces.path"), mask_root)


class FolderFaceSource(FaceSource):
    def __init__(self, config: FolderFacesConfig, root: Path, mask_root: Optional[Path]):
        super().__init__(config, root)
        self.mask_root = mask_root

    def _find_mask(self, image: Path) -> Optional[str]:
        relative = image.relative_to(self.root)
        folder = image.parent if self.mask_root is None else (self.mask_root / relative).parent
        stem = image.stem + (self.config.mask_suffix if self.mask_root is None else "")
        for extension in (".png", ".bmp", ".jpg", ".tif", ".tiff", ".PNG"):
            candidate = folder / f"{stem}{extension}"
            if candidate.is_file():
                return str(candidate)
        return None

    def scan(self) -> list[FaceRecord]:
        require_folder(self.root, "faces.path", "<path>/<label>/<subject>_<anything>.png")
        pattern = _compile_pattern(self.config.subject_pattern, "faces.subject_pattern")
        records = []
        labels = set()
        for image in list_images(self.root, IMAGE_EXTENSIONS):
            relative = image.relative_to(self.root)
            if self.config.mask_suffix and image.stem.endswith(self.config.mask_suffix):
                continue
            match = pattern.search(image.stem)
            if len(relative.parts) != 2 or match is None:
                self.unmatched.append(str(relative))
                continue
            label = relative.parts[0]
            labels.add(label)
            records.append(FaceRecord(id=relative.as_posix(), subject=match.group(1), label=label,
                                      path=str(image), mask_path=self._find_mask(image), code=label,
                                      meta={"file": relative.as_posix()}))
        if not records:
            raise DataError(
                f"faces.path: no face images found in {self.root} ({len(self.unmatched)} files did not match "
                f"<label>/<file> with subject pattern {self.config.subject_pattern!r}). "
                "Put each expression in its own subfolder, or fix 'faces.subject_pattern'.")
        self.labels = tuple(sorted(labels))
        return records


@register("csv")
@dataclass(frozen=True)
class CsvFacesConfig(FaceSourceConfig):
    """Faces listed in a CSV file with columns ``path,label,subject`` and an optional ``mask``."""

    path: str = spec("", help="CSV file; relative image paths are resolved against its folder")

    def check(self, key: str) -> None:
        if not self.path:
            fail(f"{key}.path", self.path, "a CSV file path", f"Set '{key}.path' to the manifest file.")

    def open(self, data_root: Path) -> "CsvFaceSource":
        return CsvFaceSource(self, resolve_path(self.path, data_root, "faces.path"))


class CsvFaceSource(FaceSource):
    REQUIRED = ("path", "label", "subject")

    def scan(self) -> list[FaceRecord]:
        if not self.root.is_file():
            raise DataError(f"faces.path: CSV manifest {self.root} not found. Expected a file with the header "
                            "'path,label,subject[,mask]'. Check the path and --data-root.")
        base = self.root.parent
        records = []
        labels = set()
        with open(self.root, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            missing = [name for name in self.REQUIRED if name not in (reader.fieldnames or [])]
            if missing:
                raise DataError(f"{self.root}: missing column(s) {missing}; found {reader.fieldnames}. "
                                "The first line must be the header 'path,label,subject[,mask]'.")
            for line_number, row in enumerate(reader, start=2):
                if not row["path"] or not row["label"] or not row["subject"]:
                    self.unmatched.append(f"line {line_number}: empty path, label or subject")
                    continue
                path = Path(row["path"])
                path = path if path.is_absolute() else base / path
                mask = (row.get("mask") or "").strip()
                mask_path = None
                if mask:
                    mask_path = str(Path(mask) if Path(mask).is_absolute() else base / mask)
                labels.add(row["label"])
                records.append(FaceRecord(id=row["path"], subject=row["subject"], label=row["label"],
                                          path=str(path), mask_path=mask_path, code=row["label"],
                                          meta={"file": row["path"]}))
        if not records:
            raise DataError(f"{self.root}: the manifest lists no faces. Add rows 'path,label,subject'.")
        self.labels = tuple(sorted(labels))
        return records
