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
