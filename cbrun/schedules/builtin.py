"""Per-epoch learning-rate schedules for `learning_rate_scheduler`, as plain formulas.

Each factory returns `f(epoch, initial_learning_rate) -> learning_rate`, epochs counted from 0.
`initial_learning_rate` is the schedule's own, or else the optimizer's learning rate.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable
from typing import Literal

from pydantic import (
    ConfigDict,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    model_validator,
)

from cbrun.core.fields import StrictModel
from cbrun.registry import schedules

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


class WarmupCosineParams(CosineParams):
    """Linear warm-up to the initial rate over `warmup_epochs`, then `cosine` annealing.

    Epoch e < W: lr0 * (e + 1) / W; then the `cosine` schedule counted from epoch W.
    """

    type: Literal["warmup_cosine"]  # type: ignore[assignment]
    warmup_epochs: PositiveInt = Field(description="Epochs of linear warm-up.", examples=[3])


class PiecewiseConstantParams(StrictModel):
    """Constant learning rates between epoch boundaries: values[i] from boundaries[i-1] on."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"boundaries": [10, 20], "values": [0.01, 0.001, 1e-4]}]}
    )

    type: Literal["piecewise_constant"]
    boundaries: list[NonNegativeInt] = Field(
        min_length=1, description="Epochs (from 0) where the next value starts; increasing."
    )
    values: list[PositiveFloat] = Field(
        min_length=2, description="Learning rates: one more than boundaries."
    )

    @model_validator(mode="after")
    def _one_more_value_than_increasing_boundaries(self) -> PiecewiseConstantParams:
        if any(b <= a for a, b in zip(self.boundaries, self.boundaries[1:], strict=False)):
            raise ValueError(f"boundaries must increase strictly (got {self.boundaries})")
        if len(self.values) != len(self.boundaries) + 1:
            raise ValueError(
                f"needs one more value than boundaries: {len(self.boundaries)} boundaries, "
                f"{len(self.values)} values"
            )
        return self


class OneCycleParams(ScheduleParams):
    """One cycle (Smith): cosine up from lr0/div_factor to lr0, then down far below it.

    The peak lr0 falls at epoch pct_start * (cycle_epochs - 1); the last epoch of the cycle
    (and every later one) gets lr0 / div_factor / final_div_factor. As PyTorch's OneCycleLR
    per epoch, without momentum cycling.
    """

    type: Literal["one_cycle"]
    cycle_epochs: int = Field(
        ge=2, description="Length of the cycle in epochs; usually training.epochs.", examples=[20]
    )
    pct_start: float = Field(0.3, gt=0, lt=1, description="Fraction of the cycle spent rising.")
    div_factor: float = Field(25.0, gt=1, description="Start at lr0 / div_factor.")
    final_div_factor: float = Field(1e4, gt=1, description="End at the start / this.")


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
        return anneal(lr0, params.min_learning_rate, progress)

    return schedule


@schedules.register("warmup_cosine", WarmupCosineParams)
def warmup_cosine(params: WarmupCosineParams) -> Schedule:
    def schedule(epoch: int, lr0: float) -> float:
        if epoch < params.warmup_epochs:
            return lr0 * (epoch + 1) / params.warmup_epochs
        progress = min(epoch - params.warmup_epochs, params.decay_epochs) / params.decay_epochs
        return anneal(lr0, params.min_learning_rate, progress)

    return schedule


@schedules.register("piecewise_constant", PiecewiseConstantParams)
def piecewise_constant(params: PiecewiseConstantParams) -> Schedule:
    return lambda epoch, _lr0: params.values[bisect.bisect_right(params.boundaries, epoch)]


@schedules.register("one_cycle", OneCycleParams)
def one_cycle(params: OneCycleParams) -> Schedule:
    peak_epoch = params.pct_start * (params.cycle_epochs - 1)

    def schedule(epoch: int, peak: float) -> float:
        start = peak / params.div_factor
        end = start / params.final_div_factor
        if epoch <= peak_epoch:
            return anneal(start, peak, epoch / peak_epoch) if peak_epoch else peak
        progress = min((epoch - peak_epoch) / (params.cycle_epochs - 1 - peak_epoch), 1.0)
        return anneal(peak, end, progress)

    return schedule


def anneal(start: float, end: float, progress: float) -> float:
    """Half a cosine from `start` (progress 0) to `end` (progress 1)."""
    return end + (start - end) * 0.5 * (1 + math.cos(math.pi * progress))
