"""What every data source returns, and the shared train/validation/test split.

A split is either `(x, y)` arrays held in memory (or `(x, y, sample_weight)`) or a `Stream`,
which tf.data reads in batches while training (an image folder). `x` is one array, or for a
table with categorical or text columns a dict of 1-D columns (`Dataset.columns` names their
kinds). Consumers go through `split_size`, `take` and `Dataset.feed`, which handle all of
these, so no consumer needs to know which it has.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, ClassVar

import numpy as np
from pydantic import Field, PositiveInt

from cbrun.core.errors import CbrunError
from cbrun.core.fields import InputFile, StrictModel, Task
from cbrun.data.fingerprint import Fingerprint, fingerprint_data

Arrays = tuple[Any, ...]  # (x, y) or (x, y, sample_weight); x: an array or a dict of columns
MOMENT_ROWS = 4096  # samples per float64 chunk when standardising statistics are computed


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
    return len(part) if isinstance(part, Stream) else int(len(part[1]))


def labels_of(part: Split) -> np.ndarray:
    return part.labels if isinstance(part, Stream) else part[1]


def take(part: Split, index: np.ndarray) -> Arrays:
    """The samples of a split at positions `index`, as `(x, y)` (a stream loads just those)."""
    return part.load(index) if isinstance(part, Stream) else rows_at(part, index)[:2]


def rows_at(arrays: Arrays, index: Any) -> Arrays:
    """Rows `index` of every array (every column of a dict of columns)."""
    return tuple(
        {k: v[index] for k, v in a.items()} if isinstance(a, dict) else a[index] for a in arrays
    )


def require_arrays(dataset: Dataset, component: str) -> None:
    """Refuse a table of raw columns in a component that needs one feature array."""
    if dataset.columns is not None:
        raise CbrunError(
            f"{component} needs one numeric feature array, but the data is a table with "
            "categorical or text columns (or imputed gaps), which the model's own "
            "preprocessing layers read"
        )


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

    read_by_validate: ClassVar[bool] = False
    """Whether `cbrun validate` reads the data, as `train` does, to refuse what cannot train:
    sources of the user's own files or function that read without TensorFlow. Generated
    data (any size a config asks for) and folders read by tf.data are left to `train`."""

    split: SplitParams = Field(default_factory=SplitParams)
    limit: PositiveInt | None = Field(
        None, description="Use at most this many samples (taken before splitting)."
    )

    def prepare_features(self, x: np.ndarray) -> np.ndarray:
        """Raw feature values as this source hands them to the model (reused by `predict`)."""
        return x

    def declared_classes(self) -> tuple[str, list[str] | None] | None:
        """The task and class names this source gives whatever its data holds (generated
        data), so `validate` can check `training.class_weight` unread; None: the data says."""
        return None

    def file_problems(self) -> list[tuple[str, str]]:
        """(key under `data`, message) for each problem in the data files that is cheap to
        find without loading them (a column a table lacks), so `validate` refuses what
        `train` would; default: none."""
        return []

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
    columns: dict[str, str] | None = None
    """Kind of each feature column (`numeric`, `categorical`, `text`) when `x` is a dict of
    columns; None when it is one array."""
    target_scale: tuple[float, float] | None = None
    """Mean and standard deviation of a standardised regression target (data.normalize_target)."""
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
        if self.columns is not None:
            return (len(self.columns),)
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
        weights = {"sample_weight": part[2]} if len(part) > 2 else {}
        return {"x": part[0], "y": part[1], "batch_size": batch_size, **weights}

    def feature_stats(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-feature mean and variance of the training split (for standardisation).

        Constant features get variance 1, as in scikit-learn's StandardScaler, so a value
        never seen in training cannot blow up.
        """
        if isinstance(self.train, Stream):
            batches = (x for x, _ in self.train.batches(256, False, 0, None, 0).as_numpy_iterator())
        else:  # chunks: never a float64 copy of the whole split
            x = self.train[0]
            batches = (x[start : start + MOMENT_ROWS] for start in range(0, len(x), MOMENT_ROWS))
        mean, variance = _moments(batches)
        return mean, np.where(variance < 1e-12, 1.0, variance)

    def summary(self) -> dict[str, Any]:
        sizes = {name: split_size(getattr(self, name)) for name in ("train", "validation", "test")}
        table = {"columns": self.columns} if self.columns is not None else {}
        if self.target_scale is not None:
            mean, std = self.target_scale
            table["target_scale"] = {"mean": mean, "std": std}
        return {
            "task": self.task,
            "input_shape": list(self.input_shape),
            "num_classes": self.num_classes,
            "class_names": self.class_names,
            "samples": sizes,
            **table,
            **self.record,
        }


def _moments(batches: Iterable[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and variance over batches of samples (Chan's parallel update, in
    float64 one batch at a time)."""
    count, mean, squares = 0, 0.0, 0.0
    for x in batches:
        x = x.astype("float64")
        n, batch_mean = len(x), x.mean(axis=0)
        delta = batch_mean - mean
        total = count + n
        mean = mean + delta * n / total
        squares = squares + ((x - batch_mean) ** 2).sum(axis=0) + delta**2 * count * n / total
        count = total
    return np.asarray(mean), np.asarray(squares) / count


def make_dataset(
    x: Any,
    y: np.ndarray,
    params: DataParams,
    seed: int,
    task: Task,
    *arrays: np.ndarray,
    source: str,
    **info: Any,
) -> Dataset:
    """Check, limit, shuffle and split arrays into a Dataset; `arrays`: a sample weight."""
    x, y = check_arrays(x, y, task, source)
    x, y, *arrays = _limit(x, y, *arrays, limit=params.limit, seed=seed)
    train, validation, test = split_arrays(
        x, y, params.split, seed, task == "classification", *arrays
    )
    if split_size(train) == 0:
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
    x, y, *weights = read(params.path)
    dataset = make_dataset(
        x,
        y,
        params.model_copy(update={"split": split}),
        seed,
        task,
        *weights,
        source=source,
        **info,
    )
    for name, path in from_files.items():
        if path:
            x, y, *weights = read(path)
            part = (*check_arrays(x, y, task, f"{source}: {name}_path"), *weights)
            shape = None if isinstance(part[0], dict) else list(part[0].shape[1:])
            if shape is not None and shape != list(dataset.input_shape):
                raise CbrunError(
                    f"data.{name}_path: {path} has samples of shape {shape}, but "
                    f"{params.path} has {list(dataset.input_shape)}"
                )
            setattr(dataset, name, part)
    files = {f"data.{k}": getattr(params, k) for k in ("path", "validation_path", "test_path")}
    return dataset.add_fingerprint(fingerprint_data(files))


def limit_arrays(x: np.ndarray, y: np.ndarray, limit: int | None, seed: int) -> Arrays:
    """At most `limit` samples, chosen by `seed`, in their original order."""
    return _limit(x, y, limit=limit, seed=seed)


def _limit(*arrays: Any, limit: int | None, seed: int) -> Arrays:
    count = len(arrays[1])
    if limit is None or limit >= count:
        return arrays
    return rows_at(arrays, pick(count, limit, seed))


def check_arrays(x: np.ndarray, y: np.ndarray, task: Task, source: str) -> Arrays:
    """Arrays as float32 features and int/float labels; bad data is a user error that names
    the first bad samples (their positions in the array, counted from 0)."""
    y = np.asarray(y)
    if y.ndim == 0:
        raise CbrunError(f"{source}: the labels are a single value, not one per sample")
    if not isinstance(x, dict) and np.ndim(x) == 0:
        raise CbrunError(f"{source}: the features are a single value, not one row per sample")
    rows = len(next(iter(x.values()))) if isinstance(x, dict) else len(x)
    if rows == 0:
        raise CbrunError(f"{source}: the data is empty (0 samples)")
    if rows != len(y):
        raise CbrunError(f"{source}: {rows} feature rows but {len(y)} labels")
    if isinstance(x, dict):  # a table's columns, already checked by the table reader
        return x, _labels(y, task, source)
    if np.asarray(x).dtype.kind == "c":
        raise CbrunError(f"{source}: features must be real numbers (got complex values)")
    try:
        with np.errstate(over="ignore"):  # beyond float32: inf, refused below
            x = np.asarray(x, dtype="float32")
    except (TypeError, ValueError, OverflowError):
        raise CbrunError(f"{source}: features must be numeric") from None
    if x.ndim > 1 and x[0].size == 0:
        raise CbrunError(f"{source}: the samples have no features (shape {list(x.shape)})")
    if x.ndim == 1:
        raise CbrunError(
            f"{source}: the features have shape {list(x.shape)}, one number per sample; cbrun "
            "takes one row of features per sample: save `x.reshape(-1, 1)` for one feature"
        )
    if not np.isfinite(x).all():
        bad = np.flatnonzero(~np.isfinite(x).reshape(len(x), -1).all(axis=1))
        raise CbrunError(
            f"{source}: {len(bad)} samples have missing or non-finite feature values "
            f"({positions(bad)})"
        )
    return x, _labels(y, task, source)


def positions(index: np.ndarray) -> str:
    """`samples 3, 17 and 2 more (counted from 0)`: where bad samples are in an array."""
    shown = ", ".join(str(int(i)) for i in index[:5])
    more = f" and {len(index) - 5} more" if len(index) > 5 else ""
    return f"sample{'s' if len(index) > 1 else ''} {shown}{more}, counted from 0"


def _labels(y: np.ndarray, task: Task, source: str) -> np.ndarray:
    """Labels as int32 classes 0..K-1 (one per sample), or float32 regression targets."""
    labels = np.asarray(y)
    if task != "classification" and labels.dtype.kind in "iuf":
        with np.errstate(over="ignore"):  # beyond float32: inf, refused below
            labels = labels.astype("float32")
    if labels.dtype.kind not in "biuf":
        what = (
            "classification labels must be integers 0..K-1"
            if task == "classification"
            else ("regression targets must be numeric")
        )
        raise CbrunError(f"{source}: {what} (got {labels.dtype} values)")
    finite = np.isfinite(labels).reshape(len(labels), -1).all(axis=1)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        kind = "labels" if task == "classification" else "targets"
        raise CbrunError(
            f"{source}: {len(bad)} {kind} are missing or not finite, or beyond float32 "
            f"({positions(bad)})"
        )
    if task == "classification":
        if labels.ndim == 2 and labels.shape[1] == 1:
            labels = labels[:, 0]  # a column of class indices
        if labels.ndim > 1:
            raise CbrunError(
                f"{source}: the labels have shape {list(labels.shape)} (one-hot, or several "
                "labels per sample); classification takes one class index per sample: save "
                "`y.argmax(axis=1)` for one-hot labels, or use task: regression for several "
                "numeric targets"
            )
        if not np.issubdtype(labels.dtype, np.integer):
            with np.errstate(invalid="ignore"):  # 1e39 is no int64: refused just below
                as_int = labels.astype("int64")
            bad = np.flatnonzero(as_int != labels)
            if len(bad):
                raise CbrunError(
                    f"{source}: classification labels must be integers 0..K-1 (not at "
                    f"{positions(bad)})"
                )
            labels = as_int
        negative = np.flatnonzero(labels < 0)
        if len(negative):
            raise CbrunError(
                f"{source}: classification labels must be integers 0..K-1 (negative at "
                f"{positions(negative)})"
            )
        if labels.max() >= 2**31:
            raise CbrunError(
                f"{source}: classification labels must be integers 0..K-1 (got {int(labels.max())})"
            )
        return labels.astype("int32")
    return labels.astype("float32")


def split_arrays(
    x: Any, y: np.ndarray, split: SplitParams, seed: int, stratify: bool, *arrays: np.ndarray
) -> tuple[Arrays, Arrays | None, Arrays | None]:
    """Seeded split into train, validation and test of exactly the requested sizes.

    Stratified by label when asked: samples are ordered by their relative position inside
    their own (shuffled) class, so any prefix of the order holds each class in proportion.
    """
    if not split.validation and not split.test:
        return (x, y, *arrays), None, None  # all of it trains: no shuffled copy of a large file
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
        return rows_at((x, y, *arrays), index) if len(index) else None

    train = take(order[n_test + n_val :]) or rows_at((x, y, *arrays), slice(0, 0))
    return train, take(order[n_test : n_test + n_val]), take(order[:n_test])
