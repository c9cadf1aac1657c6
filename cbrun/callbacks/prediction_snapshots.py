"""Plot predictions on a fixed validation sample every N epochs; an animated GIF at the end."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, PositiveFloat, PositiveInt

from cbrun.callbacks.base import BuildContext, FitOnlyParams
from cbrun.callbacks.visual import (
    assemble_gif,
    class_names,
    class_probabilities,
    epoch_frames,
    fixed_sample,
    grid_shape,
    is_image_shape,
    split_arrays,
)
from cbrun.callbacks.visual import (
    figure as make_figure,
)
from cbrun.core.console import counted
from cbrun.core.fields import RunPath
from cbrun.registry import callbacks

GIF_NAME = "predictions.gif"


class PredictionSnapshotsParams(FitOnlyParams):
    """Every N epochs plot predictions on a fixed validation sample to PNG; a GIF at the end.

    Image classification: a grid of the images with predicted and true labels (wrong ones in
    red). Tabular classification: the predicted class probabilities of each sample, with its
    true class marked. Regression: predicted against true values. Writes
    `<directory>/epoch_NNN.png` and, when training ends, `<directory>/predictions.gif`.
    """

    def batch_hooks(self) -> bool:
        return False

    type: Literal["prediction_snapshots"]
    every: PositiveInt = Field(1, description="Plot every N epochs (and the last one).")
    samples: PositiveInt = Field(
        16, le=400, description="Validation samples in the fixed sample (at most 400)."
    )
    directory: RunPath = Field("snapshots", description="Folder for the PNGs and the GIF.")
    frame_seconds: PositiveFloat = Field(0.6, description="How long the GIF shows each frame.")

    def output_paths(self) -> list[str]:
        return [self.directory.rstrip("/") + "/"]


def plot_images(x: np.ndarray, y: np.ndarray, probabilities: np.ndarray, names: list[str]) -> Any:
    """A grid of images titled `predicted (probability) / true`, wrong predictions in red."""
    rows, columns = grid_shape(len(x))
    figure = make_figure(1.4 * columns, 1.55 * rows + 0.3)
    predicted = probabilities.argmax(axis=1)
    for index, image in enumerate(x):
        axes = figure.add_subplot(rows, columns, index + 1)
        shown = image[..., 0] if image.shape[-1] == 1 else image
        axes.imshow(shown, cmap="gray" if shown.ndim == 2 else None)
        right = predicted[index] == y[index]
        axes.set_title(
            f"{names[predicted[index]]} ({probabilities[index].max():.2f}) / {names[y[index]]}",
            fontsize=7,
            color="black" if right else "red",
        )
        axes.set_axis_off()
    return figure


def plot_class_probabilities(y: np.ndarray, probabilities: np.ndarray, names: list[str]) -> Any:
    """Each sample's predicted class probabilities as a heat map row; the true class boxed."""
    figure = make_figure(1.2 + 0.45 * len(names), 1.0 + 0.22 * len(y))
    axes = figure.add_subplot()
    image = axes.imshow(probabilities, cmap="viridis", vmin=0, vmax=1, aspect="auto")
    axes.scatter(y, np.arange(len(y)), marker="s", s=60, facecolors="none", edgecolors="red")
    axes.set_xticks(range(len(names)), names, fontsize=7)
    axes.set_yticks([])
    axes.set_xlabel("class (red box: true class)")
    axes.set_ylabel("validation samples")
    figure.colorbar(image, ax=axes, label="predicted probability")
    return figure


def plot_regression(y: np.ndarray, predicted: np.ndarray) -> Any:
    """Predicted against true values with the diagonal of perfect predictions."""
    figure = make_figure(4.2, 4.2)
    axes = figure.add_subplot()
    true, guess = y.ravel(), predicted.ravel()
    low, high = float(min(true.min(), guess.min())), float(max(true.max(), guess.max()))
    axes.plot([low, high], [low, high], color="gray", linestyle=":", linewidth=1)
    axes.scatter(true, guess, s=12)
    axes.set_xlabel("true")
    axes.set_ylabel("predicted")
    axes.grid(True, alpha=0.3)
    return figure


@callbacks.register("prediction_snapshots", PredictionSnapshotsParams)
def prediction_snapshots(params: PredictionSnapshotsParams, ctx: BuildContext) -> Any:
    import keras

    dataset = ctx.dataset
    validation = split_arrays(dataset, "validation", "prediction_snapshots")
    _, x, y = fixed_sample(validation, params.samples, ctx.config.experiment.seed)
    names = class_names(dataset)
    images = is_image_shape(dataset.input_shape)
    directory = Path(ctx.path(params.directory))

    class PredictionSnapshots(keras.callbacks.Callback):
        """Predicts the fixed sample in inference mode and saves one figure per snapshot."""

        def on_train_begin(self, logs: dict | None = None) -> None:
            directory.mkdir(parents=True, exist_ok=True)
            self._epoch: int | None = None
            self._written: int | None = None

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            self._epoch = epoch
            if (epoch + 1) % params.every == 0:
                self._snapshot(epoch)

        def _snapshot(self, epoch: int) -> None:
            self._written = epoch
            outputs = np.asarray(
                self.model.predict(x, batch_size=len(y), verbose=0), dtype="float64"
            )
            if dataset.task == "classification":
                probabilities = class_probabilities(outputs.reshape(len(y), -1))
                figure = (
                    plot_images(x, y, probabilities, names)
                    if images
                    else plot_class_probabilities(y, probabilities, names)
                )
                accuracy = float(np.mean(probabilities.argmax(axis=1) == y))
                title = f"epoch {epoch + 1}: accuracy {accuracy:.2f} on {counted(len(y), 'sample')}"
                if images:
                    title += " (each: predicted (probability) / true)"
            else:
                figure = plot_regression(y, outputs)
                error = float(np.mean(np.abs(outputs.reshape(y.shape) - y)))
                title = f"epoch {epoch + 1}: mean absolute error {error:.3g}"
            figure.suptitle(title, fontsize=9)
            frame = directory / f"epoch_{epoch + 1:03d}.png"
            figure.savefig(frame)

        def on_train_end(self, logs: dict | None = None) -> None:
            if self._epoch is not None and self._written != self._epoch:
                self._snapshot(self._epoch)  # the last epoch: a short or smoke run has a frame
            # All frames, so that a resumed run's GIF starts with the first session's.
            frames = epoch_frames(directory)
            if frames:
                assemble_gif(frames, directory / GIF_NAME, params.frame_seconds)

    return PredictionSnapshots()
