"""Keras layers cbrun inserts into models; imported with Keras so saved models load by name."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

AUGMENTATIONS = ("gaussian_noise", "random_flip")


@keras.saving.register_keras_serializable(package="cbrun")
class ScheduledAugmentation(keras.layers.Layer):
    """Augments its input in training only, with a strength read from a variable each step.

    `gaussian_noise` adds noise of standard deviation `strength`; `random_flip` mirrors each
    image left-right with probability `strength`. A callback assigns `strength` (a
    non-trainable weight) between epochs; the compiled train step reads the new value without
    retracing. In inference (`evaluate`, `predict`) the layer passes its input through.

    Args:
        kind: `gaussian_noise` or `random_flip`.
        seed: Seed of the layer's random draws. Default: None.
    """

    def __init__(self, kind: str, seed: int | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        if kind not in AUGMENTATIONS:
            raise ValueError(f"kind must be one of {', '.join(AUGMENTATIONS)}, got `{kind}`")
        self.kind, self.seed = kind, seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.strength = self.add_weight(
            shape=(), initializer="zeros", trainable=False, name="strength"
        )

    def call(self, inputs: Any, training: bool = False) -> Any:
        if not training:
            return inputs
        if self.kind == "gaussian_noise":
            noise = keras.random.normal(
                ops.shape(inputs), dtype=inputs.dtype, seed=self.seed_generator
            )
            return inputs + ops.cast(self.strength, inputs.dtype) * noise
        per_sample = (ops.shape(inputs)[0],) + (1,) * (len(inputs.shape) - 1)
        draws = keras.random.uniform(per_sample, seed=self.seed_generator)
        flip = draws < ops.cast(self.strength, draws.dtype)
        return ops.where(flip, ops.flip(inputs, axis=2), inputs)

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "kind": self.kind, "seed": self.seed}
