"""Stop training when a monitored metric has stopped improving."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, NonNegativeFloat, NonNegativeInt

from cbrun.callbacks.base import BuildContext, MonitorParams
from cbrun.registry import callbacks


class EarlyStoppingParams(MonitorParams):
    """Stop training when a monitored metric has stopped improving (keras EarlyStopping)."""

    def batch_hooks(self) -> bool:
        return False

    type: Literal["early_stopping"]
    patience: NonNegativeInt = Field(0, description="Epochs without improvement before stopping.")
    min_delta: NonNegativeFloat = Field(0.0, description="Smallest change that counts as better.")
    baseline: float | None = Field(None, description="Stop unless the metric beats this value.")
    restore_best_weights: bool = Field(False, description="Restore the best epoch's weights.")
    start_from_epoch: NonNegativeInt = Field(0, description="Epochs to wait before monitoring.")
    verbose: Literal[0, 1] = 0


@callbacks.register("early_stopping", EarlyStoppingParams)
def early_stopping(params: EarlyStoppingParams, ctx: BuildContext) -> Any:
    import keras

    return keras.callbacks.EarlyStopping(
        monitor=params.monitor,
        mode=params.resolved_mode,
        **params.keras_args("monitor", "mode"),
    )
