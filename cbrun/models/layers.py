"""Keras layers cbrun inserts into models; imported with Keras so saved models load by name."""

from __future__ import annotations

import math
from typing import Any

import keras
from keras import ops

AUGMENTATIONS = ("gaussian_noise", "random_flip", "random_rotation")


@keras.saving.register_keras_serializable(package="cbrun")
class ScheduledAugmentation(keras.layers.Layer):
    """Augments its input in training only, with a strength read from a variable each step.

    `gaussian_noise` adds noise of standard deviation `strength`; `random_flip` mirrors each
    image left-right with probability `strength`; `random_rotation` turns each image about its
    centre by an angle drawn uniformly from ±`strength` × 360° (Keras' `factor` convention),
    filling the corners with 0. A callback assigns `strength` (a
    non-trainable weight) between epochs; the compiled train step reads the new value without
    retracing. In inference (`evaluate`, `predict`) the layer passes its input through.

    Args:
        kind: `gaussian_noise`, `random_flip` or `random_rotation`.
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
        if self.kind == "random_rotation":
            return self._rotate(inputs)
        per_sample = (ops.shape(inputs)[0],) + (1,) * (len(inputs.shape) - 1)
        draws = keras.random.uniform(per_sample, seed=self.seed_generator)
        flip = draws < ops.cast(self.strength, draws.dtype)
        return ops.where(flip, ops.flip(inputs, axis=2), inputs)

    def _rotate(self, images: Any) -> Any:
        """Each image of an NHWC batch turned about its centre by its own random angle."""
        draws = keras.random.uniform(
            (ops.shape(images)[0],), minval=-1.0, maxval=1.0, seed=self.seed_generator
        )
        angles = draws * ops.cast(self.strength, "float32") * (2 * math.pi)
        cos, sin = ops.cos(angles), ops.sin(angles)
        cy = (ops.cast(ops.shape(images)[1], "float32") - 1) / 2
        cx = (ops.cast(ops.shape(images)[2], "float32") - 1) / 2
        zeros = ops.zeros_like(cos)
        # Each output pixel (x, y) reads the input at the centre + R(angle)(x - cx, y - cy).
        transform = ops.stack(
            [cos, -sin, cx - cos * cx + sin * cy, sin, cos, cy - sin * cx - cos * cy, zeros, zeros],
            axis=1,
        )
        rotated = ops.image.affine_transform(
            ops.cast(images, "float32"),
            transform,
            fill_mode="constant",
            data_format="channels_last",
        )
        return ops.cast(rotated, images.dtype)

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "kind": self.kind, "seed": self.seed}


@keras.saving.register_keras_serializable(package="cbrun")
class ImputedNormalization(keras.layers.Layer):
    """A numeric column with gaps: standardised, a gap (NaN) set to the mean (0 after
    standardising), and a 0/1 was-missing indicator appended.

    Args:
        mean: Training mean of the column's known values.
        variance: Their variance (1 for a constant column).
    """

    def __init__(self, mean: float, variance: float, **kwargs: Any):
        super().__init__(**kwargs)
        self.mean, self.variance = float(mean), float(variance)

    def call(self, inputs: Any) -> Any:
        inputs = ops.cast(inputs, "float32")
        missing = ops.isnan(inputs)
        scaled = (inputs - self.mean) / math.sqrt(self.variance)
        filled = ops.where(missing, ops.zeros_like(scaled), scaled)
        return ops.concatenate([filled, ops.cast(missing, "float32")], axis=-1)

    def compute_output_shape(self, input_shape: Any) -> Any:
        return (*input_shape[:-1], 2 * input_shape[-1])

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "mean": self.mean, "variance": self.variance}
