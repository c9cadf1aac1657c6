"""What every data source returns, and the shared train/validation/test split.

A split is either `(x, y)` arrays held in memory or a `Stream`, which tf.data reads in
batches while training (an image folder). Consumers go through `split_size`, `take` and
`Dataset.feed`, which handle both, so no consumer needs to know which it has.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from pydantic import Field, PositiveInt

from cbrun.core.errors import CbrunError
from cbrun.core.fields import InputFile, StrictModel, Task
from cbrun.data.fingerprint import Fingerprint, fingerprint_data

Arrays = tuple[np.ndarray, np.ndarray]


@dataclass
class Stream:
    """A split that tf.data reads in batches while training instead of holding it in memory.

    Args:
        labels: One label per sample, in the split's order (cheap to hold: no features).
        input_shape: Shape of one sample's features.
        batches: `batches(batch_size, shuffle, seed, cache_dir, first_epoch)` gives a
            `tf.data.Dataset` of `(x, y)` batches; `cache_dir` is where a disk cache may go
            (None: a single pass, never cached); `first_epoch` is the epoch training starts
            at (a resumed run's), so that each epoch's order depends only on seed and epoch.
        load: `load(index)` gives the samples at these positions as `(x, y)` arrays.
    """

    labels: np.ndarray
    input_shape: tuple[int, ...]
    batches: Callable[[int, bool, int, Any, int], Any]
    load: Callable[[np.ndarray], Arrays]

    def __len__(self) -> int:
        return len(self.labels)


Split = Arrays | Stream


def split_size(part: Split | None) -> int:
    """Number of samples in a split (0 for a missing one)."""
    if part is None:
        return 0
    return len(part) if isinstance(part, Stream) else int(len(part[0]))


def labels_of(part: Split) -> np.ndarray:
    return part.labels if isinstance(part, Stream) else part[1]


def take(part: Split, index: np.ndarray) -> Arrays:
    """The samples of a split at positions `index`, as arrays (a stream loads just those)."""
    return part.load(index) if isinstance(part, Stream) else (part[0][index], part[1][index])


def pick(count: int, size: int, seed: int) -> np.ndarray:
    """`size` positions out of `count`, chosen by `seed`, in increasing order."""
    return np.sort(np.random.default_rng(seed).permutation(count)[:size])


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

    def prediction_inputs(self, paths: list[Path]) -> tuple[list[str], np.ndarray] | None:
        """Names and features of new inputs for `cbrun predict`, read as this source reads
        its data; None: the source takes a CSV or NPZ of features (the default)."""
        return None


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

    train: Split
    validation: Split | None
    test: Split | None
    task: Task
    num_classes: int | None = None
    feature_names: list[str] | None = None
    class_names: list[str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    record: dict[str, Any] = field(default_factory=dict)
    """Facts about the data for data.json and run.json beyond the shapes (skipped files, a
    fingerprint); empty for in-memory sources."""
    listings: dict[str, Any] = field(default_factory=dict)
    """Names and sizes of the files in each fingerprinted folder (for data_files.json.gz)."""

    def add_fingerprint(self, fingerprint: Fingerprint) -> Dataset:
        """Record the fingerprint of the files this data was read from (see fingerprint.py)."""
        self.record["fingerprint"] = fingerprint.entries
        self.listings = fingerprint.listings
        return self

    @property
    def input_shape(self) -> tuple[int, ...]:
        if isinstance(self.train, Stream):
            return tuple(self.train.input_shape)
        return tuple(self.train[0].shape[1:])

    @property
    def output_units(self) -> int:
        if self.task == "classification":
            return int(self.num_classes or 2)
        y = labels_of(self.train)
        return 1 if y.ndim == 1 else int(y.shape[1])

    @property
    def streamed(self) -> bool:
        return isinstance(self.train, Stream)

    def feed(self, split: str, batch_size: int) -> dict[str, Any]:
        """Keyword arguments of `model.evaluate` / `model.predict` for one split."""
        part = getattr(self, split)
        if isinstance(part, Stream):
            return {"x": part.batches(batch_size, False, 0, None, 0)}
        return {"x": part[0], "y": part[1], "batch_size": batch_size}

    def feature_stats(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-feature mean and variance of the training split (for standardisation).

        Constant features get variance 1, as in scikit-learn's StandardScaler, so a value
        never seen in training cannot blow up.
        """
        if isinstance(self.train, Stream):
            mean, variance = _streamed_moments(self.train)
        else:
            x = self.train[0].astype("float64")
            mean, variance = x.mean(axis=0), x.var(axis=0)
        return mean, np.where(variance < 1e-12, 1.0, variance)

    def summary(self) -> dict[str, Any]:
        sizes = {name: split_size(getattr(self, name)) for name in ("train", "validation", "test")}
        return {
            "task": self.task,
            "input_shape": list(self.input_shape),
            "num_classes": self.num_classes,
            "class_names": self.class_names,
            "samples": sizes,
            **self.record,
        }


def _streamed_moments(stream: Stream) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and variance over one pass of a stream (Chan's parallel update)."""
    count, mean, squares = 0, 0.0, 0.0
    for x, _ in stream.batches(256, False, 0, None, 0).as_numpy_iterator():
        x = x.astype("float64")
        n, batch_mean = len(x), x.mean(axis=0)
        delta = batch_mean - mean
        total = count + n
        mean = mean + delta * n / total
        squares = squares + ((x - batch_mean) ** 2).sum(axis=0) + delta**2 * count * n / total
        count = total
    return np.asarray(mean), np.asarray(squares) / count


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
    x, y = limit_arrays(x, y, params.limit, seed)
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
    files = {f"data.{k}": getattr(params, k) for k in ("path", "validation_path", "test_path")}
    return dataset.add_fingerprint(fingerprint_data(files))


def limit_arrays(x: np.ndarray, y: np.ndarray, limit: int | None, seed: int) -> Arrays:
    """At most `limit` samples, chosen by `seed`, in their original order."""
    if limit is None or limit >= len(x):
        return x, y
    keep = pick(len(x), limit, seed)
    return x[keep], y[keep]


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
