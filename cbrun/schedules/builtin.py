"""Per-epoch learning-rate schedules for `learning_rate_scheduler`, as plain formulas.

Each factory returns `f(epoch, initial_learning_rate) -> learning_rate`, epochs counted from 0.
`initial_learning_rate` is the schedule's own, or else the optimizer's learning rate.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

from pydantic import Field, NonNegativeFloat, PositiveFloat, PositiveInt

from cbrun.registry import schedules
from cbrun.schema import StrictModel

Schedule = Callable[[int, float], float]


class ScheduleParams(StrictModel):
    """Base of every per-epoch schedule's params."""

    initial_learning_rate: PositiveFloat | None = Field(
        None, description="Starting learning rate; default: the optimizer's."
    )


class StepDecayParams(ScheduleParams):
    """Multiply the learning rate by `factor` every `step_size` epochs."""

    type: Literal["step_decay"]
    factor: float = Field(0.5, gt=0, le=1, description="Multiplier applied at each step.")
    step_size: PositiveInt = Field(10, description="Epochs between steps.")


class ExponentialParams(ScheduleParams):
    """Multiply the learning rate by `rate` every epoch: lr0 * rate**epoch."""

    type: Literal["exponential"]
    rate: float = Field(0.9, gt=0, le=1, description="Per-epoch multiplier.")


class CosineParams(ScheduleParams):
    """Cosine annealing from the initial rate to `min_learning_rate` over `decay_epochs`."""

    type: Literal["cosine"]
    decay_epochs: PositiveInt = Field(description="Epochs to reach the minimum.", examples=[10])
    min_learning_rate: NonNegativeFloat = Field(0.0, description="Floor reached at the end.")


@schedules.register("step_decay", StepDecayParams)
def step_decay(params: StepDecayParams) -> Schedule:
    return lambda epoch, lr0: lr0 * params.factor ** (epoch // params.step_size)


@schedules.register("exponential", ExponentialParams)
def exponential(params: ExponentialParams) -> Schedule:
    return lambda epoch, lr0: lr0 * params.rate**epoch


@schedules.register("cosine", CosineParams)
def cosine(params: CosineParams) -> Schedule:
    def schedule(epoch: int, lr0: float) -> float:
        progress = min(epoch, params.decay_epochs) / params.decay_epochs
        low = params.min_learning_rate
        return low + (lr0 - low) * 0.5 * (1 + math.cos(math.pi * progress))

    return schedule
