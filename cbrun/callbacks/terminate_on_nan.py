"""Stop training at the first batch whose loss is NaN or infinite."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from cbrun.callbacks.base import BuildContext, FitOnlyParams
from cbrun.registry import callbacks


class TerminateOnNaNParams(FitOnlyParams):
    """Stop training when the loss becomes NaN or infinite (keras TerminateOnNaN).

    cbrun checks every batch's loss anyway: what the run then becomes is set by
    `training.on_non_finite` (default `fail`: the run is failed, not completed). With
    `raise_error: true` Keras' own error fails the run, whatever `on_non_finite` says.
    """

    type: Literal["terminate_on_nan"]
    raise_error: bool = Field(False, description="Fail the run instead of stopping gracefully.")


@callbacks.register("terminate_on_nan", TerminateOnNaNParams)
def terminate_on_nan(params: TerminateOnNaNParams, ctx: BuildContext) -> Any:
    import keras
    import numpy as np

    class TerminateOnNaN(keras.callbacks.TerminateOnNaN):
        """Keras' TerminateOnNaN that also says why and when it stopped."""

        stop_reason: str | None = None

        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self.epoch = epoch

        def on_batch_end(self, batch: int, logs: dict | None = None) -> None:
            loss = (logs or {}).get("loss")
            if loss is not None and not np.isfinite(loss) and self.stop_reason is None:
                self.stop_reason = (
                    f"terminate_on_nan: loss was {float(loss)} at epoch {self.epoch + 1}, "
                    f"batch {batch + 1}"
                )
            super().on_batch_end(batch, logs)

    return TerminateOnNaN(raise_error=params.raise_error)
