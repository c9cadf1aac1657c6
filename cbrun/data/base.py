"""What every data source returns, and the shared train/validation/test split."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

import numpy as np
from pydantic import Field, PositiveInt

from cbrun.core.errors import CbrunError
from cbrun.core.fields import InputFile, StrictModel, Task

Arrays = tuple[np.ndarray, np.ndarray]


class SplitParams(StrictModel):
    """Fractions of the samples held out for validation and test (seeded, stratified)."""

    validation: float = Field(0.15, ge=0, lt=1, description="Fraction for validation.")
    test: float = Field(0.15, ge=0, lt=1, description="Fraction for the test set.")
    stratify: bool = Field(True, description="Keep class proportions in each split.")


class DataParams(StrictModel):
    """Params every data source takes."""

    split: SplitParams = Field(default_factory=SplitParams)
    limit: PositiveInt | None = Field(
        None, description="Use at most this many samples (taken before splitting)."
    )

    def prepare_features(self, x: np.ndarray) -> np.ndarray:
        """Raw feature values as this source hands them to the model (reused by `predict`)."""
        return x


class FileDataParams(DataParams):
    """Params of a data source read from files, with optional separate split files."""

    path: Annotated[str, InputFile] = Field(
        description="Data file (relative to the config file's folder).", examples=["data.csv"]
    )
    validation_path: Annotated[str | None, InputFile] = Field(
        None, description="A separate validation file; replaces the validation fraction."
    )
    test_path: Annotated[str | None, InputFile] = Field(
        None, description="A separate test file; replaces the test fraction."
    )


@dataclass
class Dataset:
    """Train/validation/test arrays and what a model builder needs to know about them."""

    train: Arrays
    validation: Arrays | None
    test: Arrays | None
    task: Task
    num_classes: int | None = None
    feature_names: list[str] | None = None
    class_names: list[str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.train[0].shape[1:])

    @property
    def output_units(self) -> int:
        if self.task == "classification":
            return int(self.num_classes or 2)
        y = self.train[1]
        return 1 if y.ndim == 1 else int(y.shape[1])

    def feature_stats(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-feature mean and variance of the training split (for standardisation).

        Constant features get variance 1, as in scikit-learn's StandardScaler, so a value
        never seen in training cannot blow up.
        """
        x = self.train[0].astype("float64")
        variance = x.var(axis=0)
        return x.mean(axis=0), np.where(variance < 1e-12, 1.0, variance)

    def summary(self) -> dict[str, Any]:
        sizes = {
            name: (0 if part is None else int(len(part[0])))
            for name, part in (
                ("train", self.train),
                ("validation", self.validation),
                ("test", self.test),
            )
        }
        return {
            "task": self.task,
            "input_shape": list(self.input_shape),
            "num_classes": self.num_classes,
            "class_names": self.class_names,
            "samples": sizes,
        }


def make_dataset(
    x: np.ndarray,
    y: np.ndarray,
    params: DataParams,
    seed: int,
    task: Task,
    *,
    source: str,
    **info: Any,
) -> Dataset:
    """Check, limit, shuffle and split arrays into a Dataset."""
    x, y = check_arrays(x, y, task, source)
    if params.limit is not None and params.limit < len(x):
        keep = np.random.default_rng(seed).permutation(len(x))[: params.limit]
        x, y = x[np.sort(keep)], y[np.sort(keep)]
    train, validation, test = split_arrays(x, y, params.split, seed, task == "classification")
    if len(train[0]) == 0:
        raise CbrunError(f"{source}: no training samples left after the split")
    num_classes = info.pop("num_classes", None)
    if task == "classification" and num_classes is None:
        num_classes = int(y.max()) + 1
    return Dataset(train, validation, test, task, num_classes, **info)


def make_file_dataset(
    read: Callable[[str], Arrays],
    params: FileDataParams,
    seed: int,
    task: Task,
    *,
    source: str,
    **info: Any,
) -> Dataset:
    """A Dataset from `params.path`, with validation/test from their own files when given."""
    from_files = {name: getattr(params, f"{name}_path") for name in ("validation", "test")}
    split = params.split.model_copy(update={k: 0.0 for k, v in from_files.items() if v})
    dataset = make_dataset(
        *read(params.path),
        params.model_copy(update={"split": split}),
        seed,
        task,
        source=source,
        **info,
    )
    for name, path in from_files.items():
        if path:
            setattr(dataset, name, check_arrays(*read(path), task, f"{source}: {name}_path"))
    return dataset


def check_arrays(x: np.ndarray, y: np.ndarray, task: Task, source: str) -> Arrays:
    """Arrays as float32 features and int/float labels; bad data is a user error."""
    if len(x) == 0:
        raise CbrunError(f"{source}: the data is empty (0 samples)")
    if len(x) != len(y):
        raise CbrunError(f"{source}: {len(x)} feature rows but {len(y)} labels")
    try:
        x = np.asarray(x, dtype="float32")
    except (TypeError, ValueError):
        raise CbrunError(f"{source}: features must be numeric") from None
    if not np.isfinite(x).all():
        bad = int((~np.isfinite(x)).any(axis=tuple(range(1, x.ndim))).sum())
        raise CbrunError(f"{source}: {bad} samples have missing or non-finite feature values")
    if task == "classification":
        labels = np.asarray(y)
        if not np.issubdtype(labels.dtype, np.integer):
            as_int = labels.astype("int64")
            if not np.array_equal(as_int, labels):
                raise CbrunError(f"{source}: classification labels must be integers 0..K-1")
            labels = as_int
        if labels.min() < 0:
            raise CbrunError(f"{source}: classification labels must be integers 0..K-1")
        return x, labels.astype("int32")
    try:
        return x, np.asarray(y, dtype="float32")
    except (TypeError, ValueError):
        raise CbrunError(f"{source}: regression targets must be numeric") from None


def split_arrays(
    x: np.ndarray, y: np.ndarray, split: SplitParams, seed: int, stratify: bool
) -> tuple[Arrays, Arrays | None, Arrays | None]:
    """Seeded split into train, validation and test of exactly the requested sizes.

    Stratified by label when asked: samples are ordered by their relative position inside
    their own (shuffled) class, so any prefix of the order holds each class in proportion.
    """
    if not split.validation and not split.test:
        return (x, y), None, None  # all of it trains: no shuffled copy of a large file
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(y))
    if stratify and split.stratify:
        position = np.empty(len(y))
        for label in np.unique(y):
            members = order[y[order] == label]
            position[members] = (np.arange(len(members)) + rng.random()) / len(members)
        order = order[np.argsort(position[order], kind="stable")]
    n_test = int(round(len(y) * split.test))
    n_val = int(round(len(y) * split.validation))

    def take(index: np.ndarray) -> Arrays | None:
        index = np.sort(index)
        return (x[index], y[index]) if len(index) else None

    train = take(order[n_test + n_val :]) or (x[:0], y[:0])
    return train, take(order[n_test : n_test + n_val]), take(order[:n_test])
