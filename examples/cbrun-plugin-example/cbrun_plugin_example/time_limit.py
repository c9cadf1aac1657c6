"""`time_limit`: stop training once it has run for a given number of minutes."""

from __future__ import annotations

import time
from typing import Any, Literal

from pydantic import Field, PositiveFloat

from cbrun.callbacks.base import BuildContext, CallbackParams
from cbrun.registry import callbacks


class TimeLimitParams(CallbackParams):
    """Stop training after the epoch that reaches `max_minutes` of training time."""

    type: Literal["time_limit"]
    max_minutes: PositiveFloat = Field(
        description="Training time after which no new epoch starts.", examples=[120]
    )


@callbacks.register("time_limit", TimeLimitParams)
def time_limit(params: TimeLimitParams, ctx: BuildContext) -> Any:
    import keras  # inside the factory: `cbrun list-callbacks` and `validate` stay fast

    class TimeLimit(keras.callbacks.Callback):
        """Sets `stop_training` at the end of the first epoch past the limit."""

        stop_reason: str | None = None  # cbrun records it in run.json

        def on_train_begin(self, logs: dict | None = None) -> None:
            self.started = time.monotonic()

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            minutes = (time.monotonic() - self.started) / 60
            if minutes >= params.max_minutes:
                self.model.stop_training = True
                self.stop_reason = (
                    f"time_limit: {minutes:.2f} minutes of training reached the limit of "
                    f"{params.max_minutes:g} after epoch {epoch + 1}"
                )

    return TimeLimit()
