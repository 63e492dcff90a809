"""Layout checks of a dataset folder: which required part is missing and where its files are instead.

A reader lists its :class:`RequiredPart` objects. :func:`part_present`
checks one part in place. When it fails, :func:`search_parts` walks the
dataset folder breadth first for the part's files, and :func:`describe_part`
turns the result into one sentence-level problem for the error message.
"""

from __future__ import annotations

import os
import re
import shlex
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

# Bounds of the searches, so that a check of a wrong folder (a home folder, a photo library) stays quick.
# Folders with more subfolders than this are not descended into.
_MAX_SUBFOLDERS = 1000
# Folders listed by one presence check or one search.
_MAX_FOLDERS_LISTED = 5000
# Folder levels that the search descends below the deepest place where the layout puts a part's files.
SEARCH_EXTRA_LEVELS = 2


@dataclass(frozen=True)
class RequiredPart:
    """A folder of a dataset's layout that the reader needs, recognised by the files in it.

    Attributes:
        folder: Expected place relative to the dataset folder, ``""`` for the dataset folder itself.
        file_name: Regular expression that the base name of each of its files matches in full.
        nest: Returns the path below ``folder`` at which a matched file belongs
            (``S005/001/S005_001_00000011.png`` for a CK+ frame).
        example: A file name that ``file_name`` matches, shown in messages.
        content: Plural noun phrase for the part's files in messages (``emotion files``).
        fix: What to do when its files are nowhere below the dataset folder. ``{folder}`` is
            replaced by the expected place as shown in the message.
        also: Other accepted places (RAF-DB's label file may sit next to ``Image/``).
    """

    folder: str
    file_name: re.Pattern
    nest: Callable[[re.Match], str]
    example: str
    content: str
    fix: str = ""
    also: tuple[str, ...] = ()

    @property
    def places(self) -> tuple[str, ...]:
        return (self.folder, *self.also)

    @property
    def depth(self) -> int:
        """Number of path components of a file below ``folder`` (3 for a CK+ frame)."""
        return len(self.expected(self.example).split("/"))

    def expected(self, name: str) -> str:
        """Return the path below ``folder`` at which the file ``name`` belongs.

        Raises:
            ValueError: if ``name`` does not match ``file_name``.
        """
        match = self.file_name.fullmatch(name)
        if match is None:
            raise ValueError(f"{name!r} does not match {self.file_name.pattern!r}")
        return self.nest(match)

    def same_path(self, first: str, second: str) -> bool:
        """Return True if two relative paths are equal, ignoring case when ``file_name`` does."""
        if self.file_name.flags & re.IGNORECASE:
            return first.casefold() == second.casefold()
        return first == second


@dataclass(frozen=True)
class PartSearch:
    """Files of a missing part that :func:`search_parts` found, as paths relative to the dataset folder.

    Attributes:
        nested: A file nested as the layout expects, but below another folder
            (``Emotion_labels/Emotion/S005/001/S005_001_00000011_emotion.txt``).
        loose: A file whose folders do not match its name (``cohn-kanade-images/S005_001_00000011.png``),
            set only when no nested file was found.
    """

    nested: Optional[str] = None
    loose: Optional[str] = None

    def found_folder(self, part: RequiredPart) -> Optional[str]:
        """Return the folder that contains the part's nested file, relative to the dataset folder (``""`` for it)."""
        if self.nested is None:
            return None
        components = self.nested.split("/")
        return "/".join(components[:len(components) - part.depth])


@dataclass(frozen=True)
class LayoutProblem:
    """One sentence-level problem of a dataset folder's layout.

    Attributes:
        text: The problem, with where the part was found and the fix when known.
        located: True when the part's files were found somewhere, so the message needs no generic hint.
    """

    text: str
    located: bool = False


def part_present(root: Path, part: RequiredPart) -> bool:
    """Return True if one of the part's places below ``root`` contains a file at the place its name gives.

    The check stops at the first such file and lists at most ``_MAX_FOLDERS_LISTED`` folders,
    so a part whose files all come after that many folders counts as missing.
    """
    budget = [_MAX_FOLDERS_LISTED]
    return any(_has_nested_file(root / place, "", part, part.depth, budget) for place in part.places)


def _has_nested_file(folder: Path, relative: str, part: RequiredPart, levels: int, budget: list[int]) -> bool:
    if budget[0] <= 0:
        return False
    budget[0] -= 1
    files, subfolders = _list(folder)
    if levels == 1:
        for name in files:
            if part.file_name.fullmatch(name) and part.same_path(f"{relative}{name}", part.expected(name)):
                return True
        return False
    if len(subfolders) > _MAX_SUBFOLDERS:
        return False
    return any(_has_nested_file(folder / name, f"{relative}{name}/", part, levels - 1, budget)
               for name in subfolders)


def search_parts(root: Path, parts: Sequence[RequiredPart]) -> list[PartSearch]:
    """Search below ``root`` for the files of each part, nearest folders first.

    Folders are listed breadth first, down to ``SEARCH_EXTRA_LEVELS`` levels
    below the deepest folder in which the layout puts a part's files. The walk
    stops when every part has a nested file. Returns one :class:`PartSearch`
    per part, in order.
    """
    if not parts:
        return []
    nested: list[Optional[str]] = [None] * len(parts)
    loose: list[Optional[str]] = [None] * len(parts)
    max_depth = max(len(_components(part.folder)) + part.depth for part in parts) - 1 + SEARCH_EXTRA_LEVELS
    queue: deque[tuple[Path, str, int]] = deque([(root, "", 0)])
    listed = 0
    while queue and listed < _MAX_FOLDERS_LISTED and any(path is None for path in nested):
        folder, relative, depth = queue.popleft()
        listed += 1
        files, subfolders = _list(folder)
        for name in files:
            for number, part in enumerate(parts):
                if nested[number] is None and part.file_name.fullmatch(name):
                    path = f"{relative}{name}"
                    components = path.split("/")
                    tail = "/".join(components[-part.depth:])
                    if len(components) >= part.depth and part.same_path(tail, part.expected(name)):
                        nested[number] = path
                    elif loose[number] is None:
                        loose[number] = path
        if depth < max_depth and len(subfolders) <= _MAX_SUBFOLDERS:
            queue.extend((folder / name, f"{relative}{name}/", depth + 1) for name in subfolders)
    return [PartSearch(nested=found, loose=None if found is not None else stray)
            for found, stray in zip(nested, loose)]


def describe_part(part: RequiredPart, root: Path, search: PartSearch, show: Callable[[Path], str],
                  covered: Callable[[Path], bool]) -> str:
    """Return the problem of a part that :func:`part_present` did not find, with where its files are and the fix.

    Args:
        show: Returns a path as the message shows it (relative to the data root when inside it).
        covered: Returns True for a folder inside the nearest match. The message then leaves the
            fix to the hint that names the match.
    """
    expected = root / part.folder
    exists = expected.is_dir()
    example = f"{show(expected)}/{part.expected(part.example)}"
    if exists:
        status = f"{show(expected)} contains no {part.content} such as {example}."
    else:
        status = f"{show(expected)} not found."

    found = search.found_folder(part)
    if found is not None:
        return f"{status} {_describe_found(part, root, found, search, exists, show, covered)}"

    if search.loose is not None:
        name = search.loose.rsplit("/", 1)[-1]
        belongs = root / part.folder / part.expected(name)
        loose = (f"{show(root / search.loose)} is not nested as expected. It belongs at {show(belongs)}. "
                 "Move it there, and each file like it to the place its name gives.")
        return loose if exists else f"{status} {loose}"

    fix = f" {part.fix.format(folder=show(expected))}" if part.fix else ""
    if not part.folder:
        return f"{status}{fix}"
    if exists:
        return f"{status} A search below {show(root)} found none elsewhere.{fix}"
    return f"{status} A search below {show(root)} found no {part.content} ({part.example}) either.{fix}"


def _describe_found(part: RequiredPart, root: Path, found: str, search: PartSearch, exists: bool,
                    show: Callable[[Path], str], covered: Callable[[Path], bool]) -> str:
    expected = show(root / part.folder)
    if not found:
        sentence = f"Found the {part.content} directly in {show(root)}, such as {show(root / search.nested)}."
        return sentence if covered(root) else f"{sentence} Move them into {expected}."
    sentence = f"Found the {part.content} in {show(root / found)}."
    if covered(root / found):
        return sentence
    if exists:
        return f"{sentence} Move the contents of {show(root / found)} into {expected}."
    return f"{sentence} Move that folder to {expected}."


def relative_to(path: Path, base: Path) -> Optional[Path]:
    """Return ``path`` relative to ``base``, or ``None`` if it lies outside ``base``.

    Both are compared as absolute paths, first as given and then with symbolic links resolved.
    """
    for first, second in ((Path(os.path.abspath(path)), Path(os.path.abspath(base))),
                          (path.resolve(), base.resolve())):
        if first == second or second in first.parents:
            return first.relative_to(second)
    return None


def show_path(path: Path, data_root: Optional[Path]) -> str:
    """Return ``path`` relative to ``data_root`` when it lies below it, else as an absolute path."""
    relative = relative_to(path, data_root) if data_root is not None else None
    if relative is None or relative == Path("."):
        return os.path.abspath(path)
    return relative.as_posix()


def faces_path_hint(target: Path, data_root: Optional[Path], faces_path: str) -> str:
    """Return the sentences that point a recipe at ``target``, the nearest match of its dataset.

    Inside the data root the hint gives the ``faces.path`` to write, relative to the
    data root, because recipes keep relative paths. Outside it the hint gives the
    ``--data-root`` that makes the recipe's ``faces.path`` reach ``target``, and
    a new ``faces.path`` only when none does.
    """
    if data_root is None:
        return f"The nearest match is {os.path.abspath(target)}, so set 'faces.path' to it."
    relative = relative_to(target, data_root)
    if relative is not None:
        relative_path = relative.as_posix()
        return f"The nearest match is {relative_path} in the data root, so set 'faces.path: {relative_path}'."

    absolute = Path(os.path.abspath(target))
    outside = f"The nearest match is {absolute}, outside the data root {os.path.abspath(data_root)}."
    recipe_path = Path(faces_path)
    components = recipe_path.parts
    if not recipe_path.is_absolute() and ".." not in components and absolute.parts[-len(components):] == components:
        new_root = absolute.parents[len(components) - 1]
        return (f"{outside} Run with --data-root {_quote(new_root)} (or set FERGEN_DATA_ROOT={_quote(new_root)}), "
                f"and the recipe's 'faces.path: {faces_path}' finds it.")
    new_root = absolute.parent
    return (f"{outside} Run with --data-root {_quote(new_root)} (or set FERGEN_DATA_ROOT={_quote(new_root)}) "
            f"and set 'faces.path: {absolute.name}'.")


def _quote(path: Path) -> str:
    return shlex.quote(str(path))


def _components(path: str) -> list[str]:
    return [component for component in path.split("/") if component]


def _list(folder: Path) -> tuple[list[str], list[str]]:
    """Return the sorted file and subfolder names in ``folder``, without names starting with a dot."""
    files, subfolders = [], []
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.name.startswith("."):
                    continue
                try:
                    if entry.is_dir():
                        subfolders.append(entry.name)
                    elif entry.is_file():
                        files.append(entry.name)
                except OSError:
                    continue
    except OSError:
        return [], []
    return sorted(files), sorted(subfolders)
