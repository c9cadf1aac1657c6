"""A `Stream` over any tf.data source of single samples (TFRecord records, a user's dataset).

Each sample is numbered by its position in one pass of the source. A split keeps the
positions it owns (a mask), so train, validation and test can share one source file. While
training, every epoch shuffles through a buffer seeded by (seed, epoch) alone, so a resumed
run sees the batches an unbroken run would have (given a source that reads in a fixed order).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from cbrun.data.base import Arrays, Stream

EPOCH_STRIDE = 1_000_003  # epoch e of seed s shuffles with s * EPOCH_STRIDE + e
ZERO_SEED = 1_000_033  # the graph seed of a pass when the global seed is 0 (see epoch_passes)


def positional_stream(
    source: Callable[[], Any],
    parse: Callable[[Any, Any], tuple[Any, Any]],
    labels: np.ndarray,
    keep: np.ndarray,
    input_shape: tuple[int, ...],
    shuffle_buffer: int,
) -> Stream:
    """A Stream of the samples of `source()` at the positions `keep` (sorted, unique).

    Args:
        source: A fresh unbatched tf.data.Dataset of the whole source, in a fixed order.
        parse: `parse(elements, positions)` turns a batch of elements and their positions
            into an `(x, y)` batch.
        labels: One label per sample of the whole source (indexed by position).
        keep: The positions this split holds.
        input_shape: Shape of one sample's features.
        shuffle_buffer: Samples held for shuffling while training.
    """
    keep = np.asarray(keep, dtype="int64")

    def selected(positions: np.ndarray) -> Any:
        import tensorflow as tf

        mask = np.zeros(len(labels), dtype=bool)
        mask[positions] = True
        wanted = tf.constant(mask)
        return source().enumerate().filter(lambda i, _: tf.gather(wanted, i))

    def finish(data: Any, batch_size: int, count: int) -> Any:
        import tensorflow as tf

        data = data.batch(batch_size).map(lambda i, e: parse(e, i), tf.data.AUTOTUNE)
        data = data.prefetch(tf.data.AUTOTUNE)
        return data.apply(tf.data.experimental.assert_cardinality(-(-count // batch_size)))

    def batches(batch_size: int, shuffle: bool, seed: int, cache_dir: Any, first: int) -> Any:
        if not shuffle:
            return finish(selected(keep), batch_size, len(keep))
        buffer = min(len(keep), shuffle_buffer)
        return finish(
            epoch_passes(lambda key: selected(keep).shuffle(buffer, seed=key), seed, first),
            batch_size,
            len(keep),
        )

    def load(index: np.ndarray) -> Arrays:
        wanted = keep[np.asarray(index, dtype="int64")]
        ordered = np.unique(wanted)
        xs, ys = zip(*finish(selected(ordered), 256, len(ordered)).as_numpy_iterator(), strict=True)
        rows = np.searchsorted(ordered, wanted)
        return np.concatenate(xs)[rows], np.concatenate(ys)[rows]

    return Stream(labels[keep], input_shape, batches, load)


def epoch_passes(one_pass: Callable[[Any], Any], seed: int, first: int) -> Any:
    """A dataset running `one_pass(key)` anew at each iteration; pass k gets the int64 key of
    epoch first + k, which depends on the seed and the epoch alone."""
    import tensorflow as tf

    epoch = tf.Variable(first, dtype=tf.int64, trainable=False)

    def run(_: Any) -> Any:
        graph = tf.compat.v1.get_default_graph()  # this function's own graph
        if graph.seed == 0:  # global seed 0: TF's get_seed would test `key == 0` as a bool
            graph.seed = ZERO_SEED
        return one_pass(tf.constant(seed * EPOCH_STRIDE, tf.int64) + epoch.assign_add(1) - 1)

    return tf.data.Dataset.range(1).flat_map(run)
