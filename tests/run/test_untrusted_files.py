"""Safe by default: run directories run no code unless asked, and runs never share or escape."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from cbrun.core.errors import CbrunError
from cbrun.core.run_dir import create_run_dir
from conftest import TINY, merge, run_dirs, train_tiny

# A model with a Lambda layer: saving it stores Python bytecode, which only unsafe loading runs.
USER_MODEL = """
import keras


def build(input_shape, num_classes):
    inputs = keras.Input(input_shape)
    halved = keras.layers.Lambda(lambda t: t * 0.5)(inputs)
    return keras.Model(inputs, keras.layers.Dense(num_classes, activation="softmax")(halved))
"""
MODULE = "untrusted_lambda_model"


@pytest.fixture(scope="module")
def lambda_run(tmp_path_factory):
    """One trained run of a user's `import` model, with a weights-only best checkpoint."""
    folder = tmp_path_factory.mktemp("lambda")
    (folder / f"{MODULE}.py").write_text(USER_MODEL)
    result = train_tiny(
        folder,
        {
            "model": {"type": "import", "function": f"{MODULE}:build", "units": None},
            "callbacks": [
                {
                    "type": "model_checkpoint",
                    "filepath": "checkpoints/best.weights.h5",
                    "save_best_only": True,
                    "save_weights_only": True,
                }
            ],
        },
    )
    sys.modules.pop(MODULE, None)  # as if this run directory came from somewhere else
    return result.run_dir


def eval_files(run_dir: Path) -> list[str]:
    return sorted(p.name for p in run_dir.glob("eval-*.json"))


def test_eval_refuses_a_model_holding_code_without_unsafe(lambda_run, cli):
    refused = cli("eval", lambda_run)
    assert refused.exit_code == 2 and "Traceback" not in refused.stderr
    assert "holds Python code" in refused.stderr and "pass --unsafe" in refused.stderr
    assert eval_files(lambda_run) == []

    trusted = cli("eval", lambda_run, "--unsafe")
    assert trusted.exit_code == 0, trusted.stderr
    written = json.loads(Path(trusted.stdout.strip()).read_text())
    trained = json.loads((lambda_run / "eval.json").read_text())
    assert written["metrics"] == pytest.approx(trained["metrics"], abs=1e-6)


def test_eval_imports_no_code_from_a_run_directory_unless_allowed(lambda_run, cli):
    before = eval_files(lambda_run)
    refused = cli("eval", lambda_run, "--checkpoint", "best")  # weights only: rebuilds the model
    assert refused.exit_code == 2 and "Traceback" not in refused.stderr
    assert f"model.function: `{MODULE}:build` is code named by the config" in refused.stderr
    assert "--allow-imports" in refused.stderr
    assert MODULE not in sys.modules
    assert eval_files(lambda_run) == before

    allowed = cli("eval", lambda_run, "--checkpoint", "best", "--allow-imports")
    assert allowed.exit_code == 0, allowed.stderr
    assert MODULE in sys.modules


def test_run_directories_stay_inside_the_runs_directory(tmp_path):
    runs = tmp_path / "runs"
    (tmp_path / "elsewhere").mkdir()
    runs.mkdir()
    (runs / "linked").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(CbrunError, match="would leave the runs directory"):
        create_run_dir(runs, "linked")
    with pytest.raises(CbrunError, match="would leave the runs directory"):
        create_run_dir(runs, "..")
    assert list((tmp_path / "elsewhere").iterdir()) == []


def test_resume_refuses_a_run_directory_with_links_out_of_it(tmp_path, cli):
    run = tmp_path / "runs" / "tiny" / "20260102-030405"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text("experiment: {name: tiny}\n")
    (run / "run.json").write_text('{"status": "interrupted"}')
    (run / "checkpoints").symlink_to(tmp_path)
    result = cli("train", "--resume", run)
    assert result.exit_code == 2
    assert "checkpoints: a symbolic link in the run directory" in result.stderr


def test_runs_started_in_the_same_second_get_their_own_directories(tmp_path):
    now = datetime(2026, 1, 2, 3, 4, 5)
    made: list[Path] = []
    threads = [
        threading.Thread(target=lambda: made.append(create_run_dir(tmp_path, "same", now)))
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    names = sorted(p.name for p in made)
    assert names == ["20260102-030405", *(f"20260102-030405-{n}" for n in range(2, 9))]


def test_two_trainings_started_together_do_not_touch_each_other(tmp_path):
    config = tmp_path / "experiment.yaml"
    data = merge(
        TINY,
        {"output": {"runs_dir": str(tmp_path / "runs")}, "callbacks": [{"type": "csv_logger"}]},
    )
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    command = [sys.executable, "-m", "cbrun", "train", str(config), "--quiet"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    processes = [
        subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
        for _ in range(2)
    ]
    outputs = [process.communicate(timeout=300) for process in processes]
    assert [p.returncode for p in processes] == [0, 0], [err for _, err in outputs]

    printed = sorted(Path(out.strip()) for out, _ in outputs)
    assert printed == run_dirs(tmp_path / "runs") and printed[0] != printed[1]
    records = [json.loads((run / "run.json").read_text()) for run in printed]
    assert {r["pid"] for r in records} == {p.pid for p in processes}
    for run, record in zip(printed, records, strict=True):
        assert record["status"] == "completed" and record["epochs_completed"] == 2
        assert list(pd.read_csv(run / "log.csv")["epoch"]) == [0, 1]
        assert yaml.safe_load((run / "config.yaml").read_text())["experiment"]["name"] == "tiny"


def test_predict_refuses_a_model_holding_code_without_unsafe(lambda_run, cli, tmp_path):
    inputs = tmp_path / "inputs.npz"
    np.savez(inputs, x=np.zeros((3, TINY["data"]["features"]), dtype="float32"))
    refused = cli("predict", lambda_run, inputs)
    assert refused.exit_code == 2 and "Traceback" not in refused.stderr
    assert "holds Python code" in refused.stderr and "pass --unsafe" in refused.stderr

    trusted = cli("predict", lambda_run, inputs, "--unsafe")
    assert trusted.exit_code == 0, trusted.stderr
    assert len(trusted.stdout.strip().splitlines()) == 1 + 3  # header and one row per input
