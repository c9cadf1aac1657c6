"""`cbrun runs` filters (tag, status, smoke, experiment, age) and `cbrun rm` to the trash."""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from conftest import train_tiny


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """Three runs: tagged `keep` (full), a smoke run, and a failed run of 10 days ago."""
    folder = tmp_path_factory.mktemp("housekeeping")
    train_tiny(folder, {"experiment": {"name": "tiny", "seed": 1, "tags": ["keep", "mlp"]}})
    train_tiny(folder, {"experiment": {"name": "other", "seed": 1}, "training": {"epochs": 1}})
    smoke = sorted((folder / "runs" / "other").iterdir())[0]
    record = json.loads((smoke / "run.json").read_text())
    (smoke / "run.json").write_text(json.dumps({**record, "smoke": True}))
    old = smoke.parent / "20200101-000000"
    shutil.copytree(smoke, old)
    started = (datetime.now(timezone.utc) - timedelta(days=10)).isoformat()
    record = {**record, "status": "failed", "started_at": started, "smoke": False}
    (old / "run.json").write_text(json.dumps(record))
    return folder / "runs"


def names(cli, runs, *args) -> list[str]:
    result = cli("runs", runs, "--paths", *args)
    assert result.exit_code == 0, result.stderr
    return sorted(f"{Path(p).parent.name}/{Path(p).name[:8]}" for p in result.stdout.split())


def test_runs_filter_by_tag_status_smoke_experiment_and_age(cli, runs):
    today = datetime.now().strftime("%Y%m%d")
    assert names(cli, runs, "--tag", "keep") == [f"tiny/{today}"]
    assert names(cli, runs, "--tag", "keep", "--tag", "absent") == []
    assert names(cli, runs, "--failed") == ["other/20200101"]
    assert names(cli, runs, "--smoke") == [f"other/{today}"]
    assert names(cli, runs, "--no-smoke", "--experiment", "other") == ["other/20200101"]
    assert names(cli, runs, "--older-than", "7d") == ["other/20200101"]
    assert names(cli, runs, "--older-than", "30d") == []


def test_runs_table_marks_smoke_runs_and_says_its_order(cli, runs):
    result = cli("runs", runs, "--experiment", "other")
    assert result.exit_code == 0
    assert f"2 runs in {runs}, newest first" in result.stdout
    assert "(smoke)" in result.stdout
    result = cli("runs", runs, "--sort", "val_loss", "--tag", "keep")
    assert f"1 run in {runs}, best val_loss first" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--older-than", "7 days"), "expected an age such as 30m, 12h, 7d or 2w"),
        (("--failed", "--status", "completed"), "contradict"),
    ],
)
def test_bad_filters_exit_2(cli, runs, args, message):
    result = cli("runs", runs, *args)
    assert result.exit_code == 2 and message in result.stderr, result.stderr


def test_rm_moves_runs_to_the_trash_which_runs_never_lists(cli, runs, tmp_path):
    copy = tmp_path / "runs"
    shutil.copytree(runs, copy)
    selected = cli("runs", copy, "--failed", "--older-than", "7d", "--paths").stdout.split()
    assert len(selected) == 1
    result = cli("rm", *selected)
    assert result.exit_code == 0, result.stderr
    assert (copy / ".trash" / "other" / "20200101-000000" / "run.json").is_file()
    assert not Path(selected[0]).exists()
    assert names(cli, copy, "--experiment", "other") == [
        f"other/{datetime.now().strftime('%Y%m%d')}"
    ]
    (tiny,) = cli("runs", copy, "--tag", "keep", "--paths").stdout.split()
    assert cli("rm", tiny, "--purge").exit_code == 0
    assert not Path(tiny).exists() and not (copy / ".trash" / "tiny").exists()


def test_rm_refuses_what_is_not_a_run_and_moves_nothing(cli, runs, tmp_path):
    copy = tmp_path / "runs"
    shutil.copytree(runs, copy)
    (run,) = cli("runs", copy, "--tag", "keep", "--paths").stdout.split()
    result = cli("rm", run, tmp_path)
    assert result.exit_code == 2 and "not a run directory" in result.stderr
    assert Path(run).is_dir()
