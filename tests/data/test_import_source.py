"""The `import` data source: a function in the config's folder returning arrays, tf.data
datasets (unbatched or batched) or a Keras PyDataset trains, resumes, evaluates and predicts;
a missing, raising or ill-returning function is exit 2 naming it, with no run directory."""

from __future__ import annotations

import os

import numpy as np
import pytest
import yaml

from tests.conftest import (
    assert_eval_and_predict,
    assert_refused,
    assert_unbroken_weights,
    stopped_then_resumed,
)

MODULE = """
import os
import signal

import numpy as np


def arrays(count, seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(3, size=count)
    x = rng.normal(size=(count, 4)).astype("float32")
    x[np.arange(count), y] += 3
    return x, y


def splits():
    import tensorflow as tf

    return {
        "train": tf.data.Dataset.from_tensor_slices(arrays(200, 1)),
        "validation": arrays(50, 2),
        "test": tf.data.Dataset.from_tensor_slices(arrays(60, 3)).batch(7),
    }


def batches(fail_at=None):
    import keras

    class Batches(keras.utils.PyDataset):
        def __init__(self):
            super().__init__()
            self.x, self.y = arrays(200, 4)

        def __len__(self):
            return 10

        def __getitem__(self, index):
            if index == fail_at:
                raise KeyError(f"no row {index * 20}")
            return self.x[index * 20 : (index + 1) * 20], self.y[index * 20 : (index + 1) * 20]

    return {"train": Batches(), "test": arrays(60, 5)}


def batched_only():
    import tensorflow as tf

    return tf.data.Dataset.from_tensor_slices(arrays(60, 6)).batch(8)


def broken():
    raise ValueError("the bucket is empty")


def a_number():
    return 42


def stop_in_epoch_2(batch, logs):
    if os.environ.get("IMPORT_STOP") and batch == 1:
        os.kill(os.getpid(), signal.SIGTERM)
"""


def config(root, function: str, **data) -> dict:
    return {
        "experiment": {"name": "imported", "seed": 3},
        "output": {"runs_dir": str(root / "runs")},
        "data": {"type": "import", "function": f"cbrun_test_source:{function}", **data},
        "model": {"type": "mlp", "units": [16]},
        "compile": {"optimizer": {"name": "adam", "learning_rate": 0.02}},
        "training": {"epochs": 3, "batch_size": 16},
    }


def write(root, text: dict, name: str) -> os.PathLike:
    path = root / name
    path.write_text(yaml.safe_dump(text, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("imported")
    (root / "cbrun_test_source.py").write_text(MODULE)
    return root


@pytest.fixture(scope="module")
def resumed(folder):
    """Mixed splits (unbatched tf.data, arrays, batched tf.data), stopped in epoch 2 by
    SIGTERM and resumed with --allow-imports."""
    text = config(folder, "splits")
    hook = "cbrun_test_source:stop_in_epoch_2"
    text["callbacks"] = [{"type": "lambda", "on_train_batch_end": hook}]
    return stopped_then_resumed(write(folder, text, "splits.yaml"), "IMPORT_STOP")


def test_mixed_splits_train_and_resume_to_high_accuracy(resumed):
    record = resumed.record
    assert record["status"] == "completed" and record["epochs_completed"] == 3
    assert record["test_metrics"]["accuracy"] >= 0.9  # three classes; chance is 0.33
    assert record["data"]["samples"] == {"train": 200, "validation": 50, "test": 60}
    assert record["data"]["function"] == "cbrun_test_source:splits"


def test_a_resumed_run_on_unbatched_tf_data_equals_the_unbroken_run(resumed, folder):
    assert_unbroken_weights(folder / "splits.yaml", resumed)


def test_eval_imports_only_when_allowed_and_predict_works(resumed, cli, folder):
    refused = cli("eval", resumed.run_dir)
    assert refused.exit_code == 2 and "--allow-imports" in refused.stderr
    x = np.zeros((3, 4), dtype="float32")
    x[np.arange(3), np.arange(3)] = 4.0
    np.savez(folder / "new.npz", x=x)
    inputs, classes = folder / "new.npz", ["0", "1", "2"]
    assert_eval_and_predict(cli, resumed.run_dir, inputs, classes, "--allow-imports")


def test_a_pydataset_trains(folder):
    from cbrun.run.train import train

    result = train(write(folder, config(folder, "batches"), "batches.yaml"), quiet=True)
    assert result.exit_code == 0, result.record.get("error")
    assert result.record["data"]["samples"] == {"train": 200, "validation": 0, "test": 60}
    assert result.record["test_metrics"]["accuracy"] >= 0.9


@pytest.mark.parametrize(
    ("function", "data", "expected"),
    [
        ("splitz", {}, "has no attribute `splitz`. Did you mean `splits`?"),
        ("broken", {}, "cbrun_test_source:broken raised ValueError: the bucket is empty"),
        ("a_number", {}, "expected (x, y) arrays, a tf.data.Dataset or a keras.utils.PyDataset"),
        (
            "batches",
            {"args": {"fail_at": 3}},
            "the PyDataset's __getitem__(3) raised KeyError: 'no row 60'",
        ),
        ("batches", {"limit": 50}, "data.limit: data.function (cbrun_test_source:batches)"),
        ("batched_only", {"limit": 50}, "is a batched tf.data.Dataset, used batch by batch"),
        ("splits", {"split": {"test": 0.3}}, "data.split: cbrun_test_source:splits returns"),
    ],
)
def test_bad_functions_are_refused(folder, cli, function, data, expected):
    path = write(folder, config(folder, function, **data), "bad.yaml")
    assert_refused(cli, path, folder / "runs", expected)
