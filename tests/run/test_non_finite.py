"""`training.on_non_finite`: a NaN loss fails the run, stops it on the last saved model, or rolls
back with a lower learning rate; and every run-directory JSON file is strict JSON.

The loss is made NaN on purpose: a `class` callback poisons every weight with NaN at the start
of a chosen batch (`times` times), so the batch's loss is NaN.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from cbrun.core.run_dir import read_json, write_json_atomic
from conftest import run_dirs

POISON = """
import math

import keras


class Poison(keras.callbacks.Callback):
    def __init__(self, epoch=1, batch=1, times=1):
        super().__init__()
        self.at, self.times = (epoch, batch), times

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        if (self.epoch, batch) == self.at and self.times > 0:
            self.times -= 1
            for variable in self.model.trainable_variables:
                variable.assign(variable * math.nan)
"""


def strict(path: Path):
    """The JSON in `path`, refusing NaN and Infinity as the JSON standard does."""

    def refuse(constant: str):
        raise ValueError(f"{path.name} holds {constant}: not JSON")

    return json.loads(path.read_text(), parse_constant=refuse)


def poisoned(make_config, tmp_path, training: dict, times: int = 1, callbacks=()) -> Path:
    (tmp_path / "poison.py").write_text(POISON)
    poison = {"type": "class", "class_path": "poison:Poison", "init_args": {"times": times}}
    return make_config(
        {
            "training": {"epochs": 4, **training},
            "callbacks": [*callbacks, {"type": "csv_logger"}, poison],
        }
    )


@pytest.mark.parametrize("declared", [False, True], ids=["plain", "with-terminate_on_nan"])
def test_fail_records_a_failed_run_with_no_nan_model(
    make_config, cli, runs_dir, tmp_path, declared
):
    callbacks = [{"type": "terminate_on_nan"}] if declared else []
    config = poisoned(make_config, tmp_path, {}, callbacks=callbacks)
    result = cli("train", config)
    assert result.exit_code == 1
    assert "non-finite loss at epoch 2 batch 2 (loss nan)" in result.stderr
    [run] = run_dirs(runs_dir)
    record = strict(run / "run.json")
    assert record["status"] == "failed"
    assert record["error"]["type"] == "NonFiniteLoss"
    assert record["stop_reason"] == "non-finite loss at epoch 2 batch 2"
    assert record["epochs_completed"] == 1
    assert not (run / "eval.json").exists() and not (run / "model.keras").exists()
    for file in ("history.json", "data.json"):
        strict(run / file)


def test_stop_keeps_the_last_saved_model_and_evaluates_it(make_config, cli, runs_dir, tmp_path):
    import keras

    config = poisoned(make_config, tmp_path, {"on_non_finite": "stop"})
    result = cli("train", config)
    assert result.exit_code == 0, result.stderr
    [run] = run_dirs(runs_dir)
    record = strict(run / "run.json")
    assert record["status"] == "completed"
    assert record["stop_reason"] == (
        "non-finite loss (nan) at epoch 2 batch 2: stopped (training.on_non_finite: stop); "
        "the model is the one saved after epoch 1"
    )
    assert record["model_epoch"] == 1 and record["epochs_completed"] == 1
    [event] = record["non_finite"]["events"]
    assert event == {
        "action": "stop",
        "epoch": 2,
        "batch": 2,
        "loss": "nan",
        "restored_epoch": 1,
    }
    evaluation = strict(run / "eval.json")
    assert all(math.isfinite(v) for v in evaluation["metrics"].values())
    weights = keras.saving.load_model(run / "model.keras").get_weights()
    assert all(np.isfinite(w).all() for w in weights)


def test_rollback_restores_lowers_the_learning_rate_and_trains_on(
    make_config, cli, runs_dir, tmp_path
):
    config = poisoned(make_config, tmp_path, {"on_non_finite": "rollback", "rollback_factor": 0.1})
    result = cli("train", config)
    assert result.exit_code == 0, result.stderr
    assert "rolled back to the state after epoch 1, learning rate 0.01 -> 0.001" in result.stderr
    [run] = run_dirs(runs_dir)
    record = strict(run / "run.json")
    assert record["status"] == "completed" and record["epochs_completed"] == 4
    assert record["stop_reason"] == "completed all 4 epochs"
    [event] = record["non_finite"]["events"]
    assert event["action"] == "rollback" and event["restored_epoch"] == 1
    assert event["learning_rate"] == pytest.approx(0.001)
    history = strict(run / "history.json")
    assert history["epoch"] == [1, 2, 3, 4]
    assert history["learning_rate"] == pytest.approx([0.01, 0.001, 0.001, 0.001])
    assert all(math.isfinite(v) for v in history["loss"])
    csv_log = (run / "log.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in csv_log[1:]] == ["0", "1", "2", "3"]


def test_rollback_fails_the_run_after_max_rollbacks(make_config, cli, runs_dir, tmp_path):
    config = poisoned(
        make_config, tmp_path, {"on_non_finite": "rollback", "max_rollbacks": 2}, times=99
    )
    result = cli("train", config)
    assert result.exit_code == 1
    [run] = run_dirs(runs_dir)
    record = strict(run / "run.json")
    assert record["status"] == "failed"
    assert record["error"]["message"] == (
        "non-finite loss at epoch 2 batch 2 (loss nan); gave up after 2 rollbacks "
        "(training.max_rollbacks)"
    )
    assert [e["action"] for e in record["non_finite"]["events"]] == ["rollback", "rollback"]
    rates = [e["learning_rate"] for e in record["non_finite"]["events"]]
    assert rates == pytest.approx([0.005, 0.0025])


def test_rollback_with_a_learning_rate_scheduler_is_refused_by_validate(make_config, cli):
    config = make_config(
        {
            "training": {"on_non_finite": "rollback"},
            "callbacks": [
                {
                    "type": "learning_rate_scheduler",
                    "schedule": {"type": "exponential", "rate": 0.9},
                }
            ],
        }
    )
    result = cli("validate", config)
    assert result.exit_code == 2
    assert "training.on_non_finite: `rollback` lowers the learning rate, but callbacks[0]" in (
        result.stderr
    )


def test_run_directory_json_is_strict_and_reads_back(tmp_path):
    path = tmp_path / "eval.json"
    write_json_atomic(path, {"metrics": {"loss": math.nan, "mae": 0.5}, "curve": [1.0, -math.inf]})
    data = strict(path)
    assert data["metrics"] == {"loss": None, "mae": 0.5} and data["curve"] == [1.0, None]
    assert data["non_finite_values"] == [
        {"path": ["metrics", "loss"], "value": "nan"},
        {"path": ["curve", 1], "value": "-inf"},
    ]
    back = read_json(path)
    assert math.isnan(back["metrics"]["loss"]) and back["curve"] == [1.0, -math.inf]
    assert "non_finite_values" not in back
