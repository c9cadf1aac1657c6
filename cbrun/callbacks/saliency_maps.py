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

from cbrun.callbacks.attribution import Attributor, conv_layer, saliency
from cbrun.callbacks.base import BuildContext, CallbackParams, Phase
from cbrun.callbacks.visual import (
    captioned_grid,
    class_names,
    class_probabilities,
    grid_shape,
    input_captions,
    periodic_callback,
    phase_samples,
)
from cbrun.callbacks.visual import figure as make_figure
from cbrun.core.console import counted
from cbrun.core.errors import CbrunError
from cbrun.core.fields import RunPath
from cbrun.data.base import require_arrays
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
    With `evaluate` in `phases`, each evaluation (train's test evaluation, every `cbrun eval`)
    also maps a fixed sample of what it evaluates (`evaluate_NN.*`); with `predict`, each
    prediction maps its first `samples` inputs for their predicted class (`predict_NN.*`).
    """

    def batch_hooks(self) -> bool:
        return False

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"method": "integrated_gradients", "every": 5}]}
    )

    type: Literal["saliency_maps"]
    phases: list[Phase] = Field(
        default_factory=lambda: ["fit"],
        min_length=1,
        description="`fit` (maps during training), `evaluate` (of the evaluated split's fixed "
        "sample) and/or `predict` (of the first inputs, for their predicted class).",
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
        None,
        description="grad_cam: the conv layer's name, or its path such as `block/conv` inside "
        "a sub-model; default: the last conv layer anywhere in the model.",
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


def _captions(
    y: np.ndarray | None, predicted: np.ndarray, names: list[str], inputs: list[str]
) -> list[str]:
    """`true / predicted` per sample: class names, or the first target's values; without
    labels (predict) `input: predicted`, each input named by `inputs`."""
    if y is None:
        shown = [names[p] for p in predicted] if names else [f"{p:.3g}" for p in predicted]
        return [f"{name}: {p}" for name, p in zip(inputs, shown, strict=True)]
    if names:
        return [f"{names[t]} / {names[p]}" for t, p in zip(y.astype(int), predicted, strict=True)]
    true = y if y.ndim == 1 else y[:, 0]
    return [f"{t:.3g} / {p:.3g}" for t, p in zip(true, predicted, strict=True)]


@callbacks.register("saliency_maps", SaliencyMapsParams)
def saliency_maps(params: SaliencyMapsParams, ctx: BuildContext) -> Any:
    dataset = ctx.dataset
    require_arrays(dataset, "saliency_maps")
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

    compiled: dict[str, Any] = {}  # the Attributor of the model being trained, built once

    def attributor_for(model: Any) -> Attributor:
        if compiled.get("model") is not model:
            options = {k: getattr(params, k) for k in ("steps", "noise", "noise_samples", "layer")}
            attributor = Attributor(
                model, params.method, classification=classification, seed=seed, **options
            )
            compiled.update(model=model, attributor=attributor)
        return compiled["attributor"]

    def write(model: Any, phase: str, stem: str, when: str) -> Path:
        attributor = attributor_for(model)
        indices, x, y = samples[phase]
        outputs = attributor.predict(x)
        aim = "predicted" if y is None else params.target  # predict: there are no labels
        if classification:
            predicted = class_probabilities(outputs).argmax(axis=1)
            targets = y.astype(int) if aim == "true" else predicted
        else:
            predicted, targets = outputs[:, 0], np.zeros(len(x), dtype=int)
        maps = saliency(attributor(x, targets), len(shape))
        folder = Path(ctx.path(params.directory))
        folder.mkdir(parents=True, exist_ok=True)
        inputs = input_captions(ctx, indices)  # predict: what the captions call them
        labels = {"labels": y} if y is not None else {"input_names": np.array(inputs)}
        np.savez(
            folder / f"{stem}.npz",
            maps=maps,
            indices=indices,
            **labels,
            targets=targets,
            predicted=predicted,
            method=params.method,
            class_names=np.array(names, dtype=str),
        )
        target = f"the {aim} class" if classification else "the prediction"
        title = f"{when}: {METHOD_TITLES[params.method]} for {target}"
        path = folder / f"{stem}.png"
        if len(shape) == 1:
            caption = f"{title} ({counted(len(x), 'sample')})"
            plot_feature_bars(maps, features, caption).savefig(path)
        else:
            captions = _captions(y, predicted, names, inputs)
            if classification and y is not None:
                title += " (each: true / predicted)"
            plot_overlays(x, maps, captions, title).save(path)
        return path

    return periodic_callback(params, ctx, write, GIF_NAME)
