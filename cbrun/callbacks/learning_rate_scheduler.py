"""Set the optimizer's learning rate at the start of each epoch from a named schedule."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from cbrun import registry
from cbrun.callbacks.base import BuildContext, FitOnlyParams
from cbrun.registry import callbacks


class LearningRateSchedulerParams(FitOnlyParams):
    """Set the learning rate each epoch from a named schedule (keras LearningRateScheduler)."""

    def batch_hooks(self) -> bool:
        return False

    type: Literal["learning_rate_scheduler"]
    schedule: registry.schedules.union() = Field(  # type: ignore[valid-type]
        description="A per-epoch schedule chosen by `type`.",
        examples=[{"type": "step_decay", "factor": 0.5, "step_size": 10}],
    )
    verbose: Literal[0, 1] = 0


@callbacks.register("learning_rate_scheduler", LearningRateSchedulerParams)
def learning_rate_scheduler(params: LearningRateSchedulerParams, ctx: BuildContext) -> Any:
    import keras

    formula = registry.schedules.get(params.schedule.type).factory(params.schedule)
    initial = getattr(params.schedule, "initial_learning_rate", None) or float(
        ctx.config.compile.optimizer.learning_rate
    )
    formula(0, initial)  # a broken (user) schedule fails before training, not at epoch 1
    return keras.callbacks.LearningRateScheduler(
        lambda epoch, _lr: formula(epoch, initial), verbose=params.verbose
    )
