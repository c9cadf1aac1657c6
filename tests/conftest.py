"""Shared fixtures: tiny experiment configs, in-process CLI calls, and one Keras import."""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
if os.environ.get("PYTEST_XDIST_WORKER"):  # xdist gives its workers an 80x24 terminal size,
    os.environ.pop("COLUMNS", None)  # which cbrun would take as the user's COLUMNS and wrap
    os.environ.pop("LINES", None)  # its output at; tests see it unwrapped, as in one process

ROOT = Path(__file__).resolve().parent.parent

# A config that trains in about a second: 200 samples, 8 features, 3 classes, one small layer.
TINY: dict[str, Any] = {
    "experiment": {"name": "tiny", "seed": 1},
    "data": {
        "type": "synthetic_classification",
        "samples": 200,
        "features": 8,
        "classes": 3,
        "split": {"validation": 0.2, "test": 0.2},
    },
    "model": {"type": "mlp", "units": [16]},
    "compile": {"optimizer": {"name": "adam", "learning_rate": 0.01}},
    "training": {"epochs": 2, "batch_size": 32},
}


def merge(base: dict[str, Any], updates: dict[str, Any]) -> dict[str, Any]:
    """`base` with `updates` merged in recursively; a None value deletes the key."""
    result = copy.deepcopy(base)
    for key, value in updates.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merge(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


@pytest.fixture
def runs_dir(tmp_path: Path) -> Path:
    return tmp_path / "runs"


@pytest.fixture
def make_config(tmp_path: Path, runs_dir: Path):
    """Write TINY merged with `updates` (or raw `text`) to a YAML file; runs go to tmp."""

    def make(
        updates: dict[str, Any] | None = None,
        *,
        text: str | None = None,
        name: str = "experiment.yaml",
    ) -> Path:
        path = tmp_path / name
        if text is None:
            data = merge(TINY, updates or {})
            data.setdefault("output", {"runs_dir": str(runs_dir)})
            text = yaml.safe_dump(data, sort_keys=False)
        path.write_text(text)
        return path

    return make


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str


@pytest.fixture
def cli(capsys, monkeypatch):
    """Run `cbrun ARGS...` in this process (no new TensorFlow import) and capture its output."""
    from cbrun.cli import main

    def run(*args: str) -> CliResult:
        monkeypatch.setattr(sys, "argv", ["cbrun", *map(str, args)])
        capsys.readouterr()
        code = 0
        try:
            main()
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


def run_cbrun(*args: str) -> tuple[int, str]:
    """`cbrun ARGS` in this process, outside pytest's fixtures (hypothesis calls it many times):
    its exit code and stderr. Any exception but SystemExit propagates: it is a bug."""
    out, err = io.StringIO(), io.StringIO()
    old_argv = sys.argv
    sys.argv = ["cbrun", *args]
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            from cbrun.cli import main

            main()
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    finally:
        sys.argv = old_argv
    return code, err.getvalue()


def assert_clean(code: int, stderr: str) -> None:
    """Exit 0, or exit 2 with one `error: ...` message; never a traceback."""
    assert code in (0, 2), stderr
    assert "Traceback" not in stderr
    if code == 2:
        assert stderr.startswith("error: "), stderr


def run_subprocess(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 300
) -> subprocess.CompletedProcess:
    """`python -m cbrun ARGS...` in a fresh interpreter: only where the process is the subject."""
    return subprocess.run(
        [sys.executable, "-m", "cbrun", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env={**os.environ, **(env or {})},
    )


def run_python(code: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """`python -c CODE` in a fresh interpreter from the repository root."""
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, cwd=ROOT
    )


def run_dirs(runs_dir: Path) -> list[Path]:
    """Every run directory (`runs/<experiment>/<stamp>`) under a runs folder, finished or not."""
    return sorted(p for p in runs_dir.glob("*/*") if p.is_dir()) if runs_dir.exists() else []


def train_tiny(folder: Path, updates: dict[str, Any], name: str = "experiment.yaml") -> Any:
    """Train TINY merged with `updates` in-process, runs under `folder`; for module fixtures."""
    from cbrun.run.train import train

    config = folder / name
    data = merge(TINY, {"output": {"runs_dir": str(folder / "runs")}, **updates})
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    result = train(config, quiet=True)
    assert result.exit_code == 0, result.record.get("error")
    return result


def tensorboard_scalars(folder: Path, tag: str) -> list[float]:
    """The values of one scalar tag in a TensorBoard log folder (e.g. `tensorboard/train`)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.util.tensor_util import make_ndarray

    events = EventAccumulator(str(folder), size_guidance={"tensors": 0})
    events.Reload()
    return [
        float(make_ndarray(event.tensor_proto))
        for event in sorted(events.Tensors(tag), key=lambda event: event.step)
    ]


_PROBE = """
import json, sys
from cbrun.cli import main

codes = {}
for args in COMMANDS:
    sys.argv = ["cbrun", *args]
    try:
        main()
        codes[" ".join(args)] = 0
    except SystemExit as exit_:
        codes[" ".join(args)] = exit_.code or 0
heavy = sorted(m for m in ("tensorflow", "keras") if m in sys.modules)
print("PROBE" + json.dumps({"codes": codes, "heavy": heavy}))
"""


def probe_commands(commands: list[list[str]]) -> tuple[dict[str, Any], subprocess.CompletedProcess]:
    """Run cbrun commands in one fresh interpreter: their exit codes, and whether
    TensorFlow or Keras got imported (`heavy`)."""
    result = subprocess.run(
        [sys.executable, "-c", f"COMMANDS = {commands!r}\n{_PROBE}"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    line = next(x for x in result.stdout.splitlines() if x.startswith("PROBE"))
    return json.loads(line.removeprefix("PROBE")), result


def stopped_then_resumed(config: Path, flag: str) -> Any:
    """Train `config`, whose hook sends SIGTERM in epoch 2 while env var `flag` is set, then
    resume it (imports allowed) to the end; the resumed run's TrainResult."""
    import signal

    from cbrun.run.resume import resume_run
    from cbrun.run.train import train

    os.environ[flag] = "1"
    try:
        stopped = train(config, quiet=True)
    finally:
        del os.environ[flag]
    assert stopped.exit_code == 128 + signal.SIGTERM, stopped.record.get("error")
    result = resume_run(stopped.run_dir, quiet=True, allow_imports=True)
    assert result.exit_code == 0, result.record.get("error")
    assert [s["status"] for s in result.record["segments"]] == ["interrupted", "completed"]
    return result


def assert_refused(cli: Any, config: Path, runs: Path, expected: str) -> None:
    """`cbrun train config` is exit 2 with `expected` in one message, and leaves no run."""
    before = run_dirs(runs)
    result = cli("train", config)
    assert result.exit_code == 2, result.stderr
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert run_dirs(runs) == before


def assert_eval_and_predict(cli: Any, run: Path, inputs: Path, expected: list[str], *flags: str):
    """`cbrun eval RUN` repeats the test accuracy; `cbrun predict RUN inputs` the classes."""
    evaluated = cli("eval", run, *flags)
    assert evaluated.exit_code == 0, evaluated.stderr
    written = json.loads(next(run.glob("eval-test-*.json")).read_text())
    trained = json.loads((run / "run.json").read_text())["test_metrics"]["accuracy"]
    assert abs(written["metrics"]["accuracy"] - trained) < 1e-6
    predicted = cli("predict", run, inputs, *flags)
    assert predicted.exit_code == 0, predicted.stderr
    assert [row.split(",")[-1] for row in predicted.stdout.split()[1:]] == expected


# --- report pictures in a real headless browser -------------------------------------------


def ink(image: Any) -> int:
    """Pixels that are not (near) white: text, lines and filled areas."""
    return int((image[..., :3].min(axis=-1) < 200).sum())


def screenshot(chromium: str, page: Path, out: Path, height: int = 2000) -> Any:
    profile = out.parent / f"{out.stem}-profile"
    subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            f"--screenshot={out}",
            f"--window-size=1200,{height}",
            page.as_uri(),
        ],
        capture_output=True,
        timeout=120,
        check=True,
    )
    import numpy as np
    from PIL import Image

    return np.asarray(Image.open(out).convert("RGB"))


def find_chromium() -> str:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        if os.environ.get("CBRUN_REQUIRE_BROWSER"):
            pytest.fail("chromium is required (CBRUN_REQUIRE_BROWSER is set) but not installed")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return chromium


def assert_unbroken_weights(config: Path, resumed: Any) -> None:
    """Train `config` again unbroken (its stop hook's variable unset): the final weights
    equal those of `resumed`, the run stopped and resumed from the same config."""
    import keras
    import numpy as np

    from cbrun.run.train import train

    unbroken = train(config, quiet=True)
    assert unbroken.exit_code == 0, unbroken.record.get("error")
    final = keras.saving.load_model(resumed.run_dir / "model.keras").get_weights()
    expected = keras.saving.load_model(unbroken.run_dir / "model.keras").get_weights()
    assert len(final) == len(expected)
    for a, b in zip(final, expected, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6, rtol=0)
