"""What a table's preprocessing layers learn from the training split, fitted chunk by chunk.

The same code fits a table held in memory (one chunk) and a streamed one (`data.stream`, many
chunks), so both give the model the same statistics: a numeric column's mean and variance
over its known cells, a categorical column's vocabulary (the `max_categories` most frequent
training values, ties in sorted order), and per column the number of cells imputed. A text
column's vocabulary is learned by Keras' `TextVectorization.adapt` on the training split
itself (`cbrun.models.table_inputs`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

import numpy as np

from cbrun.data.table import MISSING_TOKEN


def fit_columns(
    chunks: Iterable[dict[str, np.ndarray]], kinds: dict[str, str], max_categories: int
) -> dict[str, dict[str, Any]]:
    """Per column: `kind`, `imputed` (training cells that were empty), and `mean` and
    `variance` (numeric) or `vocabulary` (categorical, most frequent first).

    Args:
        chunks: The training split's feature columns, in any number of pieces.
        kinds: Kind of each column (`numeric`, `categorical`, `text`).
        max_categories: Values kept per categorical column.
    """
    gaps = dict.fromkeys(kinds, 0)
    moments = {name: (0, 0.0, 0.0) for name, kind in kinds.items() if kind == "numeric"}
    counts: dict[str, Counter] = {n: Counter() for n, k in kinds.items() if k == "categorical"}
    for columns in chunks:
        for name, kind in kinds.items():
            values = columns[name]
            if kind == "numeric":
                known = ~np.isnan(values)
                gaps[name] += int((~known).sum())
                moments[name] = _merged(moments[name], values[known].astype("float64"))
            else:
                gaps[name] += int((values == MISSING_TOKEN).sum())
                if kind == "categorical":
                    distinct, times = np.unique(values.astype(str), return_counts=True)
                    counts[name].update(dict(zip(distinct.tolist(), times.tolist(), strict=True)))
    fitted: dict[str, dict[str, Any]] = {}
    for name, kind in kinds.items():
        facts: dict[str, Any] = {"kind": kind, "imputed": gaps[name]}
        if kind == "numeric":
            count, mean, squares = moments[name]
            variance = squares / count if count else 1.0
            facts.update(
                mean=float(mean) if count else 0.0,
                variance=variance if variance > 1e-12 else 1.0,  # constant: as StandardScaler
            )
        elif kind == "categorical":
            ranked = sorted(counts[name].items(), key=lambda item: (-item[1], item[0]))
            facts["vocabulary"] = [value for value, _ in ranked[:max_categories]]
        fitted[name] = facts
    return fitted


def learned(fitted: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """What data.json and run.json record of the fit: per column the kind, the cells imputed
    and a categorical column's vocabulary size."""
    return {
        name: {
            "kind": facts["kind"],
            "imputed": facts["imputed"],
            **({"vocabulary": len(facts["vocabulary"])} if "vocabulary" in facts else {}),
        }
        for name, facts in fitted.items()
    }


def _merged(moments: tuple[int, float, float], values: np.ndarray) -> tuple[int, float, float]:
    """(count, mean, sum of squared deviations) with `values` added (Chan's update)."""
    count, mean, squares = moments
    if not len(values):
        return moments
    n, batch_mean = len(values), float(values.mean())
    total = count + n
    delta = batch_mean - mean
    squares += float(((values - batch_mean) ** 2).sum()) + delta**2 * count * n / total
    return total, mean + delta * n / total, squares
