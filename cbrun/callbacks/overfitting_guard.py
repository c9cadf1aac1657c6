"""Stop training when the validation loss pulls away from the training loss."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, NonNegativeInt, PositiveInt, model_validator

from cbrun.callbacks.base import BuildContext, FitOnlyParams
from cbrun.core.console import counted
from cbrun.core.errors import CbrunError
from cbrun.registry import callbacks


class OverfittingGuardParams(FitOnlyParams):
    """Stop when val_loss / loss exceeds a ratio for N consecutive epochs; records why.

    Example: `{type: overfitting_guard, ratio: 1.5, patience: 3}` stops after the third epoch
    in a row whose validation loss is more than 1.5 times the training loss. Logs the ratio
    as `overfitting_ratio`; the reason for stopping goes to run.json's `stop_reason`.
    """

    def batch_hooks(self) -> bool:
        return False

    type: Literal["overfitting_guard"]
    ratio: float = Field(1.5, gt=1, description="Stop when val_metric / metric exceeds this.")
    patience: PositiveInt = Field(3, description="Consecutive epochs above the ratio to stop.")
    start_from_epoch: NonNegativeInt = Field(
        0, description="Epochs to let pass before watching (warm-up)."
    )
    metric: str = Field("loss", min_length=1, description="Training metric (the denominator).")
    val_metric: str = Field(
        "val_loss", min_length=1, description="Validation metric (the numerator)."
    )

    def logged_metrics(self) -> list[str]:
        return ["overfitting_ratio"]

    def watched_metrics(self) -> list[tuple[str, str]]:
        return [("metric", self.metric), ("val_metric", self.val_metric)]

    @model_validator(mode="after")
    def _names_pair_up(self) -> OverfittingGuardParams:
        if self.metric.startswith("val_"):
            raise ValueError(f"metric must be a training metric, got `{self.metric}`")
        if not self.val_metric.startswith("val_"):
            raise ValueError(
                f"val_metric must be a validation metric starting with `val_`, "
                f"got `{self.val_metric}` (did you mean `val_{self.val_metric}`?)"
            )
        return self


@callbacks.register("overfitting_guard", OverfittingGuardParams)
def overfitting_guard(params: OverfittingGuardParams, ctx: BuildContext) -> Any:
    import keras

    if ctx.dataset.validation is None:
        raise CbrunError(
            f"needs validation data to compare `{params.val_metric}` with `{params.metric}`; "
            "set data.split.validation above 0 (or data.validation_path)"
        )

    class OverfittingGuard(keras.callbacks.Callback):
        """Counts epochs whose ratio is above the limit in `wait` (saved for `--resume`)."""

        def __init__(self) -> None:
            super().__init__()
            self.stop_reason: str | None = None
            self.wait = 0

        def on_train_begin(self, logs: dict | None = None) -> None:
            self.stop_reason, self.wait = None, 0

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            logs = logs or {}
            if params.metric not in logs:
                raise CbrunError(
                    f"overfitting_guard: metric `{params.metric}` is not logged; "
                    f"available: {', '.join(sorted(logs))}"
                )
            if params.val_metric not in logs:
                return  # no validation this epoch (validation_freq > 1)
            ratio = float(logs[params.val_metric]) / max(float(logs[params.metric]), 1e-12)
            logs["overfitting_ratio"] = ratio
            if epoch < params.start_from_epoch:
                return
            self.wait = self.wait + 1 if ratio > params.ratio else 0
            if self.wait >= params.patience:
                self.model.stop_training = True
                self.stop_reason = (
                    f"overfitting_guard: {params.val_metric} / {params.metric} was above "
                    f"{params.ratio:g} for {counted(params.patience, 'epoch')} in a row "
                    f"(last {ratio:.3g}); "
                    f"stopped after epoch {epoch + 1}"
                )

    return OverfittingGuard()
