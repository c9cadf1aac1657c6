"""Model inputs for a table of raw columns: one `keras.Input` per column and the Keras
preprocessing layer that turns it into numbers, fitted on the training split only.

numeric: `Normalization` with the training mean and variance (under `missing: impute`,
cbrun's `ImputedNormalization`: the mean fills a gap, and a 0/1 was-missing indicator
follows). categorical: `StringLookup` one-hot over the training split's values, with one
out-of-vocabulary slot for a value never seen in training (or too rare to be among the
`max_categories` most frequent). text: `TextVectorization` TF-IDF
over the training split's most frequent words. All of them are saved inside the model, so
the saved model takes raw rows (a dict of columns). image_path: the image itself, decoded
by tf.data (pixel values 0-1), through a small CNN (`_image_branch`) to 32 features
concatenated with the other columns' encodings.
"""

from __future__ import annotations

from typing import Any

from cbrun.data.base import Dataset, Stream


def table_inputs(dataset: Dataset) -> tuple[dict[str, Any], Any]:
    """The model's inputs (column name → `keras.Input`) and their encodings concatenated."""
    import keras

    fitted = dataset.extra["fitted"]  # cbrun.data.table_stats.fit_columns on the training split
    inputs: dict[str, Any] = {}
    encoded: list[Any] = []
    for name, kind in (dataset.columns or {}).items():
        if kind == "image_path":  # decoded by tf.data: the model takes the image
            inputs[name] = keras.Input(shape=dataset.extra["image_shape"], name=name)
            encoded.append(_image_branch(name, inputs[name]))
            continue
        dtype = "float32" if kind == "numeric" else "string"
        inputs[name] = keras.Input(shape=(1,), dtype=dtype, name=name)
        column = _encoder(name, fitted[name], dataset)(inputs[name])
        encoded.append(keras.layers.Flatten()(column) if kind == "text" else column)
    features = encoded[0] if len(encoded) == 1 else keras.layers.Concatenate()(encoded)
    return inputs, features


def _encoder(name: str, facts: dict[str, Any], dataset: Dataset) -> Any:
    import keras

    options = dataset.extra
    if facts["kind"] == "numeric":
        mean, variance = facts["mean"], facts["variance"]
        if options.get("impute"):
            from cbrun.models.layers import ImputedNormalization

            return ImputedNormalization(mean, variance, name=f"impute_{name}")
        return keras.layers.Normalization(mean=mean, variance=variance, name=f"normalize_{name}")
    if facts["kind"] == "categorical":
        return keras.layers.StringLookup(
            vocabulary=facts["vocabulary"], output_mode="one_hot", name=f"lookup_{name}"
        )
    layer = keras.layers.TextVectorization(
        max_tokens=options.get("text_tokens", 2000), output_mode="tf_idf", name=f"text_{name}"
    )
    layer.adapt(_texts(dataset, name))
    return layer


def _image_branch(name: str, image: Any) -> Any:
    """A small CNN from an image column to 32 features: two 3x3 convolutions (16 and 32
    filters, ReLU) with 2x2 max pooling after the first, then global average pooling."""
    import keras

    x = keras.layers.Conv2D(16, 3, activation="relu", padding="same", name=f"conv1_{name}")(image)
    x = keras.layers.MaxPooling2D(2, name=f"pool_{name}")(x)
    x = keras.layers.Conv2D(32, 3, activation="relu", padding="same", name=f"conv2_{name}")(x)
    return keras.layers.GlobalAveragePooling2D(name=f"features_{name}")(x)


def _texts(dataset: Dataset, name: str) -> Any:
    """The training split's cells of text column `name`: an array, or for a streamed table a
    tf.data pass over them (adapt reads it batch by batch)."""
    if isinstance(dataset.train, Stream):
        batches = dataset.train.batches(1024, False, 0, None, 0)
        return batches.map(lambda x, *_: x[name])
    return dataset.train[0][name]
