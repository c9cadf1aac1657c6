"""Modules that load on first use, not when the package that imports them is imported.

`import keras` imports `keras.wrappers` and `keras.visualization` whenever scikit-learn and
matplotlib are installed (both are cbrun dependencies). The scikit-learn estimator wrappers
import scikit-learn's base classes and with them much of SciPy; the visualization helpers import
`matplotlib.pyplot`. cbrun uses neither: it scores in NumPy and imports matplotlib's Agg
canvas on a thread while `fit` runs. Made lazy, `import keras` took 2.2-2.3 s instead of
3.4 s on the bench machine. A lazy module is complete: its first attribute access runs it.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from importlib.machinery import ModuleSpec

# Parts of Keras that `import keras` runs and cbrun never uses (Keras 3.x module names).
KERAS_UNUSED = ("keras.wrappers", "keras.visualization", "keras.src.visualization")


class _LazyFinder(importlib.abc.MetaPathFinder):
    """Finds `names` with the other finders and defers running them (`LazyLoader`)."""

    def __init__(self, names: Iterable[str]):
        self.names = frozenset(names)

    def find_spec(self, name, path, target=None) -> ModuleSpec | None:
        if name not in self.names:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is None:
                continue
            if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                spec.loader = importlib.util.LazyLoader(spec.loader)
            return spec
        return None


@contextmanager
def loaded_on_first_use(names: Iterable[str]) -> Iterator[None]:
    """Within, importing any of `names` (full module names) binds a module that runs on its
    first attribute access. Names that do not exist fail to import as usual."""
    finder = _LazyFinder(names)
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)
