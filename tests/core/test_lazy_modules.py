"""Keras' parts cbrun never uses load on first use: `import_keras` leaves scikit-learn and
pyplot unimported, and the lazy modules still work when touched."""

from __future__ import annotations

import sys

import pytest

from cbrun.core.lazy_modules import loaded_on_first_use
from conftest import run_python

KERAS_IMPORTED = """
import sys
from cbrun.run.build import import_keras

keras = import_keras()
heavy = ("sklearn", "scipy.stats", "matplotlib.pyplot")
imported = [name for name in heavy if name in sys.modules]
print(imported)
print(keras.wrappers.SKLearnClassifier.__module__, "sklearn" in sys.modules)
print(keras.visualization.plot_image_gallery.__name__)
"""


def test_import_keras_leaves_scikit_learn_and_pyplot_for_first_use():
    result = run_python(KERAS_IMPORTED)
    assert result.returncode == 0, result.stderr
    imported, wrappers, gallery = result.stdout.splitlines()
    assert imported == "[]"  # neither imported by `import keras`
    assert wrappers == "keras.src.wrappers.sklearn_wrapper True"  # real, once touched
    assert gallery == "plot_image_gallery"


def test_a_lazy_name_that_does_not_exist_fails_to_import_as_usual():
    with loaded_on_first_use(["cbrun.no_such_module"]):
        with pytest.raises(ModuleNotFoundError):
            import cbrun.no_such_module  # noqa: F401


def test_the_finder_is_gone_after_the_block():
    before = list(sys.meta_path)
    with loaded_on_first_use(["json"]):
        assert len(sys.meta_path) == len(before) + 1
    assert sys.meta_path == before
