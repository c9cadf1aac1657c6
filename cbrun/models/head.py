"""Pieces shared by model builders: the input standardisation and the output layer."""

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
