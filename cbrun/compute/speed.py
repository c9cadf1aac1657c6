"""Speed settings of `training:`: mixed precision, and an optional tf.data input pipeline.

`steps_per_execution` and `jit_compile` go straight to `model.compile`. Nothing here imports
TensorFlow at module level, so the config schema can use these models on light commands.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

from pydantic import Field, PositiveInt

from cbrun.core.fields import StrictModel

Precision = Literal["float32", "mixed_float16", "mixed_bfloat16"]


class PipelineSection(StrictModel):
    """Feed `fit` from a tf.data pipeline that cbrun builds from the arrays.

    Without this section the arrays go to Keras, whose own adapter also batches them with
    tf.data (shuffled index batches, gathered and prefetched).
    """

    shuffle_buffer: PositiveInt | None = Field(
        None, description="Samples in the shuffle buffer; default: the whole training split."
    )
    cache: bool = Field(
        False,
        description="Keep the batches of data read in a fixed order (validation, or training "
        "with `shuffle: false`) in memory after the first pass.",
    )
    prefetch: PositiveInt | Literal["auto"] = Field(
        "auto", description="Batches prepared ahead of the model; `auto` lets tf.data tune it."
    )
    deterministic: bool = Field(
        True, description="Keep the order deterministic; false lets parallel work reorder."
    )
    threads: PositiveInt | None = Field(
        None, description="A private thread pool of this size; default: TensorFlow's pool."
    )


@contextmanager
def dtype_policy(precision: Precision) -> Iterator[None]:
    """Build layers under Keras' `precision` policy; the global policy is restored after."""
    import keras

    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(precision)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def fit_inputs(
    dataset: Any, training: Any, seed: int, cache_dir: Any = None, first_epoch: int = 0
) -> dict[str, Any]:
    """Keyword arguments of `model.fit` for the data: the arrays, or tf.data pipelines.

    A streamed source (`dataset.streamed`) builds its own pipelines; `cache_dir` is where
    it may cache on disk, `first_epoch` is where a resumed run starts, and `training.pipeline`
    adds its tf.data options to them.
    """
    pipeline = training.pipeline
    if dataset.streamed:
        size, train, validation = training.batch_size, dataset.train, dataset.validation
        streams = {
            "x": train.batches(size, training.shuffle, seed, cache_dir, first_epoch),
            "validation_data": None
            if validation is None
            else validation.batches(size, False, seed, cache_dir, 0),
        }
        if pipeline is not None:
            streams = {k: v and _with_options(v, pipeline) for k, v in streams.items()}
        return {**streams, "shuffle": False}  # the stream shuffles
    if pipeline is None:
        x, y = dataset.train
        return {
            "x": x,
            "y": y,
            "batch_size": training.batch_size,
            "shuffle": training.shuffle,
            "validation_data": dataset.validation,
        }
    validation = dataset.validation
    return {
        "x": batches(dataset.train, training.batch_size, pipeline, training.shuffle, seed),
        "shuffle": False,  # the pipeline shuffles; Keras warns if asked to as well
        "validation_data": None
        if validation is None
        else batches(validation, training.batch_size, pipeline, False, seed),
    }


def batches(
    arrays: tuple[Any, Any], batch_size: int, pipeline: PipelineSection, shuffle: bool, seed: int
) -> Any:
    """A tf.data pipeline over `(x, y)` that gathers whole batches of samples at once.

    Batches of sample indices are made first (a fresh seeded permutation every epoch, or
    tf.data's shuffle buffer when `shuffle_buffer` is set), then each batch is gathered from
    the arrays in parallel: many times faster than slicing samples one by one.
    """
    import tensorflow as tf

    count = len(arrays[0])
    tensors = tuple(tf.convert_to_tensor(a) for a in arrays)
    if shuffle and pipeline.shuffle_buffer:
        order = tf.data.Dataset.range(count).shuffle(
            pipeline.shuffle_buffer, seed=seed, reshuffle_each_iteration=True
        )
        indices = order.batch(batch_size)
    else:
        indices = _index_batches(count, batch_size, shuffle, seed)
    data = indices.map(
        lambda index: tuple(tf.gather(t, index) for t in tensors),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=pipeline.deterministic,
    )
    if pipeline.cache and not shuffle:
        data = data.cache()
    return _with_options(data, pipeline)


def _with_options(data: Any, pipeline: PipelineSection) -> Any:
    """`data` prefetched, with the pipeline's determinism and thread pool."""
    import tensorflow as tf

    data = data.prefetch(tf.data.AUTOTUNE if pipeline.prefetch == "auto" else pipeline.prefetch)
    options = tf.data.Options()
    options.deterministic = pipeline.deterministic
    if pipeline.threads:
        options.threading.private_threadpool_size = pipeline.threads
    return data.with_options(options)


def _index_batches(count: int, batch_size: int, shuffle: bool, seed: int) -> Any:
    """Batches of indices 0..count-1, in a new seeded random order at every pass if `shuffle`."""
    import tensorflow as tf

    generator = tf.random.Generator.from_seed(seed)  # its state moves on with every pass
    full = count // batch_size * batch_size

    def one_pass(_: Any) -> Any:
        order = tf.range(count, dtype=tf.int64)
        if shuffle:
            order = tf.cast(tf.argsort(generator.uniform([count])), tf.int64)
        batches = tf.data.Dataset.from_tensor_slices(tf.reshape(order[:full], [-1, batch_size]))
        if count > full:
            batches = batches.concatenate(tf.data.Dataset.from_tensors(order[full:]))
        return batches

    total = -(-count // batch_size)
    return (
        tf.data.Dataset.range(1)
        .flat_map(one_pass)
        .apply(tf.data.experimental.assert_cardinality(total))
    )


def describe(training: Any, model: Any) -> dict[str, Any]:
    """The speed settings in force, for run.json (`jit_compile` as Keras resolved it)."""
    pipeline = training.pipeline
    return {
        "steps_per_execution": training.steps_per_execution,
        "jit_compile": bool(model.jit_compile),
        "precision": training.precision,
        "input": "keras arrays" if pipeline is None else "cbrun tf.data",
        "pipeline": None if pipeline is None else pipeline.model_dump(),
    }
