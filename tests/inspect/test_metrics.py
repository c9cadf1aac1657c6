"""cbrun's NumPy evaluation scores equal scikit-learn's on generated labels and scores: ties,
missing classes, constant targets and single rows included."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn import metrics as sk

from cbrun.inspect import metrics
from conftest import run_python

CLASSES = st.integers(1, 6)


@st.composite
def labelled(draw) -> tuple[np.ndarray, np.ndarray, int]:
    """True and predicted classes of 1-60 rows; some classes may never appear."""
    classes = draw(CLASSES)
    rows = draw(st.integers(1, 60))
    labels = st.integers(0, classes - 1)
    y = np.array(draw(st.lists(labels, min_size=rows, max_size=rows)))
    predicted = np.array(draw(st.lists(labels, min_size=rows, max_size=rows)))
    return y, predicted, classes


@st.composite
def binary_scores(draw) -> tuple[np.ndarray, np.ndarray]:
    """0/1 labels with both present and scores with many ties (few distinct values)."""
    rows = draw(st.integers(2, 80))
    y = np.array(draw(st.lists(st.integers(0, 1), min_size=rows, max_size=rows)))
    if y.min() == y.max():
        y[0] = 1 - y[0]  # both classes present
    values = draw(st.lists(st.floats(0, 1, width=32), min_size=1, max_size=8))
    score = np.array(draw(st.lists(st.sampled_from(values), min_size=rows, max_size=rows)))
    return y, score


@pytest.mark.filterwarnings("ignore:A single label was found")
@settings(max_examples=150, deadline=None)
@given(labelled())
def test_the_confusion_matrix_and_per_class_scores_equal_sklearns(case):
    y, predicted, classes = case
    labels = list(range(classes))
    counts = metrics.confusion_matrix(y, predicted, classes)
    np.testing.assert_array_equal(counts, sk.confusion_matrix(y, predicted, labels=labels))
    names = [f"c{i}" for i in labels]
    report = sk.classification_report(
        y, predicted, labels=labels, target_names=names, output_dict=True, zero_division=0
    )
    scores = metrics.per_class_scores(counts)
    for i, name in enumerate(names):
        assert scores["precision"][i] == pytest.approx(report[name]["precision"])
        assert scores["recall"][i] == pytest.approx(report[name]["recall"])
        assert scores["f1"][i] == pytest.approx(report[name]["f1-score"])
        assert scores["support"][i] == report[name]["support"]
    for average, row in metrics.averages(scores).items():
        expected = report[f"{average} avg"]
        assert row["precision"] == pytest.approx(expected["precision"]), average
        assert row["recall"] == pytest.approx(expected["recall"]), average
        assert row["f1"] == pytest.approx(expected["f1-score"]), average
        assert row["support"] == expected["support"], average


def test_labels_outside_the_classes_are_left_out_of_the_matrix():
    counts = metrics.confusion_matrix(np.array([0, 1, 5, -1]), np.array([0, 3, 1, 1]), 2)
    assert counts.tolist() == [[1, 0], [0, 0]]


@settings(max_examples=150, deadline=None)
@given(binary_scores())
def test_roc_and_precision_recall_curves_equal_sklearns(case):
    y, score = case
    fpr, tpr, thresholds = metrics.roc_curve(y, score)
    expected = sk.roc_curve(y, score)
    for mine, theirs in zip((fpr, tpr, thresholds), expected, strict=True):
        np.testing.assert_allclose(mine, theirs, rtol=1e-12)
    assert metrics.area_under(fpr, tpr) == pytest.approx(sk.roc_auc_score(y, score), abs=1e-12)
    precision, recall, thresholds = metrics.precision_recall_curve(y, score)
    expected = sk.precision_recall_curve(y, score)
    for mine, theirs in zip((precision, recall, thresholds), expected, strict=True):
        np.testing.assert_allclose(mine, theirs, rtol=1e-12)
    assert metrics.average_precision(precision, recall) == pytest.approx(
        sk.average_precision_score(y, score), abs=1e-12
    )


finite = st.floats(-1e3, 1e3, allow_nan=False, width=32)


@st.composite
def targets(draw) -> tuple[np.ndarray, np.ndarray]:
    """One or several targets, sometimes constant, sometimes predicted exactly."""
    rows = draw(st.integers(2, 40))
    shape = draw(st.sampled_from([(rows,), (rows, 1), (rows, 3)]))
    y = draw(arrays("float64", shape, elements=finite))
    if draw(st.booleans()):
        y[:] = y.flat[0]  # a constant target: R² is 1 for an exact fit, else 0
    predicted = y.copy() if draw(st.booleans()) else draw(arrays("float64", shape, elements=finite))
    return y, predicted


@settings(max_examples=150, deadline=None)
@given(targets())
def test_regression_errors_equal_sklearns(case):
    y, predicted = case
    errors = metrics.regression_errors(y, predicted)
    assert errors["mae"] == pytest.approx(sk.mean_absolute_error(y, predicted), rel=1e-9, abs=1e-9)
    assert errors["mse"] == pytest.approx(sk.mean_squared_error(y, predicted), rel=1e-9, abs=1e-9)
    assert errors["r2"] == pytest.approx(sk.r2_score(y, predicted), rel=1e-9, abs=1e-9)


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_nan_or_infinite_outputs_are_refused_not_scored(bad):
    with pytest.raises(ValueError, match="NaN or infinity"):
        metrics.regression_errors(np.array([1.0, 2.0]), np.array([1.0, bad]))
    with pytest.raises(ValueError, match="NaN or infinity"):
        metrics.roc_curve(np.array([0, 1]), np.array([0.2, bad]))


def test_scoring_a_run_imports_no_scikit_learn():
    code = (
        "import sys, numpy as np\n"
        "from cbrun.run.scores import classification_details, regression_details\n"
        "classification_details(np.array([0, 1, 1]), np.eye(2)[[0, 1, 0]], ['a', 'b'])\n"
        "regression_details(np.array([1.0, 2.0]), np.array([1.5, 2.0]))\n"
        "print('sklearn' in sys.modules)\n"
    )
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
