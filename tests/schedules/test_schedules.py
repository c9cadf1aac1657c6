"""Each per-epoch schedule sets the learning rate its formula gives, logged everywhere."""

import json
import math
import sys

import numpy as np
import pandas as pd
import pytest

from cbrun import registry
from conftest import run_dirs, tensorboard_scalars, train_tiny

LR0 = 0.01
EPOCHS = 7

# A user schedule, importable from the config's folder.
USER_SCHEDULE = """
def halve_every_other(epoch, initial_learning_rate):
    return initial_learning_rate / 2 ** (epoch // 2)
"""


# name: (schedule params, the learning rate of each epoch 0..EPOCHS-1, written out by hand)
CASES = {
    "step_decay": (
        {"factor": 0.5, "step_size": 3},
        [LR0, LR0, LR0, LR0 / 2, LR0 / 2, LR0 / 2, LR0 / 4],
    ),
    "exponential": ({"rate": 0.8}, [LR0 * 0.8**e for e in range(EPOCHS)]),
    "cosine": (
        {"decay_epochs": 4, "min_learning_rate": 0.001},
        [0.001 + 0.009 * (1 + math.cos(math.pi * min(e, 4) / 4)) / 2 for e in range(EPOCHS)],
    ),
    "warmup_cosine": (
        {"warmup_epochs": 2, "decay_epochs": 4},
        [LR0 / 2, LR0] + [LR0 * (1 + math.cos(math.pi * min(e, 4) / 4)) / 2 for e in range(5)],
    ),
    "piecewise_constant": (
        {"boundaries": [2, 5], "values": [0.05, 0.02, 0.001]},
        [0.05, 0.05, 0.02, 0.02, 0.02, 0.001, 0.001],
    ),
    "one_cycle": (
        {"cycle_epochs": 6, "pct_start": 0.4, "div_factor": 10, "final_div_factor": 100},
        # from 0.001 up to the peak 0.01 at epoch 0.4 * 5 = 2 (cosine), down to 1e-5 at epoch 5
        [0.001, 0.0055, 0.01, 1e-5 + 0.00999 * 0.75, 1e-5 + 0.00999 * 0.25, 1e-5, 1e-5],
    ),
    "import": (
        {"function": "user_schedule:halve_every_other"},
        [LR0, LR0, LR0 / 2, LR0 / 2, LR0 / 4, LR0 / 4, LR0 / 8],
    ),
}


def test_every_registered_schedule_is_covered():
    assert set(CASES) == set(registry.schedules.names())


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One tiny run per schedule, each logging to CSV; the cosine one to TensorBoard too."""
    trained = {}
    for name, (params, _) in CASES.items():
        folder = tmp_path_factory.mktemp(name)
        (folder / "user_schedule.py").write_text(USER_SCHEDULE)
        callbacks = [
            {"type": "learning_rate_scheduler", "schedule": {"type": name, **params}},
            {"type": "csv_logger"},
        ]
        if name == "warmup_cosine":
            callbacks.append({"type": "tensorboard"})
        updates = {
            "compile": {"optimizer": {"learning_rate": LR0}},
            "training": {"epochs": EPOCHS, "batch_size": 64},
            "callbacks": callbacks,
        }
        trained[name] = train_tiny(folder, updates).run_dir
    return trained


@pytest.mark.parametrize("name", list(CASES))
def test_learning_rate_each_epoch_follows_the_formula_in_history_and_csv(runs, name):
    expected = CASES[name][1]
    history = json.loads((runs[name] / "history.json").read_text())
    np.testing.assert_allclose(history["learning_rate"], expected, rtol=1e-6)
    csv = pd.read_csv(runs[name] / "log.csv")
    np.testing.assert_allclose(csv["learning_rate"], expected, rtol=1e-6)


def test_learning_rate_reaches_tensorboard(runs):
    expected = CASES["warmup_cosine"][1]
    np.testing.assert_allclose(
        tensorboard_scalars(runs["warmup_cosine"] / "tensorboard" / "train", "epoch_learning_rate"),
        expected,
        rtol=1e-6,
    )


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (
            "def lr(epoch):\n    return 0.1\n",
            "callbacks[0] (learning_rate_scheduler): schedule.function: calling "
            "bad_schedule:lr(epoch, initial_learning_rate) failed:",
        ),
        (
            "def lr(epoch, lr0):\n    return 'fast'\n",
            "schedule.function: bad_schedule:lr(0, 0.01) returned 'fast'; expected a finite "
            "learning rate >= 0",
        ),
    ],
    ids=["wrong_signature", "not_a_number"],
)
def test_broken_user_schedule_fails_before_training(
    source, message, tmp_path, make_config, cli, runs_dir
):
    (tmp_path / "bad_schedule.py").write_text(source)
    sys.modules.pop("bad_schedule", None)
    schedule = {"type": "import", "function": "bad_schedule:lr"}
    config = make_config({"callbacks": [{"type": "learning_rate_scheduler", "schedule": schedule}]})
    result = cli("train", config)
    assert result.exit_code == 2
    assert message in result.stderr
    assert run_dirs(runs_dir) == []
