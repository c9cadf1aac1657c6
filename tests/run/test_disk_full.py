"""A disk that fills up: a run that cannot start leaves nothing, one that fills the disk while
training records `failed` with the reason (its reserve makes room for run.json) and resumes
once there is space again. Uses a real, small tmpfs (skipped where mounting is not allowed)."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from conftest import run_dirs

FILLER = '''
import os


def fill_in_epoch_2(epoch, logs):
    """After epoch 2, take every byte left on the runs' disk."""
    if epoch == 1 and os.environ.get("FILL_DISK"):
        fill(os.environ["FILL_DISK"])


def fill(path):
    with open(path, "wb") as handle:
        try:
            while True:
                handle.write(bytes(1 << 16))
                handle.flush()
        except OSError:
            pass
'''


@pytest.fixture
def small_disk(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(disk)], capture_output=True
    )
    if mounted.returncode:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.decode().strip()}")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=False)


def test_a_disk_full_at_the_start_leaves_no_run_directory(small_disk, make_config, cli):
    (small_disk / "runs").mkdir()
    config = make_config({"output": {"runs_dir": str(small_disk / "runs")}})
    exec(compile(FILLER, "filler", "exec"), namespace := {})
    namespace["fill"](str(small_disk / "filler"))
    result = cli("train", config)
    assert result.exit_code == 2 and "Traceback" not in result.stderr
    assert "cannot hold 1 MB for the run's record" in result.stderr, result.stderr
    assert run_dirs(small_disk / "runs") == []


def test_a_disk_that_fills_while_training_is_recorded_and_resumable(
    small_disk, make_config, cli, tmp_path
):
    (tmp_path / "filler_hook.py").write_text(FILLER)
    config = make_config(
        {
            "training": {"epochs": 3},
            "output": {"runs_dir": str(small_disk / "runs")},
            "callbacks": [{"type": "lambda", "on_epoch_end": "filler_hook:fill_in_epoch_2"}],
        }
    )
    os.environ["FILL_DISK"] = str(small_disk / "filler")
    try:
        result = cli("train", config)
    finally:
        del os.environ["FILL_DISK"]
    assert result.exit_code == 1 and "Traceback" not in result.stderr
    assert "No space left on device" in result.stderr
    [run] = run_dirs(small_disk / "runs")
    assert f"free some space, then resume: cbrun train --resume {run}" in result.stderr
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "failed" and "No space left" in record["error"]["message"]
    assert record["epochs_completed"] == 2
    assert not (run / ".space-reserve").exists()

    (small_disk / "filler").unlink()
    resumed = cli("train", "--resume", run, "--allow-imports")
    assert resumed.exit_code == 0, resumed.stderr
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "completed" and record["epochs_completed"] == 3
    assert record["resumes"][0]["from_epoch"] == 1  # epoch 2's state could not be saved
    history = json.loads((run / "history.json").read_text())
    assert len(history["loss"]) == 3  # epoch 2 trained again, not written twice
