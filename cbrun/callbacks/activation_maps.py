"""Activation maps: what named layers output for a few fixed samples, over epochs."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import ConfigDict, Field, PositiveFloat, PositiveInt

from cbrun.callbacks.base import BuildContext, CallbackParams, Phase
from cbrun.callbacks.layer_paths import capturing, conv_paths, find_layer, walk
from cbrun.callbacks.visual import (
    captioned_grid,
    class_names,
    grid_shape,
    input_captions,
    mosaic,
    periodic_callback,
    phase_samples,
)
from cbrun.core.errors import CbrunError
from cbrun.core.fields import RunPath
from cbrun.data.base import require_arrays
from cbrun.registry import callbacks

GIF_NAME = "activations.gif"


class ActivationMapsParams(CallbackParams):
    """The outputs of named layers for a few fixed samples, as channel grids, over epochs.

    Every `every` epochs and when training ends, the fixed seeded samples of the `split` go
    through the model in inference mode; each of `layers` (default: every conv layer) is drawn
    as a grid of its channels (each scaled to its own range; a Dense layer's units as one
    square) into `<directory>/epoch_NNN.png`, with a GIF over epochs at the end, and saved raw
    in `epoch_NNN.npz` (one array per layer name, samples first, with `indices` and `labels`).
    With `evaluate` in `phases`, each evaluation also draws fixed samples of what it evaluates
    (`evaluate_NN.*`); with `predict`, each prediction draws its first inputs (`predict_NN.*`).
    """

    def batch_hooks(self) -> bool:
        return False

    model_config = ConfigDict(json_schema_extra={"examples": [{"every": 5, "samples": 2}]})

    type: Literal["activation_maps"]
    phases: list[Phase] = Field(
        default_factory=lambda: ["fit"],
        min_length=1,
        description="`fit` (maps during training), `evaluate` (of the evaluated split's fixed "
        "samples) and/or `predict` (of the first inputs).",
    )
    layers: list[str] | None = Field(
        None,
        min_length=1,
        description="Layer names, or paths such as `block/conv` inside a sub-model; default: "
        "every conv layer.",
    )
    every: PositiveInt = Field(5, description="Draw every N epochs (and at the end).")
    samples: PositiveInt = Field(2, le=8, description="Samples drawn (≤ 8).")
    channels: PositiveInt = Field(16, le=256, description="At most this many channels a layer.")
    split: Literal["validation", "test"] = Field(
        "validation", description="Where the samples come from during training."
    )
    directory: RunPath = Field("activations", description="Folder for PNGs, NPZs and the GIF.")
    frame_seconds: PositiveFloat = Field(0.6, description="How long the GIF shows each frame.")

    def output_paths(self) -> list[str]:
        return [self.directory.rstrip("/") + "/"]

    def prepare_model(self, model: Any, dataset: Any, seed: int | None = None) -> Any:
        """Checks, when the model is built, that the layers exist (the model is unchanged)."""
        chosen_layers(model, self.layers)
        return model


def chosen_layers(model: Any, names: list[str] | None) -> list[tuple[str, Any]]:
    """The layers at the paths `names` (`block/conv` inside the sub-model `block`), or every
    conv layer anywhere in the model, with their paths; a clear error for a missing one."""
    if names is None:
        convs = conv_paths(model)
        if not convs:
            known = ", ".join(path for path, _ in walk(model))
            raise CbrunError(
                "activation_maps: the model has no conv layer; name the layers to draw in "
                f"`layers` (the model's: {known})"
            )
        return convs
    return [(name, find_layer(model, name, "activation_maps.layers")) for name in names]


def layer_outputs(model: Any, layers: list[Any], x: np.ndarray) -> list[np.ndarray]:
    """What each of `layers` outputs for `x`, in inference mode (one forward pass)."""
    import keras

    with capturing(layers) as found:
        model(np.asarray(x, dtype="float32"), training=False)
    missing = [layer.name for layer in layers if id(layer) not in found]
    if missing:
        raise CbrunError(
            f"activation_maps.layers: {', '.join(f'`{m}`' for m in missing)} not used when the "
            "model computes its output"
        )
    return [
        np.asarray(keras.ops.convert_to_numpy(found[id(layer)]), dtype="float32")
        for layer in layers
    ]


def channel_tiles(activation: np.ndarray, limit: int) -> np.ndarray:
    """One sample's layer output as tiles scaled to [0, 1]: channels of a map, or the units
    of a flat layer laid out as one near-square tile (NaN where it has no unit)."""
    if activation.ndim == 3:  # height × width × channels
        tiles = np.moveaxis(activation[..., :limit], -1, 0)
    else:
        flat = activation.ravel()
        side = int(np.ceil(np.sqrt(flat.size)))
        tiles = np.full(side * side, np.nan, dtype="float32")
        tiles[: flat.size] = flat
        tiles = tiles.reshape(1, side, side)
    low = np.nanmin(tiles, axis=(1, 2), keepdims=True)
    high = np.nanmax(tiles, axis=(1, 2), keepdims=True)
    return (tiles - low) / np.where(high > low, high - low, 1.0)  # padding stays NaN


def plot_activations(
    outputs: list[np.ndarray], names: list[str], captions: list[str], limit: int, title: str
) -> Any:
    """A panel per layer (rows) and sample (columns): the layer's channels side by side."""
    from matplotlib import colormaps

    colours = colormaps["viridis"].with_extremes(bad="white")  # NaN: the gaps between tiles
    panels, labels = [], []
    for name, activation in zip(names, outputs, strict=True):
        shape = "x".join(str(d) for d in activation.shape[1:])
        for column, caption in enumerate(captions):
            tiles = channel_tiles(activation[column], limit)
            grid = mosaic(tiles, grid_shape(len(tiles))[1], fill=np.nan)
            enlarge = max(1, 150 // grid.shape[0])  # every panel about 150 pixels tall
            grid = grid.repeat(enlarge, axis=0).repeat(enlarge, axis=1)
            panels.append(colours(np.ma.masked_invalid(grid))[..., :3])
            labels.append(f"{name} ({shape}), {caption}")
    return captioned_grid(panels, labels, title, len(captions), scale=1)


@callbacks.register("activation_maps", ActivationMapsParams)
def activation_maps(params: ActivationMapsParams, ctx: BuildContext) -> Any:
    dataset = ctx.dataset
    require_arrays(dataset, "activation_maps")
    samples = phase_samples(params, ctx, "activation_maps")
    names = class_names(dataset) if dataset.task == "classification" else None
    folder = Path(ctx.path(params.directory))

    def write(model: Any, phase: str, stem: str, when: str) -> Path:
        indices, x, y = samples[phase]
        chosen = chosen_layers(model, params.layers)
        outputs = layer_outputs(model, [layer for _, layer in chosen], x)
        folder.mkdir(parents=True, exist_ok=True)
        arrays = {path: output for (path, _), output in zip(chosen, outputs, strict=True)}
        if y is None:  # predict: the inputs have no labels, only names
            captions = input_captions(ctx, indices)
            labels = {"input_names": np.array(captions)}
        else:
            labels = {"labels": y}
            captions = [
                f"sample {i}: {names[int(label)] if names else f'{float(np.ravel(label)[0]):.3g}'}"
                for i, label in zip(indices, y, strict=True)
            ]
        np.savez(folder / f"{stem}.npz", indices=indices, **labels, **arrays)
        path = folder / f"{stem}.png"
        title = f"{when}: layer outputs"
        plot_activations(outputs, list(arrays), captions, params.channels, title).save(path)
        return path

    return periodic_callback(params, ctx, write, GIF_NAME)
