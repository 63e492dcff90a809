"""Select faces by class and subject, and split them into subject-independent folds.

:func:`select_faces` is what the renderer uses. :func:`plan_folds` is the one
place where folds are computed: ``select_faces``, ``fergen folds`` and the
protocols in ``fergen_train`` all call it, so a fold means the same subjects
everywhere. Selection works on the source's index arrays and builds
:class:`FaceRecord` objects only for the faces it returns.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Optional

import numpy as np

from .errors import RecipeError
from .faces.base import FaceRecord, FaceSource
from .faces.index import FaceIndex
from .folds import assign_folds
from .recipe import ClassSpec, FaceSourceConfig, FoldSpec, Recipe, resolve_data_root

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Selection:
    """The faces a recipe uses, with output class ids."""

    records: list[FaceRecord]
    label_ids: list[int]
    class_names: tuple[str, ...]
    dropped_by_class: int
    dropped_by_subject: int


@dataclass(frozen=True)
class Candidates:
    """Faces after the class and subject include/exclude selection, before the fold.

    Attributes:
        index: The faces, as arrays.
        class_ids: int64 (N,): output class id of each face.
        class_names: Output class names, indexed by class id.
        dropped_by_class: Faces whose label maps to no output class.
        dropped_by_subject: Faces removed by ``subjects.include`` or ``subjects.exclude``.
    """

    index: FaceIndex
    class_ids: np.ndarray
    class_names: tuple[str, ...]
    dropped_by_class: int
    dropped_by_subject: int


@dataclass(frozen=True)
class FoldPlan:
    """Every candidate face assigned to one of ``count`` subject-independent folds.

    Attributes:
        candidates: The faces that were split.
        folds: int64 (N,): fold number of each candidate face.
        assignment: Subject id (image id when ``by_image``) to fold number.
        count: Number of folds.
        seed: Seed of the subject permutation.
        stratify: Whether the subjects' classes were balanced across folds.
        by_image: True when the source has no subject ids, so each image is its own subject.
    """

    candidates: Candidates
    folds: np.ndarray
    assignment: dict[str, int]
    count: int
    seed: int
    stratify: bool
    by_image: bool

    def test_mask(self, fold: int) -> np.ndarray:
        """Return a boolean mask over the candidates: True for the faces of fold ``fold``."""
        return self.folds == fold

    def subjects(self, fold: int) -> list[str]:
        """Return the sorted subjects (image ids when ``by_image``) of fold ``fold``."""
        return sorted(subject for subject, number in self.assignment.items() if number == fold)

    def class_counts(self, fold: int) -> dict[str, int]:
        """Return the number of faces of each output class in fold ``fold``."""
        counts = np.bincount(self.candidates.class_ids[self.test_mask(fold)],
                             minlength=len(self.candidates.class_names))
        return {name: int(count) for name, count in zip(self.candidates.class_names, counts)}


def class_mapping(config: FaceSourceConfig, source: FaceSource,
                  present: set[str]) -> tuple[tuple[str, ...], dict[str, int]]:
    """Return the output class names and the map from source label to class id.

    Args:
        present: Labels that occur among the source's faces.
    """
    specs: Optional[tuple[ClassSpec, ...]] = config.class_specs()
    if specs is None:
        ordered = [label for label in source.labels if label in present]
        ordered += sorted(present - set(ordered))
        return tuple(ordered), {label: index for index, label in enumerate(ordered)}
    mapping: dict[str, int] = {}
    known = set(source.labels) | present
    for index, class_spec in enumerate(specs):
        for label in class_spec.sources():
            if label in mapping:
                raise RecipeError(f"recipe key 'faces.classes': label {label!r} is used by two classes. "
                                  "Map each source label to one class.")
            if known and label not in known:
                raise RecipeError(
                    f"recipe key 'faces.classes[{index}]': label {label!r} is not a label of this source; "
                    f"known labels: {', '.join(sorted(known))}.")
            mapping[label] = index
    return tuple(class_spec.name for class_spec in specs), mapping


def select_candidates(config: FaceSourceConfig, source: FaceSource, seed: int) -> Candidates:
    """Apply the source's seeded draws, ``faces.classes`` and ``faces.subjects`` include/exclude lists.

    Raises:
        RecipeError: if a class names an unknown label or an included subject is not in the source.
    """
    index = source.draw(seed)
    class_names, mapping = class_mapping(config, source, set(index.labels.tolist()))
    labels, inverse = np.unique(index.labels, return_inverse=True)
    class_ids = np.array([mapping.get(label, -1) for label in labels.tolist()], np.int64)[inverse.reshape(-1)]
    keep = class_ids >= 0
    dropped_by_class = int(len(index) - keep.sum())

    subjects = config.subjects
    by_subject = keep.copy()
    if subjects.include:
        missing = sorted(set(subjects.include) - set(index.subjects[keep].tolist()))
        if missing:
            raise RecipeError(f"recipe key 'faces.subjects.include': subject(s) {missing[:10]} not found in "
                              "the source. Check the ids with 'fergen folds RECIPE'.")
        by_subject &= np.isin(index.subjects, list(subjects.include))
    if subjects.exclude:
        by_subject &= ~np.isin(index.subjects, list(subjects.exclude))
    positions = np.flatnonzero(by_subject)
    return Candidates(index=index.take(positions), class_ids=class_ids[positions], class_names=class_names,
                      dropped_by_class=dropped_by_class, dropped_by_subject=int(keep.sum() - len(positions)))


def plan_folds(config: FaceSourceConfig, source: FaceSource, seed: int,
               fold: Optional[FoldSpec] = None) -> FoldPlan:
    """Split the recipe's candidate faces into subject-independent folds.

    Args:
        config: The recipe's ``faces`` section.
        source: The opened face source.
        seed: The recipe seed, which ``fold.seed`` overrides for the permutation.
        fold: Fold settings (default: ``config.subjects.fold``).

    Raises:
        RecipeError: if the recipe has no fold settings, or there are fewer subjects than folds.
    """
    fold = fold if fold is not None else config.subjects.fold
    if fold is None:
        raise RecipeError("recipe key 'faces.subjects.fold': missing. Add 'fold: {index: 0, count: 10}' "
                          "under 'faces.subjects' to split the subjects into 10 folds.")
    candidates = select_candidates(config, source, seed)
    by_image = not source.has_subjects
    if by_image:
        log.warning("%s has no subject ids: folds split by image, so one person may be in two folds",
                    type(source).__name__)
    groups = candidates.index.ids if by_image else candidates.index.subjects
    fold_seed = seed if fold.seed is None else fold.seed
    class_of_face = np.asarray(candidates.class_names, dtype=str)[candidates.class_ids]
    try:
        assignment = assign_folds(groups.tolist(), class_of_face.tolist(), fold.count, fold_seed, fold.stratify)
    except ValueError as error:
        raise RecipeError(f"recipe key 'faces.subjects.fold.count': {error}.") from None
    folds = np.array([assignment[group] for group in groups.tolist()], np.int64)
    return FoldPlan(candidates=candidates, folds=folds, assignment=assignment, count=fold.count, seed=fold_seed,
                    stratify=fold.stratify, by_image=by_image)


def plan_recipe_folds(recipe: Recipe, data_root: str | os.PathLike | None = None) -> FoldPlan:
    """Open the recipe's face source and return its :func:`plan_folds` (for ``fergen_train`` protocols)."""
    source = recipe.faces.open(resolve_data_root(data_root))
    return plan_folds(recipe.faces, source, recipe.seed)


def select_faces(config: FaceSourceConfig, source: FaceSource, seed: int) -> Selection:
    """Apply ``faces.classes``, ``faces.subjects`` and ``faces.limit`` to the source's faces.

    Raises:
        RecipeError: if a key names unknown labels or subjects, or no face is left.
    """
    fold = config.subjects.fold
    if fold is None:
        candidates = select_candidates(config, source, seed)
        positions = np.arange(len(candidates.index))
        dropped_by_fold = 0
    else:
        plan = plan_folds(config, source, seed, fold)
        candidates = plan.candidates
        in_fold = plan.test_mask(fold.index)
        positions = np.flatnonzero(in_fold if fold.part == "test" else ~in_fold)
        dropped_by_fold = len(candidates.index) - len(positions)
    if config.limit is not None:
        positions = positions[:config.limit]
    if len(positions) == 0:
        raise RecipeError("recipe keys 'faces.classes'/'faces.subjects': no face is left after selection. "
                          "Widen the class or subject selection.")
    return Selection(records=candidates.index.records(positions),
                     label_ids=candidates.class_ids[positions].tolist(), class_names=candidates.class_names,
                     dropped_by_class=candidates.dropped_by_class,
                     dropped_by_subject=candidates.dropped_by_subject + dropped_by_fold)
