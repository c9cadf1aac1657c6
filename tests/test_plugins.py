"""Plugins: a package's entry point (read lazily), and a class named in the config."""

import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT, run_dirs, run_python, run_subprocess

tomllib = pytest.importorskip("tomllib")

EXAMPLE = ROOT / "examples" / "cbrun-plugin-example"


@pytest.fixture
def installed_example(tmp_path):
    """PYTHONPATH on which the example package is importable and its metadata declares its
    entry points, as `pip install` would leave them; nothing is installed for real."""
    project = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["project"]
    dist_info = tmp_path / "site" / f"cbrun_plugin_example-{project['version']}.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n"
    )
    (dist_info / "entry_points.txt").write_text(
        "".join(
            f"[{group}]\n" + "".join(f"{name} = {value}\n" for name, value in points.items())
            for group, points in project["entry-points"].items()
        )
    )
    return os.pathsep.join([str(dist_info.parent), str(EXAMPLE)])


def test_entry_point_is_read_only_when_a_callback_is_looked_up(installed_example):
    script = (
        "import sys\n"
        "import cbrun, cbrun.cli, cbrun.experiment.config, cbrun.registry\n"
        "print('cbrun_plugin_example.time_limit' in sys.modules)\n"
        "cbrun.registry.callbacks.get('time_limit')\n"
        "print('cbrun_plugin_example.time_limit' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": installed_example},
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "True"]


def test_entry_point_callback_trains(installed_example, tmp_path, make_config, runs_dir):
    env = {"PYTHONPATH": installed_example}
    listing = run_subprocess("list-callbacks", "time_limit", env=env)
    assert listing.returncode == 0, listing.stderr
    assert "Stop training after the epoch that reaches `max_minutes`" in listing.stdout
    assert "- type: time_limit\n  max_minutes: 120" in listing.stdout

    config = make_config(
        {
            "training": {"epochs": 5},
            "callbacks": [{"type": "time_limit", "max_minutes": 1e-6}],
        }
    )
    result = run_subprocess("train", config, "--quiet", env=env)
    assert result.returncode == 0, result.stderr
    (run,) = run_dirs(runs_dir)
    record = json.loads((run / "run.json").read_text())
    assert record["epochs_completed"] == 1
    assert record["stop_reason"].startswith("time_limit: ")
    assert record["stop_reason"].endswith("reached the limit of 1e-06 after epoch 1")


CALLBACK_MODULE = '''
import keras


class EpochMarks(keras.callbacks.Callback):
    """Appends the epoch number to `path` every `every` epochs."""

    def __init__(self, path, every=1):
        super().__init__()
        self.path, self.every = path, every

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every == 0:
            with open(self.path, "a") as file:
                file.write(f"{epoch + 1}\\n")


class NotACallback:
    pass
'''


def user_class_config(make_config, tmp_path, init_args, name="EpochMarks"):
    module = f"marks_{tmp_path.name}"  # one module per test: no stale import
    (tmp_path / f"{module}.py").write_text(CALLBACK_MODULE)
    callbacks = [{"type": "class", "class_path": f"{module}:{name}", "init_args": init_args}]
    return make_config({"training": {"epochs": 4}, "callbacks": callbacks})


def test_class_from_the_config_folder_is_built_with_its_init_args(make_config, tmp_path, cli):
    marks = tmp_path / "marks.txt"
    config = user_class_config(make_config, tmp_path, {"path": str(marks), "every": 2})
    result = cli("train", config, "--quiet")
    assert result.exit_code == 0, result.stderr
    assert marks.read_text() == "2\n4\n"


@pytest.mark.parametrize(
    ("init_args", "name", "message"),
    [
        (
            {"path": "x", "evry": 2},
            "EpochMarks",
            "callbacks[0].init_args.evry: EpochMarks takes no argument `evry`. "
            "Did you mean `every`? It takes: path, every",
        ),
        (
            {"every": 2},
            "EpochMarks",
            "callbacks[0].init_args.path: EpochMarks needs the argument `path`; "
            "add it under init_args",
        ),
        ({}, "NotACallback", "is not a keras.callbacks.Callback subclass"),
        ({}, "Missing", "has no attribute `Missing`"),
    ],
    ids=["unknown_argument", "missing_argument", "not_a_callback", "no_such_class"],
)
def test_bad_class_or_init_args_fail_before_training(
    make_config, tmp_path, cli, runs_dir, init_args, name, message
):
    """`validate` refuses exactly what `train` refuses, with the same message."""
    config = user_class_config(make_config, tmp_path, init_args, name)
    for command in ("validate", "train"):
        result = cli(command, config)
        assert result.exit_code == 2
        assert message in result.stderr, (command, result.stderr)
    assert run_dirs(runs_dir) == []


RUN_DIR_MODULE = """
import keras


class Scorer(keras.callbacks.Callback):
    def __init__(self, run_dir, every=1):
        super().__init__()
        self.run_dir = run_dir

    def on_epoch_end(self, epoch, logs=None):
        logs["custom_score"] = float(epoch)
        (self.run_dir / "scorer.txt").write_text(str(epoch + 1))
"""


def test_class_gets_the_run_dir_and_declares_the_metrics_it_logs(
    make_config, tmp_path, cli, runs_dir
):
    (tmp_path / f"scorer_{tmp_path.name}.py").write_text(RUN_DIR_MODULE)
    scorer = {"type": "class", "class_path": f"scorer_{tmp_path.name}:Scorer"}
    stop = {"type": "early_stopping", "monitor": "custom_score", "mode": "min", "patience": 1}
    undeclared = make_config({"training": {"epochs": 4}, "callbacks": [scorer, stop]})
    result = cli("validate", undeclared)
    assert result.exit_code == 2 and "custom_score" in result.stderr
    scorer["logged_metrics"] = ["custom_score"]
    config = make_config({"training": {"epochs": 4}, "callbacks": [scorer, stop]})
    result = cli("train", config, "-q")
    assert result.exit_code == 0, result.stderr
    (run,) = run_dirs(runs_dir)
    assert (run / "scorer.txt").read_text() == "2"  # the score rose: stopped after epoch 2
    assert json.loads((run / "run.json").read_text())["epochs_completed"] == 2


def test_plugin_code_in_readme_imports_and_registers_as_shown():
    """The stable plugin API is what README's Plugins section imports: run that code as is."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Plugins", 1)[1].split("\n## ", 1)[0]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    probe = (
        f"{code}\n"
        "from cbrun.registry import callbacks as registry\n"
        "component = registry.get('my_callback')\n"
        "print(component.params.__name__, 'my_callback' in registry.names())\n"
    )
    result = run_python(probe)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["MyCallbackParams", "True"]
