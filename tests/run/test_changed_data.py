"""Data that changed since training: `eval` and `train --resume` refuse it by name (exit 2)
unless --allow-changed-data, which goes on and records the change."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cbrun.run.data_check import check_data
from conftest import train_tiny

# TINY's data section made a CSV source (None drops TINY's synthetic keys).
SYNTHETIC_KEYS = {"samples": None, "features": None, "classes": None}
CSV = {"type": "csv", "path": "table.csv", "target": "label", **SYNTHETIC_KEYS}

HOOK = """
import os
import signal


def terminate_in_epoch_2(batch, logs):
    if os.environ.get("CHANGED_DATA_TERMINATE") and batch == 1:
        os.kill(os.getpid(), signal.SIGTERM)
"""


def write_table(path: Path, rows: int = 120) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(rows, 3)).round(3)
    table = pd.DataFrame(x, columns=["a", "b", "c"])
    table["label"] = np.where(x[:, 0] > 0, "up", "down")
    table.to_csv(path, index=False)


@pytest.fixture(scope="module")
def csv_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("changed")
    write_table(folder / "table.csv")
    run = train_tiny(folder, {"data": CSV}).run_dir
    return run, folder / "table.csv"


@pytest.fixture
def table(csv_run):
    """The run's CSV, put back as it was after each test."""
    path = csv_run[1]
    kept = path.read_bytes()
    yield path
    path.write_bytes(kept)


def test_the_run_records_its_file_as_the_config_names_it(csv_run):
    run, path = csv_run
    [entry] = json.loads((run / "run.json").read_text())["data"]["fingerprint"].values()
    assert entry["path"] == "table.csv" and entry["size"] == path.stat().st_size
    assert "fingerprint of data.path" in (run / "report.html").read_text()


def test_eval_names_each_kind_of_change_and_exits_2(csv_run, table, cli, monkeypatch):
    run = csv_run[0]
    monkeypatch.chdir(table.parent)  # paths are shown relative to the current directory
    before = sorted(run.glob("eval-*.json"))
    size = table.stat().st_size

    with table.open("a") as file:
        file.write("0.5,0.5,0.5,up\n")
    appended = cli("eval", run)
    assert appended.exit_code == 2 and "Traceback" not in appended.stderr
    assert f"table.csv: size {size} → {size + 15} bytes" in appended.stderr
    assert "--allow-changed-data" in appended.stderr

    text = table.read_bytes()
    table.write_bytes(text[:-15].replace(b"up", b"pu", 1))  # same size, other bytes
    edited = cli("eval", run)
    assert edited.exit_code == 2 and "table.csv: content changed" in edited.stderr

    table.unlink()
    missing = cli("eval", run)
    assert missing.exit_code == 2 and "table.csv: missing" in missing.stderr
    assert sorted(run.glob("eval-*.json")) == before  # nothing written


def test_allow_changed_data_evaluates_and_records_the_change(csv_run, table, cli):
    run = csv_run[0]
    size = table.stat().st_size
    with table.open("a") as file:
        file.write("0.5,0.5,0.5,up\n")
    result = cli("eval", run, "--allow-changed-data")
    assert result.exit_code == 0, result.stderr
    written = json.loads(Path(result.stdout.strip()).read_text())
    assert written["data_changed"] == [f"{table}: size {size} → {size + 15} bytes"]
    assert "warning: the data changed since training" in result.stderr
    assert "data had changed" in cli("show", run).stdout


def test_resume_refuses_changed_data_unless_allowed(tmp_path, cli):
    (tmp_path / "changed_hook.py").write_text(HOOK)
    write_table(tmp_path / "table.csv")
    os.environ["CHANGED_DATA_TERMINATE"] = "1"
    try:
        with pytest.raises(AssertionError):  # the run stops: SIGTERM in epoch 2
            train_tiny(
                tmp_path,
                {
                    "data": CSV,
                    "training": {"epochs": 3},
                    "callbacks": [
                        {
                            "type": "lambda",
                            "on_train_batch_end": "changed_hook:terminate_in_epoch_2",
                        }
                    ],
                },
            )
    finally:
        del os.environ["CHANGED_DATA_TERMINATE"]
    [run] = [p for p in (tmp_path / "runs").glob("*/*") if p.is_dir()]
    assert json.loads((run / "run.json").read_text())["status"] == "interrupted"

    write_table(tmp_path / "table.csv", rows=121)
    refused = cli("train", "--resume", run, "--allow-imports")
    assert refused.exit_code == 2
    assert f"{tmp_path / 'table.csv'}: size" in refused.stderr
    assert json.loads((run / "run.json").read_text())["status"] == "interrupted"  # untouched

    resumed = cli("train", "--resume", run, "--allow-imports", "--allow-changed-data")
    assert resumed.exit_code == 0, resumed.stderr
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "completed"
    [change] = record["resumes"][-1]["data_changed"]
    assert change.startswith(f"{tmp_path / 'table.csv'}: size ")


def test_a_changed_image_folder_is_refused_with_what_came_and_went(tmp_path):
    from cbrun import registry
    from cbrun.core.errors import CbrunError
    from cbrun.data.fingerprint import write_listings
    from tests.data.test_image_directory import write_images

    folder = write_images(tmp_path / "images", per_class=3)
    component = registry.datasets.get("image_directory")
    params = component.params.model_validate({"type": "image_directory", "path": str(folder)})
    dataset = component.factory(params, 0)
    write_listings(tmp_path, dataset.listings)
    record = {"data": dataset.summary()}
    assert check_data(tmp_path, record, allow_changed=False) == []

    for name in ("a.png", "b.png", "c.png"):
        (folder / "top" / name).write_bytes((folder / "top" / "001.png").read_bytes())
    (folder / "left" / "002.png").unlink()
    with pytest.raises(CbrunError) as refused:
        check_data(tmp_path, record, allow_changed=False)
    assert f"{folder}/: 3 files added, 1 removed" in refused.value.message
    allowed = check_data(tmp_path, record, allow_changed=True)
    assert allowed == [f"{folder}/: 3 files added, 1 removed"]
