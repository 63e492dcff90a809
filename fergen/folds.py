"""Subject-independent folds shared by fergen recipes and fergen_train protocols."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Iterable, Sequence

import numpy as np

# Domain tag mixed into the fold seed so fold permutations never reuse a sample's stream.
_FOLD_STREAM = 0xF01D


def assign_folds(subjects: Sequence[str], labels: Sequence[str], count: int, seed: int,
                 stratify: bool = True) -> dict[str, int]:
    """Assign every subject to one of ``count`` folds whose sizes differ by at most one subject.

    Subjects are permuted with a generator seeded from ``seed``. Without
    ``stratify`` they are dealt round-robin in that order. With ``stratify``
    they are placed one by one, subjects of the rarest classes first, each
    into the fold that has the fewest faces of its classes (relative to each
    class's total) among the folds that still have room. A subject with faces
    of several classes (a CK+ subject with a neutral face and two
    expressions) counts for each of them. This greedy placement balances the
    classes approximately, not exactly.

    Args:
        subjects: Subject id of each face (repeats allowed).
        labels: Label of each face, aligned with ``subjects``.
        count: Number of folds (>= 2).
        seed: Permutation seed.
        stratify: Balance the classes across folds.

    Returns:
        Mapping of subject id to fold number in ``[0, count)``.

    Raises:
        ValueError: if ``count`` is below 2 or above the number of subjects.
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
    if not stratify:
        return {subject: position % count for position, subject in enumerate(order)}
    return _place_greedily(order, per_subject, count, rng.permutation(count))


def _place_greedily(order: list[str], per_subject: dict[str, Counter], count: int,
                    tie_rank: np.ndarray) -> dict[str, int]:
    """Place subjects into folds, balancing each class's share; ``tie_rank`` orders folds of equal cost."""
    totals: Counter = Counter()
    for counts in per_subject.values():
        totals.update(counts)
    names = sorted(totals)
    column = {name: index for index, name in enumerate(names)}
    # A face of a rare class weighs more, so every class is spread in proportion to its size.
    weights = np.array([1.0 / totals[name] for name in names])

    def rarest(subject: str) -> tuple[int, str]:
        return min((totals[label], label) for label in per_subject[subject])

    # Stable sort: within one rarest class the seeded permutation decides the order.
    order = sorted(order, key=rarest)
    # Every fold ends with `smaller` or `smaller + 1` subjects, and `larger_folds` of them with the latter.
    smaller, larger_folds = divmod(len(order), count)
    fold_counts = np.zeros((count, len(names)))
    fold_sizes = np.zeros(count, np.int64)
    assignment = {}
    for subject in order:
        profile = np.zeros(len(names))
        for label, faces in per_subject[subject].items():
            profile[column[label]] = faces
        larger_left = int((fold_sizes == smaller + 1).sum()) < larger_folds
        candidates = np.flatnonzero((fold_sizes < smaller) | ((fold_sizes == smaller) & larger_left))
        cost = np.round(fold_counts[candidates] @ (profile * weights), 9)
        fold = int(candidates[np.lexsort((tie_rank[candidates], fold_sizes[candidates], cost))[0]])
        assignment[subject] = fold
        fold_counts[fold] += profile
        fold_sizes[fold] += 1
    return assignment


def fold_subjects(assignment: dict[str, int], fold: int) -> list[str]:
    """Return the sorted subjects of one fold."""
    return sorted(subject for subject, number in assignment.items() if number == fold)


def check_disjoint(train: Iterable[str], test: Iterable[str]) -> None:
    """Raise ``ValueError`` if a subject is in both the train and the test set."""
    shared = sorted(set(train) & set(test))
    if shared:
        raise ValueError(f"subject leakage: {len(shared)} subject(s) in both train and test: {shared[:10]}")
