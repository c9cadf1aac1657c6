"""Light commands never import TensorFlow or Keras (checked in a fresh interpreter)."""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import ROOT, probe_commands, run_python

LIGHT_COMMANDS = [
    ["--help"],
    ["list-callbacks"],
    ["list-callbacks", "early_stopping"],
    ["list-models", "--json"],
    ["list-datasets"],
    ["schema"],
    ["validate", str(ROOT / "configs" / "quickstart.yaml")],
]


def test_light_commands_do_not_import_tensorflow_or_keras():
    report, result = probe_commands(LIGHT_COMMANDS)
    assert report["codes"] == {" ".join(args): 0 for args in LIGHT_COMMANDS}, result.stderr
    assert report["heavy"] == []


def test_only_the_run_layer_and_cbrun_layers_import_tensorflow_or_keras_when_imported():
    """What import-linter cannot see: outside `cbrun.run` (the layer that trains) and
    `cbrun.models.layers`, heavy imports sit inside the functions that need them."""
    code = (
        "import importlib, pkgutil, sys, cbrun\n"
        "names = [m.name for m in pkgutil.walk_packages(cbrun.__path__, 'cbrun.')]\n"
        "for name in names:\n"
        "    if not name.startswith(('cbrun.run.', 'cbrun.models.layers', 'cbrun.__main__')):\n"
        "        importlib.import_module(name)\n"
        "print(len(names), [m for m in ('tensorflow', 'keras') if m in sys.modules])\n"
    )
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    count, heavy = result.stdout.split(" ", 1)
    assert int(count) > 70
    assert heavy.strip() == "[]"


def test_output_to_a_pipe_is_not_wrapped_at_80_columns(tmp_path):
    """Tables keep whole rows and long paths when stdout is a pipe (CI logs)."""
    deep = tmp_path / ("a-long-folder-name-" * 6)
    (deep / "exp" / "20260101-000000").mkdir(parents=True)
    (deep / "exp" / "20260101-000000" / "run.json").write_text('{"status": "completed"}')
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    result = subprocess.run(
        [sys.executable, "-m", "cbrun", "runs", str(deep)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any(str(deep) in line for line in lines), result.stdout
    assert any("config.yaml is missing; history.json is missing" in line for line in lines)
