"""Always-on checks during `fit`: a non-finite loss fails the run; a signal stops it safely."""

from __future__ import annotations

import math
from typing import Any

from cbrun.run.build import import_keras
from cbrun.run.interrupts import InterruptGuard

keras = import_keras()  # through cbrun, so TensorFlow's start-up chatter stays quiet


class NonFiniteLoss(Exception):
    """The training loss became NaN or infinite."""


class SafetyChecks(keras.callbacks.Callback):
    """Checks the loss after every batch and stops at batch or epoch boundaries on a signal.

    It must come after cbrun's state backup in the callback list, so that a signal arriving
    during an epoch's end stops the run only once that epoch is saved.

    Args:
        guard: the installed interrupt guard whose flag is checked.
        record: the run record; `interrupted_in_epoch`/`stop_reason` are noted in it.
    """

    def __init__(self, guard: InterruptGuard, record: dict[str, Any]):
        super().__init__()
        self.guard, self.record = guard, record
        self.epoch = 0
        self.where = "before training began"

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.guard.check()

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.epoch = epoch

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        loss = (logs or {}).get("loss")
        # A declared terminate_on_nan callback that already stopped the run decides instead.
        if loss is not None and not math.isfinite(float(loss)) and not self.model.stop_training:
            reason = f"non-finite loss at epoch {self.epoch + 1} batch {batch + 1}"
            self.record["stop_reason"] = reason
            raise NonFiniteLoss(f"{reason} (loss {float(loss)})")
        self._check(f"in epoch {self.epoch + 1} after batch {batch + 1}")

    def on_test_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self._check(f"in epoch {self.epoch + 1} during validation")

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self._check(f"after epoch {epoch + 1}")

    def on_train_end(self, logs: dict | None = None) -> None:
        self._check("after the last epoch")

    def _check(self, where: str) -> None:
        self.where = where
        self.guard.check()
