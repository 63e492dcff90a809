"""Subject-independent folds shared by fergen recipes and fergen_train protocols."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Iterable, Sequence

import numpy as np

# Domain tag mixed into the fold seed so fold permutations never reuse a sample's stream.
_FOLD_STREAM = 0xF01D


def assign_folds(subjects: Sequence[str], labels: Sequence[str], count: int, seed: int,
                 stratify: bool = True) -> dict[str, int]:
    """Assign every subject to one of ``count`` folds.

    Subjects are permuted with a generator seeded from ``seed``. With
    ``stratify``, subjects are grouped by their most frequent label and dealt
    round-robin group after group, so each fold gets a similar class mix;
    fold sizes differ by at most one subject.

    Args:
        subjects: Subject id of each face (repeats allowed).
        labels: Label of each face, aligned with ``subjects``.
        count: Number of folds (>= 2).
        seed: Permutation seed.
        stratify: Balance the subjects' dominant classes across folds.

    Returns:
        Mapping of subject id to fold number in ``[0, count)``.
    """
    if count < 2:
        raise ValueError(f"fold count must be at least 2, got {count}")
    per_subject: dict[str, Counter] = defaultdict(Counter)
    for subject, label in zip(subjects, labels):
        per_subject[subject][label] += 1
    unique = sorted(per_subject)
    if len(unique) < count:
        raise ValueError(f"cannot split {len(unique)} subjects into {count} folds; use at most "
                         f"{len(unique)} folds or select more subjects")
    rng = np.random.default_rng(np.random.SeedSequence([seed, _FOLD_STREAM]))
    order = [unique[i] for i in rng.permutation(len(unique))]
    if stratify:
        def dominant(subject: str) -> str:
            counts = per_subject[subject]
            return min(counts, key=lambda label: (-counts[label], label))
        groups: dict[str, list[str]] = defaultdict(list)
        for subject in order:
            groups[dominant(subject)].append(subject)
        order = [subject for key in sorted(groups) for subject in groups[key]]
    return {subject: position % count for position, subject in enumerate(order)}


def fold_subjects(assignment: dict[str, int], fold: int) -> list[str]:
    """Return the sorted subjects of one fold."""
    return sorted(subject for subject, number in assignment.items() if number == fold)


def check_disjoint(train: Iterable[str], test: Iterable[str]) -> None:
    """Raise ``ValueError`` if a subject is in both the train and the test set."""
    shared = sorted(set(train) & set(test))
    if shared:
        raise ValueError(f"subject leakage: {len(shared)} subject(s) in both train and test: {shared[:10]}")
