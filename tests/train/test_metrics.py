"""Classification metrics against hand-computed values and scikit-learn."""

import numpy as np
import pytest

from fergen_train.metrics import classification_report, confusion_matrix

LABELS = [0, 0, 0, 1, 1, 2, 2, 2, 2]
PREDICTIONS = [0, 0, 1, 1, 2, 2, 2, 2, 0]
NAMES = ["happy", "sad", "neutral"]


def test_confusion_matrix_counts():
    matrix = confusion_matrix(LABELS, PREDICTIONS, 3)

    assert matrix.tolist() == [[2, 1, 0], [0, 1, 1], [1, 0, 3]]
    assert matrix.dtype == np.int64


def test_report_hand_values():
    report = classification_report(LABELS, PREDICTIONS, NAMES)

    # Column sums (predicted): 3, 2, 4. Row sums (support): 3, 2, 4.
    assert report.accuracy == pytest.approx(6 / 9)
    np.testing.assert_allclose(report.precision, [2 / 3, 1 / 2, 3 / 4])
    np.testing.assert_allclose(report.recall, [2 / 3, 1 / 2, 3 / 4])
    np.testing.assert_allclose(report.f1, [2 / 3, 1 / 2, 3 / 4])
    assert report.support.tolist() == [3, 2, 4]
    assert report.macro_f1 == pytest.approx((2 / 3 + 1 / 2 + 3 / 4) / 3)


def test_report_matches_scikit_learn():
    metrics = pytest.importorskip("sklearn.metrics")
    generator = np.random.default_rng(0)
    labels = generator.integers(0, 5, size=200)
    predictions = np.where(generator.random(200) < 0.6, labels, generator.integers(0, 5, size=200))

    report = classification_report(labels, predictions, [str(k) for k in range(5)])

    precision, recall, f1, support = metrics.precision_recall_fscore_support(
        labels, predictions, labels=range(5), zero_division=0
    )
    np.testing.assert_allclose(report.precision, precision)
    np.testing.assert_allclose(report.recall, recall)
    np.testing.assert_allclose(report.f1, f1)
    assert report.support.tolist() == support.tolist()
    assert report.macro_f1 == pytest.approx(metrics.f1_score(labels, predictions, average="macro", zero_division=0))
    assert report.confusion.tolist() == metrics.confusion_matrix(labels, predictions, labels=range(5)).tolist()


def test_never_predicted_class_scores_zero():
    report = classification_report([0, 1, 2], [0, 0, 0], NAMES)

    assert report.precision.tolist() == [pytest.approx(1 / 3), 0.0, 0.0]
    assert report.recall.tolist() == [1.0, 0.0, 0.0]
    assert report.f1[1] == 0.0


def test_absent_class_left_out_of_macro_mean():
    report = classification_report([0, 0], [0, 0], ["a", "b"])

    assert report.f1.tolist() == [1.0, 0.0]
    assert report.macro_class_names == ("a",)
    assert report.macro_f1 == 1.0


def test_macro_over_present_classes_hand_values():
    # Class c has support 0 but is predicted once: its per-class values are
    # 0 and stay in the report, while the macro means skip it.
    report = classification_report([0, 0, 1, 1], [0, 2, 1, 1], ["a", "b", "c"])

    assert report.support.tolist() == [2, 2, 0]
    assert report.precision.tolist() == [1.0, 1.0, 0.0]
    assert report.recall.tolist() == [0.5, 1.0, 0.0]
    np.testing.assert_allclose(report.f1, [2 / 3, 1.0, 0.0])
    assert report.macro_class_names == ("a", "b")
    assert report.macro_precision == 1.0
    assert report.macro_recall == 0.75
    assert report.macro_f1 == pytest.approx(5 / 6)
    assert report.accuracy == 0.75


def test_macro_matches_scikit_learn_present_labels():
    metrics = pytest.importorskip("sklearn.metrics")
    labels = [0, 0, 1, 3, 3, 3]
    predictions = [0, 2, 1, 3, 0, 4]

    report = classification_report(labels, predictions, ["a", "b", "c", "d", "e"])

    present = [0, 1, 3]
    assert report.macro_precision == pytest.approx(
        metrics.precision_score(labels, predictions, labels=present, average="macro", zero_division=0))
    assert report.macro_recall == pytest.approx(
        metrics.recall_score(labels, predictions, labels=present, average="macro", zero_division=0))
    assert report.macro_f1 == pytest.approx(
        metrics.f1_score(labels, predictions, labels=present, average="macro", zero_division=0))


def test_report_to_dict():
    result = classification_report(LABELS, PREDICTIONS, NAMES).to_dict()

    assert result["samples"] == 9
    assert result["class_names"] == NAMES
    assert result["confusion_matrix"] == [[2, 1, 0], [0, 1, 1], [1, 0, 3]]
    assert result["per_class"]["sad"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    assert result["macro_over_classes"] == NAMES


def test_report_to_dict_absent_class():
    result = classification_report([0, 0, 1, 1], [0, 2, 1, 1], ["a", "b", "c"]).to_dict()

    assert result["macro_over_classes"] == ["a", "b"]
    assert result["macro_recall"] == 0.75
    assert result["per_class"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert isinstance(result["accuracy"], float)


def test_label_out_of_range():
    with pytest.raises(ValueError, match=r"label 3 is outside the 3 classes \[0, 3\)"):
        confusion_matrix([0, 3], [0, 1], 3)


def test_length_mismatch():
    with pytest.raises(ValueError, match="3 labels but 2 predictions"):
        confusion_matrix([0, 1, 2], [0, 1], 3)


def test_no_samples():
    with pytest.raises(ValueError, match="cannot compute metrics for 0 samples"):
        classification_report([], [], NAMES)
