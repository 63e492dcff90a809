"""Subject-independent folds: the shared assignment and the recipe selection built on it."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fergen.errors import RecipeError
from fergen.faces.base import FaceRecord, FaceSource
from fergen.folds import assign_folds, check_disjoint, fold_subjects
from fergen.recipe import FaceSourceConfig, FoldSpec, SubjectSelection
from fergen.selection import plan_folds, select_faces

from .trees import faces_recipe

LABELS = ("anger", "happy", "neutral", "sadness")


class MemorySource(FaceSource):
    """Faces listed in memory: (subject, label) pairs, two faces a pair."""

    def __init__(self, faces: list[tuple[str, str]]):
        super().__init__(None, Path("."))
        self.faces = faces

    def scan(self) -> list[FaceRecord]:
        self.labels = LABELS
        return [FaceRecord(id=f"{subject}/{number}-{take}", subject=subject, label=label)
                for number, (subject, label) in enumerate(self.faces) for take in range(2)]


def config_with_fold(index: int, count: int, part: str, seed=None, stratify=True) -> FaceSourceConfig:
    fold = FoldSpec(index=index, count=count, part=part, seed=seed, stratify=stratify)
    return FaceSourceConfig(kind="memory", subjects=SubjectSelection(fold=fold))


subject_faces = st.lists(st.tuples(st.integers(0, 39), st.sampled_from(LABELS)), min_size=2, max_size=80)


@settings(max_examples=60, deadline=None)
@given(faces=subject_faces, seed=st.integers(0, 2**63 - 1), count=st.integers(2, 12), stratify=st.booleans())
def test_folds_partition_subjects(faces, seed, count, stratify):
    subjects = [f"S{number:03d}" for number, _ in faces]
    labels = [label for _, label in faces]
    unique = sorted(set(subjects))
    if len(unique) < count:
        with pytest.raises(ValueError, match=f"cannot split {len(unique)} subjects into {count} folds"):
            assign_folds(subjects, labels, count, seed, stratify)
        return

    assignment = assign_folds(subjects, labels, count, seed, stratify)
    folds = [fold_subjects(assignment, fold) for fold in range(count)]

    assert sorted(assignment) == unique
    assert sorted(subject for fold in folds for subject in fold) == unique
    sizes = [len(fold) for fold in folds]
    assert max(sizes) - min(sizes) <= 1
    for fold in range(count):
        others = [subject for other in range(count) if other != fold for subject in folds[other]]
        check_disjoint(others, folds[fold])
    assert assign_folds(subjects, labels, count, seed, stratify) == assignment


@settings(max_examples=25, deadline=None)
@given(faces=subject_faces, seed=st.integers(0, 2**32), count=st.integers(2, 6))
def test_recipe_folds_never_leak(faces, seed, count):
    source = MemorySource([(f"S{number:03d}", label) for number, label in faces])
    subjects = {f"S{number:03d}" for number, _ in faces}
    if len(subjects) < count:
        with pytest.raises(RecipeError, match="'faces.subjects.fold.count'"):
            plan_folds(config_with_fold(0, count, "test"), source, seed)
        return

    tested = []
    for fold in range(count):
        test = {r.subject for r in select_faces(config_with_fold(fold, count, "test"), source, seed).records}
        train = {r.subject for r in select_faces(config_with_fold(fold, count, "train"), source, seed).records}
        assert test.isdisjoint(train)
        assert test | train == subjects
        tested.append(test)

    assert sum(len(test) for test in tested) == len(subjects)
    assert set().union(*tested) == subjects


def test_stratified_folds_balance_classes():
    subjects = [f"S{number:02d}" for number in range(20)]
    labels = ["happy"] * 10 + ["sadness"] * 10

    assignment = assign_folds(subjects, labels, 5, seed=3, stratify=True)

    for fold in range(5):
        members = fold_subjects(assignment, fold)
        assert Counter(labels[subjects.index(subject)] for subject in members) == {"happy": 2, "sadness": 2}


@pytest.mark.parametrize("seed", range(10))
def test_stratified_folds_balance_neutral_and_expressions(seed):
    # CK+-like: one expression a subject, six expressions in turn, and a neutral face for 18 of 24 subjects.
    expressions = ("anger", "disgust", "fear", "happy", "sadness", "surprise")
    subjects, labels = [], []
    for number in range(24):
        subjects.append(f"S{number:02d}")
        labels.append(expressions[number % 6])
        if number < 18:
            subjects.append(f"S{number:02d}")
            labels.append("neutral")

    assignment = assign_folds(subjects, labels, 6, seed=seed)

    per_fold = [Counter(label for subject, label in zip(subjects, labels) if assignment[subject] == fold)
                for fold in range(6)]
    assert [len(fold_subjects(assignment, fold)) for fold in range(6)] == [4] * 6
    # The greedy placement balances approximately: 18 neutral faces land 2 to 4 a fold, not 3 each.
    assert 2 <= min(counts["neutral"] for counts in per_fold)
    assert max(counts["neutral"] for counts in per_fold) <= 4
    for expression in expressions:
        assert max(counts[expression] for counts in per_fold) == 1


def test_fold_seed_changes_permutation():
    subjects = [f"S{number:02d}" for number in range(30)]
    labels = ["happy"] * 30

    first = assign_folds(subjects, labels, 3, seed=1)
    second = assign_folds(subjects, labels, 3, seed=2)

    assert first != second
    assert assign_folds(subjects, labels, 3, seed=1) == first


def test_fold_spec_seed_overrides_recipe_seed():
    source = MemorySource([(f"S{number:02d}", LABELS[number % 4]) for number in range(24)])

    plan = plan_folds(config_with_fold(0, 4, "test", seed=11), source, seed=0)
    same = plan_folds(config_with_fold(0, 4, "test", seed=11), source, seed=99)
    default = plan_folds(config_with_fold(0, 4, "test"), source, seed=11)

    assert plan.assignment == same.assignment
    assert plan.assignment == default.assignment
    assert plan.seed == 11


def test_plan_class_counts_and_subjects():
    source = MemorySource([("S1", "happy"), ("S1", "happy"), ("S2", "anger"), ("S3", "anger"), ("S4", "neutral")])

    plan = plan_folds(config_with_fold(0, 2, "test", stratify=False), source, seed=0)

    assert plan.candidates.class_names == ("anger", "happy", "neutral")
    counts = [plan.class_counts(fold) for fold in range(2)]
    assert sum(count["happy"] for count in counts) == 4
    assert sum(count["anger"] for count in counts) == 4
    assert sum(count["neutral"] for count in counts) == 2
    assert sorted(plan.subjects(0) + plan.subjects(1)) == ["S1", "S2", "S3", "S4"]
    assert [len(plan.subjects(fold)) for fold in range(2)] == [2, 2]


def test_include_exclude_then_fold():
    source = MemorySource([(f"S{number}", "happy") for number in range(6)])
    config = FaceSourceConfig(kind="memory", subjects=SubjectSelection(
        include=("S0", "S1", "S2", "S3", "S4"), exclude=("S4",), fold=FoldSpec(index=1, count=2, part="test")))

    selection = select_faces(config, source, seed=0)
    plan = plan_folds(config, source, seed=0)

    assert sorted(plan.assignment) == ["S0", "S1", "S2", "S3"]
    assert {record.subject for record in selection.records} == set(plan.subjects(1))
    # S5 (not included) and S4 (excluded) have two faces each, and the train folds hold four more.
    assert selection.dropped_by_subject == 4 + 4


def test_include_unknown_subject():
    source = MemorySource([("S0", "happy")])
    config = FaceSourceConfig(kind="memory", subjects=SubjectSelection(include=("S0", "S9")))

    with pytest.raises(RecipeError, match=r"subject\(s\) \['S9'\] not found"):
        select_faces(config, source, seed=0)


def test_fold_short_form_in_recipe():
    recipe = faces_recipe(kind="skimage", subjects={"fold": "3 of 12"})
    mapping = faces_recipe(kind="skimage", subjects={"fold": {"index": 3, "count": 12}})

    assert recipe.faces.subjects.fold == FoldSpec(index=3, count=12, part="train")
    assert recipe.sha256 == mapping.sha256


@pytest.mark.parametrize("text, message", [
    ("3/12", r"'faces.subjects.fold': invalid value '3/12'; expected 'K of N' or a mapping"),
    ("12 of 12", r"'faces.subjects.fold.index': invalid value 12; expected an integer in \[0, 11\]"),
    ("0 of 1", r"'faces.subjects.fold.count': invalid value 1; expected a value in \[2, inf\]"),
])
def test_fold_short_form_rejects(text, message):
    with pytest.raises(RecipeError, match=message):
        faces_recipe(kind="skimage", subjects={"fold": text})
