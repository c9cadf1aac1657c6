"""What the picture-writing callbacks share: a fixed seeded sample, class probabilities from
any kind of classifier output, matplotlib figures without pyplot, and looping GIFs of frames."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from cbrun.core.errors import CbrunError


def fixed_sample(
    data: tuple[np.ndarray, np.ndarray], count: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`count` samples chosen once by `seed`, in their original order: indices, x and y."""
    x, y = data
    chosen = np.sort(np.random.default_rng(seed).permutation(len(x))[:count])
    return chosen, x[chosen], y[chosen]


def split_arrays(dataset: Any, split: str, who: str) -> tuple[np.ndarray, np.ndarray]:
    """The `validation` or `test` arrays of `dataset`, or an error saying how to get them."""
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


def figure(width: float, height: float, dpi: int = 80) -> Any:
    """A matplotlib Figure on the Agg canvas (no pyplot, no display, no global state)."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=dpi, layout="constrained")


def grid_shape(count: int) -> tuple[int, int]:
    """Rows and columns of a near-square grid holding `count` panels."""
    columns = int(np.ceil(np.sqrt(count)))
    return int(np.ceil(count / columns)), columns


def epoch_frames(directory: Path, prefix: str = "epoch_") -> list[Path]:
    """`<prefix>NNN.png` files in epoch order (all of them, so a resumed run keeps the first's)."""
    return sorted(directory.glob(f"{prefix}*.png"), key=lambda p: int(p.stem[len(prefix) :]))


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
