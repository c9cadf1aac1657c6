"""Tabular data from CSV, TSV, Parquet or JSON-lines files: a target column and features of
any kind (numbers, categories, text), read as they come (see `cbrun.data.table`)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field, PositiveFloat, PositiveInt

from cbrun.core.errors import CbrunError, did_you_mean
from cbrun.data.base import Dataset, FileDataParams, make_file_dataset
from cbrun.data.image_directory import Interpolation
from cbrun.data.table import (
    ColumnKind,
    guess_kind,
    read_header,
    read_table,
    row_names,
    table_columns,
)
from cbrun.data.table_stats import fit_columns, learned
from cbrun.registry import datasets

MAX_AUTO_CLASSES = 20


class CsvParams(FileDataParams):
    """A table with a header row (`.csv`, `.tsv`, `.parquet`, `.jsonl`): one target column and
    feature columns; string columns are categories, numbers stay numbers."""

    read_by_validate: ClassVar[bool] = True

    type: Literal["csv"]
    target: str = Field(description="Name of the target column.", examples=["label"])
    features: list[str] | None = Field(
        None, description="Feature columns; default: every column but the target."
    )
    columns: dict[str, ColumnKind] = Field(
        default_factory=dict,
        description="Kind of a column where the guess (numbers numeric, the rest categorical) "
        "is wrong: numeric, categorical, text, image_path (image files, relative to the table "
        "file) or ignore.",
        examples=[{"zip_code": "categorical", "review": "text", "photo": "image_path"}],
    )
    missing: Literal["error", "impute"] = Field(
        "error",
        description="Empty feature cells: `error` names them; `impute` fills numbers with the "
        "training mean (plus a was-missing indicator) and gives categories their own token.",
    )
    max_categories: PositiveInt = Field(
        1000,
        description="Values kept per categorical column (the most frequent in training); "
        "rarer and unseen ones share one out-of-vocabulary slot.",
    )
    text_tokens: PositiveInt = Field(
        2000, description="Vocabulary size of each text column (TF-IDF of its words)."
    )
    normalize_target: bool = Field(
        False,
        description="Regression: the model learns the target standardised, and a fixed layer "
        "turns its output back into the target's units (predictions and metrics in units).",
    )
    sample_weight: str | None = Field(
        None, description="A column of per-row weights for the loss (not a feature)."
    )
    classes: list[str] | None = Field(
        None,
        min_length=2,
        description="Class names in the model's order (default: the sorted labels of "
        "data.path); a file may then hold a few of them (`cbrun eval --data` sets this).",
    )
    task: Literal["auto", "classification", "regression"] = Field(
        "auto",
        description="`auto`: classification for text/bool targets or integers with at most "
        f"{MAX_AUTO_CLASSES} distinct values, else regression.",
    )
    delimiter: str | None = Field(
        None, min_length=1, max_length=1, description="Field separator; default `,` (tab: .tsv)."
    )
    stream: bool | Literal["auto"] = Field(
        "auto",
        description="Read the table in chunks while training instead of all at once, so memory "
        "does not grow with the file; `auto`: when data.path is larger than `stream_above_mb`.",
    )
    stream_above_mb: PositiveFloat = Field(
        256, description="File size (MB) above which `stream: auto` streams."
    )
    image_size: tuple[PositiveInt, PositiveInt] = Field(
        (64, 64), description="Height and width every image of an image_path column is resized to."
    )
    color_mode: Literal["grayscale", "rgb", "rgba"] = Field(
        "rgb", description="Channels of image_path images: grayscale 1, rgb 3, rgba 4."
    )
    interpolation: Interpolation = Field("bilinear", description="Resize method (tf.image.resize).")
    crop_to_aspect_ratio: bool = Field(
        False, description="Crop the largest centred box of the target aspect ratio first."
    )
    chunk_rows: PositiveInt = Field(10_000, description="Rows read at once when streaming.")
    shuffle_buffer: PositiveInt = Field(
        10_000, description="Rows held for shuffling the training split when streaming."
    )

    @property
    def streamed(self) -> bool:
        """Whether the table is read in chunks (`stream`, or its size under `auto`; always
        with an image_path column, whose images tf.data decodes)."""
        if "image_path" in self.columns.values():
            return True
        if self.stream != "auto":
            return self.stream
        try:
            return os.path.getsize(self.path) > self.stream_above_mb * 1e6
        except OSError:
            return False

    def column_problems(self, columns: list[str], path: str) -> list[tuple[str, str]]:
        """(key, message) for each column named here that the file at `path` lacks, and a
        target or sample weight listed among the features (the model would see the answer)."""
        leaks = [
            ("features", f"lists `{column}`, which is the {role}: the model would see it")
            for role, column in (("target", self.target), ("sample weight", self.sample_weight))
            if column and column in (self.features or [])
        ]
        named = [("target", self.target)]
        named += [("features", c) for c in self.features or []]
        named += [(f"columns.{c}", c) for c in self.columns]
        named += [("sample_weight", self.sample_weight)] if self.sample_weight else []
        return leaks + [
            (
                key,
                f"{path} has no column `{column}`.{did_you_mean(column, columns)} "
                f"Columns: {', '.join(columns)}",
            )
            for key, column in named
            if column not in columns
        ]

    def file_problems(self) -> list[tuple[str, str]]:
        paths = (self.path, self.validation_path, self.test_path)
        for path in filter(None, paths):
            header = read_header(path, self.delimiter)
            if header is not None and self.column_problems(header, path):
                return self.column_problems(header, path)
        return []


@datasets.register("csv", CsvParams)
def csv(params: CsvParams, seed: int) -> Dataset:
    if params.streamed:
        from cbrun.data.csv_stream import streamed_csv

        return streamed_csv(params, seed)
    main = read_frame(params, params.path)
    kinds = feature_kinds(params, main)
    tabular = params.missing == "impute" or any(k != "numeric" for k in kinds.values())
    task, classes = target_classes(params, main[params.target])

    def read(path: str) -> tuple:
        frame = main if path == params.path else read_frame(params, path)
        lacking = [c for c in kinds if c not in frame.columns]
        if lacking:
            raise CbrunError(
                f"{where(params, path)}: {path} has no column `{lacking[0]}`, a feature of "
                f"{params.path}.{did_you_mean(lacking[0], list(frame.columns))} Columns: "
                f"{', '.join(frame.columns)}",
                hint="every file needs the features data.path has (or list them under "
                "data.features)",
            )
        x = table_columns(frame, kinds, params.missing == "impute", path, where(params, path))
        if not tabular:  # all numeric, no gaps: one float array, as before tables had kinds
            x = np.stack([x[c] for c in kinds], axis=1)
        y = encoded_labels(params, frame[params.target], classes, path)
        if params.sample_weight:
            return x, y, numbers(frame[params.sample_weight], path, "data.sample_weight")
        return x, y

    dataset = make_file_dataset(
        read,
        params,
        seed,
        task,
        source=params.path,
        num_classes=len(classes or []) or None,
        feature_names=list(kinds),
        class_names=[str(c) for c in classes] if classes else None,
    )
    return finish_table(params, dataset, kinds, tabular, [dataset.train[0]], dataset.train[1])


def where(params: CsvParams, path: str) -> str:
    """The config key that names `path`."""
    keys = ("path", "validation_path", "test_path")
    return "data." + next(k for k in keys if getattr(params, k) == path)


def read_frame(params: CsvParams, path: str) -> Any:
    frame = read_table(path, where(params, path), params.delimiter)
    check_columns(params, list(frame.columns), path)
    return frame


def check_columns(params: CsvParams, columns: list[str], path: str) -> None:
    for key, message in params.column_problems(columns, path)[:1]:
        raise CbrunError(f"data.{key}: {message}")


def target_classes(params: CsvParams, target: Any) -> tuple[str, list[Any] | None]:
    """The task, and for classification the classes (refusing one class alone)."""
    task = params.task if params.task != "auto" else _infer_task(target)
    classes = _classes(params, target) if task == "classification" else None
    if classes is not None and len(classes) < 2:
        raise CbrunError(
            f"data.target: `{params.target}` in {params.path} holds one class only "
            f"({classes[0] if classes else 'none'}); classification needs two or more"
        )
    if params.normalize_target and task != "regression":
        raise CbrunError("data.normalize_target: only a regression target can be standardised")
    return task, classes


def encoded_labels(params: CsvParams, labels: Any, classes: list | None, path: str) -> Any:
    """The target column as float32 numbers or int32 class codes; gaps and unknown labels
    are errors naming the rows or labels."""
    import pandas as pd

    gaps = np.flatnonzero(labels.isna().to_numpy())
    if len(gaps):
        raise CbrunError(
            f"data.target: `{params.target}` is empty in {path}: {row_names(path, gaps)}"
        )
    if classes is None:
        return numbers(labels, path, "data.target")
    named = labels.astype(str) if params.classes else labels  # names are text
    codes = pd.Categorical(named, categories=classes).codes  # -1: not a known class
    if (codes < 0).any():
        unknown = sorted({str(v) for v in labels[codes < 0]})
        known = f"the classes {', '.join(classes)}" if params.classes else params.path
        raise CbrunError(
            f"data.target: `{params.target}` in {path} has labels not in {known}: "
            f"{', '.join(unknown[:5])}"
        )
    return codes.astype("int32")


def finish_table(
    params: CsvParams,
    dataset: Dataset,
    kinds: dict[str, ColumnKind],
    tabular: bool,
    train_columns: Iterable[Any],
    train_labels: np.ndarray,
) -> Dataset:
    """What the preprocessing learns from the training split (its feature columns, in one
    or more pieces), recorded and kept for the model (`cbrun.models.table_inputs`)."""
    if tabular:
        dataset.columns = dict(kinds)
        fitted = fit_columns(train_columns, kinds, params.max_categories)
        dataset.extra.update(
            impute=params.missing == "impute",
            text_tokens=params.text_tokens,
            max_categories=params.max_categories,
            fitted=fitted,
        )
        dataset.record["preprocessing"] = learned(fitted)
    if params.normalize_target:
        y = train_labels.astype("float64")
        dataset.target_scale = (float(y.mean()), float(y.std() or 1.0))
    return dataset


def feature_kinds(params: CsvParams, frame) -> dict[str, ColumnKind]:
    """Each feature column's kind, declared or guessed, in the file's order."""
    skip = {params.target, params.sample_weight}
    features = params.features or [c for c in frame.columns if c not in skip]
    kinds = {c: params.columns.get(c) or guess_kind(frame[c]) for c in features}
    kept = {c: k for c, k in kinds.items() if k != "ignore"}
    if not kept:
        raise CbrunError(f"data.columns: no feature columns left in {params.path}")
    return kept


def numbers(column, path: str, where: str) -> np.ndarray:
    import pandas as pd

    numbers = pd.to_numeric(column, errors="coerce")
    bad = np.flatnonzero(numbers.isna().to_numpy())
    if len(bad):
        first = column.iloc[bad[0]]
        shown = "an empty cell" if pd.isna(first) else f"first value {first!r}"
        raise CbrunError(
            f"{where}: `{column.name}` in {path} must be numbers: {row_names(path, bad)} ({shown})"
        )
    return numbers.to_numpy(dtype="float32")


def _classes(params: CsvParams, target: Any) -> list[Any]:
    return list(params.classes) if params.classes else sorted(target.dropna().unique().tolist())


def _infer_task(column) -> Literal["classification", "regression"]:
    import pandas as pd

    if not pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
        return "classification"
    if pd.api.types.is_integer_dtype(column) and column.nunique() <= MAX_AUTO_CLASSES:
        return "classification"
    return "regression"
