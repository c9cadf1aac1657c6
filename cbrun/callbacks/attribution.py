"""Attribution of inputs to a class score: integrated gradients, SmoothGrad, the gradient and
Grad-CAM, differentiating the score before the softmax (used by `saliency_maps`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from cbrun.callbacks.layer_paths import capturing, conv_paths, find_layer, is_conv
from cbrun.core.errors import CbrunError

METHODS = ("integrated_gradients", "smoothgrad", "gradient", "grad_cam")


def conv_layer(model: Any, name: str | None) -> Any:
    """The layer at path `name` (`block/conv` inside the sub-model `block`), or the last conv
    layer found anywhere in the model; a clear error if there is none."""
    convs = conv_paths(model)
    if name is None:
        if not convs:
            raise CbrunError(
                "saliency_maps: method grad_cam needs a conv layer (Conv2D and kin) with a "
                "height × width output; the model has none: use integrated_gradients"
            )
        return convs[-1][1]
    layer = find_layer(model, name, "saliency_maps.layer", listing="Conv layers")
    try:
        rank = len(layer.output.shape)
    except (AttributeError, ValueError, TypeError):
        rank = 4 if is_conv(layer) else 0
    if rank != 4:
        raise CbrunError(
            f"saliency_maps.layer: `{name}` does not give a batch × height × width × channels "
            "map; name a conv layer"
        )
    return layer


class Scorer:
    """Class scores of a model before its softmax, with the output of one layer captured.

    For a model ending in a Dense layer with a softmax or sigmoid, the scores are that layer's
    pre-activation (the logits): their gradients do not vanish when the model is confident.
    Otherwise they are the model's outputs (`kind` says which). The captured layer may sit
    anywhere, also inside a sub-model: its output is recorded as the model runs.
    """

    def __init__(self, model: Any, capture: Any = None) -> None:
        import keras

        self.model, self.capture = model, capture
        last = model.layers[-1]
        activation = getattr(getattr(last, "activation", None), "__name__", "")
        dense = isinstance(last, keras.layers.Dense) and activation in ("softmax", "sigmoid")
        self.head = last if dense else None
        self.kind = "logits" if dense else "outputs"
        self.graph = None
        if dense and not isinstance(model, keras.Sequential):
            self.graph = keras.Model(model.inputs, last.input)  # up to the head's input

    def __call__(self, x: Any) -> tuple[Any, Any]:
        """(the captured layer's output or None, the class scores) for inputs `x`."""
        import keras

        with capturing([] if self.capture is None else [self.capture]) as found:
            if self.head is None:
                hidden = self.model(x, training=False)
            elif self.graph is not None:
                hidden = self.graph(x, training=False)
            else:  # a Sequential model, layer by layer up to the head
                hidden = x
                for layer in self.model.layers[:-1]:
                    hidden = layer(hidden, training=False)
        captured = None
        if self.capture is not None:
            captured = found.get(id(self.capture))
            if captured is None:
                raise CbrunError(
                    f"saliency_maps.layer: `{self.capture.name}` is not used when the model "
                    "computes its output; name a conv layer on the path to it"
                )
        if self.head is None:
            return captured, hidden
        scores = keras.ops.matmul(hidden, self.head.kernel)
        if self.head.use_bias:
            scores = scores + self.head.bias
        return captured, scores


def _selected(scores: Any, targets: Any, classification: bool) -> Any:
    """Each row's score of its target class (one-unit classifiers: signed towards the target);
    for regression the sum of the outputs."""
    import tensorflow as tf

    scores = tf.reshape(scores, (tf.shape(scores)[0], -1))
    if not classification:
        return tf.reduce_sum(scores, axis=1)
    if scores.shape[1] == 1:
        return scores[:, 0] * tf.where(targets == 0, -1.0, 1.0)
    return tf.gather(scores, targets, axis=1, batch_dims=1)


def _gradient_function(scorer: Scorer, classification: bool, input_shape: tuple) -> Any:
    """A compiled `(x, targets) -> d score[target] / d x` (or d score / d captured output),
    traced once for any batch size.

    Without autograph: the code traced (the scorer's loop over layers, Keras' calls) has no
    tensor-dependent Python control flow to convert, and converting Keras' code made the one
    trace take 2-3x as long (the first write of integrated gradients: 1.13 s against 0.34 s).
    """
    import tensorflow as tf

    signature = [
        tf.TensorSpec((None, *input_shape), "float32"),
        tf.TensorSpec((None,), "int32"),
    ]

    @tf.function(input_signature=signature, autograph=False)
    def gradients(x: Any, targets: Any) -> Any:
        with tf.GradientTape() as tape:
            tape.watch(x)
            captured, scores = scorer(x)
            selected = _selected(scores, targets, classification)
        if scorer.capture is None:
            return tape.gradient(selected, x), x
        return tape.gradient(selected, captured), captured

    return gradients


class Attributor:
    """Attributes inputs of one model with one method; compiled once, reused at every write."""

    def __init__(
        self,
        model: Any,
        method: str = "integrated_gradients",
        *,
        classification: bool = True,
        steps: int = 32,
        noise: float = 0.15,
        noise_samples: int = 16,
        layer: str | None = None,
        seed: int = 0,
    ) -> None:
        if method not in METHODS:
            raise ValueError(f"unknown attribution method `{method}`")
        self.method, self.steps, self.noise, self.noise_samples = (
            method,
            steps,
            noise,
            noise_samples,
        )
        self.rng = np.random.default_rng(seed)
        capture = conv_layer(model, layer) if method == "grad_cam" else None
        self.scorer = Scorer(model, capture)
        self.classification = classification
        self.compiled: Any = None

    def __call__(self, x: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """Attributions of `x` (same shape) to class `targets`; Grad-CAM: samples × H × W."""
        import tensorflow as tf

        x = np.asarray(x, dtype="float32")
        chosen = tf.constant(np.asarray(targets).astype("int32"))
        if self.compiled is None:
            self.compiled = _gradient_function(self.scorer, self.classification, x.shape[1:])

        def grad(inputs: np.ndarray, classes: Any = chosen) -> np.ndarray:
            return self.compiled(tf.constant(inputs), classes)[0].numpy()

        if self.method == "gradient":
            return grad(x)
        if self.method == "smoothgrad":
            flat = x.reshape(len(x), -1)
            spread = (flat.max(axis=1) - flat.min(axis=1)) * self.noise
            spread = spread.reshape((-1,) + (1,) * (x.ndim - 1))
            total = np.zeros_like(x)
            for _ in range(self.noise_samples):
                total += grad(x + self.rng.normal(size=x.shape).astype("float32") * spread)
            return total / self.noise_samples
        if self.method == "integrated_gradients":
            baseline = np.zeros_like(x)
            per_call = max(1, 256 // len(x))  # points of the path differentiated in one batch
            total = np.zeros_like(x)
            alphas = (np.arange(self.steps, dtype="float32") + 0.5) / self.steps  # midpoint rule
            for start in range(0, self.steps, per_call):
                chunk = alphas[start : start + per_call]
                path = baseline[None] + chunk.reshape((-1,) + (1,) * x.ndim) * (x - baseline)[None]
                grads = grad(path.reshape((-1, *x.shape[1:])), tf.tile(chosen, [len(chunk)]))
                total += grads.reshape((len(chunk), *x.shape)).sum(axis=0)
            return (x - baseline) * total / self.steps
        grads, maps = (t.numpy() for t in self.compiled(tf.constant(x), chosen))  # grad_cam
        weights = grads.mean(axis=(1, 2), keepdims=True)  # each channel's mean gradient
        cam = np.maximum((weights * maps).sum(axis=-1), 0)[..., None]
        return tf.image.resize(cam, x.shape[1:3], method="bilinear").numpy()[..., 0]

    def predict(self, x: np.ndarray) -> np.ndarray:
        """The model's outputs in inference mode (one call, no `predict` loop)."""
        import keras

        outputs = self.scorer.model(np.asarray(x, dtype="float32"), training=False)
        return np.asarray(keras.ops.convert_to_numpy(outputs), dtype="float64").reshape(len(x), -1)


def attribute(
    model: Any,
    x: np.ndarray,
    targets: np.ndarray,
    method: str = "integrated_gradients",
    **options: Any,
) -> np.ndarray:
    """Attributions of `x` to class `targets` by `method` (options: see `Attributor`).

    The score differentiated is the class score before the softmax when the model's last layer
    allows it (see `Scorer`); for regression, the sum of the outputs.
    """
    return Attributor(model, method, **options)(x, targets)


def saliency(attributions: np.ndarray, input_ndim: int) -> np.ndarray:
    """Non-negative maps: |attribution| summed over channels (images) or per feature."""
    magnitude = np.abs(attributions)
    if input_ndim == 3 and magnitude.ndim == 4:
        magnitude = magnitude.sum(axis=-1)
    return magnitude.astype("float32")
