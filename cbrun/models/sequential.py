"""A `keras.Sequential` model from a list of Keras layers given by class name and arguments."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from cbrun.core.errors import CbrunError, did_you_mean
from cbrun.core.fields import StrictModel
from cbrun.data.base import Dataset, require_arrays
from cbrun.models.head import output_layer, standardize_layer
from cbrun.registry import models


class LayerSpec(StrictModel):
    """One Keras layer: its class name in `keras.layers` and its keyword arguments."""

    class_name: str = Field(examples=["Dense"], description="A class in `keras.layers`.")
    args: dict[str, Any] = Field(default_factory=dict, description="Its keyword arguments.")


class SequentialParams(StrictModel):
    """Keras layers listed by class name and arguments; an output layer is added unless told."""

    type: Literal["sequential"]
    layers: list[LayerSpec] = Field(
        min_length=1,
        examples=[[{"class_name": "Dense", "args": {"units": 32, "activation": "relu"}}]],
    )
    add_output: bool = Field(
        True, description="Append the output layer that fits the data (softmax or linear)."
    )
    standardize: bool = Field(
        False, description="Standardize flat inputs with the training split's statistics."
    )


@models.register("sequential", SequentialParams)
def sequential(params: SequentialParams, dataset: Dataset) -> Any:
    import keras

    require_arrays(dataset, "model `sequential` (use `mlp`)")
    layers: list[Any] = [keras.Input(shape=dataset.input_shape)]
    if params.standardize and len(dataset.input_shape) == 1:
        layers.append(standardize_layer(dataset))
    names = [n for n in dir(keras.layers) if n[:1].isupper()]
    for index, spec in enumerate(params.layers):
        where = f"model.layers[{index}]"
        cls = getattr(keras.layers, spec.class_name, None)
        if cls is None or not isinstance(cls, type) or not issubclass(cls, keras.layers.Layer):
            raise CbrunError(
                f"{where}.class_name: `{spec.class_name}` is not a Keras layer."
                f"{did_you_mean(spec.class_name, names)}"
            )
        try:
            layers.append(cls(**spec.args))
        except (TypeError, ValueError) as error:
            raise CbrunError(f"{where}.args: {spec.class_name}: {error}") from None
    if params.add_output:
        layers.append(output_layer(dataset))
    try:
        return keras.Sequential(layers, name="sequential")
    except (TypeError, ValueError) as error:
        raise CbrunError(f"model.layers: the layers do not fit together: {error}") from None
