"""The canonical expression labels that every dataset reader maps its codes to.

The set is the six basic emotions, contempt and neutral. A reader records the
dataset's own code (``5`` in CK+, ``HA`` in BU-3DFE) next to the canonical
label, so the original annotation stays visible in every sample's metadata.
"""

from __future__ import annotations

from typing import Iterable, Mapping

CANONICAL_LABELS = ("neutral", "anger", "contempt", "disgust", "fear", "happy", "sadness", "surprise")


def canonical_order(labels: Iterable[str]) -> tuple[str, ...]:
    """Return ``labels`` in canonical order, followed by any non-canonical labels sorted by name."""
    unique = set(labels)
    known = [label for label in CANONICAL_LABELS if label in unique]
    return tuple(known + sorted(unique - set(CANONICAL_LABELS)))


def labels_of(codes: Mapping[str, str]) -> tuple[str, ...]:
    """Return the canonical labels a dataset's code table can produce, in canonical order."""
    unknown = sorted(set(codes.values()) - set(CANONICAL_LABELS))
    if unknown:
        raise ValueError(f"code table maps to non-canonical labels {unknown}")
    return canonical_order(codes.values())
