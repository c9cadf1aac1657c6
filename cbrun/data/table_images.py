"""Table columns of image file paths (`columns: {photo: image_path}` in the csv source).

A cell holds the path of an image file, relative to the table file's folder (or absolute).
Every file is checked with Pillow before training (as image folders are), so an empty
cell, a missing file or an unreadable one is an error naming the line and the file. While
training, tf.data decodes and resizes the images with the image folders' own decoder
(`image_size`, `color_mode`, `interpolation`, `crop_to_aspect_ratio`), pixel values 0-1; the
model takes the decoded image beside the other columns (`cbrun.models.table_inputs`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from cbrun.core.errors import CbrunError
from cbrun.data.image_directory import CHANNELS, bad_files, image_decoder
from cbrun.data.table import MISSING_TOKEN, row_names

KIND = "image_path"


def image_columns(kinds: dict[str, str]) -> list[str]:
    return [name for name, kind in kinds.items() if kind == KIND]


def image_shape(params: Any) -> tuple[int, int, int]:
    return (*params.image_size, CHANNELS[params.color_mode])


def resolved(
    x: dict[str, np.ndarray],
    names: list[str],
    table: str | Path,
    first_row: int = 0,
    check: bool = True,
) -> dict[str, np.ndarray]:
    """`x` with each image column's cells as paths joined to the table file's folder; with
    `check`, each file is checked first (an error names the line of the table and the file)."""
    folder = os.path.dirname(os.path.abspath(table))
    for name in names:
        cells = x[name]
        paths = np.array([os.path.join(folder, str(cell)) for cell in cells], dtype=object)
        x = {**x, name: paths}
        if not check:
            continue
        empty = np.flatnonzero((cells == MISSING_TOKEN) | (cells == "nan"))
        if len(empty):
            rows = row_names(table, empty + first_row)
            raise CbrunError(f"data.columns.{name}: no image path in {table}: {rows}")
        missing = [i for i, path in enumerate(paths) if not os.path.isfile(path)]
        if missing:
            raise CbrunError(
                f"data.columns.{name}: {row_names(table, np.array(missing) + first_row)} of "
                f"{table}: no image file {paths[missing[0]]}"
            )
        for path, reason in bad_files(list(paths))[:1]:
            row = np.array([list(paths).index(path) + first_row])
            raise CbrunError(
                f"data.columns.{name}: {row_names(table, row)} of {table}: cannot read the "
                f"image {path}: {reason}"
            )
    return x


def image_transform(params: Any, names: list[str]) -> Any:
    """The tf.data function over one `(x, *targets)` element that decodes the image
    columns of `x` into float32 images, pixel values 0-1."""
    decode = image_decoder(
        params.image_size,
        CHANNELS[params.color_mode],
        params.interpolation,
        params.crop_to_aspect_ratio,
    )

    def transform(x: dict[str, Any], *targets: Any) -> tuple[Any, ...]:
        decoded = {name: decode(x[name]) / 255.0 if name in names else x[name] for name in x}
        return (decoded, *targets)

    return transform


def decoded(params: Any, names: list[str], x: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """`x` (image columns holding checked paths) with its images decoded eagerly, as
    training decodes them (for `predict` and for the samples callbacks look at)."""
    import tensorflow as tf

    decode = image_transform(params, names)
    images = tf.data.Dataset.from_tensor_slices({n: x[n].astype(str) for n in names})
    batches = images.map(lambda cells: decode(cells)[0]).batch(256).as_numpy_iterator()
    found = list(batches)
    return {
        **x,
        **{n: np.concatenate([batch[n] for batch in found]).astype("float32") for n in names},
    }
