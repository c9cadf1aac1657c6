"""Data sources: seeded synthetic data, CSV, NPZ and digits, split by fraction or by file."""

import numpy as np
import pandas as pd
import pytest

from cbrun import registry
from cbrun.core.errors import CbrunError


def load(params: dict, seed: int = 0):
    component = registry.datasets.get(params["type"])
    return component.factory(component.params.model_validate(params), seed)


def test_synthetic_data_is_seeded_and_split_by_fraction():
    params = {
        "type": "synthetic_classification",
        "samples": 400,
        "classes": 4,
        "split": {"validation": 0.25, "test": 0.25},
    }
    first, again, other = load(params, 3), load(params, 3), load(params, 4)
    np.testing.assert_array_equal(first.train[0], again.train[0])
    assert not np.array_equal(first.train[0], other.train[0])
    assert [len(part[0]) for part in (first.train, first.validation, first.test)] == [200, 100, 100]
    # stratified: every class keeps its share in each split
    for part in (first.validation, first.test):
        assert np.bincount(part[1], minlength=4).min() > 0
    assert first.num_classes == 4 and first.task == "classification"


def test_synthetic_regression_has_float_targets_and_the_requested_columns():
    data = load({"type": "synthetic_regression", "samples": 100, "features": 5, "targets": 2})
    assert data.task == "regression" and data.output_units == 2
    assert data.train[0].shape[1] == 5 and data.train[1].dtype == np.float32


def test_limit_takes_a_sample_before_splitting():
    data = load({"type": "synthetic_classification", "samples": 1000, "limit": 100})
    assert sum(len(p[0]) for p in (data.train, data.validation, data.test)) == 100


def test_digits_are_bundled_real_data_as_vectors_or_images():
    flat = load({"type": "digits"})
    images = load({"type": "digits", "as_images": True})
    assert flat.input_shape == (64,) and images.input_shape == (8, 8, 1)
    assert flat.num_classes == 10 and flat.train[0].max() <= 1.0
    assert sum(len(p[0]) for p in (flat.train, flat.validation, flat.test)) == 1797


@pytest.fixture
def flowers(tmp_path):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "width": rng.normal(size=60),
            "height": rng.normal(size=60),
            "noise": rng.normal(size=60),
            "kind": rng.choice(["rose", "tulip", "daisy"], size=60),
        }
    )
    path = tmp_path / "flowers.csv"
    frame.to_csv(path, index=False)
    return path, frame


def test_csv_text_labels_become_classes_and_features_default_to_the_other_columns(flowers):
    path, _ = flowers
    data = load({"type": "csv", "path": str(path), "target": "kind"})
    assert data.task == "classification"
    assert data.class_names == ["daisy", "rose", "tulip"]
    assert data.feature_names == ["width", "height", "noise"]
    chosen = load({"type": "csv", "path": str(path), "target": "kind", "features": ["height"]})
    assert chosen.input_shape == (1,)


def test_csv_numeric_target_is_regression_unless_told(flowers):
    path, _ = flowers
    data = load({"type": "csv", "path": str(path), "target": "width", "features": ["height"]})
    assert data.task == "regression"


def test_csv_splits_by_file(flowers, tmp_path):
    path, frame = flowers
    frame[:10].to_csv(tmp_path / "val.csv", index=False)
    frame[10:25].to_csv(tmp_path / "test.csv", index=False)
    data = load(
        {
            "type": "csv",
            "path": str(path),
            "target": "kind",
            "validation_path": str(tmp_path / "val.csv"),
            "test_path": str(tmp_path / "test.csv"),
        }
    )
    assert len(data.train[0]) == 60 and len(data.validation[0]) == 10 and len(data.test[0]) == 15


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"target": "knd"}, "no column `knd`. Did you mean `kind`?"),
        (
            {"features": ["width", "kind"], "target": "height", "columns": {"kind": "numeric"}},
            "column `kind` is numeric but holds text",
        ),
    ],
)
def test_csv_problems_are_user_errors(flowers, change, message):
    path, _ = flowers
    with pytest.raises(CbrunError, match=message):
        load({"type": "csv", "path": str(path), "target": "kind", **change})


def test_npz_arrays_by_name_and_labels_checked_against_classes(tmp_path):
    path = tmp_path / "data.npz"
    np.savez(path, features=np.ones((30, 4)), labels=np.arange(30) % 3)
    data = load({"type": "npz", "path": str(path), "x": "features", "y": "labels"})
    assert data.num_classes == 3 and data.input_shape == (4,)
    with pytest.raises(CbrunError, match="outside the 2 classes"):
        load({"type": "npz", "path": str(path), "x": "features", "y": "labels", "num_classes": 2})
    with pytest.raises(CbrunError, match="no array `label`. Did you mean `labels`?"):
        load({"type": "npz", "path": str(path), "x": "features", "y": "label"})


def test_empty_data_is_refused(tmp_path):
    path = tmp_path / "empty.npz"
    np.savez(path, x=np.ones((0, 4)), y=np.ones(0))
    with pytest.raises(CbrunError, match="the data is empty"):
        load({"type": "npz", "path": str(path)})


def test_standardising_statistics_need_no_float64_copy_of_the_training_split():
    """Mean and variance in float64, a chunk at a time: equal to NumPy's on a float64 copy,
    with a peak allocation far below the copy it used to make (2x the float32 array)."""
    import tracemalloc

    from cbrun.data.base import Dataset

    x = np.random.default_rng(0).normal(3, 2, (400_000, 16)).astype("float32")
    x[:, 2] = 5.0  # constant: variance 1, as scikit-learn's StandardScaler
    dataset = Dataset((x, np.zeros(len(x))), None, None, "regression")
    tracemalloc.start()
    mean, variance = dataset.feature_stats()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    exact = x.astype("float64")
    np.testing.assert_allclose(mean, exact.mean(axis=0), rtol=1e-9)
    np.testing.assert_allclose(variance[[0, 1, 3]], exact.var(axis=0)[[0, 1, 3]], rtol=1e-9)
    assert variance[2] == 1.0
    assert peak < 0.1 * x.nbytes, f"peak {peak / 1e6:.1f} MB for a {x.nbytes / 1e6:.1f} MB split"
