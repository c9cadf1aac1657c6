"""`training.class_weight`: per-class loss weights, `balanced` or given by class name or index."""

from __future__ import annotations

from typing import Any

import numpy as np

from cbrun.core.errors import CbrunError, did_you_mean
from cbrun.data.base import Dataset, labels_of


def class_weights(requested: Any, dataset: Dataset) -> dict[str, Any] | None:
    """The weight of every class, for run.json and `model.fit` (None: no weighting).

    `balanced` weighs class c by n_samples / (n_classes * count_c) over the training split,
    as scikit-learn's `compute_class_weight` does (n_classes: the classes present there); a
    mapping names classes by name or index, and the classes it leaves out weigh 1.
    """
    if requested is None:
        return None
    count = int(dataset.num_classes or 2)
    names = dataset.class_names or [str(index) for index in range(count)]
    check_class_weight(requested, dataset.task, names)
    if requested == "balanced":
        counts = np.bincount(labels_of(dataset.train), minlength=count)
        present = counts > 0
        weights = np.ones(count)
        weights[present] = counts.sum() / (present.sum() * counts[present])
    else:
        weights = np.ones(count)
        for key, weight in requested.items():
            weights[_class_index(key, names)] = weight
    return {
        "mode": "balanced" if requested == "balanced" else "given",
        "weights": {name: round(float(w), 6) for name, w in zip(names, weights, strict=True)},
    }


def check_class_weight(requested: Any, task: str, names: list[str]) -> None:
    """Refuse class weights for a regression, or naming a class that is not among `names`
    (`validate` calls this too where the source declares its classes)."""
    if requested is None:
        return
    if task != "classification":
        raise CbrunError(
            "training.class_weight: the data is a regression task; class weights apply to "
            "classification only: remove training.class_weight"
        )
    if requested != "balanced":
        for key in requested:
            _class_index(key, names)


def fit_class_weight(recorded: dict[str, Any] | None) -> dict[int, float] | None:
    """`model.fit`'s class_weight from what `class_weights` recorded."""
    if recorded is None:
        return None
    return dict(enumerate(recorded["weights"].values()))


def _class_index(key: Any, names: list[str]) -> int:
    if isinstance(key, str) and key in names:
        return names.index(key)
    if isinstance(key, int) or (isinstance(key, str) and key.isdecimal()):
        if 0 <= int(key) < len(names):
            return int(key)
    raise CbrunError(
        f"training.class_weight: `{key}` is not a class.{did_you_mean(str(key), names)} "
        f"Classes: {', '.join(names)} (or their indices 0..{len(names) - 1})"
    )
