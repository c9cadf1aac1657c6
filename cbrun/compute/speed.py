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
    dataset: Any, training: Any, seed: int, passes_done: int = 0, cache_dir: Any = None
) -> dict[str, Any]:
    """Keyword arguments of `model.fit` for the data: the arrays, or tf.data pipelines.

    `passes_done`: epochs already trained (a resumed run), so a shuffle goes on with the
    order the unbroken run would draw next. A streamed source (`dataset.streamed`) builds its
    own pipelines; `cache_dir` is where it may cache on disk, and `training.pipeline` adds its
    tf.data options to them.
    """
    pipeline = training.pipeline
    if dataset.streamed:
        size, train, validation = training.batch_size, dataset.train, dataset.validation
        streams = {
            "x": train.batches(size, training.shuffle, seed, cache_dir, passes_done),
            "validation_data": None
            if validation is None
            else validation.batches(size, False, seed, cache_dir, 0),
        }
        if pipeline is not None:
            streams = {k: v and _with_options(v, pipeline) for k, v in streams.items()}
        return {**streams, "shuffle": False}  # the stream shuffles
    if pipeline is None:
        x, y, *weights = dataset.train
        return {
            "x": x,
            "y": y,
            "sample_weight": weights[0] if weights else None,
            "batch_size": training.batch_size,
            "shuffle": training.shuffle,
            "validation_data": dataset.validation,
        }
    validation = dataset.validation
    return {
        "x": batches(
            dataset.train, training.batch_size, pipeline, training.shuffle, seed, passes_done
        ),
        "shuffle": False,  # the pipeline shuffles; Keras warns if asked to as well
        "validation_data": None
        if validation is None
        else batches(validation, training.batch_size, pipeline, False, seed),
    }


def batches(
    arrays: tuple[Any, ...],
    batch_size: int,
    pipeline: PipelineSection,
    shuffle: bool,
    seed: int,
    passes_done: int = 0,
) -> Any:
    """A tf.data pipeline over `(x, y)` (or `(x, y, sample_weight)`) that gathers whole
    batches of samples at once.

    Batches of sample indices are made first (a fresh seeded permutation every pass, or
    tf.data's shuffle buffer, seeded anew every pass, when `shuffle_buffer` is set), then each
    batch is gathered from the arrays in parallel: many times faster than slicing samples one
    by one. Every pass draws from one `tf.random.Generator` seeded with `seed`; it is first
    moved on by `passes_done` passes, so pass N is the same whether or not a run was resumed.
    """
    import tensorflow as tf

    count = len(arrays[1])
    tensors = tf.nest.map_structure(tf.convert_to_tensor, tuple(arrays))  # x may be a dict
    generator = tf.random.Generator.from_seed(seed)  # its state moves on with every pass
    if shuffle and pipeline.shuffle_buffer:
        buffer = pipeline.shuffle_buffer

        def draw() -> Any:
            return generator.uniform_full_int([], dtype=tf.int64)

        def one_pass(_: Any) -> Any:
            return tf.data.Dataset.range(count).shuffle(buffer, seed=draw())

        indices = _one_pass_each_iteration(one_pass, count, batch_size)
    else:

        def draw() -> Any:
            return generator.uniform([count])

        indices = _index_batches(count, batch_size, shuffle, draw)
    for _ in range(passes_done if shuffle else 0):
        draw()
    data = indices.map(
        lambda index: tf.nest.map_structure(lambda t: tf.gather(t, index), tensors),
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


def _index_batches(count: int, batch_size: int, shuffle: bool, draw: Any) -> Any:
    """Batches of indices 0..count-1, in a new random order (`argsort(draw())`) each pass."""
    import tensorflow as tf

    full = count // batch_size * batch_size

    def one_pass(_: Any) -> Any:
        order = tf.range(count, dtype=tf.int64)
        if shuffle:
            order = tf.cast(tf.argsort(draw()), tf.int64)
        batches = tf.data.Dataset.from_tensor_slices(tf.reshape(order[:full], [-1, batch_size]))
        if count > full:
            batches = batches.concatenate(tf.data.Dataset.from_tensors(order[full:]))
        return batches

    return _one_pass_each_iteration(one_pass, count, batch_size, batched=True)


def _one_pass_each_iteration(
    one_pass: Any, count: int, batch_size: int, batched: bool = False
) -> Any:
    """Batches made by `one_pass` anew at each iteration (epoch), with a known cardinality."""
    import tensorflow as tf

    data = tf.data.Dataset.range(1).flat_map(one_pass)
    if not batched:
        data = data.batch(batch_size)
    total = -(-count // batch_size)
    return data.apply(tf.data.experimental.assert_cardinality(total))


AUTO_STEPS_PER_EXECUTION = 32  # 2.7x faster epochs than 1 on the digits MLP (bench/RESULTS.md)
# Below this many training batches in the whole run, `auto` keeps 1: tracing the many-batch
# functions (a while loop around the step) costs more than the calls it saves. One-epoch
# digits trials (40 batches): 1.46 s against 1.70 s a trial; even at 3 epochs (120 batches).
SHORT_RUN_BATCHES = 128


def steps_per_execution(config: Any, train_size: int) -> tuple[int, str]:
    """`training.steps_per_execution` resolved (`auto`: many batches per call when no
    callback, in any phase, needs a hook after every batch and the run is not too short to pay
    for the tracing), and why, for run.json."""
    requested = config.training.steps_per_execution
    if requested != "auto":
        return requested, "training.steps_per_execution"
    if config.distribution.strategy != "default":
        # Keras 3.15's multi-step function fails under MirroredStrategy ("You must feed a value
        # for placeholder tensor ... while/cond/Placeholder"); one device is left as it was.
        return 1, f"auto: 1 under distribution.strategy {config.distribution.strategy}"
    hooked = [
        f"callbacks[{index}] ({item.type})"
        for index, item in enumerate(config.callbacks)
        if item.batch_hooks()  # evaluate and predict run N batches per call as well
    ]
    if hooked:
        return 1, f"auto: {', '.join(hooked)} has a per-batch hook"
    steps = config.training.steps_per_epoch or -(-train_size // config.training.batch_size)
    planned = steps * config.training.epochs
    if planned < SHORT_RUN_BATCHES:
        return 1, (
            f"auto: {planned} training batches in all, fewer than {SHORT_RUN_BATCHES}: "
            "tracing many batches per call would cost more than it saves"
        )
    return max(1, min(AUTO_STEPS_PER_EXECUTION, steps)), "auto: no callback has a per-batch hook"


def describe(config: Any, model: Any, train_size: int) -> dict[str, Any]:
    """The speed settings in force, for run.json (`jit_compile` as Keras resolved it)."""
    training = config.training
    pipeline = training.pipeline
    return {
        "steps_per_execution": int(model.steps_per_execution),
        "steps_per_execution_chosen_by": steps_per_execution(config, train_size)[1],
        "jit_compile": bool(model.jit_compile),
        "precision": training.precision,
        "input": "keras arrays" if pipeline is None else "cbrun tf.data",
        "pipeline": None if pipeline is None else pipeline.model_dump(),
    }
