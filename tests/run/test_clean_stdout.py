"""While cbrun trains, stdout holds only its answer: prints and Keras' verbose lines go to stderr.

`run=$(cbrun train cfg.yaml -q)` and `cbrun train --json` must capture the run directory or the
one JSON line and nothing else, whatever a `class` callback, a `lambda` hook or Keras prints.
Those lines go to stderr and into the run's train.log.
"""

from __future__ import annotations

import json

from conftest import run_dirs, run_subprocess

NOISY = """
import os
import signal
import sys

import keras
import tensorflow as tf


class Loud(keras.callbacks.Callback):
    def __init__(self, word="loud"):
        super().__init__()
        self.word = word

    def on_epoch_end(self, epoch, logs=None):
        print(f"{self.word} class callback, epoch {epoch}")


def shout(epoch, logs):
    print(f"lambda hook, epoch {epoch}")
    sys.stdout.write("a raw write to sys.stdout\\n")


def native(epoch, logs):
    tf.print("tf.print to stdout from native code", output_stream=sys.stdout)


def terminate_in_epoch_2(epoch, logs):
    if epoch == 1 and os.environ.get("NOISY_TERMINATE"):
        os.kill(os.getpid(), signal.SIGTERM)
"""
CALLBACKS = [
    {"type": "class", "class_path": "noisy:Loud", "init_args": {"word": "LOUD"}},
    {
        "type": "lambda",
        "on_epoch_end": "noisy:shout",
        "on_epoch_begin": "noisy:terminate_in_epoch_2",
    },
    # Keras' own verbose lines: "Epoch 1: val_loss improved from inf to ..." and co.
    {
        "type": "model_checkpoint",
        "filepath": "best.keras",
        "save_best_only": True,
        "verbose": 1,
    },
    {"type": "early_stopping", "patience": 0, "min_delta": 10.0, "verbose": 1},
]
PRINTED = ["LOUD class callback, epoch 0", "lambda hook, epoch 0", "a raw write to sys.stdout"]


def test_json_and_quiet_print_only_their_answer_even_when_interrupted_and_resumed(
    make_config, cli, runs_dir, tmp_path, monkeypatch
):
    (tmp_path / "noisy.py").write_text(NOISY)
    config = make_config({"training": {"epochs": 3}, "callbacks": CALLBACKS})
    result = cli("train", config, "--json")
    assert result.exit_code == 0, result.stderr
    [run] = run_dirs(runs_dir)
    [line] = result.stdout.splitlines()
    answer = json.loads(line)
    assert answer["path"] == str(run) and answer["status"] == "completed"
    keras_lines = ["Epoch 1: val_loss improved from", "Epoch 2: early stopping"]
    log = (run / "train.log").read_text()
    for text in PRINTED + keras_lines:
        assert text in result.stderr, text
        assert text in log, text

    monkeypatch.setenv("NOISY_TERMINATE", "1")
    patient = make_config(
        {"training": {"epochs": 3}, "callbacks": CALLBACKS[:3]}, name="interrupted.yaml"
    )
    stopped = cli("train", patient, "-q")
    assert stopped.exit_code == 143, stopped.stderr
    stopped_run = next(r for r in run_dirs(runs_dir) if r != run)
    assert stopped.stdout == f"{stopped_run}\n"
    assert "LOUD class callback, epoch 0" in stopped.stderr
    monkeypatch.delenv("NOISY_TERMINATE")
    resumed = cli("train", "--resume", stopped_run, "--allow-imports", "--json")
    assert resumed.exit_code == 0, resumed.stderr
    [line] = resumed.stdout.splitlines()
    assert json.loads(line)["path"] == str(stopped_run)
    assert "LOUD class callback, epoch 2" in resumed.stderr
    assert "LOUD class callback, epoch 2" in (stopped_run / "train.log").read_text()


def test_stdout_captures_only_the_run_directory_with_native_prints(make_config, tmp_path, runs_dir):
    """A fresh process, as in `run=$(cbrun train cfg.yaml -q)`: file descriptor 1 is checked."""
    (tmp_path / "noisy.py").write_text(NOISY)
    config = make_config(
        {
            "callbacks": [
                CALLBACKS[0],
                {"type": "lambda", "on_epoch_end": "noisy:native", "on_epoch_begin": "noisy:shout"},
            ]
        }
    )
    result = run_subprocess("train", config, "-q", env={"TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 0, result.stderr
    [run] = run_dirs(runs_dir)
    assert result.stdout == f"{run}\n"
    assert "tf.print to stdout from native code" in result.stderr
    assert "LOUD class callback, epoch 1" in result.stderr
    assert "LOUD class callback, epoch 1" in (run / "train.log").read_text()
