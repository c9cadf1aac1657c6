"""`cbrun train --resume RUN --set training.epochs=N` trains a run, a completed one too, for
longer: the extended run equals one trained that long from the start, and the resume is
recorded with what changed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import train_tiny


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> tuple[Path, Path]:
    """A 2-epoch run (to be extended to 4) and a 4-epoch run, of the same config otherwise."""
    folder = tmp_path_factory.mktemp("extend")
    updates = {"model": {"units": [16], "dropout": 0.3}}  # dropout: its random state resumes
    short = train_tiny(folder, {**updates, "training": {"epochs": 2, "batch_size": 32}})
    long = train_tiny(folder, {**updates, "training": {"epochs": 4, "batch_size": 32}})
    return short.run_dir, long.run_dir


def test_an_extended_run_equals_one_trained_that_long(runs, cli):
    short, long = runs
    before = json.loads((short / "run.json").read_text())
    extended = cli("train", "--resume", short, "--set", "training.epochs=4", "--quiet")
    assert extended.exit_code == 0, extended.stderr
    assert extended.stdout.strip() == str(short)

    history = pd.read_csv(short / "history.csv")
    reference = pd.read_csv(long / "history.csv")
    assert list(history["epoch"]) == [1, 2, 3, 4]
    np.testing.assert_allclose(history["loss"], reference["loss"], atol=1e-5)
    np.testing.assert_allclose(history["val_loss"], reference["val_loss"], atol=1e-5)

    record = json.loads((short / "run.json").read_text())
    assert record["status"] == "completed"
    assert record["epochs_completed"] == record["epochs_planned"] == 4
    [resume] = record["resumes"]
    assert resume["from_epoch"] == 2 and resume["changed"] == {"training.epochs": [2, 4]}
    assert resume["previous_status"] == "completed"
    assert resume["previous_test_metrics"] == before["test_metrics"]
    long_metrics = json.loads((long / "run.json").read_text())["test_metrics"]
    assert record["test_metrics"] == pytest.approx(long_metrics, abs=1e-5)
    assert yaml.safe_load((short / "config.yaml").read_text())["training"]["epochs"] == 4

    shown = cli("show", short)
    assert "resumed after epoch 2 (training.epochs: 2 -> 4)" in shown.stdout, shown.stdout


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("model.units=[8]", "--set model.units=[8]: a resume may change only training.epochs"),
        ("training.epochs=1", "the run has trained 4 epochs already; give more to extend it"),
        ("training.epochs=zero", "training.epochs"),
    ],
)
def test_what_cannot_extend_a_run_is_refused(runs, cli, setting, message):
    _, long = runs
    config_before = (long / "config.yaml").read_text()
    result = cli("train", "--resume", long, "--set", setting)
    assert result.exit_code == 2 and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert (long / "config.yaml").read_text() == config_before
    assert "resumes" not in json.loads((long / "run.json").read_text())


def test_a_completed_run_without_more_epochs_says_how_to_extend_it(runs, cli):
    _, long = runs
    result = cli("train", "--resume", long)
    assert result.exit_code == 2
    assert "the run completed; there is nothing to resume" in result.stderr
    assert f"--resume {long} --set training.epochs=N" in result.stderr
