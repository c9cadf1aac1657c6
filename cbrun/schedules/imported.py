"""A per-epoch schedule written by the user: `function(epoch, initial_learning_rate) -> lr`."""

from __future__ import annotations

import math
import numbers
from typing import Literal

from pydantic import ConfigDict

from cbrun.core.errors import CbrunError
from cbrun.core.fields import ImportPath
from cbrun.core.importing import import_object
from cbrun.registry import schedules
from cbrun.schedules.builtin import Schedule, ScheduleParams


class ImportedScheduleParams(ScheduleParams):
    """Your own `module:function(epoch, initial_learning_rate) -> learning_rate`, epochs from 0."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"function": "my_project.schedules:learning_rate"}]}
    )

    type: Literal["import"]
    function: ImportPath


@schedules.register("import", ImportedScheduleParams)
def imported(params: ImportedScheduleParams) -> Schedule:
    function = import_object(params.function, "schedule.function")

    def schedule(epoch: int, lr0: float) -> float:
        try:
            value = function(epoch, lr0)
        except TypeError as error:
            raise CbrunError(
                f"schedule.function: calling {params.function}(epoch, initial_learning_rate) "
                f"failed: {error}"
            ) from None
        if not isinstance(value, numbers.Real) or not math.isfinite(value) or value < 0:
            raise CbrunError(
                f"schedule.function: {params.function}({epoch}, {lr0}) returned {value!r}; "
                "expected a finite learning rate >= 0"
            )
        return float(value)

    return schedule
