"""Saliency maps: how much each input pixel or feature drives the class score of fixed samples."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import (
    ConfigDict,
    Field,
    NonNegativeFloat,
    PositiveFloat,
    PositiveInt,
    model_validator,
)

from cbrun.callbacks.base import BuildContext, CallbackParams
from cbrun.callbacks.visual import (
    captioned_grid,
    class_names,
    class_probabilities,
    grid_shape,
    periodic_callback,
    phase_samples,
)
from cbrun.callbacks.visual import figure as make_figure
from cbrun.core.errors import CbrunError, did_you_mean
from cbrun.core.fields import RunPath
from cbrun.registry import callbacks

Method = Literal["integrated_gradients", "smoothgrad", "gradient", "grad_cam"]
METHOD_TITLES = {
    "integrated_gradients": "integrated gradients",
    "smoothgrad": "SmoothGrad",
    "gradient": "gradient",
    "grad_cam": "Grad-CAM",
}
GIF_NAME = "saliency.gif"


class SaliencyMapsParams(CallbackParams):
    """Attribution of each input pixel or feature to a class, for fixed samples, over epochs.

    Every `every` epochs and when training ends, the fixed seeded sample of the `split` is
    attributed to its true (or predicted) class with `method`, differentiating the class score
    *before* the softmax, so confident models still get maps. `integrated_gradients` (the
    default) integrates from an all-zero input; `smoothgrad` averages gradients of noisy copies;
    `gradient` is the plain gradient; `grad_cam` weighs the channels of a conv `layer` (default:
    the last) by their gradients. Images get overlays (`<directory>/epoch_NNN.png`, a GIF), flat
    features a bar chart per feature; the raw maps go to `epoch_NNN.npz` (`maps`: samples ×
    height × width or samples × features, with `indices`, `labels`, `targets`, `predicted`).
    With `evaluate` in `phases`, each evaluation also maps the test sample (`evaluate_NN.*`).
    """

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"method": "integrated_gradients", "every": 5}]}
    )

    type: Literal["saliency_maps"]
    phases: list[Literal["fit", "evaluate"]] = Field(  # type: ignore[assignment]
        default_factory=lambda: ["fit"],
        min_length=1,
        description="`fit` (maps during training) and/or `evaluate` (maps of the test sample).",
    )
    method: Method = Field("integrated_gradients", description="How to attribute.")
    target: Literal["true", "predicted"] = Field(
        "true", description="Attribute to each sample's true class or its predicted class."
    )
    every: PositiveInt = Field(5, description="Write maps every N epochs (and at the end).")
    samples: PositiveInt = Field(8, le=64, description="Samples in the fixed sample (≤ 64).")
    split: Literal["validation", "test"] = Field(
        "validation", description="Where the fixed sample comes from during training."
    )
    steps: PositiveInt = Field(
        32, le=1024, description="integrated_gradients: points on the path from the baseline."
    )
    noise: NonNegativeFloat = Field(
        0.15, description="smoothgrad: noise std as a fraction of the sample's value range."
    )
    noise_samples: PositiveInt = Field(
        16, le=1024, description="smoothgrad: noisy copies averaged per sample."
    )
    layer: str | None = Field(
        None, description="grad_cam: the conv layer's name; default: the last conv layer."
    )
    directory: RunPath = Field("saliency", description="Folder for the PNGs, NPZs and the GIF.")
    frame_seconds: PositiveFloat = Field(0.6, description="How long the GIF shows each frame.")

    @model_validator(mode="after")
    def _layer_only_for_grad_cam(self) -> SaliencyMapsParams:
        if self.layer is not None and self.method != "grad_cam":
            raise ValueError(f"`layer` is used by method grad_cam only (method is {self.method})")
        return self

    def output_paths(self) -> list[str]:
        return [self.directory.rstrip("/") + "/"]

    def prepare_model(self, model: Any, dataset: Any, seed: int | None = None) -> Any:
        """Checks, when the model is built, that Grad-CAM has its conv layer (model unchanged)."""
        if self.method == "grad_cam":
            conv_layer(model, self.layer)
        return model


def conv_layer(model: Any, name: str | None) -> Any:
    """The layer named `name`, or the model's last conv layer; a clear error if there is none."""
    convs = [layer for layer in model.layers if is_conv(layer)]
    if name is None:
        if not convs:
            raise CbrunError(
                "saliency_maps: method grad_cam needs a conv layer (Conv2D and kin) with a "
                "height × width output; the model has none: use integrated_gradients"
            )
        return convs[-1]
    names = [layer.name for layer in model.layers]
    if name not in names:
        raise CbrunError(
            f"saliency_maps.layer: the model has no layer `{name}`."
            f"{did_you_mean(name, names)} Conv layers: {', '.join(c.name for c in convs) or '-'}"
        )
    layer = model.get_layer(name)
    if len(layer.output.shape) != 4:
        raise CbrunError(
            f"saliency_maps.layer: `{name}` gives {tuple(layer.output.shape)}, not a "
            "batch × height × width × channels map; name a conv layer"
        )
    return layer


def is_conv(layer: Any) -> bool:
    try:
        return "Conv" in type(layer).__name__ and len(layer.output.shape) == 4
    except (AttributeError, ValueError):  # a layer never called has no output
        return False


class Scorer:
    """Class scores of a model before its softmax, with the output of one layer captured.

    For a model ending in a Dense layer with a softmax or sigmoid, the scores are that layer's
    pre-activation (the logits): their gradients do not vanish when the model is confident.
    Otherwise they are the model's outputs (`kind` says which).
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
        if not isinstance(model, keras.Sequential) and (dense or capture is not None):
            # A functional model: one graph from the inputs to the captured output and to the
            # input of the last layer (or to the outputs).
            ends = [capture.output] if capture is not None else []
            ends.append(last.input if dense else model.outputs[0])
            self.graph = keras.Model(model.inputs, ends)

    def __call__(self, x: Any) -> tuple[Any, Any]:
        """(the captured layer's output or None, the class scores) for inputs `x`."""
        import keras

        captured = None
        if self.graph is not None:
            ends = self.graph(x, training=False)
            ends = list(ends) if isinstance(ends, (list, tuple)) else [ends]
            if self.capture is not None:
                captured = ends.pop(0)
            hidden = ends[0]
        elif self.head is None and self.capture is None:
            hidden = self.model(x, training=False)
        else:  # a Sequential model, layer by layer
            hidden = x
            for layer in self.model.layers[:-1] if self.head is not None else self.model.layers:
                hidden = layer(hidden, training=False)
                if layer is self.capture:
                    captured = hidden
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
    traced once for any batch size."""
    import tensorflow as tf

    signature = [
        tf.TensorSpec((None, *input_shape), "float32"),
        tf.TensorSpec((None,), "int32"),
    ]

    @tf.function(input_signature=signature)
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
        if method not in METHOD_TITLES:
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


def overlays(x: np.ndarray, maps: np.ndarray, alpha: float = 0.8) -> np.ndarray:
    """RGB tiles: each image in grey (or its colours) under its map in `inferno`, blended by the
    map's strength; images and maps are each scaled to their own range."""
    from matplotlib import colormaps

    images = x[..., 0] if x.ndim == 4 and x.shape[-1] == 1 else x
    low = images.reshape(len(x), -1).min(axis=1).reshape((-1,) + (1,) * (images.ndim - 1))
    high = images.reshape(len(x), -1).max(axis=1).reshape(low.shape)
    images = (images - low) / np.where(high > low, high - low, 1.0)
    rgb = images if images.ndim == 4 else np.repeat(images[..., None], 3, axis=-1)
    peaks = maps.reshape(len(maps), -1).max(axis=1).reshape(-1, 1, 1)
    scaled = maps / np.where(peaks > 0, peaks, 1.0)
    heat = colormaps["inferno"](scaled)[..., :3]
    weight = alpha * np.sqrt(scaled)[..., None]  # strong attribution shows, weak lets it through
    return ((1 - weight) * rgb + weight * heat).astype("float32")


def plot_overlays(x: np.ndarray, maps: np.ndarray, captions: list[str], title: str) -> Any:
    """The images with their maps over them, in a grid, each captioned (e.g. true / predicted)."""
    height = maps.shape[1]
    scale = max(1, 96 // height)  # an 8×8 digit is drawn 96 pixels tall
    columns = grid_shape(len(x))[1]
    return captioned_grid(list(overlays(x, maps)), captions, title, columns, scale)


def plot_feature_bars(maps: np.ndarray, names: list[str], title: str, top: int = 30) -> Any:
    """Mean share of each feature in the samples' attribution, largest first."""
    totals = maps.sum(axis=1, keepdims=True)
    shares = np.divide(maps, totals, out=np.zeros_like(maps), where=totals > 0).mean(axis=0)
    order = np.argsort(shares)[::-1][:top]
    figure = make_figure(6.0, 1.0 + 0.22 * len(order))
    axes = figure.add_subplot()
    axes.barh(range(len(order)), shares[order])
    axes.set_yticks(range(len(order)), [names[i] for i in order], fontsize=7)
    axes.invert_yaxis()
    axes.set_xlabel("mean share of the attribution")
    axes.grid(True, axis="x", alpha=0.3)
    axes.set_title(title, fontsize=9)
    return figure


@callbacks.register("saliency_maps", SaliencyMapsParams)
def saliency_maps(params: SaliencyMapsParams, ctx: BuildContext) -> Any:
    dataset = ctx.dataset
    shape = tuple(dataset.input_shape)
    if len(shape) not in (1, 2, 3):
        raise CbrunError(
            f"saliency_maps needs images (height × width [× channels]) or a row of features; "
            f"the data's input shape is {shape}"
        )
    if params.method == "grad_cam" and len(shape) != 3:
        raise CbrunError(
            f"method grad_cam needs images (height × width × channels); the data's input shape "
            f"is {shape} (for digits set data.as_images: true)"
        )
    seed = ctx.config.experiment.seed
    samples = phase_samples(params, ctx, "saliency_maps")
    classification = dataset.task == "classification"
    names = class_names(dataset) if classification else []
    features = dataset.feature_names or [f"feature {i}" for i in range(shape[0])]

    attributors: dict[int, Attributor] = {}

    def write(model: Any, phase: str, stem: str, when: str) -> Path:
        if id(model) not in attributors:
            attributors.clear()
            attributors[id(model)] = Attributor(
                model,
                params.method,
                classification=classification,
                steps=params.steps,
                noise=params.noise,
                noise_samples=params.noise_samples,
                layer=params.layer,
                seed=seed,
            )
        attributor = attributors[id(model)]
        indices, x, y = samples[phase]
        outputs = attributor.predict(x)
        if classification:
            probabilities = class_probabilities(outputs)
            predicted = probabilities.argmax(axis=1)
            targets = y.astype(int) if params.target == "true" else predicted
        else:
            predicted = outputs[:, 0]
            targets = np.zeros(len(x), dtype=int)
        attributions = attributor(x, targets)
        maps = saliency(attributions, len(shape))
        folder = Path(ctx.path(params.directory))
        folder.mkdir(parents=True, exist_ok=True)
        np.savez(
            folder / f"{stem}.npz",
            maps=maps,
            indices=indices,
            labels=y,
            targets=targets,
            predicted=predicted,
            method=params.method,
            class_names=np.array(names, dtype=str),
        )
        target = f"the {params.target} class" if classification else "the prediction"
        title = f"{when}: {METHOD_TITLES[params.method]} for {target}"
        path = folder / f"{stem}.png"
        if len(shape) == 1:
            plot_feature_bars(maps, features, f"{title} ({len(x)} samples)").savefig(path)
        else:
            if classification:
                captions = [
                    f"{names[t]} / {names[p]}"
                    for t, p in zip(y.astype(int), predicted, strict=True)
                ]
                title += " (each: true / predicted)"
            else:
                true = y if y.ndim == 1 else y[:, 0]
                captions = [f"{t:.3g} / {p:.3g}" for t, p in zip(true, predicted, strict=True)]
            plot_overlays(x, maps, captions, title).save(path)
        return path

    return periodic_callback(params, ctx, write, GIF_NAME)
