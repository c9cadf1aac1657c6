"""Data from the user's own `module:function`: arrays, tf.data datasets or a Keras PyDataset.

The function returns `(x, y)` arrays (split by `split`), a dict of splits (`train`, and
optionally `validation` and `test`) each holding `(x, y)` arrays, a `tf.data.Dataset` or a
`keras.utils.PyDataset`, or one dataset / PyDataset for training alone. An unbatched
tf.data.Dataset is shuffled (seeded per epoch) and batched with `training.batch_size`; a
batched one and a PyDataset are used as they are, batch by batch. Each stream is read once
before training to collect its labels, which also checks that it gives `(x, y)` pairs.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from cbrun.core.errors import CbrunError, did_you_mean
from cbrun.core.fields import ImportPath
from cbrun.core.importing import import_object
from cbrun.data.base import (
    Arrays,
    DataParams,
    Dataset,
    Split,
    SplitParams,
    Stream,
    check_arrays,
    labels_of,
    limit_arrays,
    make_dataset,
)
from cbrun.data.streaming import positional_stream
from cbrun.registry import datasets

SPLITS = ("train", "validation", "test")
SHUFFLE_BUFFER = 10_000  # samples of an unbatched tf.data.Dataset held for shuffling


class ImportDataParams(DataParams):
    """Your own function returning arrays, tf.data datasets or a PyDataset (see README)."""

    read_by_validate: ClassVar[bool] = True

    type: Literal["import"]
    function: ImportPath = Field(examples=["my_data:load"])
    args: dict[str, Any] = Field(default_factory=dict, description="Keyword arguments to pass.")
    task: Literal["classification", "regression"] = "classification"
    num_classes: int | None = Field(
        None, ge=2, description="Number of classes; default: the largest label + 1."
    )
    class_names: list[str] | None = Field(None, description="Names of classes 0..K-1.")


@datasets.register("import", ImportDataParams)
def imported(params: ImportDataParams, seed: int) -> Dataset:
    function = import_object(params.function, "data.function")
    if not callable(function):
        raise CbrunError(f"data.function: {params.function} is not a function")
    try:
        returned = function(**params.args)
    except CbrunError:
        raise
    except Exception as error:
        raise CbrunError(
            f"data.function: {params.function} raised {type(error).__name__}: {error}"
        ) from None
    source = f"data.function ({params.function})"
    parts = _splits(params, returned, source)
    if parts is None:  # (x, y) arrays: split by fractions, like npz
        x, y = _pair(returned, source)
        return make_dataset(
            x, y, params, seed, params.task, source=source, **_class_info(params, None)
        )
    if params.split != SplitParams():  # the default is left alone: a saved config holds it
        raise CbrunError(
            f"data.split: {params.function} returns its own splits; `split` applies only to "
            "(x, y) arrays: remove it, or return (x, y)"
        )
    streamed = any(not isinstance(part, tuple) for part in parts.values())
    built: dict[str, Split] = {}
    for name, part in parts.items():
        where = f"{source}, split `{name}`"
        if isinstance(part, tuple):
            x, y = check_arrays(*part, params.task, where)
            x, y = limit_arrays(x, y, params.limit, seed)
            built[name] = _array_stream(x, y) if streamed else (x, y)
        else:
            built[name] = _user_stream(params, part, where, seed)
    shapes = {name: tuple(_input_shape(part)) for name, part in built.items()}
    if len(set(shapes.values())) > 1:
        raise CbrunError(f"{source}: the splits' samples differ in shape: {shapes}")
    info = _class_info(params, [labels_of(part) for part in built.values()])
    return Dataset(
        built["train"],
        built.get("validation"),
        built.get("test"),
        params.task,
        **info,
        record={"source": "import", "function": params.function},
    )


def _splits(params: ImportDataParams, returned: Any, source: str) -> dict[str, Any] | None:
    """The returned splits by name; None for a single `(x, y)` pair of arrays."""
    if isinstance(returned, dict):
        unknown = [str(k) for k in returned if k not in SPLITS]
        if unknown:
            raise CbrunError(
                f"{source} returned a dict with key `{unknown[0]}`."
                f"{did_you_mean(unknown[0], list(SPLITS))} Keys: train, validation, test"
            )
        if "train" not in returned:
            raise CbrunError(f"{source} returned a dict without `train`")
        return {
            name: _pair(value, f"{source}, split `{name}`") if isinstance(value, tuple) else value
            for name, value in returned.items()
            if value is not None
        }
    if isinstance(returned, (tuple, list)):
        return None
    return {"train": returned}


def _pair(value: Any, source: str) -> Arrays:
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise CbrunError(
            f"{source}: expected (x, y) arrays, a dict of splits, a tf.data.Dataset or a "
            f"keras.utils.PyDataset; got {_describe(value)}"
        )
    try:
        return np.asarray(value[0]), np.asarray(value[1])
    except (TypeError, ValueError) as error:
        raise CbrunError(f"{source}: cannot read (x, y) as arrays: {error}") from None


def _describe(value: Any) -> str:
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of {len(value)} items"
    return f"a {type(value).__module__}.{type(value).__qualname__}"


def _class_info(params: ImportDataParams, labels: list[np.ndarray] | None) -> dict[str, Any]:
    if params.task != "classification":
        return {}
    count = params.num_classes or (len(params.class_names) if params.class_names else None)
    if labels is not None and count is None:
        count = int(max(y.max() for y in labels)) + 1
    return {"num_classes": count, "class_names": params.class_names}


def _input_shape(part: Split) -> tuple[int, ...]:
    return part.input_shape if isinstance(part, Stream) else part[0].shape[1:]


def _user_stream(params: ImportDataParams, part: Any, where: str, seed: int) -> Stream:
    import keras
    import tensorflow as tf

    if isinstance(part, keras.utils.PyDataset):
        _no_limit(params, where, "a keras.utils.PyDataset")
        return _pydataset_stream(part, params, where)
    if not isinstance(part, tf.data.Dataset):
        raise CbrunError(
            f"{where}: expected (x, y) arrays, a tf.data.Dataset or a keras.utils.PyDataset; "
            f"got {_describe(part)}"
        )
    spec = part.element_spec
    if (
        not isinstance(spec, tuple)
        or len(spec) != 2
        or not all(isinstance(item, tf.TensorSpec) for item in spec)
    ):
        raise CbrunError(
            f"{where}: the tf.data.Dataset must give (x, y) pairs of tensors; it gives {spec}"
        )
    if spec[0].shape.rank and spec[0].shape[0] is None:  # batched: used as it is
        _no_limit(params, where, "a batched tf.data.Dataset")
        return _batched_stream(part, params, where)
    labels = _checked_labels(params, [y for _, y in _read(part.batch(1024), where)], where)
    positions = limit_arrays(np.arange(len(labels)), labels, params.limit, seed)[0]
    shape = tuple(spec[0].shape)
    if None in shape:
        raise CbrunError(f"{where}: samples must all have one known shape; they have {shape}")
    return positional_stream(
        lambda: part, lambda e, _: _cast(params, *e), labels, positions, shape, SHUFFLE_BUFFER
    )


def _array_stream(x: np.ndarray, y: np.ndarray) -> Stream:
    """Arrays as a Stream, for a split returned beside streamed ones."""
    import tensorflow as tf

    def source() -> Any:
        return tf.data.Dataset.from_tensor_slices((x, y))

    return positional_stream(
        source, lambda e, _: e, y, np.arange(len(y)), x.shape[1:], SHUFFLE_BUFFER
    )


def _no_limit(params: ImportDataParams, where: str, kind: str) -> None:
    if params.limit is not None:
        raise CbrunError(
            f"data.limit: {where} is {kind}, used batch by batch as it is, so cbrun cannot take "
            f"{params.limit} samples from it (`--smoke` sets limit too): remove `limit`, or "
            "return an unbatched tf.data.Dataset (cbrun batches it with training.batch_size)"
        )


def _read(batches: Any, where: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """Every `(x, y)` batch of a tf.data.Dataset as arrays; a failing pass is a user error."""
    import tensorflow as tf

    try:
        return list(batches.as_numpy_iterator())
    except tf.errors.OpError as error:
        raise CbrunError(f"{where}: reading the dataset failed: {error.message}") from None


def _checked_labels(params: ImportDataParams, ys: list[np.ndarray], where: str) -> np.ndarray:
    if not ys:
        raise CbrunError(f"{where}: the data is empty (0 samples)")
    labels = np.concatenate([np.asarray(y) for y in ys])
    return check_arrays(np.zeros((len(labels), 1)), labels, params.task, where)[1]


def _cast(params: ImportDataParams, x: Any, y: Any) -> tuple[Any, Any]:
    """A batch as float32 features and int32 classes or float32 targets."""
    import tensorflow as tf

    label = tf.int32 if params.task == "classification" else tf.float32
    return tf.cast(x, tf.float32), tf.cast(y, label)


def _batched_stream(data: Any, params: ImportDataParams, where: str) -> Stream:
    """A batched tf.data.Dataset, read as it is (no shuffle, its own batch size)."""
    batches = _read(data, where)
    labels = _checked_labels(params, [y for _, y in batches], where)
    shape = tuple(data.element_spec[0].shape[1:])
    count = len(batches)

    def stream(batch_size: int, shuffle: bool, seed: int, cache_dir: Any, first: int) -> Any:
        import tensorflow as tf

        cast = data.map(lambda x, y: _cast(params, x, y))
        return cast.apply(tf.data.experimental.assert_cardinality(count))

    def load(index: np.ndarray) -> Arrays:
        x = np.concatenate([x for x, _ in _read(data, where)])
        return x[index].astype("float32"), labels[index]

    return Stream(labels, shape, stream, load)


def _pydataset_stream(data: Any, params: ImportDataParams, where: str) -> Stream:
    """A PyDataset as a tf.data.Dataset of its batches: in a new seeded order each epoch when
    shuffled (as Keras shuffles a PyDataset's batches), in index order otherwise."""
    count = _pydataset_length(data, where)
    first = [_pydataset_batch(data, index, where) for index in range(count)]
    labels = _checked_labels(params, [y for _, y in first], where)
    offsets = np.cumsum([0] + [len(y) for _, y in first])
    shape = first[0][0].shape[1:]
    del first  # the pass only collected labels and sizes

    def stream(batch_size: int, shuffle: bool, seed: int, cache_dir: Any, epoch: int) -> Any:
        import tensorflow as tf

        label = tf.int32 if params.task == "classification" else tf.float32
        signature = (
            tf.TensorSpec((None, *shape), tf.float32),
            tf.TensorSpec((None,) + labels.shape[1:], label),
        )

        passes = [epoch]  # the epoch of the next pass: from_generator calls generate anew

        def generate() -> Any:
            order = np.arange(count)
            if shuffle:
                order = np.random.default_rng([seed, passes[0]]).permutation(count)
            passes[0] += 1
            for index in order:
                x, y = _pydataset_batch(data, int(index), where)
                yield x.astype("float32"), y.astype(label.as_numpy_dtype)
            data.on_epoch_end()

        batches = tf.data.Dataset.from_generator(generate, output_signature=signature)
        return batches.apply(tf.data.experimental.assert_cardinality(count))

    def load(index: np.ndarray) -> Arrays:
        index = np.asarray(index)
        batch_of = np.searchsorted(offsets, index, side="right") - 1
        xs = {int(b): _pydataset_batch(data, int(b), where)[0] for b in np.unique(batch_of)}
        x = np.stack([xs[int(b)][i - offsets[b]] for i, b in zip(index, batch_of, strict=True)])
        return x.astype("float32"), labels[index]

    return Stream(labels, tuple(shape), stream, load)


def _pydataset_length(data: Any, where: str) -> int:
    try:
        count = data.num_batches
    except Exception as error:
        raise CbrunError(
            f"{where}: the PyDataset's __len__ raised {type(error).__name__}: {error}"
        ) from None
    if not count:
        raise CbrunError(f"{where}: the PyDataset has no batches (__len__ must give their number)")
    return int(count)


def _pydataset_batch(data: Any, index: int, where: str) -> Arrays:
    try:
        batch = data[index]
    except Exception as error:
        raise CbrunError(
            f"{where}: the PyDataset's __getitem__({index}) raised {type(error).__name__}: {error}"
        ) from None
    if not isinstance(batch, tuple) or len(batch) != 2:
        raise CbrunError(
            f"{where}: the PyDataset's __getitem__({index}) must return an (x, y) batch; "
            f"got {_describe(batch)}"
        )
    return np.asarray(batch[0]), np.asarray(batch[1])
