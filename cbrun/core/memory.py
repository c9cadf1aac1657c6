"""Memory and the garbage collector: the C heap's free pages go back to the system between
epochs (glibc's `malloc_trim`); TensorFlow's import leaves nothing for later collections.

TensorFlow frees each step's buffers into glibc's heap, which keeps the freed pages as
resident memory: the bench CNN's process grew 2-7 MB an epoch. Returning them after every
epoch took under 1 ms and lowered that run's peak resident memory by 10-15 MB. Where the C
library has no `malloc_trim` (macOS, musl), nothing happens.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.malloc_trim
    except (OSError, AttributeError):
        return None


def return_free_memory() -> bool:
    """Release the heap's free pages to the system; False where the C library cannot."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


@contextmanager
def imports_kept_out_of_collections(module: str) -> Iterator[None]:
    """Import `module` (within) with the garbage collector paused, then freeze what exists
    (`gc.freeze`): TensorFlow and Keras alone leave about 450,000 objects that live as long as the
    process, and every full collection would walk them again. Paused, the import of Keras
    took 2.4-2.7 s instead of 3.2 s, and the bench MLP's whole `cbrun train` 5.6-5.9 s instead
    of 7.0 s. Once `module` is imported, this does nothing (a warm sweep worker's trials
    freeze nothing of theirs)."""
    if module in sys.modules:
        yield
        return
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()  # import-time garbage (about 4,000 objects) is frozen with the rest
        if enabled:
            gc.enable()
