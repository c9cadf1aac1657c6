"""`cbrun runs`, `show` and `compare` over real run directories, damaged ones included."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from conftest import TINY, merge, probe_commands


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Two short real trainings that differ in units and epochs, plus damaged copies."""
    from cbrun.run.train import train

    base = tmp_path_factory.mktemp("inspect")
    runs_dir = base / "runs"
    made: dict[str, Path] = {}
    for name, updates in {
        "small": {"training": {"epochs": 2}},
        "wide": {
            "model": {"units": [32]},
            "training": {"epochs": 3},
            "callbacks": [{"type": "early_stopping", "monitor": "val_accuracy", "patience": 5}],
        },
    }.items():
        path = base / f"{name}.yaml"
        config = merge(TINY, {"experiment": {"name": name}, **updates})
        path.write_text(yaml.safe_dump({**config, "output": {"runs_dir": str(runs_dir)}}))
        result = train(path, quiet=True)
        assert result.status == "completed"
        made[name] = result.run_dir
    broken = runs_dir / "broken"
    made["truncated"] = broken / "20260101-000000"  # run.json cut off mid-write
    shutil.copytree(made["small"], made["truncated"])
    text = (made["truncated"] / "run.json").read_text()
    (made["truncated"] / "run.json").write_text(text[: len(text) // 2])
    made["empty"] = broken / "20260101-000001"  # created, then the process died
    made["empty"].mkdir()
    made["no_model"] = broken / "20260101-000002"  # completed, but files went missing
    shutil.copytree(made["small"], made["no_model"])
    (made["no_model"] / "model.keras").unlink()
    (made["no_model"] / "history.json").unlink()
    made["killed"] = broken / "20260101-000003"  # its process died without a word
    shutil.copytree(made["small"], made["killed"])
    record = json.loads((made["killed"] / "run.json").read_text())
    finished = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    record.update(status="running", pid=int(finished.stdout))
    (made["killed"] / "run.json").write_text(json.dumps(record))
    made["edited"] = broken / "20260101-000004"  # someone edited run.json by hand
    shutil.copytree(made["small"], made["edited"])
    record = json.loads((made["edited"] / "run.json").read_text())
    record.update(duration_seconds="long", monitors={"val_loss": 0.5}, epochs_completed=True)
    (made["edited"] / "run.json").write_text(json.dumps(record))
    made["runs_dir"] = runs_dir
    return made


def test_runs_lists_every_run_and_damaged_ones_as_such(runs, cli):
    result = cli("runs", runs["runs_dir"], "--json")
    assert result.exit_code == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["small/" + runs["small"].name]["status"] == "completed"
    wide = rows["wide/" + runs["wide"].name]
    assert wide["epochs_completed"] == 3 and wide["epochs_planned"] == 3
    assert set(wide["best"]) == {"val_accuracy"} and 1 <= wide["best"]["val_accuracy"]["epoch"] <= 3
    recorded = json.loads((runs["wide"] / "run.json").read_text())
    assert wide["test_metrics"] == recorded["test_metrics"]
    assert rows["broken/20260101-000000"]["status"] == "damaged"
    assert "run.json is unreadable" in rows["broken/20260101-000000"]["problems"][0]
    assert rows["broken/20260101-000001"]["problems"] == ["run.json is missing"]
    assert rows["broken/20260101-000002"]["problems"] == [
        "history.json is missing",
        "model.keras is missing",
    ]
    assert rows["broken/20260101-000002"]["recorded_status"] == "completed"
    killed = rows["broken/20260101-000003"]
    assert killed["status"] == "damaged" and killed["recorded_status"] == "running"
    assert killed["problems"] == [
        f"recorded as running, but its process {killed_pid(runs)} is gone (killed?)"
    ]
    assert rows["broken/20260101-000004"]["problems"] == [
        f"run.json: `{key}` has the wrong type"
        for key in ("duration_seconds", "epochs_completed", "monitors")
    ]
    running = cli("runs", runs["runs_dir"], "--json", "--status", "running")
    assert json.loads(running.stdout) == []


def killed_pid(runs) -> int:
    return json.loads((runs["killed"] / "run.json").read_text())["pid"]


def test_runs_finds_sweep_trials_but_not_sweep_folders(runs, cli, tmp_path):
    sweep = tmp_path / "runs" / "small" / "sweeps" / "20260102-000000"
    shutil.copytree(runs["small"], sweep / "small" / "20260102-000001")
    (sweep / "sweep.json").write_text("{}")
    for folder in (tmp_path / "runs", sweep):
        result = cli("runs", folder, "--json")
        assert result.exit_code == 0, result.stderr
        rows = json.loads(result.stdout)
        assert [(r["name"], r["status"]) for r in rows] == [("small/20260102-000001", "completed")]


def test_runs_filters_sorts_and_limits(runs, cli):
    def names(*args: str) -> list[str]:
        result = cli("runs", runs["runs_dir"], "--json", *args)
        assert result.exit_code == 0, result.stderr
        return [row["name"].split("/")[0] for row in json.loads(result.stdout)]

    assert names("--status", "damaged") == ["broken"] * 5
    assert sorted(names("--status", "completed")) == ["small", "wide"]
    accuracy = {
        name: json.loads((runs[name] / "run.json").read_text())["test_metrics"]["accuracy"]
        for name in ("small", "wide")
    }
    best_first = sorted(accuracy, key=accuracy.get, reverse=True)
    assert names("--status", "completed", "--sort", "test_accuracy") == best_first
    assert names("--sort", "test_accuracy", "--limit", "1") == best_first[:1]


def test_runs_table_and_errors(runs, cli):
    table = cli("runs", runs["runs_dir"])
    assert table.exit_code == 0
    assert "wide/" + runs["wide"].name in table.stdout and "damaged" in table.stdout
    assert "run.json is missing" in table.stdout
    wrong = cli("runs", runs["runs_dir"], "--sort", "test_acuracy")
    assert wrong.exit_code == 2 and "Did you mean `test_accuracy`?" in wrong.stderr
    assert cli("runs", runs["runs_dir"], "--status", "done").exit_code == 2
    missing = cli("runs", runs["runs_dir"] / "nope")
    assert missing.exit_code == 2 and "no such directory" in missing.stderr


def test_show_prints_outcome_metrics_curves_artifacts_and_config(runs, cli):
    result = cli("show", runs["wide"])
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    record = json.loads((runs["wide"] / "run.json").read_text())
    assert record["stop_reason"] in out
    best = record["monitors"]["val_accuracy"]
    assert f"at epoch {best['best_epoch']}" in out
    assert f"{record['test_metrics']['accuracy']:.4f}" in out
    loss_line = next(line for line in out.splitlines() if line.startswith("loss "))
    assert len([c for c in loss_line if c in "▁▂▃▄▅▆▇█"]) == 3  # one bar per epoch
    assert "model.keras" in out and "kB" in out and "report.html" in out
    assert "units:" in out and "- 32" in out  # the config as resolved


@pytest.mark.parametrize(
    ("run", "problem"),
    [
        ("truncated", "run.json is unreadable"),
        ("empty", "run.json is missing"),
        ("no_model", "history.json is missing"),
        ("edited", "`monitors` has the wrong type"),
    ],
)
def test_show_reports_damage_without_crashing(runs, cli, run, problem):
    result = cli("show", runs[run])
    assert result.exit_code == 0, result.stderr
    assert "damaged" in result.stdout and problem in result.stdout


def test_show_rejects_a_folder_that_is_not_a_run(runs, cli):
    result = cli("show", runs["runs_dir"])
    assert result.exit_code == 2 and "not a run directory" in result.stderr


def test_compare_shows_only_differing_keys_and_writes_an_overlay_png(
    runs, cli, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    result = cli("compare", runs["small"], runs["wide"])
    assert result.exit_code == 0, result.stderr
    png = Path(result.stdout.strip())
    assert png.parent == tmp_path and png.name.startswith("compare-")
    lines = result.stderr.splitlines()
    differing = {line.split("│")[1].strip() for line in lines if line.startswith("│")}
    assert {"experiment.name", "model.units", "training.epochs", "callbacks"} <= differing
    assert "training.batch_size" not in differing and "data.samples" not in differing
    assert any("test accuracy" in line for line in lines)
    image = np.asarray(Image.open(png).convert("L"))
    assert image.shape[1] >= 1000 and image.shape[0] >= 700  # a grid of panels
    assert (image < 200).mean() > 0.02  # lines and text, not a blank canvas

    again = cli("compare", runs["small"], runs["wide"], "--output", png)
    assert again.exit_code == 2 and "already exists" in again.stderr


def test_compare_legend_names_the_settings_that_differ(runs, cli, tmp_path, monkeypatch):
    drawn = {}
    monkeypatch.setattr(
        "cbrun.inspect.plots.plot_overlay", lambda histories, path: drawn.update(histories)
    )
    result = cli("compare", runs["small"], runs["wide"], "--output", tmp_path / "c.png")
    assert result.exit_code == 0, result.stderr
    small, wide = drawn
    assert small.startswith(f"{runs['small'].parent.name}/{runs['small'].name} (")
    assert "model.units=[16]" in small and "model.units=[32]" in wide, drawn
    assert "experiment.name" not in small


def test_compare_tolerates_a_damaged_run(runs, cli, tmp_path):
    out = tmp_path / "cmp.png"
    result = cli("compare", runs["wide"], runs["no_model"], "--output", out)
    assert result.exit_code == 0, result.stderr
    assert "history.json is missing" in result.stderr and out.stat().st_size > 10_000
    assert cli("compare", runs["wide"]).exit_code == 2


def test_train_json_prints_one_summary_line_with_exit_codes(cli, make_config):
    result = cli("train", make_config(), "--smoke", "--json", "--quiet")
    assert result.exit_code == 0, result.stderr
    (line,) = result.stdout.splitlines()
    summary = json.loads(line)
    assert summary["status"] == "completed" and summary["exit_code"] == 0
    assert Path(summary["path"], "run.json").is_file()
    assert summary["epochs_completed"] == 1 and "accuracy" in summary["test_metrics"]
    bad = cli("train", make_config({"training": {"epochs": -1}}), "--json")
    assert bad.exit_code == 2
    (line,) = bad.stdout.splitlines()
    assert json.loads(line)["status"] == "invalid" and "training.epochs" in line


def test_runs_show_and_compare_do_not_import_tensorflow(runs, tmp_path):
    commands = [
        ["runs", str(runs["runs_dir"])],
        ["show", str(runs["wide"])],
        ["compare", str(runs["small"]), str(runs["wide"]), "--output", str(tmp_path / "c.png")],
    ]
    report, result = probe_commands(commands)
    assert set(report["codes"].values()) == {0} and report["heavy"] == []


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([3.0, 2.0, 1.0, 0.0], "█▆▃▁"),
        ([1.0, 1.0, 1.0], "▁▁▁"),
        ([2.0, float("nan"), float("inf"), 1.0], "█  ▁"),  # a diverged run does not crash
        ([float("nan")] * 2, "  "),
        (list(range(120)), "▁▁▁▁▁▁▁▁▂▂▂▂▂▂▂▃▃▃▃▃▃▃▃▄▄▄▄▄▄▄▅▅▅▅▅▅▅▆▆▆▆▆▆▆▆▇▇▇▇▇▇▇████████"),
    ],
)
def test_sparkline(values, expected):
    from cbrun.inspect.show import sparkline

    assert sparkline(values) == expected
