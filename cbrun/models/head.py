"""Pieces shared by model builders: the input standardisation and the output layer."""

from __future__ import annotations

from typing import Any

from cbrun.data.base import Dataset


def standardize_layer(dataset: Dataset) -> Any:
    """A Normalization layer fixed to the training split's mean and variance (saved with it)."""
    import keras

    mean, variance = dataset.feature_stats()
    return keras.layers.Normalization(mean=mean, variance=variance, name="standardize")


def output_layer(dataset: Dataset) -> Any:
    """Softmax over the classes, or a linear unit per regression target."""
    import keras

    if dataset.task == "classification":
        return keras.layers.Dense(dataset.output_units, activation="softmax", name="output")
    return keras.layers.Dense(dataset.output_units, name="output")
