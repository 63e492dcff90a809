"""Shared parts of the readers for published FER datasets (CK+, BU-3DFE, JAFFE, KDEF, RAF-DB, FER2013).

A reader subclasses :class:`DatasetConfig` for its recipe keys and
:class:`DatasetSource` for the scan. The base class checks that the folder
has the dataset's layout. When it doesn't, the error names each missing
part, where its files are instead, and the nearest folder that has the
layout. Then the base class lists the files and loads the index from the
cache or builds it with the reader's :meth:`DatasetSource.build_index`.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Iterable, Mapping, Optional

from ..errors import DataError
from ..recipe import FaceSourceConfig, resolve_path
from ..schema import fail, spec
from .base import FaceSource, nearest_path
from .index import FaceIndex, FileListing, IndexBuilder, list_files, load_or_build
from .layout import (LayoutProblem, RequiredPart, describe_part, faces_path_hint, part_present, relative_to,
                     search_parts, show_path)
from .labels import labels_of

log = logging.getLogger(__name__)

# Unmatched files named in the warning logged after a scan. The summary lists all of them.
_UNMATCHED_LOGGED = 5


@dataclass(frozen=True)
class DatasetConfig(FaceSourceConfig):
    """Keys shared by the dataset readers."""

    path: str = spec("", help="the dataset folder as downloaded, relative to the data root")

    def check(self, key: str) -> None:
        if not self.path:
            fail(f"{key}.path", self.path, "a folder path",
                 f"Set '{key}.path' to the dataset folder; see docs/datasets.md for each layout.")

    def dataset_path(self, data_root: Path) -> Path:
        """Return ``path`` resolved against ``data_root``."""
        return resolve_path(self.path, data_root, "faces.path")


class DatasetSource(FaceSource):
    """A face source reading a dataset in the layout it ships in, with a cached index.

    Subclasses set the class attributes and implement :meth:`looks_like` and
    :meth:`build_index`. ``data_root`` is the folder that relative recipe paths
    resolve against. Layout errors show paths relative to it, and ``None``
    shows absolute paths.
    """

    #: Dataset name used in messages (``CK+``).
    name: ClassVar[str] = ""
    #: Recipe kind, also used in the cache file name.
    kind: ClassVar[str] = ""
    #: Bumped when the reader's output changes, so cached indexes of the old reader are ignored.
    reader_version: ClassVar[int] = 1
    #: Expected layout, one path below the dataset folder a line, shown in error messages.
    layout: ClassVar[tuple[str, ...]] = ()
    #: The dataset's label codes mapped to canonical labels.
    codes: ClassVar[Mapping[str, str]] = {}
    #: Parts of the layout that the reader needs, each named in the error when it is missing.
    parts: ClassVar[tuple[RequiredPart, ...]] = ()

    def __init__(self, config: DatasetConfig, root: Path, data_root: Optional[Path] = None):
        super().__init__(config, root)
        self.data_root = data_root
        self.labels = labels_of(self.codes)

    def looks_like(self, folder: Path) -> bool:
        """Return True if ``folder`` has the dataset's top-level folders or files (a quick first test)."""
        raise NotImplementedError

    def required_parts(self) -> tuple[RequiredPart, ...]:
        """Return the parts of the layout that the reader needs (default: :attr:`parts`)."""
        return self.parts

    def has_layout(self, folder: Path) -> bool:
        """Return True if every required part is in place below ``folder``."""
        return all(part_present(folder, part) for part in self.required_parts())

    def inputs(self) -> list[str]:
        """Return the files and folders below the root that the index is built from."""
        return ["."]

    def build_index(self, listing: FileListing) -> FaceIndex:
        """Parse the listed files into an index of every face in the dataset."""
        raise NotImplementedError

    def full_index(self) -> FaceIndex:
        self.check_layout()
        listing = list_files(self.root, self.inputs())
        index = load_or_build(self.kind, self.reader_version, self.root, listing, self.build_index)
        if len(index) == 0:
            examples = "; ".join(index.unmatched[:3]) or "none"
            raise DataError(
                f"faces.path: no {self.name} face found in {self.root}: {len(index.unmatched)} files did not "
                f"match the naming scheme (first: {examples}). Expected layout:\n{self.layout_text()}")
        if index.unmatched:
            log.warning("%s: %d files in %s do not match the naming scheme and are not used, first: %s",
                        self.name, len(index.unmatched), self.root, "; ".join(index.unmatched[:_UNMATCHED_LOGGED]))
        return index

    def layout_text(self, root: Optional[Path] = None) -> str:
        """Return the expected layout below ``root`` (default: the configured folder), one path a line."""
        base = self.root if root is None else root
        return "\n".join(f"    {base}/{line}" for line in self.layout)

    def check_layout(self) -> None:
        """Raise a :class:`DataError` naming what is wrong with the layout and how to fix it.

        The message names the configured folder, each missing part with where
        its files were found instead, the expected layout, and the nearest
        folder that has the layout.

        Raises:
            DataError: if the configured folder does not have the dataset's layout.
        """
        if self.root.is_dir() and self.has_layout(self.root):
            return
        match = self.nearest_match()
        problems: list[LayoutProblem] = []
        if not self.root.exists():
            headline = f"folder {self.root} not found."
        elif not self.root.is_dir():
            headline = f"{self.root} is a file, not the {self.name} folder."
        else:
            problems = self.layout_problems(match)
            headline = f"folder {self.root} does not have the {self.name} layout" + (":" if problems else ".")

        lines = [f"faces.path: {headline}"]
        lines += [f"  - {problem.text}" for problem in problems]
        lines += ["Expected layout:", self.layout_text()]
        if match is not None:
            lines.append(faces_path_hint(self.faces_path_target(match), self.data_root, self.config.path))
        elif not any(problem.located for problem in problems):
            lines.append("Check 'faces.path' and --data-root (or FERGEN_DATA_ROOT).")
        raise DataError("\n".join(lines))

    def layout_problems(self, match: Optional[Path]) -> list[LayoutProblem]:
        """Return a problem for each required part missing from the configured folder.

        A part's files found inside ``match`` (the nearest folder with the layout)
        get no fix of their own, because the hint that names ``match`` fixes them.
        """
        missing = [part for part in self.required_parts() if not part_present(self.root, part)]

        def covered(folder: Path) -> bool:
            return match is not None and relative_to(folder, match) is not None

        problems = []
        for part, search in zip(missing, search_parts(self.root, missing)):
            if search.found_folder(part) in part.places:
                continue  # the presence check ran out of folders to list before it reached this file
            text = describe_part(part, self.root, search, self.show, covered)
            problems.append(LayoutProblem(text, located=search.nested is not None or search.loose is not None))
        return problems

    def show(self, path: Path) -> str:
        """Return ``path`` as messages show it: relative to the data root when inside it, else absolute."""
        return show_path(path, self.data_root)

    def faces_path_target(self, match: Path) -> Path:
        """Return the path that ``faces.path`` should name to read ``match`` (default: ``match`` itself)."""
        return match

    def nearest_match(self) -> Optional[Path]:
        """Return a folder near the configured one that has the layout: one or two levels down or up."""
        for candidate in self._candidates():
            if candidate != self.root and self.looks_like(candidate) and self.has_layout(candidate):
                return candidate
        return None

    def _candidates(self) -> Iterable[Path]:
        starts = [self.root]
        near = nearest_path(self.root)
        if near is not None:
            starts.append(near)
        for start in starts:
            yield start
            children = _subfolders(start)
            yield from children
            for child in children:
                yield from _subfolders(child)
        yield self.root.parent
        yield self.root.parent.parent


# Folders with more entries than this are not searched for a nearest match (a photo folder, a home folder).
_MAX_SUBFOLDERS = 500


def _subfolders(folder: Path) -> list[Path]:
    try:
        entries = sorted(entry for entry in folder.iterdir() if not entry.name.startswith("."))
    except OSError:
        return []
    folders = [entry for entry in entries if entry.is_dir()]
    return folders if len(folders) <= _MAX_SUBFOLDERS else []


@dataclass(frozen=True)
class NamingScheme:
    """Naming scheme of a dataset's face images.

    Attributes:
        pattern: Regular expression that the whole relative path of a face must match.
        example: A valid relative path, shown for files that don't match.
        extensions: File types the scheme applies to (lower case). Other files are counted, not listed.
        companions: Relative paths of dataset files that are not faces (3D textures...), ignored.
    """

    pattern: re.Pattern
    example: str
    extensions: tuple[str, ...]
    companions: Optional[re.Pattern] = None

    def match(self, files: Iterable[str], builder: IndexBuilder) -> list[re.Match]:
        """Return the match of each face file; reject image files that don't match the scheme."""
        matches = []
        for name in files:
            if not name.lower().endswith(self.extensions):
                builder.stats["other_files"] += 1
                continue
            if self.companions is not None and self.companions.fullmatch(name):
                builder.stats["companion_files"] += 1
                continue
            match = self.pattern.fullmatch(name)
            if match is None:
                builder.reject(name, f"name does not match {self.example}")
                continue
            matches.append(match)
        return matches


def has_matching_entry(folder: Path, pattern: re.Pattern, folders: bool = False, limit: int = 5000) -> bool:
    """Return True if a file (or with ``folders``, a folder) directly in ``folder`` matches ``pattern``.

    Only the first ``limit`` entries are read, so probing a large unrelated folder stays quick.
    """
    try:
        for count, entry in enumerate(folder.iterdir()):
            if count >= limit:
                return False
            if pattern.fullmatch(entry.name) and (entry.is_dir() if folders else entry.is_file()):
                return True
    except OSError:
        return False
    return False
