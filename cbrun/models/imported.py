"""A model built by the user's own `module:function`."""

from __future__ import annotations

import inspect
from typing import Any, Literal

from pydantic import Field

from cbrun.core.errors import CbrunError
from cbrun.core.fields import ImportPath, StrictModel
from cbrun.core.importing import import_object
from cbrun.data.base import Dataset, require_arrays
from cbrun.registry import models

DATA_ARGUMENTS = ("input_shape", "num_classes", "output_units", "task")


class ImportParams(StrictModel):
    """Your own function returning a Keras model; it may take input_shape, num_classes, ..."""

    type: Literal["import"]
    function: ImportPath
    args: dict[str, Any] = Field(default_factory=dict, description="Keyword arguments to pass.")


@models.register("import", ImportParams)
def imported(params: ImportParams, dataset: Dataset) -> Any:
    import keras

    require_arrays(dataset, "model `import` (use `mlp`)")
    function = import_object(params.function, "model.function")
    accepted = inspect.signature(function).parameters
    known = {
        "input_shape": dataset.input_shape,
        "num_classes": dataset.num_classes,
        "output_units": dataset.output_units,
        "task": dataset.task,
    }
    kwargs = {k: v for k, v in known.items() if k in accepted and k not in params.args}
    try:
        model = function(**kwargs, **params.args)
    except TypeError as error:
        raise CbrunError(f"model.args: calling {params.function} failed: {error}") from None
    if not isinstance(model, keras.Model):
        raise CbrunError(
            f"model.function: {params.function} returned {type(model).__name__}, "
            "expected a keras.Model"
        )
    return model
