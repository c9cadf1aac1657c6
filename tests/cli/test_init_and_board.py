"""`cbrun init` writes starter configs that validate and train; `cbrun board` serves TensorBoard."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
import yaml

from conftest import ROOT

TEMPLATES = ["classification", "cnn", "regression"]


@pytest.mark.parametrize("template", TEMPLATES)
def test_each_template_is_a_commented_config_that_validates(cli, tmp_path, template):
    path = tmp_path / "experiments" / f"my {template}.yaml"
    result = cli("init", "--template", template, path)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == str(path)
    text = path.read_text()
    assert sum(line.lstrip().startswith("#") for line in text.splitlines()) >= 4
    assert yaml.safe_load(text)["experiment"]["name"] == f"my-{template}"
    validated = cli("validate", path)
    assert validated.exit_code == 0, validated.stderr


def test_the_default_template_passes_a_smoke_run(cli, tmp_path):
    path = tmp_path / "starter.yaml"
    assert cli("init", path).exit_code == 0
    assert yaml.safe_load(path.read_text())["data"]["type"] == "digits"
    result = cli("train", path, "--smoke", "--json", "--quiet", "--runs-dir", tmp_path / "runs")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["status"] == "completed"


def test_init_never_overwrites_and_names_unknown_templates(cli, tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("experiment: {name: mine}\n")
    result = cli("init", path)
    assert result.exit_code == 2 and "already exists" in result.stderr
    assert path.read_text() == "experiment: {name: mine}\n"
    result = cli("init", "--template", "regresion", tmp_path / "new.yaml")
    assert result.exit_code == 2 and "Did you mean `regression`?" in result.stderr
    assert not (tmp_path / "new.yaml").exists()


def test_board_without_tensorboard_gives_an_install_hint(cli, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # `import tensorboard` now fails
    result = cli("board", tmp_path)
    assert result.exit_code == 2
    assert "TensorBoard is not installed" in result.stderr
    assert "pip install tensorboard" in result.stderr


def test_board_rejects_a_missing_runs_dir(cli, tmp_path):
    result = cli("board", tmp_path / "nope")
    assert result.exit_code == 2 and "no such directory" in result.stderr


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("localhost", 0))
        return probe.getsockname()[1]


def test_board_serves_the_runs_event_files(cli, make_config, runs_dir):
    config = make_config({"callbacks": [{"type": "tensorboard", "log_dir": "tensorboard"}]})
    assert cli("train", config, "--quiet").exit_code == 0
    port = free_port()
    board = subprocess.Popen(
        [sys.executable, "-m", "cbrun", "board", str(runs_dir), "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    try:
        runs = None
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and board.poll() is None:
            try:
                with urllib.request.urlopen(f"http://localhost:{port}/data/runs", timeout=5) as r:
                    runs = json.loads(r.read())
                if runs:
                    break
            except OSError:
                pass
            time.sleep(0.5)
        assert board.poll() is None, board.communicate()[1]
        (run,) = [p.relative_to(runs_dir) for p in runs_dir.glob("*/*")]
        assert sorted(runs) == [f"{run}/tensorboard/train", f"{run}/tensorboard/validation"]
    finally:
        board.terminate()
        board.communicate(timeout=30)
