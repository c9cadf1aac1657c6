"""Model inputs for a table of raw columns: one `keras.Input` per column and the Keras
preprocessing layer that turns it into numbers, fitted on the training split only.

numeric: `Normalization` with the training mean and variance (under `missing: impute`,
cbrun's `ImputedNormalization`: the mean fills a gap, and a 0/1 was-missing indicator
follows). categorical: `StringLookup` one-hot over the training split's values, with one
out-of-vocabulary slot for a value never seen in training (or too rare to be among the
`max_categories` most frequent). text: `TextVectorization` TF-IDF
over the training split's most frequent words. All of them are saved inside the model, so
the saved model takes raw rows (a dict of columns).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cbrun.data.base import Dataset


def table_inputs(dataset: Dataset) -> tuple[dict[str, Any], Any]:
    """The model's inputs (column name → `keras.Input`) and their encodings concatenated."""
    import keras

    x = dataset.train[0]
    inputs: dict[str, Any] = {}
    encoded: list[Any] = []
    for name, kind in (dataset.columns or {}).items():
        dtype = "float32" if kind == "numeric" else "string"
        inputs[name] = keras.Input(shape=(1,), dtype=dtype, name=name)
        column = _encoder(name, kind, x[name], dataset.extra)(inputs[name])
        encoded.append(keras.layers.Flatten()(column) if kind == "text" else column)
    features = encoded[0] if len(encoded) == 1 else keras.layers.Concatenate()(encoded)
    return inputs, features


def _encoder(name: str, kind: str, values: np.ndarray, options: dict[str, Any]) -> Any:
    import keras

    if kind == "numeric":
        known = values[~np.isnan(values)].astype("float64")
        mean = float(known.mean()) if len(known) else 0.0
        variance = float(known.var()) if len(known) else 1.0
        variance = variance if variance > 1e-12 else 1.0  # constant: as StandardScaler does
        if options.get("impute"):
            from cbrun.models.layers import ImputedNormalization

            return ImputedNormalization(mean, variance, name=f"impute_{name}")
        return keras.layers.Normalization(mean=mean, variance=variance, name=f"normalize_{name}")
    if kind == "categorical":
        vocabulary = _by_frequency(values)[: options.get("max_categories")]
        return keras.layers.StringLookup(
            vocabulary=vocabulary, output_mode="one_hot", name=f"lookup_{name}"
        )
    layer = keras.layers.TextVectorization(
        max_tokens=options.get("text_tokens", 2000), output_mode="tf_idf", name=f"text_{name}"
    )
    layer.adapt(values)
    return layer


def _by_frequency(values: np.ndarray) -> list[str]:
    """Distinct values, the most frequent first (ties in sorted order)."""
    distinct, counts = np.unique(values, return_counts=True)
    return [str(v) for v in distinct[np.argsort(-counts, kind="stable")]]
