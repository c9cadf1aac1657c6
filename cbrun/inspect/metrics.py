"""The evaluation's numbers from labels and predictions, in NumPy, equal to scikit-learn's.

Confusion matrix, per-class precision/recall/F1 (`zero_division=0`), ROC and precision-recall
curves (`roc_curve`'s dropped collinear points included), AUC, average precision, and MAE, MSE
and R² (`multioutput="uniform_average"`). These are the textbook formulas as scikit-learn writes
them; `tests/inspect/test_metrics.py` checks them against scikit-learn on generated cases.
Importing `sklearn.metrics` took 0.75 s (0.9 s of CPU) of every run on the bench machine, more
than drawing all of the end-of-run pictures.
"""

from __future__ import annotations

import numpy as np


def confusion_matrix(y: np.ndarray, predicted: np.ndarray, classes: int) -> np.ndarray:
    """Counts of (true class, predicted class) pairs; labels outside 0..classes-1 are left out."""
    y, predicted = np.asarray(y, dtype=int).ravel(), np.asarray(predicted, dtype=int).ravel()
    kept = (y >= 0) & (y < classes) & (predicted >= 0) & (predicted < classes)
    pairs = y[kept] * classes + predicted[kept]
    return np.bincount(pairs, minlength=classes * classes).reshape(classes, classes)


def per_class_scores(counts: np.ndarray) -> dict[str, np.ndarray]:
    """Precision, recall, F1 and support of each class from a confusion matrix (0 where a
    denominator is 0)."""
    counts = np.asarray(counts)
    true_positives = np.diag(counts).astype("float64")
    predicted = counts.sum(axis=0)
    support = counts.sum(axis=1)
    return {
        "precision": _ratio(true_positives, predicted),
        "recall": _ratio(true_positives, support),
        "f1": _ratio(2 * true_positives, predicted + support),
        "support": support,
    }


def averages(scores: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """The macro (unweighted) and support-weighted means of `per_class_scores`."""
    support = scores["support"]
    total = int(support.sum())
    result = {}
    for name, weights in (("macro", np.ones(len(support))), ("weighted", support)):
        weight_sum = float(np.sum(weights))
        row: dict[str, float] = {
            key: float(np.dot(scores[key], weights) / weight_sum) if weight_sum else 0.0
            for key in ("precision", "recall", "f1")
        }
        row["support"] = total
        result[name] = row
    return result


def roc_curve(y: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """False and true positive rates and their thresholds (the first one infinite), the
    collinear intermediate points dropped; `y` is 0/1 with both present."""
    false_positives, true_positives, thresholds = _counts_by_threshold(y, score)
    if len(false_positives) > 2:
        bends = np.logical_or(np.diff(false_positives, 2), np.diff(true_positives, 2))
        kept = np.flatnonzero(np.r_[True, bends, True])
        false_positives, true_positives = false_positives[kept], true_positives[kept]
        thresholds = thresholds[kept]
    false_positives = np.r_[0, false_positives]
    true_positives = np.r_[0, true_positives]
    thresholds = np.r_[np.inf, thresholds]
    return false_positives / false_positives[-1], true_positives / true_positives[-1], thresholds


def precision_recall_curve(
    y: np.ndarray, score: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision and recall by falling threshold, ending at (recall 0, precision 1), which has
    no threshold; `y` is 0/1 with both present."""
    false_positives, true_positives, thresholds = _counts_by_threshold(y, score)
    precision = _ratio(true_positives, true_positives + false_positives)
    recall = true_positives / true_positives[-1]
    return np.r_[precision[::-1], 1], np.r_[recall[::-1], 0], thresholds[::-1]


def area_under(x: np.ndarray, y: np.ndarray) -> float:
    """The trapezoidal area under the curve through the points (x, y), x monotonic."""
    area = float(np.sum(np.diff(x) * (y[1:] + y[:-1]) / 2))
    return -area if len(x) > 1 and x[-1] < x[0] else area


def average_precision(precision: np.ndarray, recall: np.ndarray) -> float:
    """Precision averaged over the recall steps of a `precision_recall_curve`."""
    return float(-np.sum(np.diff(recall) * precision[:-1]))


def regression_errors(y: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """MAE, MSE and R² (each target's R² averaged; 1 for an exact fit of a constant target,
    else 0 there). Raises ValueError on NaN or infinite values."""
    y = np.asarray(y, dtype="float64")
    predicted = np.asarray(predicted, dtype="float64").reshape(y.shape)
    if not (np.isfinite(y).all() and np.isfinite(predicted).all()):
        raise ValueError("the targets or the model's outputs hold NaN or infinity")
    columns = y.reshape(len(y), -1), predicted.reshape(len(y), -1)
    residual = ((columns[0] - columns[1]) ** 2).sum(axis=0)
    spread = ((columns[0] - columns[0].mean(axis=0)) ** 2).sum(axis=0)
    exact = np.where(residual == 0, 1.0, 0.0)
    r2 = np.where(spread == 0, exact, 1 - residual / np.where(spread == 0, 1, spread))
    return {
        "mae": float(np.mean(np.abs(y - predicted))),
        "mse": float(np.mean((y - predicted) ** 2)),
        "r2": float(np.mean(r2)),
    }


def _counts_by_threshold(
    y: np.ndarray, score: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """False and true positives at or above each distinct score, highest score first."""
    y = np.asarray(y).ravel() == 1
    score = np.asarray(score, dtype="float64").ravel()
    if not np.isfinite(score).all():
        raise ValueError("the model's scores hold NaN or infinity")
    order = np.argsort(score, kind="mergesort")[::-1]
    score, y = score[order], y[order]
    last_of_each = np.r_[np.flatnonzero(np.diff(score)), len(score) - 1]
    true_positives = np.cumsum(y, dtype="float64")[last_of_each]
    false_positives = 1 + last_of_each - true_positives
    return false_positives, true_positives, score[last_of_each]


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    numerator = np.asarray(numerator, dtype="float64")
    denominator = np.asarray(denominator, dtype="float64")
    safe = np.where(denominator == 0, 1, denominator)
    return np.where(denominator == 0, 0.0, numerator / safe)
