"""A resumed run equals the unbroken one, for every example config that draws random numbers.

Each example config (dropout, Gaussian-noise augmentation, EMA, the tf.data pipeline's shuffle)
is made tiny (240 digits, 4 epochs) and trained twice: once unbroken, and once stopped three
times at random batches — SIGKILL (a separate process, which dies), then SIGINT, then SIGTERM
(sent by a hook to this very process) — and resumed after each stop. The history and the
final weights must match to 1e-6 (on this CPU they are bit-identical).

The batches are drawn at random; set `CBRUN_RESUME_SEED` to replay a failure (its seed is in
every assertion message).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import ROOT, merge, run_dirs

TOLERANCE = float(os.environ.get("CBRUN_RESUME_TOLERANCE", 1e-6))
EPOCHS = 4
SEED = int(os.environ.get("CBRUN_RESUME_SEED", random.randrange(1_000_000)))
HOOKS = """
import os
import signal

_epoch = 0


def epoch_begin(epoch, logs):
    global _epoch
    _epoch = epoch


def batch_end(batch, logs):
    # CBRUN_TEST_SIGNAL = "SIGINT:EPOCH:BATCH" (0-based): send that signal to this process there
    spec = os.environ.get("CBRUN_TEST_SIGNAL")
    if spec:
        name, epoch, at = spec.split(":")
        if (_epoch, batch) == (int(epoch), int(at)):
            os.kill(os.getpid(), getattr(signal, name))
"""
SIGNAL_HOOK = {
    "type": "lambda",
    "on_epoch_begin": "signal_hooks:epoch_begin",
    "on_train_batch_end": "signal_hooks:batch_end",
}
# The example configs that draw random numbers while training, and variants for the pipeline.
CASES = {
    "quickstart": ("quickstart.yaml", {}),  # dropout
    "quickstart-pipeline": ("quickstart.yaml", {"training": {"pipeline": {}}}),
    "quickstart-shuffle-buffer": (
        "quickstart.yaml",
        {"training": {"pipeline": {"shuffle_buffer": 64}}},
    ),
    "callbacks_tour": ("callbacks_tour.yaml", {}),  # dropout, EMA, Keras' backup_and_restore
    "digits_cnn": ("digits_cnn.yaml", {}),  # dropout in a CNN
    "digits_callbacks": ("digits_callbacks.yaml", {}),  # Gaussian-noise augmentation, pruning
    "digits_sweep": ("digits_sweep.yaml", {}),  # `train` on a sweep's base config: dropout
}


def tiny_copy(folder: Path, example: str, updates: dict) -> Path:
    """The example config, small, with the signal hook added; written into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "signal_hooks.py").write_text(HOOKS)
    data = yaml.safe_load((ROOT / "configs" / example).read_text())
    data = merge(data, {"data": {"limit": 240}, "training": {"epochs": EPOCHS}, **updates})
    data["callbacks"] = [*data.get("callbacks", []), SIGNAL_HOOK]
    path = folder / "experiment.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def stops(rng: random.Random) -> list[tuple[str, int, int]]:
    """Where the three signals go, (name, epoch, batch): SIGKILL in epoch 1 or 2, each next
    signal one epoch later (so every resume trains on), each at a random batch."""
    first = rng.randint(0, 1)
    return [
        (name, first + offset, rng.randint(0, 2))  # every case has ≥ 3 batches an epoch
        for offset, name in enumerate(("SIGKILL", "SIGINT", "SIGTERM"))
    ]


def start_killed(config: Path, kill: tuple[str, int, int]) -> subprocess.Popen:
    """The first segment, in its own process: `kill` (SIGKILL) ends it mid-epoch."""
    return subprocess.Popen(
        [sys.executable, "-m", "cbrun", "train", str(config), "-q"]
        + ["--runs-dir", str(config.parent / "broken")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={
            **os.environ,
            "CBRUN_TEST_SIGNAL": ":".join(map(str, kill)),
            "TF_CPP_MIN_LOG_LEVEL": "3",
        },
    )


def weights(path: Path) -> list[np.ndarray]:
    import keras

    return keras.saving.load_model(path).get_weights()


@pytest.mark.parametrize("name", list(CASES))
def test_resumed_after_sigkill_sigint_and_sigterm_equals_unbroken(name, tmp_path, cli, monkeypatch):
    example, updates = CASES[name]
    config = tiny_copy(tmp_path, example, updates)
    plan = stops(random.Random(f"{SEED}-{name}"))
    where = f"{name}, CBRUN_RESUME_SEED={SEED}, stops {plan}"
    killed = start_killed(config, plan[0])  # runs while this process trains the unbroken run
    monkeypatch.syspath_prepend(str(config.parent))
    monkeypatch.delenv("CBRUN_TEST_SIGNAL", raising=False)
    unbroken = cli("train", config, "-q", "--runs-dir", config.parent / "unbroken")
    assert unbroken.exit_code == 0, unbroken.stderr
    [reference] = run_dirs(config.parent / "unbroken")

    _, err = killed.communicate(timeout=600)
    assert killed.returncode == -signal.SIGKILL, f"{where}: {err}"
    [run] = run_dirs(config.parent / "broken")
    for signame, epoch, batch in plan[1:]:
        monkeypatch.setenv("CBRUN_TEST_SIGNAL", f"{signame}:{epoch}:{batch}")
        stopped = cli("train", "--resume", run, "--allow-imports", "-q")
        assert stopped.exit_code == 128 + getattr(signal, signame), f"{where}: {stopped.stderr}"
        assert stopped.stdout.strip() == str(run)
        record = json.loads((run / "run.json").read_text())
        assert record["stop_reason"].startswith(
            f"interrupted by {signame} in epoch {epoch + 1} after batch {batch + 1}"
        ), where
    monkeypatch.delenv("CBRUN_TEST_SIGNAL")
    resumed = cli("train", "--resume", run, "--allow-imports", "-q")
    assert resumed.exit_code == 0, f"{where}: {resumed.stderr}"

    got = json.loads((run / "run.json").read_text())
    want = json.loads((reference / "run.json").read_text())
    # SIGKILL: an epoch's state is written while the next epoch trains, so a kill in that
    # window resumes one epoch earlier (and trains it again); SIGINT and SIGTERM wait for it.
    resumed_from = [r["from_epoch"] for r in got["resumes"]]
    assert resumed_from[0] in (plan[0][1] - 1, plan[0][1]), where
    assert resumed_from[1:] == [e for _, e, _ in plan[1:]], where
    assert got["status"] == want["status"] == "completed"
    assert got["epochs_completed"] == want["epochs_completed"], where
    history = json.loads((run / "history.json").read_text())
    expected = json.loads((reference / "history.json").read_text())
    assert history.keys() == expected.keys(), where
    for key, values in expected.items():
        np.testing.assert_allclose(
            history[key], values, atol=TOLERANCE, rtol=0, err_msg=f"{where}: {key}"
        )
    for key, value in want.get("test_metrics", {}).items():
        assert abs(got["test_metrics"][key] - value) <= TOLERANCE, f"{where}: test {key}"
    final, reference_weights = weights(run / "model.keras"), weights(reference / "model.keras")
    assert len(final) == len(reference_weights)
    for a, b in zip(final, reference_weights, strict=True):
        np.testing.assert_allclose(a, b, atol=TOLERANCE, rtol=0, err_msg=where)
