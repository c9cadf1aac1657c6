"""Real runs stopped by SIGINT, SIGTERM and SIGKILL, resumed, and compared with an unbroken run.

Determinism relied on: the same seed gives the same initial weights and data split
(`keras.utils.set_random_seed`), Keras shuffles seeded arrays into the same order in every
epoch (so a resumed epoch sees the order the unbroken run saw), and `experiment.deterministic`
turns on `tf.config.experimental.enable_op_determinism()`. The resumed model must equal the
unbroken one within 1e-5 per weight (on this CPU they are in fact bit-identical).

Every process here is the subject of a test (signals), so these are subprocesses; they run
side by side to keep the wall time down.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from cbrun.core.errors import CbrunError
from cbrun.run.resume import resume_run
from conftest import TINY, merge, run_dirs

TOLERANCE = 1e-5
EPOCHS = 8
HOOKS = """
import time

def pause(batch, logs):
    time.sleep(0.02)

def stall(batch, logs):
    time.sleep(120)  # the first batch never ends: only a second signal stops this run
"""
CALLBACKS = [
    {"type": "early_stopping", "patience": 3, "restore_best_weights": True},
    {"type": "reduce_lr_on_plateau", "patience": 1, "factor": 0.5, "min_delta": 0.01},
    {"type": "csv_logger", "filename": "epochs.csv"},
    {"type": "model_checkpoint", "filepath": "checkpoints/best.keras", "save_best_only": True},
    {"type": "lambda", "on_train_batch_end": "hooks:pause"},  # slows each batch a little
]


def write_config(folder: Path, name: str, hook: str = "hooks:pause") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "hooks.py").write_text(HOOKS)
    callbacks = [
        dict(c, on_train_batch_end=hook) if c["type"] == "lambda" else c for c in CALLBACKS
    ]
    data = merge(
        TINY,
        {
            "experiment": {"name": name, "seed": 3, "deterministic": True},
            "training": {"epochs": EPOCHS, "batch_size": 8},
            "callbacks": callbacks,
            "output": {"runs_dir": str(folder / "runs")},
        },
    )
    path = folder / "experiment.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def start(log: Path, *args: str) -> subprocess.Popen:
    """`cbrun train ARGS` in a new process; its stderr goes to `log` (read while it runs)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "cbrun", "train", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=log.open("w"),
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    process.log = log
    return process


def finish(process: subprocess.Popen) -> tuple[int, str, str]:
    out, _ = process.communicate(timeout=300)
    return process.returncode, out, process.log.read_text()


def wait_for(condition, process: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + 240
    while not condition():
        assert process.poll() is None, f"the run ended before {what}: {process.log.read_text()}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def saved_epoch(runs: Path) -> int:
    """The epoch of the newest saved state of the one run under `runs`, or -1."""
    for latest in runs.glob("*/*/state/latest.json"):
        try:
            return json.loads(latest.read_text())["epoch"]
        except (OSError, ValueError):
            return -1
    return -1


def signal_after(process: subprocess.Popen, runs: Path, epoch: int, signum: int) -> None:
    """Send `signum` once the run under `runs` has saved `epoch` epochs."""
    wait_for(lambda: saved_epoch(runs) >= epoch, process, f"epoch {epoch}")
    process.send_signal(signum)


def snapshot(run_dir: Path) -> dict:
    """What an interrupted run directory holds, before anything resumes it."""
    return {
        "record": json.loads((run_dir / "run.json").read_text()),
        "history_rows": len(pd.read_csv(run_dir / "history.csv")),
        "state_epoch": json.loads((run_dir / "state/latest.json").read_text())["epoch"],
        "files": sorted(p.name for p in run_dir.iterdir()),
    }


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("signals")
    names = ("unbroken", "sigint", "sigkill", "twice")
    configs = {
        name: write_config(root / name, name, "hooks:stall" if name == "twice" else "hooks:pause")
        for name in names
    }
    processes = {name: start(root / f"{name}.log", configs[name]) for name in names}
    twice = processes["twice"]
    signal_after(twice, root / "twice/runs", 0, signal.SIGINT)
    wait_for(lambda: "stopping at the next batch" in twice.log.read_text(), twice, "the handler")
    twice.send_signal(signal.SIGINT)
    signal_after(processes["sigint"], root / "sigint/runs", 2, signal.SIGINT)
    signal_after(processes["sigkill"], root / "sigkill/runs", 3, signal.SIGKILL)
    results, dirs, before, resuming = {}, {}, {}, {}
    for name in ("sigkill", "sigint"):  # each resumes as soon as it has stopped
        results[name] = finish(processes[name])
        dirs[name] = run_dirs(root / name / "runs")[0]
        before[name] = snapshot(dirs[name])
        if name == "sigint":
            # Resuming without --allow-imports is refused (the config names hook code) ...
            with pytest.raises(CbrunError) as refused:
                resume_run(dirs[name], quiet=True)
            after_refusal = snapshot(dirs[name])
        # ... and with it, continues.
        log = root / f"resume-{name}.log"
        resuming[name] = start(log, "--resume", dirs[name], "--allow-imports")
    for name in ("unbroken", "twice"):
        results[name] = finish(processes[name])
        dirs[name] = run_dirs(root / name / "runs")[0]
    results.update({f"resumed_{name}": finish(p) for name, p in resuming.items()})
    return {
        "dirs": dirs,
        "results": results,
        "before": before,
        "refused": refused.value,
        "after_refusal": after_refusal,
    }


def record(run_dir: Path) -> dict:
    return json.loads((run_dir / "run.json").read_text())


def test_sigint_stops_at_a_batch_boundary_saves_and_exits_130(runs):
    code, out, err = runs["results"]["sigint"]
    assert code == 130, err
    before = runs["before"]["sigint"]
    saved = before["record"]
    assert saved["status"] == "interrupted" and saved["signal"] == "SIGINT"
    assert saved["stop_reason"].startswith("interrupted by SIGINT")
    assert 2 <= saved["epochs_completed"] < EPOCHS
    assert saved["epochs_completed"] == before["state_epoch"] == before["history_rows"]
    assert saved["resume_command"] == f"cbrun train --resume {runs['dirs']['sigint']}"
    assert "model.keras" in before["files"]  # the model as it was when stopped
    assert "Traceback" not in err
    assert f"resume: cbrun train --resume {runs['dirs']['sigint']}" in " ".join(err.split())


def test_second_sigint_quits_at_once_with_a_readable_run_json(runs):
    code, _, err = runs["results"]["twice"]
    assert code == 130, err
    assert "SIGINT again: quit at once" in err
    saved = record(runs["dirs"]["twice"])  # parses: written atomically before exiting
    assert saved["status"] == "interrupted"
    assert saved["stop_reason"].startswith("interrupted by a second SIGINT")
    assert saved["epochs_completed"] == 0  # its first batch never ended


def test_sigkill_leaves_the_last_epoch_backed_up(runs):
    assert runs["results"]["sigkill"][0] == -signal.SIGKILL
    before = runs["before"]["sigkill"]
    assert before["record"]["status"] == "running"  # nobody could write anything else
    assert before["state_epoch"] >= 3


def test_resume_refuses_to_import_code_from_a_run_directory_unless_asked(runs):
    error = runs["refused"]
    assert error.exit_code == 2
    assert "callbacks[4] (lambda): on_train_batch_end: `hooks:pause`" in error.message
    assert "--allow-imports" in error.render()
    unchanged = runs["after_refusal"]
    assert unchanged["record"] == runs["before"]["sigint"]["record"]
    assert unchanged["state_epoch"] == runs["before"]["sigint"]["state_epoch"]


@pytest.mark.parametrize("name", ["sigint", "sigkill"])
def test_resumed_run_matches_the_unbroken_run(runs, name):
    import keras

    code, out, err = runs["results"][f"resumed_{name}"]
    assert code == 0, err
    resumed, unbroken = runs["dirs"][name], runs["dirs"]["unbroken"]
    assert out.strip() == str(resumed)  # the same run directory, continued
    got, want = record(resumed), record(unbroken)
    assert got["status"] == "completed"
    assert got["resumes"][0]["from_epoch"] == runs["before"][name]["state_epoch"]
    for key in ("epochs_completed", "stop_reason", "monitors"):
        assert got[key] == want[key], key

    history = pd.read_csv(resumed / "history.csv")
    expected = pd.read_csv(unbroken / "history.csv")
    assert list(history["epoch"]) == list(range(1, want["epochs_completed"] + 1))
    assert np.allclose(history["loss"], expected["loss"], atol=TOLERANCE)
    assert np.allclose(history["learning_rate"], expected["learning_rate"], atol=1e-9)
    assert history["learning_rate"].nunique() > 1  # reduce_lr_on_plateau did act

    csv_log = pd.read_csv(resumed / "epochs.csv")  # appended: no epoch missing or repeated
    assert list(csv_log["epoch"]) == list(range(want["epochs_completed"]))
    assert np.allclose(csv_log["val_loss"], pd.read_csv(unbroken / "epochs.csv")["val_loss"])

    final = keras.saving.load_model(resumed / "model.keras").get_weights()
    reference = keras.saving.load_model(unbroken / "model.keras").get_weights()
    assert len(final) == len(reference)
    for a, b in zip(final, reference, strict=True):
        np.testing.assert_allclose(a, b, atol=TOLERANCE, rtol=0)
    kept = json.loads((resumed / "state" / "latest.json").read_text())  # kept: a run can be
    assert kept["epoch"] == want["epochs_completed"]  # extended from its last epoch


SIGTERM_HOOK = """
import os
import signal

batches = 0


def terminate_at_batch_20(batch, logs):
    global batches
    batches += 1
    if batches == 20:
        os.kill(os.getpid(), signal.SIGTERM)
"""


def test_sigterm_exits_143_and_the_run_resumes_in_place(make_config, cli, runs_dir, tmp_path):
    """In-process: the hook sends SIGTERM to this very process in epoch 5 (4 batches each)."""
    from cbrun.run.state import RunLock

    (tmp_path / "sigterm_hook.py").write_text(SIGTERM_HOOK)
    config = make_config(
        {
            "training": {"epochs": 7},
            "callbacks": [
                {"type": "csv_logger"},
                {"type": "lambda", "on_train_batch_end": "sigterm_hook:terminate_at_batch_20"},
            ],
        }
    )
    handler_before = signal.getsignal(signal.SIGTERM)
    stopped = cli("train", config)
    assert stopped.exit_code == 143
    assert signal.getsignal(signal.SIGTERM) is handler_before  # restored after the run
    [run] = run_dirs(runs_dir)
    saved = record(run)
    assert saved["status"] == "interrupted" and saved["signal"] == "SIGTERM"
    assert saved["stop_reason"] == (
        "interrupted by SIGTERM in epoch 5 after batch 4; 4 epochs finished and saved"
    )
    assert len(pd.read_csv(run / "history.csv")) == len(pd.read_csv(run / "log.csv")) == 4

    lock = RunLock(run).acquire()  # as if another cbrun process were still training here
    busy = cli("train", "--resume", run, "--allow-imports")
    lock.release()
    assert busy.exit_code == 2 and "another cbrun process is training" in busy.stderr

    resumed = cli("train", "--resume", run, "--allow-imports")
    assert resumed.exit_code == 0, resumed.stderr
    assert "resuming after epoch 4 of 7" in resumed.stderr
    done = record(run)
    assert done["status"] == "completed" and done["epochs_completed"] == 7
    assert done["resumes"][0]["previous_status"] == "interrupted"
    assert list(pd.read_csv(run / "log.csv")["epoch"]) == list(range(7))
    assert list(pd.read_csv(run / "history.csv")["epoch"]) == list(range(1, 8))
    assert cli("train", "--resume", run).exit_code == 2  # completed: nothing to resume


def test_state_every_n_epochs_resumes_from_the_last_saved_epoch(
    make_config, cli, runs_dir, tmp_path, monkeypatch
):
    """With `state_every: 3` a stop in epoch 5 resumes after epoch 3; epoch 4 is run again."""
    monkeypatch.delitem(sys.modules, "sigterm_hook", raising=False)  # a fresh batch count
    (tmp_path / "sigterm_hook.py").write_text(SIGTERM_HOOK)
    config = make_config(
        {
            "training": {"epochs": 7, "state_every": 3},
            "callbacks": [
                {"type": "csv_logger"},
                {"type": "lambda", "on_train_batch_end": "sigterm_hook:terminate_at_batch_20"},
            ],
        }
    )
    assert cli("train", config).exit_code == 143
    [run] = run_dirs(runs_dir)
    assert record(run)["stop_reason"] == (
        "interrupted by SIGTERM in epoch 5 after batch 4; 4 epochs finished "
        "(resume continues after epoch 3)"
    )
    resumed = cli("train", "--resume", run, "--allow-imports")
    assert resumed.exit_code == 0, resumed.stderr
    assert "resuming after epoch 3 of 7" in resumed.stderr
    assert record(run)["epochs_completed"] == 7
    assert list(pd.read_csv(run / "log.csv")["epoch"]) == list(range(7))
    assert list(pd.read_csv(run / "history.csv")["epoch"]) == list(range(1, 8))
