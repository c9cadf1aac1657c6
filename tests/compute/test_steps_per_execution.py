"""`training.steps_per_execution: auto`: many batches per call when no callback needs a hook
after every batch, the same training as one batch per call, and 1 when one does or when the
run is too short to pay for tracing the many-batch functions."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import merge, run_dirs, train_tiny

# 120 training samples in batches of 2: 60 batches an epoch, 180 in all (short runs keep 1).
DROPOUT = {
    "model": {"type": "mlp", "units": [16], "dropout": 0.2},
    "training": {"epochs": 3, "batch_size": 2},
}


def record(run_dir):
    return json.loads((run_dir / "run.json").read_text())


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """The same seeded run with one batch per call and with `auto`."""
    folder = tmp_path_factory.mktemp("spe")
    one = train_tiny(folder, merge(DROPOUT, {"training": {"steps_per_execution": 1}}), "one.yaml")
    auto = train_tiny(folder, DROPOUT, "auto.yaml")
    return one.run_dir, auto.run_dir


def test_auto_runs_several_batches_per_call_and_records_why(pair):
    _, auto = pair
    speed = record(auto)["speed"]
    assert speed["steps_per_execution"] == 32  # of the 60 batches an epoch
    assert speed["steps_per_execution_chosen_by"] == "auto: no callback has a per-batch hook"


def test_auto_trains_exactly_as_one_batch_per_call(pair):
    import keras

    one, auto = pair
    assert record(one)["speed"]["steps_per_execution"] == 1
    history = [json.loads((run / "history.json").read_text()) for run in pair]
    assert history[0].keys() == history[1].keys()
    for name in history[0]:
        np.testing.assert_allclose(history[0][name], history[1][name], rtol=1e-6, atol=1e-7)
    weights = [keras.saving.load_model(run / "model.keras").get_weights() for run in pair]
    for a, b in zip(*weights, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(
    ("callback", "chosen"),
    [
        (
            {"type": "terminate_on_nan"},
            "auto: callbacks[1] (terminate_on_nan) has a per-batch hook",
        ),
        ({"type": "tensorboard", "update_freq": "batch"}, "(tensorboard) has a per-batch hook"),
        ({"type": "metrics_jsonl", "batch_every": 2}, "(metrics_jsonl) has a per-batch hook"),
        ({"type": "model_checkpoint", "filepath": "c.keras", "save_freq": 2}, "per-batch hook"),
    ],
)
def test_a_callback_with_a_per_batch_hook_keeps_one_batch_per_call(
    cli, make_config, runs_dir, callback, chosen
):
    callbacks = [{"type": "csv_logger"}, callback]
    result = cli("train", make_config({"training": {"epochs": 1}, "callbacks": callbacks}), "-q")
    assert result.exit_code == 0, result.stderr
    (run,) = run_dirs(runs_dir)
    speed = record(run)["speed"]
    assert speed["steps_per_execution"] == 1
    assert chosen in speed["steps_per_execution_chosen_by"]


def test_a_short_run_keeps_one_batch_per_call_and_says_why(cli, make_config, runs_dir):
    result = cli("train", make_config(), "-q")  # 2 epochs of 4 batches
    assert result.exit_code == 0, result.stderr
    (run,) = run_dirs(runs_dir)
    speed = record(run)["speed"]
    assert speed["steps_per_execution"] == 1
    assert speed["steps_per_execution_chosen_by"] == (
        "auto: 8 training batches in all, fewer than 128: tracing many batches per call would "
        "cost more than it saves"
    )


HOOKS = """
import keras


class EpochOnly(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        pass


class PerBatch(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        pass
"""


@pytest.mark.parametrize(("name", "steps"), [("EpochOnly", 32), ("PerBatch", 1)])
def test_a_class_callback_is_judged_by_the_hooks_it_overrides(
    cli, make_config, runs_dir, tmp_path, name, steps
):
    (tmp_path / f"hooks_{tmp_path.name}.py").write_text(HOOKS)
    callbacks = [{"type": "class", "class_path": f"hooks_{tmp_path.name}:{name}"}]
    training = {"epochs": 3, "batch_size": 2}  # 180 batches: long enough for many per call
    result = cli("train", make_config({"training": training, "callbacks": callbacks}), "-q")
    assert result.exit_code == 0, result.stderr
    (run,) = run_dirs(runs_dir)
    assert record(run)["speed"]["steps_per_execution"] == steps
