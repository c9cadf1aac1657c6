"""run.json records the git repository holding the config file, its commit, whether it was
dirty, and the uncommitted diff as git.diff; outside a repository, none of it."""

from __future__ import annotations

import json
import subprocess

import yaml

from conftest import TINY, merge, run_dirs


def git(folder, *args):
    subprocess.run(["git", "-C", str(folder), *args], check=True, capture_output=True)


def test_a_run_records_the_config_repository_commit_and_uncommitted_diff(
    cli, tmp_path, runs_dir, monkeypatch
):
    repo = tmp_path / "project"
    repo.mkdir()
    config = repo / "exp.yaml"
    data = merge(TINY, {"training": {"epochs": 1}, "output": {"runs_dir": str(runs_dir)}})
    config.write_text(yaml.safe_dump(data))
    git(repo, "init", "-q")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "add", "exp.yaml")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "first")
    head = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    config.write_text(config.read_text() + "# tuned by hand\n")
    (repo / "notes.txt").write_text("untracked\n")
    monkeypatch.chdir(tmp_path)  # not the repository: the config's folder decides

    assert cli("train", config, "-q").exit_code == 0
    (run,) = run_dirs(runs_dir)
    record = json.loads((run / "run.json").read_text())
    assert record["git_commit"] == head
    assert record["git"] == {
        "repository": str(repo.resolve()),
        "commit": head,
        "dirty": True,
        "changed_files": 1,
        "untracked_files": 1,
        "diff_file": "git.diff",
        "diff_truncated": False,
    }
    assert "+# tuned by hand" in (run / "git.diff").read_text()
    shown = cli("show", run)
    assert f"{head} (dirty: 1 changed, 1 untracked; git.diff)" in shown.stdout


def test_outside_a_repository_nothing_is_recorded(cli, make_config, runs_dir):
    assert cli("train", make_config({"training": {"epochs": 1}}), "-q").exit_code == 0
    (run,) = run_dirs(runs_dir)
    record = json.loads((run / "run.json").read_text())
    assert record["git"] is None and record["git_commit"] is None
    assert not (run / "git.diff").exists()
