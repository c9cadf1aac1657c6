"""`tf.train.Example` records in TFRecord files, read by tf.data while training.

Before any run directory exists, every record is parsed once with the declared features (a
streamed pass that keeps only the labels), so a feature that is missing, or of another type
or length than declared, is an error naming the file and the feature.
"""

from __future__ import annotations

import glob
import math
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field, NonNegativeInt, PositiveInt

from cbrun.core.errors import CbrunError, did_you_mean
from cbrun.core.fields import InputPattern, StrictModel
from cbrun.data.base import DataParams, Dataset, limit_arrays, split_arrays
from cbrun.data.fingerprint import fingerprint_data
from cbrun.data.image_directory import quiet_tensorflow
from cbrun.data.streaming import positional_stream
from cbrun.registry import datasets

RECORD_SUFFIXES = (".tfrecord", ".tfrec")
SCAN_BATCH = 1024  # records parsed at once by the checking pass
KINDS = {"float_list": "float32", "int64_list": "int64", "bytes_list": "string"}


class FeatureSpec(StrictModel):
    """One fixed-length feature of every record."""

    dtype: Literal["float32", "int64"] = Field(description="The record's value type.")
    shape: list[NonNegativeInt] = Field(
        default_factory=list, description="Shape of one record's values; [] for one value."
    )

    @property
    def size(self) -> int:
        return math.prod(self.shape)


class TfrecordParams(DataParams):
    """`tf.train.Example` records in TFRecord files (a file or a glob), streamed by tf.data."""

    type: Literal["tfrecord"]
    path: Annotated[str, InputPattern] = Field(
        description="A TFRecord file or a glob of them (relative to the config file's folder).",
        examples=["data/train-*.tfrecord"],
    )
    validation_path: Annotated[str | None, InputPattern] = Field(
        None, description="Separate validation records; replaces the validation fraction."
    )
    test_path: Annotated[str | None, InputPattern] = Field(
        None, description="Separate test records; replaces the test fraction."
    )
    features: dict[str, FeatureSpec] = Field(
        min_length=1,
        description="The features the model reads, by name; several are flattened and joined.",
        examples=[{"pixels": {"dtype": "float32", "shape": [8, 8, 1]}}],
    )
    label: str = Field(
        description="The feature holding the label: int64 class indices, strings (class "
        "names, sorted) or float32 targets.",
        examples=["label"],
    )
    task: Literal["classification", "regression"] = "classification"
    num_classes: int | None = Field(
        None, ge=2, description="Number of classes; default: the largest label + 1."
    )
    shuffle_buffer: PositiveInt = Field(
        10_000, description="Records held for shuffling the training split each epoch."
    )

    @property
    def input_shape(self) -> tuple[int, ...]:
        if len(self.features) == 1:
            shape = tuple(next(iter(self.features.values())).shape)
            return shape or (1,)
        return (sum(spec.size for spec in self.features.values()),)

    def prediction_inputs(self, paths: list[Path]) -> tuple[list[str], np.ndarray] | None:
        """TFRecord files (`.tfrecord`, `.tfrec`), read with the run's declared features (a
        label is not needed); each record is named `file#number` (from 1)."""
        if not all(path.suffix.lower() in RECORD_SUFFIXES for path in paths):
            return None
        tf = quiet_tensorflow()
        names: list[str] = []
        batches: list[np.ndarray] = []
        for path in paths:
            if not path.is_file():
                raise CbrunError(f"{path}: no such file")
            try:
                found = list(
                    tf.data.TFRecordDataset(str(path))
                    .batch(256)
                    .map(self.parse)
                    .as_numpy_iterator()
                )
            except tf.errors.OpError as error:
                reason = error.message.strip().splitlines()[0]
                raise CbrunError(
                    f"{path}: cannot read its records with the run's features: {reason}"
                ) from None
            count = sum(map(len, found))
            names.extend(f"{path}#{number}" for number in range(1, count + 1))
            batches.extend(found)
        if not batches:
            raise CbrunError(f"{', '.join(map(str, paths))}: no records")
        return names, np.concatenate(batches)

    def feature_spec(self) -> dict[str, Any]:
        import tensorflow as tf

        return {
            name: tf.io.FixedLenFeature(feature.shape, getattr(tf, feature.dtype))
            for name, feature in self.features.items()
        }

    def parse(self, records: Any) -> Any:
        """A batch of serialized records as one float32 feature batch of `input_shape`."""
        import tensorflow as tf

        parsed = tf.io.parse_example(records, self.feature_spec())
        if len(self.features) == 1:
            x = tf.cast(parsed[next(iter(self.features))], tf.float32)
            return tf.reshape(x, (-1, *self.input_shape))
        return tf.concat(
            [
                tf.reshape(tf.cast(parsed[name], tf.float32), (-1, spec.size))
                for name, spec in self.features.items()
            ],
            axis=1,
        )


@datasets.register("tfrecord", TfrecordParams)
def tfrecord(params: TfrecordParams, seed: int) -> Dataset:
    keys = {"train": "path", "validation": "validation_path", "test": "test_path"}
    files = {
        split: _matching(getattr(params, key), key)
        for split, key in keys.items()
        if getattr(params, key)
    }
    scans = {split: _scan(params, found) for split, found in files.items()}
    class_names = _class_names(params, scans)
    labels = {split: _encode(params, raw, class_names) for split, raw in scans.items()}
    num_classes = None
    if params.task == "classification":
        num_classes = params.num_classes or (
            len(class_names) if class_names else int(max(y.max() for y in labels.values())) + 1
        )
        _check_classes(params, labels, num_classes)

    every = np.arange(len(labels["train"]))
    positions, train_labels = limit_arrays(every, labels["train"], params.limit, seed)
    split = params.split.model_copy(update={k: 0.0 for k in files if k != "train"})
    stratify = params.task == "classification"
    parts = dict(
        zip(keys, split_arrays(positions, train_labels, split, seed, stratify), strict=True)
    )
    for name in ("validation", "test"):
        if name in files:
            count = len(labels[name])
            parts[name] = (limit_arrays(np.arange(count), labels[name], params.limit, seed)[0],)
    if parts["train"] is None or not len(parts["train"][0]):
        raise CbrunError(f"data.path: no training records left in {params.path}")
    streams = {
        name: None
        if part is None or not len(part[0])
        else _stream(
            params, files.get(name, files["train"]), labels.get(name, labels["train"]), part[0]
        )
        for name, part in parts.items()
    }
    matched = {  # each file a glob matched, by its key: data.path[0], data.test_path[1], ...
        f"data.{keys[split]}[{index}]": path
        for split, found in files.items()
        for index, path in enumerate(found)
    }
    return Dataset(
        streams["train"],
        streams["validation"],
        streams["test"],
        params.task,
        num_classes=num_classes,
        class_names=class_names,
        feature_names=_feature_names(params),
        record={
            "source": "tfrecord",
            "records": {split: len(y) for split, y in labels.items()},
        },
    ).add_fingerprint(fingerprint_data(matched))


def _matching(pattern: str, key: str) -> list[str]:
    found = sorted(path for path in glob.glob(pattern) if os.path.isfile(path))
    if not found:
        raise CbrunError(f"data.{key}: no TFRecord file matches {pattern}")
    return found


def _scan(params: TfrecordParams, files: list[str]) -> np.ndarray:
    """Every label in `files`, after checking that each record holds the declared features."""
    import tensorflow as tf

    label_spec = None
    labels: list[np.ndarray] = []
    for path in files:
        start = len(labels)
        first = _first_record(path)
        if first is None:
            continue
        _check_record(params, first, path)
        if label_spec is None:
            label_spec = _label_spec(first.features.feature[params.label])
        spec = {**params.feature_spec(), params.label: label_spec}

        def read(records: Any, spec: dict = spec) -> Any:
            parsed = tf.io.parse_example(records, spec)
            # Every feature must reach an output, or tf.data would never parse (check) it.
            sums = [tf.reduce_sum(tf.cast(parsed[name], tf.float32)) for name in params.features]
            return parsed[params.label], tf.add_n(sums)

        try:
            for batch, _ in tf.data.TFRecordDataset(path).batch(SCAN_BATCH).map(read):
                labels.append(batch.numpy())
        except tf.errors.OpError as error:
            message = error.message.strip().splitlines()[0]
            found = re.search(r"Key: (\w+), Index: (\d+)\.\s+(.*?)(?:\s+\[\[|$)", message)
            if found:
                number = sum(map(len, labels[start:])) + int(found.group(2)) + 1
                message = f"record {number}, feature `{found.group(1)}`: {found.group(3)}"
            raise CbrunError(
                f"data.features: a record of {path} does not match the declared features: {message}"
            ) from None
    if not labels:
        raise CbrunError(f"data.path: no records in {', '.join(files)}")
    return np.concatenate(labels)


def _first_record(path: str) -> Any:
    import tensorflow as tf

    try:
        for record in tf.data.TFRecordDataset(path).take(1).as_numpy_iterator():
            return tf.train.Example.FromString(record)
    except (tf.errors.OpError, ValueError) as error:
        reason = getattr(error, "message", str(error)).strip().splitlines()[0]
        raise CbrunError(
            f"data.path: {path} is not a file of tf.train.Example records: {reason}"
        ) from None
    return None


def _check_record(params: TfrecordParams, example: Any, path: str) -> None:
    """Declared features (and the label) against what the first record of `path` holds."""
    held = example.features.feature
    names = sorted(held)
    for name in [*params.features, params.label]:
        if name not in held:
            key = "label" if name == params.label else f"features.{name}"
            raise CbrunError(
                f"data.{key}: the records in {path} have no feature `{name}`."
                f"{did_you_mean(name, names)} Features: {', '.join(names)}"
            )
    for name, spec in params.features.items():
        kind = held[name].WhichOneof("kind")
        dtype = KINDS.get(kind, "no")
        values = len(getattr(held[name], kind).value) if kind else 0
        if dtype != spec.dtype or values != spec.size:
            raise CbrunError(
                f"data.features.{name}: declared {spec.dtype} of shape {spec.shape} "
                f"({spec.size} values), but the records in {path} hold {values} {dtype} "
                f"values per record"
            )
    label = held[params.label]
    if len(getattr(label, label.WhichOneof("kind") or "float_list").value) != 1:
        raise CbrunError(f"data.label: `{params.label}` in {path} is not one value per record")


def _label_spec(feature: Any) -> Any:
    import tensorflow as tf

    dtype = {"float32": tf.float32, "int64": tf.int64, "string": tf.string}
    return tf.io.FixedLenFeature([], dtype[KINDS[feature.WhichOneof("kind")]])


def _class_names(params: TfrecordParams, scans: dict[str, np.ndarray]) -> list[str] | None:
    """Sorted class names when the labels are strings (taken from the training records)."""
    train = scans["train"]
    if train.dtype.kind not in "OSU":
        return None
    if params.task == "regression":
        raise CbrunError(f"data.label: `{params.label}` holds strings; regression needs numbers")
    return sorted({value.decode() for value in train})


def _encode(params: TfrecordParams, raw: np.ndarray, class_names: list[str] | None) -> np.ndarray:
    if class_names is None:
        if params.task == "regression":
            return raw.astype("float32")
        if raw.dtype.kind == "f" and not np.array_equal(raw, np.round(raw)):
            raise CbrunError(f"data.label: `{params.label}` holds fractions; classes are 0..K-1")
        return raw.astype("int32")
    index = {name: code for code, name in enumerate(class_names)}
    unknown = sorted({value.decode() for value in raw} - set(index))
    if unknown:
        raise CbrunError(
            f"data.label: labels not in the training records: {', '.join(unknown[:5])}"
        )
    return np.array([index[value.decode()] for value in raw], dtype="int32")


def _check_classes(params: TfrecordParams, labels: dict[str, np.ndarray], count: int) -> None:
    for split, y in labels.items():
        if y.min() < 0 or y.max() >= count:
            raise CbrunError(
                f"data.label: {split} labels go from {int(y.min())} to {int(y.max())}, "
                f"outside the {count} classes (0..{count - 1})"
            )


def _feature_names(params: TfrecordParams) -> list[str] | None:
    """Column names for flat features: each feature's name, `name[i]` when it has several."""
    if len(params.features) == 1 and len(next(iter(params.features.values())).shape) > 1:
        return None
    return [
        name if spec.size == 1 else f"{name}[{i}]"
        for name, spec in params.features.items()
        for i in range(spec.size)
    ]


def _stream(
    params: TfrecordParams, files: list[str], labels: np.ndarray, positions: np.ndarray
) -> Any:
    import tensorflow as tf

    def source() -> Any:
        return tf.data.TFRecordDataset(files)

    def parse(records: Any, index: Any) -> tuple[Any, Any]:
        return params.parse(records), tf.gather(tf.constant(labels), index)

    return positional_stream(
        source, parse, labels, positions, params.input_shape, params.shuffle_buffer
    )
