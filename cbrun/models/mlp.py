"""A multi-layer perceptron with dropout and batch normalization options."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, PositiveInt

from cbrun.core.fields import StrictModel
from cbrun.data.base import Dataset
from cbrun.models.head import output_layer, standardize_layer
from cbrun.models.table_inputs import table_inputs
from cbrun.registry import models


class MlpParams(StrictModel):
    """Dense layers with activation, dropout and batch norm; the output layer fits the data.

    A table with categorical or text columns gets one input per column and the preprocessing
    layers of `cbrun.models.table_inputs` (`standardize` then applies to numeric columns
    always)."""

    type: Literal["mlp"]
    units: list[PositiveInt] = Field(
        default_factory=lambda: [64], description="Units of each hidden layer."
    )
    activation: str = Field("relu", description="Keras activation of the hidden layers.")
    dropout: float = Field(0.0, ge=0, lt=1, description="Dropout rate after each hidden layer.")
    batch_norm: bool = Field(False, description="Batch normalization after each hidden layer.")
    standardize: bool = Field(
        True, description="Standardize inputs with the training split's mean and variance."
    )


@models.register("mlp", MlpParams)
def mlp(params: MlpParams, dataset: Dataset) -> Any:
    import keras

    if dataset.columns is not None:  # a table of raw columns: a functional model
        inputs, x = table_inputs(dataset)
        for layer in _hidden_layers(params):
            x = layer(x)
        return keras.Model(inputs, output_layer(dataset)(x), name="mlp")
    layers: list[Any] = [keras.Input(shape=dataset.input_shape)]
    if len(dataset.input_shape) > 1:
        layers.append(keras.layers.Flatten())
    if params.standardize and len(dataset.input_shape) == 1:
        layers.append(standardize_layer(dataset))
    layers.extend(_hidden_layers(params))
    layers.append(output_layer(dataset))
    return keras.Sequential(layers, name="mlp")


def _hidden_layers(params: MlpParams) -> list[Any]:
    import keras

    layers: list[Any] = []
    for index, units in enumerate(params.units):
        layers.append(keras.layers.Dense(units, name=f"dense_{index}"))
        if params.batch_norm:
            layers.append(keras.layers.BatchNormalization())
        layers.append(keras.layers.Activation(params.activation))
        if params.dropout:
            layers.append(keras.layers.Dropout(params.dropout))
    return layers
