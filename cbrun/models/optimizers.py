"""The optimizer section: a Keras optimizer by name, its learning rate as a number or schedule."""

from __future__ import annotations

import inspect
from typing import Annotated, Any, Literal, Union

from pydantic import Field, NonNegativeFloat, PositiveFloat, PositiveInt, model_validator

from cbrun.core.errors import CbrunError, did_you_mean
from cbrun.core.fields import StrictModel

OPTIMIZERS = {
    "adadelta": "Adadelta",
    "adafactor": "Adafactor",
    "adagrad": "Adagrad",
    "adam": "Adam",
    "adamax": "Adamax",
    "adamw": "AdamW",
    "ftrl": "Ftrl",
    "lamb": "Lamb",
    "lion": "Lion",
    "nadam": "Nadam",
    "rmsprop": "RMSprop",
    "sgd": "SGD",
}


class ExponentialDecay(StrictModel):
    """`keras.optimizers.schedules.ExponentialDecay`, stepped per batch."""

    type: Literal["exponential_decay"]
    initial_learning_rate: PositiveFloat
    decay_steps: PositiveInt
    decay_rate: float = Field(gt=0, le=1)
    staircase: bool = False


class CosineDecay(StrictModel):
    """`keras.optimizers.schedules.CosineDecay` (with optional linear warm-up), per batch."""

    type: Literal["cosine_decay"]
    initial_learning_rate: PositiveFloat
    decay_steps: PositiveInt
    alpha: float = Field(0.0, ge=0, le=1)
    warmup_target: PositiveFloat | None = None
    warmup_steps: int = Field(0, ge=0)


class PiecewiseConstantDecay(StrictModel):
    """`keras.optimizers.schedules.PiecewiseConstantDecay`: values between step boundaries."""

    type: Literal["piecewise_constant_decay"]
    boundaries: list[PositiveInt] = Field(min_length=1)
    values: list[PositiveFloat] = Field(min_length=2)

    @model_validator(mode="after")
    def _one_more_value_than_boundaries(self) -> PiecewiseConstantDecay:
        if len(self.values) != len(self.boundaries) + 1:
            raise ValueError(
                f"needs one more value than boundaries: {len(self.boundaries)} boundaries, "
                f"{len(self.values)} values"
            )
        return self


class PolynomialDecay(StrictModel):
    """`keras.optimizers.schedules.PolynomialDecay`, per batch."""

    type: Literal["polynomial_decay"]
    initial_learning_rate: PositiveFloat
    decay_steps: PositiveInt
    end_learning_rate: NonNegativeFloat = 0.0001
    power: PositiveFloat = 1.0
    cycle: bool = False


class InverseTimeDecay(StrictModel):
    """`keras.optimizers.schedules.InverseTimeDecay`, per batch."""

    type: Literal["inverse_time_decay"]
    initial_learning_rate: PositiveFloat
    decay_steps: PositiveInt
    decay_rate: PositiveFloat
    staircase: bool = False


OptimizerSchedule = Annotated[
    Union[  # noqa: UP007
        ExponentialDecay, CosineDecay, PiecewiseConstantDecay, PolynomialDecay, InverseTimeDecay
    ],
    Field(discriminator="type"),
]

_SCHEDULE_CLASSES = {
    "exponential_decay": "ExponentialDecay",
    "cosine_decay": "CosineDecay",
    "piecewise_constant_decay": "PiecewiseConstantDecay",
    "polynomial_decay": "PolynomialDecay",
    "inverse_time_decay": "InverseTimeDecay",
}


class OptimizerSection(StrictModel):
    """A Keras optimizer by name; `args` passes any other keyword it takes."""

    name: Literal[tuple(OPTIMIZERS)] = Field(  # type: ignore[valid-type]
        "adam", description="Keras optimizer, by name."
    )
    learning_rate: PositiveFloat | OptimizerSchedule = Field(
        0.001, description="A number, or a per-batch schedule chosen by `type`."
    )
    clipnorm: PositiveFloat | None = Field(None, description="Clip each gradient to this norm.")
    clipvalue: PositiveFloat | None = Field(None, description="Clip gradient values to ±this.")
    global_clipnorm: PositiveFloat | None = Field(
        None, description="Clip all gradients together to this global norm."
    )
    weight_decay: NonNegativeFloat | None = None
    use_ema: bool = Field(False, description="Keep an exponential moving average of weights.")
    ema_momentum: float = Field(0.99, gt=0, lt=1)
    args: dict[str, Any] = Field(
        default_factory=dict, description="Other keyword arguments, e.g. `momentum: 0.9` for SGD."
    )

    @property
    def has_schedule(self) -> bool:
        return not isinstance(self.learning_rate, (int, float))

    def build(self) -> Any:
        """The Keras optimizer this section describes."""
        import keras

        cls = getattr(keras.optimizers, OPTIMIZERS[self.name])
        accepted = inspect.signature(cls).parameters
        for key in self.args:
            if key not in accepted:
                raise CbrunError(
                    f"compile.optimizer.args.{key}: {cls.__name__} takes no argument `{key}`."
                    f"{did_you_mean(key, accepted)}"
                )
        kwargs: dict[str, Any] = {"learning_rate": self._learning_rate(keras), **self.args}
        for key in ("clipnorm", "clipvalue", "global_clipnorm", "weight_decay"):
            if getattr(self, key) is not None:
                kwargs[key] = getattr(self, key)
        if self.use_ema:
            kwargs.update(use_ema=True, ema_momentum=self.ema_momentum)
        return cls(**kwargs)

    def _learning_rate(self, keras: Any) -> Any:
        if not self.has_schedule:
            return float(self.learning_rate)
        schedule = self.learning_rate
        cls = getattr(keras.optimizers.schedules, _SCHEDULE_CLASSES[schedule.type])
        return cls(**schedule.model_dump(exclude={"type"}))
