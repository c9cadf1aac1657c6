"""What the picture-writing callbacks share: a fixed seeded sample, class probabilities from
any kind of classifier output, matplotlib figures without pyplot, and looping GIFs of frames."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cbrun.core.errors import CbrunError
from cbrun.data.base import Split, pick, split_size, take


def fixed_sample(data: Split, count: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`count` samples chosen once by `seed`, in their original order: indices, x and y (a
    streamed split loads just those)."""
    chosen = pick(split_size(data), count, seed)
    x, y = take(data, chosen)
    return chosen, x, y


def split_arrays(dataset: Any, split: str, who: str) -> Split:
    """The `validation` or `test` split of `dataset`, or an error saying how to get one."""
    data = getattr(dataset, split)
    if data is None:
        raise CbrunError(
            f"{who} needs {split} data; set data.split.{split} above 0 (or data.{split}_path)"
        )
    return data


def class_names(dataset: Any) -> list[str]:
    return list(dataset.class_names or [str(c) for c in range(dataset.output_units)])


def is_image_shape(shape: tuple[int, ...]) -> bool:
    """Height × width × channels with 1 or 3 channels: drawn as pictures."""
    return len(shape) == 3 and shape[-1] in (1, 3)


def class_probabilities(outputs: np.ndarray) -> np.ndarray:
    """Class probabilities from softmax outputs, logits, or one sigmoid (or logit) column."""
    if outputs.shape[1] == 1:
        positive = (
            outputs if 0 <= outputs.min() <= outputs.max() <= 1 else 1 / (1 + np.exp(-outputs))
        )
        return np.concatenate([1 - positive, positive], axis=1)
    if outputs.min() >= 0 and np.allclose(outputs.sum(axis=1), 1, atol=1e-3):
        return outputs
    shifted = np.exp(outputs - outputs.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def figure(width: float, height: float, dpi: int = 80, layout: str | None = "constrained") -> Any:
    """A matplotlib Figure on the Agg canvas (no pyplot, no display, no global state).

    `layout=None` leaves the margins to the caller: constrained layout draws the figure once
    more to measure it, which is most of the cost of a simple plot."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=dpi, layout=layout)


def grid_shape(count: int) -> tuple[int, int]:
    """Rows and columns of a near-square grid holding `count` panels."""
    columns = int(np.ceil(np.sqrt(count)))
    return int(np.ceil(count / columns)), columns


def mosaic(tiles: np.ndarray, columns: int, pad: int = 1, fill: float = 1.0) -> np.ndarray:
    """Tiles (n × h × w [× 3]) laid out in rows of `columns`, `pad` pixels of `fill` between.

    One image drawn with one `imshow` is far cheaper than a subplot per tile.
    """
    count, height, width = tiles.shape[:3]
    rows = int(np.ceil(count / columns))
    shape = (rows * (height + pad) + pad, columns * (width + pad) + pad, *tiles.shape[3:])
    canvas = np.full(shape, fill, dtype="float32")
    for index, tile in enumerate(tiles):
        top = pad + (index // columns) * (height + pad)
        left = pad + (index % columns) * (width + pad)
        canvas[top : top + height, left : left + width] = tile
    return canvas


def captioned_grid(
    panels: list[np.ndarray], captions: list[str], title: str, columns: int, scale: int
) -> Any:
    """RGB panels (h × w × 3 in [0, 1]) enlarged `scale` times, in a white grid with a caption
    over each and a title: a PIL image, drawn without matplotlib (a write stays cheap)."""
    from PIL import Image, ImageDraw, ImageFont

    font, title_font = ImageFont.load_default(size=11), ImageFont.load_default(size=13)
    height = max(panel.shape[0] for panel in panels) * scale
    width = max(panel.shape[1] for panel in panels) * scale
    caption_width = max(int(font.getlength(c)) for c in captions) if captions else 0
    cell_width, cell_height = max(width, caption_width) + 12, height + 22
    rows = int(np.ceil(len(panels) / columns))
    image_width = max(columns * cell_width + 12, int(title_font.getlength(title)) + 24)
    image = Image.new("RGB", (image_width, rows * cell_height + 34), "white")
    draw = ImageDraw.Draw(image)
    draw.text((image_width / 2, 8), title, fill="black", font=title_font, anchor="mt")
    for index, (panel, caption) in enumerate(zip(panels, captions, strict=True)):
        row, column = divmod(index, columns)
        left, top = 6 + column * cell_width, 30 + row * cell_height
        pixels = (np.clip(panel, 0, 1) * 255).astype("uint8")
        tile = Image.fromarray(pixels).resize(
            (panel.shape[1] * scale, panel.shape[0] * scale), Image.Resampling.NEAREST
        )
        draw.text(
            (left + cell_width / 2 - 6, top + 2), caption, fill="black", font=font, anchor="mt"
        )
        image.paste(tile, (left + (cell_width - 12 - tile.width) // 2, top + 18))
    return image


PHASE_PREFIXES = ("epoch_", "evaluate_", "predict_")
"""How the picture callbacks name their files in each phase: epoch_005, evaluate_01, ..."""


def epoch_frames(directory: Path, prefix: str = "epoch_") -> list[Path]:
    """`<prefix>NNN.png` files in number order (all of them, so a resumed run keeps the
    first's); `prefix`: one of PHASE_PREFIXES."""
    frames = [p for p in directory.glob(f"{prefix}*.png") if p.stem[len(prefix) :].isdecimal()]
    return sorted(frames, key=lambda p: int(p.stem[len(prefix) :]))


def assemble_gif(frames: list[Path], path: Path, frame_seconds: float) -> None:
    """An endlessly looping GIF of the PNG `frames`, in order (frames of other sizes are padded)."""
    from PIL import Image

    images = [Image.open(frame).convert("RGB") for frame in frames]
    width = max(image.width for image in images)
    height = max(image.height for image in images)
    padded = []
    for image in images:
        if image.size != (width, height):
            canvas = Image.new("RGB", (width, height), "white")
            canvas.paste(image, (0, 0))
            image = canvas
        padded.append(image)
    padded[0].save(
        path,
        save_all=True,
        append_images=padded[1:],
        duration=int(frame_seconds * 1000),
        loop=0,
    )


Writer = Callable[[Any, str, str, str], Path]
"""`write(model, phase, stem, when)`: draw one picture (and its data) named `stem` for `phase`
(`fit`, `evaluate` or `predict`); `when` is its title's start, e.g. `epoch 5`."""


def next_number(directory: Path, prefix: str) -> int:
    """One more than the highest `<prefix>NN` file in `directory` (1 for none): a new write
    never overwrites an earlier one, even when some were deleted."""
    numbers = [
        int(path.stem[len(prefix) :])
        for path in directory.glob(f"{prefix}*")
        if path.stem[len(prefix) :].isdecimal()
    ]
    return max(numbers, default=0) + 1


@dataclass
class PeriodicPictures:
    """A callback that writes every `every` epochs and at the end of training, then a GIF of
    all epoch frames; built once per phase, the `evaluate` one writes at each evaluation
    (`evaluate_NN`, titled with `evaluated`) and the `predict` one at each prediction
    (`predict_NN`)."""

    every: int
    write: Writer
    directory: Path
    gif: str
    frame_seconds: float
    evaluated: str = "test split"

    def callback(self) -> Any:
        import keras

        spec = self

        class Pictures(keras.callbacks.Callback):
            def __init__(self) -> None:
                super().__init__()
                self._in_fit = False
                self._epoch: int | None = None
                self._written: int | None = None

            def on_train_begin(self, logs: dict | None = None) -> None:
                self._in_fit = True

            def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
                self._epoch = epoch + 1
                if self._epoch % spec.every == 0:
                    self._write_epoch()

            def _write_epoch(self) -> None:
                spec.write(self.model, "fit", f"epoch_{self._epoch:03d}", f"epoch {self._epoch}")
                self._written = self._epoch

            def on_train_end(self, logs: dict | None = None) -> None:
                self._in_fit = False
                if self._epoch is not None and self._written != self._epoch:
                    self._write_epoch()  # the final model, also after an early stop
                frames = epoch_frames(spec.directory)
                if frames:
                    assemble_gif(frames, spec.directory / spec.gif, spec.frame_seconds)

            def on_test_end(self, logs: dict | None = None) -> None:
                if self._in_fit:
                    return  # a validation pass inside fit
                number = next_number(spec.directory, "evaluate_")
                when = f"evaluation {number} ({spec.evaluated})"
                spec.write(self.model, "evaluate", f"evaluate_{number:02d}", when)

            def on_predict_end(self, logs: dict | None = None) -> None:
                number = next_number(spec.directory, "predict_")
                spec.write(self.model, "predict", f"predict_{number:02d}", f"prediction {number}")

        return Pictures()


def phase_samples(params: Any, ctx: Any, who: str) -> dict[str, tuple]:
    """The fixed sample of the phase `ctx` is built for (indices, x, y): in `fit` from
    `params.split`, in `evaluate` from what is evaluated, in `predict` the first inputs (y is
    None: there are no labels)."""
    seed = ctx.config.experiment.seed
    if ctx.phase == "predict":
        x = ctx.inputs
        if isinstance(x, dict) or not hasattr(x, "shape"):
            raise CbrunError(f"{who} (predict) needs the inputs as one array of features")
        x = np.asarray(x)
        shape = tuple(ctx.dataset.input_shape)
        if x.ndim < 1 or tuple(x.shape[1:]) != shape:
            raise CbrunError(
                f"{who} (predict): the inputs have shape {tuple(x.shape)}, the model takes "
                f"(samples, {', '.join(map(str, shape))})"
            )
        count = min(params.samples, len(x))
        return {"predict": (np.arange(count), x[:count], None)}
    if ctx.phase == "evaluate":
        split = "train" if ctx.evaluated == "data" else ctx.evaluated  # new data: in `train`
        data = split_arrays(ctx.dataset, split, f"{who} (evaluate)")
        return {"evaluate": fixed_sample(data, params.samples, seed)}
    data = split_arrays(ctx.dataset, params.split, who)
    return {"fit": fixed_sample(data, params.samples, seed)}


def input_captions(ctx: Any, indices: np.ndarray) -> list[str]:
    """What predict-phase pictures call the inputs at `indices`: their file names (as in
    predictions.csv), or `input N` (the row of the input file)."""
    names = ctx.input_names
    if names is not None and len(names) > int(np.max(indices, initial=-1)):
        return [Path(names[i]).name for i in indices]
    return [f"input {i}" for i in indices]


def periodic_callback(params: Any, ctx: Any, write: Writer, gif: str) -> Any:
    """The Keras callback calling `write` every `params.every` epochs, at the end, at each
    evaluation and at each prediction, with the GIF `gif` in `params.directory`."""
    evaluated = "new data" if ctx.evaluated == "data" else f"{ctx.evaluated} split"
    return PeriodicPictures(
        every=params.every,
        write=write,
        directory=Path(ctx.path(params.directory)),
        gif=gif,
        frame_seconds=params.frame_seconds,
        evaluated=evaluated,
    ).callback()
