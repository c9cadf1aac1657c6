"""Pieces shared by model builders: the input standardisation, the output layer, and the
rescaling of a standardised regression target."""

from __future__ import annotations

from typing import Any

from cbrun.data.base import Dataset

# What `compile:` uses for each task when it names no loss or metrics.
DEFAULT_LOSS = {"classification": "sparse_categorical_crossentropy", "regression": "mse"}
DEFAULT_METRICS = {"classification": ["accuracy"], "regression": ["mae"]}


def standardize_layer(dataset: Dataset) -> Any:
    """A Normalization layer fixed to the training split's mean and variance (saved with it)."""
    import keras

    mean, variance = dataset.feature_stats()
    return keras.layers.Normalization(mean=mean, variance=variance, name="standardize")


def output_layer(dataset: Dataset) -> Any:
    """Softmax over the classes, or a linear unit per regression target.

    Always float32, so that under a mixed-precision policy the outputs and the loss stay
    numerically stable.
    """
    import keras

    activation = "softmax" if dataset.task == "classification" else None
    return keras.layers.Dense(
        dataset.output_units, activation=activation, name="output", dtype="float32"
    )


def with_target_scale(model: Any, dataset: Dataset) -> Any:
    """`model` followed by a fixed layer that turns a standardised target back into its units
    (`output × std + mean`), when the data standardises its target; else `model` itself.

    The loss and metrics are then in the target's units; with Adam (whose steps do not depend
    on the gradient's scale) training goes as on the standardised target.
    """
    if dataset.target_scale is None:
        return model
    import keras

    mean, std = dataset.target_scale
    rescale = keras.layers.Rescaling(std, offset=mean, name="target_units", dtype="float32")
    return keras.Model(model.inputs, rescale(model.outputs[0]), name=model.name)
