"""Always-on checks during `fit`: a non-finite loss meets `training.on_non_finite`; a signal
stops the run safely."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from cbrun.run.build import import_keras
from cbrun.run.interrupts import InterruptGuard
from cbrun.run.state import SavedState, read_state, restore_variables

keras = import_keras()  # through cbrun, so TensorFlow's start-up chatter stays quiet


class NonFiniteLoss(Exception):
    """The training loss became NaN or infinite at 0-based `epoch` and `batch`."""

    def __init__(self, message: str, epoch: int = 0, batch: int = 0, loss: float = math.nan):
        super().__init__(message)
        self.epoch, self.batch, self.loss = epoch, batch, loss


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
        # Also after a declared terminate_on_nan stopped the run: `on_non_finite` decides.
        if loss is not None and not math.isfinite(float(loss)):
            reason = f"non-finite loss at epoch {self.epoch + 1} batch {batch + 1}"
            self.record["stop_reason"] = reason
            raise NonFiniteLoss(f"{reason} (loss {float(loss)})", self.epoch, batch, float(loss))
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


class NonFinitePolicy:
    """What `training.on_non_finite` does once `SafetyChecks` raised `NonFiniteLoss`.

    `fail` lets the error fail the run. `stop` and `rollback` put the model (weights and
    optimizer) back to the run's last saved state; `stop` then ends training, `rollback` also
    multiplies the learning rate by `rollback_factor` and training goes on from there (the
    caller resumes from the returned state), at most `max_rollbacks` times. Every event is
    recorded in run.json under `non_finite`.

    Args:
        training: the config's `training` section.
        record: the run record.
    """

    def __init__(self, training: Any, record: dict[str, Any]):
        self.policy, self.factor = training.on_non_finite, training.rollback_factor
        self.limit = training.max_rollbacks
        self.record = record
        self.events: list[dict[str, Any]] = record.get("non_finite", {}).get("events", [])
        self.stopped = False
        self.message = ""

    @property
    def rollbacks(self) -> int:
        return sum(1 for event in self.events if event["action"] == "rollback")

    def recover(
        self, error: NonFiniteLoss, model: Any, run_dir: Path, callbacks: list[Any]
    ) -> SavedState:
        """Put `model` back to the last saved state and return it; raise `error` if the run
        must fail instead (policy `fail`, rollbacks used up, or no saved state)."""
        saved = read_state(run_dir) if self.policy != "fail" else None
        if saved is None:
            raise error
        if self.policy == "rollback" and self.rollbacks >= self.limit:
            raise NonFiniteLoss(
                f"{error}; gave up after {self.limit} rollback{'s' * (self.limit != 1)} "
                "(training.max_rollbacks)",
                error.epoch,
                error.batch,
                error.loss,
            )
        rate = float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))
        restore_variables(model, saved)  # weights and optimizer state; runs no code
        where = f"at epoch {error.epoch + 1} batch {error.batch + 1}"
        event = {
            "action": self.policy,
            "epoch": error.epoch + 1,
            "batch": error.batch + 1,
            "loss": str(error.loss),
            "restored_epoch": saved.epoch,
        }
        if self.policy == "rollback":
            lowered = rate * self.factor
            model.optimizer.learning_rate.assign(lowered)
            event.update(learning_rate_before=rate, learning_rate=lowered)
            self.message = (
                f"non-finite loss ({error.loss}) {where}: rolled back to the state after epoch "
                f"{saved.epoch}, learning rate {rate:.4g} -> {lowered:.4g} "
                f"(rollback {self.rollbacks + 1} of at most {self.limit})"
            )
            for callback in callbacks:  # a stop a callback noted in the diverged attempt
                if getattr(callback, "stop_reason", None):
                    callback.stop_reason = None
        else:
            self.stopped = True
            self.message = (
                f"non-finite loss ({error.loss}) {where}: stopped (training.on_non_finite: "
                f"stop); the model is the one saved after epoch {saved.epoch}"
            )
        self.events.append(event)
        self.record["non_finite"] = {"policy": self.policy, "events": self.events}
        self.record.pop("stop_reason", None)
        return saved

    def outcome(self) -> dict[str, Any]:
        """run.json fields that override the usual outcome of a run this policy stopped."""
        if not self.stopped:
            return {}
        return {"stop_reason": self.message, "model_epoch": self.events[-1]["restored_epoch"]}
