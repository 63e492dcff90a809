"""Select faces by subject and map source labels to output classes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from .errors import RecipeError
from .faces.base import FaceRecord, FaceSource
from .folds import assign_folds
from .recipe import ClassSpec, FaceSourceConfig


@dataclass(frozen=True)
class Selection:
    """The faces a recipe uses, with output class ids."""

    records: list[FaceRecord]
    label_ids: list[int]
    class_names: tuple[str, ...]
    dropped_by_class: int
    dropped_by_subject: int


def class_mapping(config: FaceSourceConfig, source: FaceSource,
                  records: list[FaceRecord]) -> tuple[tuple[str, ...], dict[str, int]]:
    """Return the output class names and the map from source label to class id."""
    specs: Optional[tuple[ClassSpec, ...]] = config.class_specs()
    present = {record.label for record in records}
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


def select_faces(config: FaceSourceConfig, source: FaceSource, seed: int) -> Selection:
    """Apply ``faces.classes``, ``faces.subjects`` and ``faces.limit`` to the source's records."""
    records = source.records()
    class_names, mapping = class_mapping(config, source, records)
    kept = [record for record in records if record.label in mapping]
    dropped_by_class = len(records) - len(kept)

    subjects = config.subjects
    selected = kept
    if subjects.include:
        wanted = set(subjects.include)
        missing = sorted(wanted - {record.subject for record in kept})
        if missing:
            raise RecipeError(f"recipe key 'faces.subjects.include': subject(s) {missing[:10]} not found in "
                              "the source. Check the ids with 'fergen folds RECIPE'.")
        selected = [record for record in selected if record.subject in wanted]
    if subjects.exclude:
        unwanted = set(subjects.exclude)
        selected = [record for record in selected if record.subject not in unwanted]
    if subjects.fold is not None:
        fold = subjects.fold
        if not source.has_subjects:
            raise RecipeError("recipe key 'faces.subjects.fold': this source has no subject ids, so folds "
                              "cannot be subject-independent. Remove 'fold' and split by image instead.")
        try:
            assignment = assign_folds([r.subject for r in selected], [r.label for r in selected], fold.count,
                                      seed if fold.seed is None else fold.seed, fold.stratify)
        except ValueError as error:
            raise RecipeError(f"recipe key 'faces.subjects.fold': {error}.") from None
        in_test = fold.part == "test"
        selected = [record for record in selected if (assignment[record.subject] == fold.index) == in_test]
    dropped_by_subject = len(kept) - len(selected)
    if config.limit is not None:
        selected = selected[:config.limit]
    if not selected:
        raise RecipeError("recipe keys 'faces.classes'/'faces.subjects': no face is left after selection. "
                          "Widen the class or subject selection.")
    return Selection(records=selected, label_ids=[mapping[record.label] for record in selected],
                     class_names=class_names, dropped_by_class=dropped_by_class,
                     dropped_by_subject=dropped_by_subject)
