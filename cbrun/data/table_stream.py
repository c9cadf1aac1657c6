"""A `Stream` over the rows of a table file read in chunks, so memory holds one chunk (plus
the shuffle buffer) however long the file is (`data.stream` of the csv source).

A split is the set of row positions it owns, so train, validation and test can share one
file. Each pass reads the file again, chunk by chunk, keeps the split's rows and turns them
into the model's inputs with the same code as the in-memory path (`table_columns`). While
training, each epoch shuffles the rows in consecutive blocks of `shuffle_buffer` rows (a
row moves within its block only), by a generator seeded with (seed, epoch) alone, so a
resumed run sees the batches an unbroken run would have.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from cbrun.data.base import Arrays, Stream, rows_at
from cbrun.data.streaming import epoch_passes

Chunks = Callable[[], Iterator[tuple[int, Any]]]  # fresh (first row, DataFrame) chunks


def chunk_stream(
    chunks: Chunks,
    features: Callable[[Any], Any],
    targets: tuple[np.ndarray, ...],
    keep: np.ndarray,
    spec: Any,
    input_shape: tuple[int, ...],
    shuffle_buffer: int,
    transform: Callable[..., Any] | None = None,
    loaded: Callable[[Any], Any] | None = None,
) -> Stream:
    """A Stream of the rows of a table at the positions `keep` (sorted, unique).

    Args:
        chunks: Reads the file anew as `(first row position, DataFrame)` chunks.
        features: Turns a DataFrame of rows into the model's inputs (a dict of columns, or
            one float array).
        targets: Per row of the whole file: the labels, and the sample weights if any.
        keep: The positions this split holds.
        spec: The `tf.TensorSpec` (or dict of them) of a batch of `features`.
        input_shape: Shape of one sample's features (as data.json records it).
        shuffle_buffer: Rows mixed together while training: each epoch shuffles the split's
            rows in consecutive blocks of this many (seeded by seed and epoch).
        transform: A tf.data function over each `(x, *targets)` row (decoding images).
        loaded: What `transform` does, on `x` arrays of rows loaded eagerly.
    """
    keep = np.asarray(keep, dtype="int64")

    def pieces(positions: np.ndarray) -> Iterator[tuple[Any, ...]]:
        return table_pieces(chunks, features, targets, positions)

    def rows(positions: np.ndarray, key: Any = None) -> Any:
        """The rows at `positions`, unbatched; with an epoch's `key`, mixed in blocks."""
        import tensorflow as tf

        signature = (spec, *(tf.TensorSpec([None], tf.as_dtype(t.dtype)) for t in targets))
        if key is None:
            pieced = tf.data.Dataset.from_generator(
                lambda: pieces(positions), output_signature=signature
            )
        else:
            pieced = tf.data.Dataset.from_generator(
                lambda key: mixed(pieces(positions), shuffle_buffer, int(key)),
                args=(key,),
                output_signature=signature,
            )
        pieced = pieced.unbatch()
        return pieced if transform is None else pieced.map(transform, tf.data.AUTOTUNE)

    def batches(batch_size: int, shuffle: bool, seed: int, cache_dir: Any, first: int) -> Any:
        import tensorflow as tf

        data = epoch_passes(lambda key: rows(keep, key), seed, first) if shuffle else rows(keep)
        data = data.batch(batch_size).prefetch(tf.data.AUTOTUNE)
        return data.apply(tf.data.experimental.assert_cardinality(-(-len(keep) // batch_size)))

    def load(index: np.ndarray) -> Arrays:
        wanted = keep[np.asarray(index, dtype="int64")]
        ordered = np.unique(wanted)
        x, y, *_ = joined(list(pieces(ordered)))
        order = np.searchsorted(ordered, wanted)
        return rows_at((x if loaded is None else loaded(x), y), order)

    return Stream(targets[0][keep], input_shape, batches, load)


def table_pieces(
    chunks: Chunks, features: Callable[[Any], Any], targets: tuple, positions: np.ndarray
) -> Iterator[tuple[Any, ...]]:
    """`(x, y[, w])` of the rows at `positions` (sorted), one piece per chunk holding some;
    reading stops after the chunk with the last of them."""
    if not len(positions):
        return
    for first, frame in chunks():
        low, high = np.searchsorted(positions, [first, first + len(frame)])
        if low < high:
            wanted = positions[low:high]
            x = features(frame.iloc[wanted - first])
            yield (x, *(values[wanted] for values in targets))
        if high == len(positions):
            return


def mixed(pieces: Iterator[tuple], block: int, key: int) -> Iterator[tuple]:
    """The rows of `pieces` shuffled in consecutive blocks of about `block` rows, each block
    by a generator seeded with `key` (an epoch's): a row moves within its block only."""
    rng = np.random.default_rng(key)
    held: list[tuple] = []
    count = 0
    for piece in pieces:
        held.append(piece)
        count += len(piece[1])
        if count >= block:
            yield _shuffled(joined(held), rng)
            held, count = [], 0
    if held:
        yield _shuffled(joined(held), rng)


def joined(pieces: list[tuple]) -> tuple:
    """Pieces `(x, y[, w])` joined into one (x a dict of columns or an array)."""
    first = pieces[0]
    x = (
        {name: np.concatenate([p[0][name] for p in pieces]) for name in first[0]}
        if isinstance(first[0], dict)
        else np.concatenate([p[0] for p in pieces])
    )
    return (x, *(np.concatenate([p[i] for p in pieces]) for i in range(1, len(first))))


def _shuffled(piece: tuple, rng: np.random.Generator) -> tuple:
    order = rng.permutation(len(piece[1]))
    return rows_at(piece, order)
