"""Classification metrics computed with numpy: accuracy, precision, recall, F1, confusion matrix."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


def confusion_matrix(labels: Sequence[int] | np.ndarray, predictions: Sequence[int] | np.ndarray, num_classes: int) -> np.ndarray:
    """Count (true class, predicted class) pairs.

    Returns:
        int64 (num_classes, num_classes); row i, column j counts samples of
        class i predicted as class j.

    Raises:
        ValueError: if the arrays differ in length or hold a class outside [0, num_classes).
    """
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    predictions = np.asarray(predictions, dtype=np.int64).reshape(-1)
    if labels.shape != predictions.shape:
        raise ValueError(f"{labels.size} labels but {predictions.size} predictions")
    for name, values in (("label", labels), ("prediction", predictions)):
        if values.size and (values.min() < 0 or values.max() >= num_classes):
            bad = values[(values < 0) | (values >= num_classes)][0]
            raise ValueError(f"{name} {bad} is outside the {num_classes} classes [0, {num_classes})")
    flat = np.bincount(labels * num_classes + predictions, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes)


def _safe_divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    # 0 / 0 is defined as 0, as scikit-learn's zero_division=0.
    result = np.zeros(numerator.shape, dtype=np.float64)
    np.divide(numerator, denominator, out=result, where=denominator > 0)
    return result


@dataclass(frozen=True)
class ClassificationReport:
    """Accuracy, per-class and macro precision, recall and F1, and the confusion matrix.

    Per-class values are 0 where they are undefined (a class never predicted
    has precision 0). Macro values are unweighted means over the classes with
    support > 0 (``macro_class_names``), so a class absent from the evaluated
    labels does not count as a 0. Predictions of an absent class still lower
    the accuracy and the recall of the true class.
    """

    class_names: tuple[str, ...]
    confusion: np.ndarray
    accuracy: float
    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray
    support: np.ndarray

    @property
    def macro_mask(self) -> np.ndarray:
        """Boolean mask of the classes that the macro means average over: those with support > 0."""
        return self.support > 0

    @property
    def macro_class_names(self) -> tuple[str, ...]:
        """Names of the classes that the macro means average over."""
        return tuple(name for name, present in zip(self.class_names, self.macro_mask) if present)

    @property
    def macro_precision(self) -> float:
        return float(self.precision[self.macro_mask].mean())

    @property
    def macro_recall(self) -> float:
        return float(self.recall[self.macro_mask].mean())

    @property
    def macro_f1(self) -> float:
        return float(self.f1[self.macro_mask].mean())

    def to_dict(self) -> dict[str, Any]:
        """Return the report as JSON-ready dicts, lists and numbers."""
        per_class = {
            name: {
                "precision": float(self.precision[index]),
                "recall": float(self.recall[index]),
                "f1": float(self.f1[index]),
                "support": int(self.support[index]),
            }
            for index, name in enumerate(self.class_names)
        }
        return {
            "samples": int(self.support.sum()),
            "accuracy": self.accuracy,
            "macro_precision": self.macro_precision,
            "macro_recall": self.macro_recall,
            "macro_f1": self.macro_f1,
            "macro_over_classes": list(self.macro_class_names),
            "per_class": per_class,
            "class_names": list(self.class_names),
            "confusion_matrix": self.confusion.tolist(),
        }


def classification_report(
    labels: Sequence[int] | np.ndarray,
    predictions: Sequence[int] | np.ndarray,
    class_names: Sequence[str],
) -> ClassificationReport:
    """Compute a :class:`ClassificationReport` from integer labels and predictions.

    Raises:
        ValueError: if there are no samples, or as :func:`confusion_matrix`.
    """
    num_classes = len(class_names)
    confusion = confusion_matrix(labels, predictions, num_classes)
    total = int(confusion.sum())
    if total == 0:
        raise ValueError("cannot compute metrics for 0 samples; check that the evaluation data is not empty")
    true_positive = np.diag(confusion).astype(np.float64)
    support = confusion.sum(axis=1)
    predicted = confusion.sum(axis=0)
    precision = _safe_divide(true_positive, predicted.astype(np.float64))
    recall = _safe_divide(true_positive, support.astype(np.float64))
    f1 = _safe_divide(2.0 * precision * recall, precision + recall)
    return ClassificationReport(
        class_names=tuple(class_names),
        confusion=confusion,
        accuracy=float(true_positive.sum() / total),
        precision=precision,
        recall=recall,
        f1=f1,
        support=support,
    )
