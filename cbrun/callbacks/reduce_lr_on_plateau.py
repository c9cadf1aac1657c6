"""Lower the learning rate when a monitored metric has stopped improving."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, NonNegativeFloat, NonNegativeInt

from cbrun.callbacks.base import BuildContext, MonitorParams
from cbrun.registry import callbacks


class ReduceLROnPlateauParams(MonitorParams):
    """Multiply the learning rate by `factor` when the monitor stalls (keras ReduceLROnPlateau).

    The new rate shows in the next epoch's `learning_rate` (history, CSV, TensorBoard).
    """

    def batch_hooks(self) -> bool:
        return False

    type: Literal["reduce_lr_on_plateau"]
    factor: float = Field(0.1, gt=0, lt=1, description="Multiplier applied at each reduction.")
    patience: NonNegativeInt = Field(10, description="Epochs without improvement before reducing.")
    min_delta: NonNegativeFloat = Field(1e-4, description="Smallest change that counts as better.")
    cooldown: NonNegativeInt = Field(0, description="Epochs to wait after a reduction.")
    min_lr: NonNegativeFloat = Field(0.0, description="The learning rate never goes below this.")
    verbose: Literal[0, 1] = 0


@callbacks.register("reduce_lr_on_plateau", ReduceLROnPlateauParams)
def reduce_lr_on_plateau(params: ReduceLROnPlateauParams, ctx: BuildContext) -> Any:
    import keras

    return keras.callbacks.ReduceLROnPlateau(
        monitor=params.monitor, mode=params.resolved_mode, **params.keras_args("monitor", "mode")
    )
