"""Change the strength of a data augmentation over epochs (noise level, flip probability)."""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import Field, NonNegativeFloat, NonNegativeInt, PositiveInt, model_validator

from cbrun.callbacks.base import BuildContext, FitOnlyParams
from cbrun.core.errors import CbrunError
from cbrun.data.base import require_arrays
from cbrun.registry import callbacks


class AugmentationScheduleParams(FitOnlyParams):
    """Augment training batches with a strength that follows a linear or step schedule.

    cbrun puts a `ScheduledAugmentation` layer at the model's input; it is active in training
    only and reads its strength from a variable that this callback sets at each epoch's start.
    `gaussian_noise`: noise standard deviation, in the units of the data as loaded (before
    the model's own standardization). `random_flip`: probability of mirroring an image
    left-right. `random_rotation`: the largest turn as a fraction of a full circle (0.1 means
    up to ±36°). Flips and rotations need image data. The strength is logged as
    `augmentation_<kind>`.
    """

    def batch_hooks(self) -> bool:
        return False

    type: Literal["augmentation_schedule"]
    augmentation: Literal["gaussian_noise", "random_flip", "random_rotation"] = Field(
        description="What to apply.", examples=["gaussian_noise"]
    )
    schedule: Literal["linear", "step"] = Field(
        "linear", description="`linear` ramp, or `step`: `steps` equal jumps."
    )
    start: NonNegativeFloat = Field(0.0, description="Strength up to `begin_epoch`.")
    end: NonNegativeFloat = Field(description="Strength from `end_epoch` on.", examples=[0.1])
    begin_epoch: NonNegativeInt = Field(0, description="First epoch of the ramp (0-based).")
    end_epoch: PositiveInt = Field(description="Epoch the ramp reaches `end`.", examples=[10])
    steps: PositiveInt = Field(4, description="Jumps of the `step` schedule.")
    seed: int | None = Field(
        None, description="Seed of the random draws; default: the experiment seed."
    )

    @model_validator(mode="after")
    def _valid_ramp(self) -> AugmentationScheduleParams:
        if self.end_epoch <= self.begin_epoch:
            raise ValueError(
                f"end_epoch ({self.end_epoch}) must be after begin_epoch ({self.begin_epoch})"
            )
        if self.augmentation != "gaussian_noise" and max(self.start, self.end) > 1:
            raise ValueError(
                f"{self.augmentation} strengths are a probability or a fraction of a turn: "
                "start and end must be ≤ 1"
            )
        return self

    def logged_metrics(self) -> list[str]:
        return [f"augmentation_{self.augmentation}"]

    @property
    def layer_name(self) -> str:
        return f"scheduled_{self.augmentation}"

    def strength(self, epoch: int) -> float:
        """The strength for 0-based `epoch`."""
        progress = min(max((epoch - self.begin_epoch) / (self.end_epoch - self.begin_epoch), 0), 1)
        if self.schedule == "step":
            progress = math.floor(progress * self.steps) / self.steps
        return self.start + (self.end - self.start) * progress

    def prepare_model(self, model: Any, dataset: Any, seed: int | None = None) -> Any:
        """`model` with the augmentation layer in front of its input (called by build_model)."""
        import keras

        from cbrun.models.layers import ScheduledAugmentation

        require_arrays(dataset, "augmentation_schedule")
        if self.augmentation != "gaussian_noise" and len(dataset.input_shape) != 3:
            raise CbrunError(
                f"{self.augmentation} needs images (height, width, channels); the data's input "
                f"shape is {dataset.input_shape} (for digits set data.as_images: true)"
            )
        if any(layer.name == self.layer_name for layer in model.layers):
            raise CbrunError(f"only one augmentation_schedule may use `{self.augmentation}`")
        layer = ScheduledAugmentation(
            self.augmentation,
            seed=self.seed if self.seed is not None else seed,
            name=self.layer_name,
        )
        if isinstance(model, keras.Sequential):
            return keras.Sequential(
                [keras.Input(shape=dataset.input_shape), layer, *model.layers], name=model.name
            )
        inputs = keras.Input(shape=dataset.input_shape)
        return keras.Model(inputs, model(layer(inputs)), name=model.name)


@callbacks.register("augmentation_schedule", AugmentationScheduleParams)
def augmentation_schedule(params: AugmentationScheduleParams, ctx: BuildContext) -> Any:
    import keras

    class AugmentationSchedule(keras.callbacks.Callback):
        """Sets the layer's strength variable at each epoch's start; logs it at the end."""

        def on_train_begin(self, logs: dict | None = None) -> None:
            try:
                self._layer = self.model.get_layer(params.layer_name)
            except ValueError:
                raise CbrunError(
                    f"augmentation_schedule: the model has no `{params.layer_name}` layer "
                    "(it is added when cbrun builds the model)"
                ) from None

        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self._layer.strength.assign(params.strength(epoch))

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            if logs is not None:
                logs[f"augmentation_{params.augmentation}"] = float(
                    keras.ops.convert_to_numpy(self._layer.strength)
                )

    return AugmentationSchedule()
