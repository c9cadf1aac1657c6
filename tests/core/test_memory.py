"""Freed heap memory goes back to the system between epochs (glibc's malloc_trim)."""

from __future__ import annotations

import platform

import pytest

from conftest import run_python

HEAP_HOLES = """
import sys
from cbrun.core.memory import return_free_memory

def resident_mb():
    with open("/proc/self/status") as status:
        return next(int(l.split()[1]) for l in status if l.startswith("VmRSS")) // 1024

blocks = [bytearray(60_000) for _ in range(3000)]  # below mmap's threshold: on the heap
kept = blocks[-1]  # the heap's top stays in use, so free() alone cannot shrink it
del blocks
before = resident_mb()
returned = return_free_memory()
print(returned, before, resident_mb())
"""


@pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only"
)
def test_the_free_pages_of_the_heap_are_given_back_to_the_system():
    result = run_python(HEAP_HOLES)
    assert result.returncode == 0, result.stderr
    returned, before, after = result.stdout.split()
    assert returned == "True"
    assert int(before) - int(after) > 120, (before, after)  # of the 180 MB freed


FROZEN_IMPORT = """
import gc
from cbrun.run.build import import_keras

import_keras()
frozen = gc.get_freeze_count()
garbage = [[] for _ in range(1000)]
for item in garbage:
    item.append(item)  # cycles: only a collection frees them
del garbage, item
import_keras()  # Keras is imported: nothing more is frozen
print(gc.isenabled(), frozen, gc.get_freeze_count() - frozen, gc.collect() >= 1000)
"""


def test_the_objects_of_tensorflows_import_are_frozen_out_of_later_collections():
    result = run_python(FROZEN_IMPORT)
    assert result.returncode == 0, result.stderr
    enabled, frozen, frozen_later, collected = result.stdout.split()
    assert enabled == "True"  # the collector runs again after the import
    assert int(frozen) > 200_000  # TensorFlow's and Keras' objects
    assert frozen_later == "0" and collected == "True"  # later garbage is still collected
