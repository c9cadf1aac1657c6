"""The csv source for a table larger than memory (`data.stream`): read in chunks, never whole.

1. One pass over each file checks every chunk as the in-memory path checks the whole file
   (kinds, gaps, text in a numeric column: the same messages, the same line numbers) and
   keeps only the target (and sample-weight) column: one value per row.
2. The split is drawn from those labels by the same seeded, stratified code as in memory,
   over row positions, so the same rows train, validate and test.
3. A second pass over the training rows fits the preprocessing (means and variances,
   vocabularies: `cbrun.data.table_stats`, the same code as in memory).
4. Training, evaluation and prediction read the file again each pass (`table_stream`).

The kinds are guessed from the first chunk (declare `columns:` where that is wrong).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from cbrun.core.errors import CbrunError
from cbrun.data.base import Dataset, check_arrays, limit_arrays, split_arrays
from cbrun.data.csv import (
    CsvParams,
    check_columns,
    encoded_labels,
    feature_kinds,
    finish_table,
    numbers,
    target_classes,
    where,
)
from cbrun.data.fingerprint import fingerprint_data
from cbrun.data.table import read_chunks, table_columns
from cbrun.data.table_images import decoded, image_columns, image_shape, image_transform, resolved
from cbrun.data.table_stream import chunk_stream, table_pieces

SPLITS = {"train": "path", "validation": "validation_path", "test": "test_path"}


def streamed_csv(params: CsvParams, seed: int) -> Dataset:
    files = {split: getattr(params, key) for split, key in SPLITS.items() if getattr(params, key)}
    _, first = next(_chunks(params, params.path)())
    check_columns(params, list(first.columns), params.path)
    kinds = feature_kinds(params, first)
    impute = params.missing == "impute"
    tabular = impute or any(k != "numeric" for k in kinds.values())

    images = image_columns(kinds)

    def features(frame: Any, path: str, first_row: int | None = None) -> Any:
        """The model's inputs from rows of the file at `path`; `first_row`: check the cells
        (image files too) and name bad ones by line (the checking pass)."""
        x = table_columns(frame, kinds, impute, path, where(params, path), first_row or 0)
        if images:
            x = resolved(x, images, path, first_row or 0, check=first_row is not None)
        return x if tabular else np.stack([x[c] for c in kinds], axis=1)

    seen: dict[str, set[str]] = {split: set() for split in files}  # image files named

    def checked(frame: Any, path: str, first_row: int) -> Any:
        x = features(frame, path, first_row)
        for name in images:
            folder = os.path.dirname(os.path.abspath(path))
            seen[next(s for s, p in files.items() if p == path)].update(
                os.path.relpath(cell, folder) for cell in x[name]
            )
        return x

    scans = {split: _scan(params, path, checked) for split, path in files.items()}
    task, classes = target_classes(params, scans["train"][0])
    targets = {}
    for split, (labels, weights) in scans.items():
        y = encoded_labels(params, labels, classes, files[split])
        _, y = check_arrays(np.zeros((len(y), 1)), y, task, files[split])  # labels only
        weight = () if weights is None else (numbers(weights, files[split], "data.sample_weight"),)
        targets[split] = (y, *weight)
    del scans

    # The split the in-memory path draws, over row positions instead of rows.
    y = targets["train"][0]
    positions, limited = limit_arrays(np.arange(len(y)), y, params.limit, seed)
    split = params.split.model_copy(update={k: 0.0 for k in files if k != "train"})
    drawn = split_arrays(positions, limited, split, seed, task == "classification")
    keep = {
        name: None if part is None else part[0] for name, part in zip(SPLITS, drawn, strict=True)
    }
    keep.update({name: np.arange(len(targets[name][0])) for name in files if name != "train"})
    if keep["train"] is None or not len(keep["train"]):
        raise CbrunError(f"{params.path}: no training samples left after the split")

    spec = _spec(kinds, tabular)

    def stream(name: str) -> Any:
        rows, path = keep[name], files.get(name, params.path)
        if rows is None or not len(rows):
            return None
        return chunk_stream(
            _chunks(params, path),
            lambda frame: features(frame, path),
            targets.get(name, targets["train"]),
            rows,
            spec,
            (len(kinds),),
            params.shuffle_buffer,
            image_transform(params, images) if images else None,
            (lambda x: decoded(params, images, x)) if images else None,
        )

    streams = {name: stream(name) for name in SPLITS}
    dataset = Dataset(
        streams["train"],
        streams["validation"],
        streams["test"],
        task,
        num_classes=len(classes) if classes else None,
        feature_names=list(kinds),
        class_names=[str(c) for c in classes] if classes else None,
        record={
            "streamed": {
                "chunk_rows": params.chunk_rows,
                "rows": {s: len(t[0]) for s, t in targets.items()},
            }
        },
    )
    train_x = (
        piece[0]
        for piece in table_pieces(
            _chunks(params, params.path),
            lambda frame: features(frame, params.path),
            targets["train"],
            keep["train"],
        )
    )
    finish_table(params, dataset, kinds, tabular, train_x, targets["train"][0][keep["train"]])
    if images:
        dataset.extra["image_shape"] = image_shape(params)
    keys = {f"data.{key}": getattr(params, key) for key in SPLITS.values()}
    named = {  # the images each table file names: their names and sizes, as for image folders
        f"data.{SPLITS[split]}:images": (os.path.dirname(os.path.abspath(files[split])), found)
        for split, found in seen.items()
        if images
    }
    return dataset.add_fingerprint(fingerprint_data(keys, listed=named))


def _chunks(params: CsvParams, path: str) -> Any:
    return lambda: read_chunks(path, where(params, path), params.delimiter, params.chunk_rows)


def _scan(params: CsvParams, path: str, features: Any) -> tuple[Any, Any]:
    """The target column (and the sample-weight column) of the whole file, after checking
    every chunk's feature cells."""
    import pandas as pd

    labels, weights = [], []
    for first, frame in _chunks(params, path)():
        check_columns(params, list(frame.columns), path)
        x = features(frame, path, first)
        if isinstance(x, np.ndarray) and not np.isfinite(x).all():
            bad = int((~np.isfinite(x)).any(axis=1).sum())
            raise CbrunError(f"{path}: {bad} samples have missing or non-finite feature values")
        labels.append(frame[params.target])
        if params.sample_weight:
            weights.append(frame[params.sample_weight])
    join = lambda parts: pd.concat(parts, ignore_index=True)  # noqa: E731
    return join(labels), join(weights) if weights else None


def _spec(kinds: dict[str, str], tabular: bool) -> Any:
    """The tf.TensorSpec of a batch of features: a dict of 1-D columns, or one float array."""
    import tensorflow as tf

    if not tabular:
        return tf.TensorSpec([None, len(kinds)], tf.float32)
    return {
        name: tf.TensorSpec([None], tf.float32 if kind == "numeric" else tf.string)
        for name, kind in kinds.items()
    }
