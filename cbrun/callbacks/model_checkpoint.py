"""Save the model or its weights during training, optionally only when it improves."""

from __future__ import annotations

import string
from typing import Any, Literal

from pydantic import Field, PositiveInt, model_validator

from cbrun.callbacks.base import BuildContext, MonitorParams
from cbrun.core.fields import RunPath, _relative_inside
from cbrun.registry import callbacks


class ModelCheckpointParams(MonitorParams):
    """Save the model or its weights during training, e.g. only the best (keras ModelCheckpoint).

    `filepath` may hold `{epoch}` and any logged metric: `epoch{epoch:02d}-{val_loss:.3f}.keras`.
    """

    def batch_hooks(self) -> bool:
        return self.save_freq != "epoch"

    type: Literal["model_checkpoint"]
    filepath: RunPath = Field(
        "checkpoints/epoch{epoch:03d}.keras",
        description="File inside the run directory; `.keras`/`.h5`, or `.weights.h5` for "
        "weights only; may use `{epoch}` and metric fields.",
    )
    save_best_only: bool = Field(False, description="Only save when the monitor improves.")
    save_weights_only: bool = Field(False, description="Save weights (`.weights.h5`) only.")
    save_freq: Literal["epoch"] | PositiveInt = Field(
        "epoch", description="`epoch`, or every N batches."
    )
    initial_value_threshold: float | None = Field(
        None, description="Only save once the monitor beats this value."
    )
    verbose: Literal[0, 1] = 0

    def output_paths(self) -> list[str]:
        return [self.filepath]

    def watched_metrics(self) -> list[tuple[str, str]]:
        """Metrics named in `filepath`, and `monitor` when it decides what is saved."""
        fields = [f for _, f, _, _ in string.Formatter().parse(self.filepath) if f]
        watched = [("filepath", f) for f in fields if f not in ("epoch", "batch")]
        if self.save_best_only or self.initial_value_threshold is not None:
            watched.append(("monitor", self.monitor))
        return watched

    @model_validator(mode="after")
    def _keras_accepts_the_path(self) -> ModelCheckpointParams:
        try:
            fields = [f for _, f, _, _ in string.Formatter().parse(self.filepath) if f is not None]
        except ValueError as error:
            raise ValueError(f"filepath: bad template `{self.filepath}`: {error}") from None
        for field in fields:
            if not field.isidentifier():
                raise ValueError(f"filepath: template field `{{{field}}}` must be a plain name")
        try:
            example = self.filepath.format(**{f: 1 if f == "epoch" else 0.5 for f in fields})
        except (ValueError, KeyError, IndexError) as error:
            raise ValueError(f"filepath: bad template `{self.filepath}`: {error}") from None
        _relative_inside(example)
        if self.save_weights_only and not example.endswith(".weights.h5"):
            raise ValueError(
                f"filepath must end with `.weights.h5` when save_weights_only is true "
                f"(got `{self.filepath}`)"
            )
        if not self.save_weights_only and example.endswith(".weights.h5"):
            raise ValueError(
                f"filepath `{self.filepath}` names a weights file, but save_weights_only is "
                "false, so Keras would write a whole HDF5 model under that name (which "
                "`eval --checkpoint` cannot load as weights): set save_weights_only: true, or "
                "end the name with `.keras`"
            )
        if not self.save_weights_only and not example.endswith((".keras", ".h5")):
            raise ValueError(
                f"filepath must end with `.keras` (or `.h5`) to save the whole model "
                f"(got `{self.filepath}`); set save_weights_only: true for `.weights.h5`"
            )
        return self


@callbacks.register("model_checkpoint", ModelCheckpointParams)
def model_checkpoint(params: ModelCheckpointParams, ctx: BuildContext) -> Any:
    import keras

    return keras.callbacks.ModelCheckpoint(
        ctx.path(params.filepath),
        monitor=params.monitor,
        mode=params.resolved_mode,
        **params.keras_args("filepath", "monitor", "mode"),
    )
