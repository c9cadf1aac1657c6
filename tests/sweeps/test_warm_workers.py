"""Warm sweep workers: trials trained one after another in one process give fresh-process
results, keep their own output, and a trial that kills its worker fails alone."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import yaml

from conftest import TINY, merge, run_subprocess

HOOKS = """
import os
import signal


def fine(epoch, logs):
    print("fine hook ran")


def kill_once(epoch, logs):
    print("kill_once hook ran")
    marker = os.path.join(os.path.dirname(__file__), "killed")
    if not os.path.exists(marker):
        open(marker, "w").close()
        os.kill(os.getpid(), signal.SIGKILL)
"""

# Trials in grid order (the last key varies fastest), one worker at a time: the first kills
# its worker; the second starts a new one, which trains the others; the third trains under
# mixed precision, and the fourth (float32) follows it there.
GRID = [
    "callbacks[0].on_epoch_end=hooks:kill_once,hooks:fine",
    "training.precision=mixed_bfloat16,float32",
]


@pytest.fixture(scope="module")
def warm_sweep(tmp_path_factory) -> tuple[Path, dict, Path]:
    from cbrun.sweeps.executors import Resources
    from cbrun.sweeps.runner import plan_search, start_sweep

    folder = tmp_path_factory.mktemp("warm")
    (folder / "hooks.py").write_text(HOOKS)
    config = folder / "experiment.yaml"
    data = merge(
        TINY,
        {
            "output": {"runs_dir": str(folder / "runs")},
            "training": {"epochs": 1},
            "callbacks": [{"type": "lambda", "on_epoch_end": "hooks:fine"}],
        },
    )
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    result = start_sweep(config, [], plan_search(config, [], GRID, []), Resources(workers=1))
    return result.sweep_dir, result.record, config


def test_a_trial_that_kills_its_worker_fails_and_the_next_trials_run(warm_sweep):
    sweep_dir, record, _ = warm_sweep
    assert record["backend"]["warm_workers"] is True
    killed, *others = record["trials"]
    assert [trial["status"] for trial in record["trials"]] == ["failed"] + ["completed"] * 3
    assert killed["error"].startswith("the trial's worker process killed by SIGKILL during")
    assert killed["error"].endswith(": kill_once hook ran")  # the trial's last line of output
    assert killed["exit_code"] == -9
    assert record["status"] == "failed"
    assert len({trial["worker_pid"] for trial in others}) == 1  # one warm worker, reused
    assert killed["worker_pid"] != others[0]["worker_pid"]  # the killed worker was replaced


def test_each_trial_keeps_its_own_output_in_its_train_log(warm_sweep):
    sweep_dir, record, _ = warm_sweep
    logs = [(sweep_dir / t["run_dir"] / "train.log").read_text() for t in record["trials"][1:]]
    assert [log.count("hook ran") for log in logs] == [1, 1, 1]
    assert ["kill_once hook ran" in log for log in logs] == [True, False, False]
    assert all(log.count("cbrun tiny:") == 1 for log in logs)  # no other trial's lines


def test_a_warm_trial_after_a_mixed_precision_one_matches_a_fresh_process(warm_sweep, tmp_path):
    sweep_dir, record, config = warm_sweep
    first, mixed, warm = (sweep_dir / t["run_dir"] for t in record["trials"][1:])
    assert yaml.safe_load((mixed / "config.yaml").read_text())["training"]["precision"] == (
        "mixed_bfloat16"
    )
    fresh = run_subprocess(
        "train", config, "-q", "--runs-dir", tmp_path, "--set", "training.precision=float32"
    )
    assert fresh.returncode == 0, fresh.stderr
    fresh_dir = Path(fresh.stdout.strip().splitlines()[-1])
    warm_history = json.loads((warm / "history.json").read_text())
    fresh_history = json.loads((fresh_dir / "history.json").read_text())
    assert warm_history.keys() == fresh_history.keys()
    for key, values in fresh_history.items():
        assert warm_history[key] == pytest.approx(values, rel=1e-6, abs=1e-7), key
    first_history = json.loads((first / "history.json").read_text())
    for key, values in first_history.items():
        assert warm_history[key] == pytest.approx(values, rel=1e-6, abs=1e-7), key
    # Keras' session was cleared: the layers have the names a fresh process gives them.
    assert (warm / "model_summary.txt").read_text() == (fresh_dir / "model_summary.txt").read_text()


def test_restore_undoes_what_a_trial_changes_in_the_process(tmp_path):
    import keras
    import tensorflow as tf

    from cbrun.run.process_state import ProcessBaseline, _op_determinism

    (tmp_path / "user_module_of_a_trial.py").write_text("VALUE = 1\n")
    baseline = ProcessBaseline.capture()
    try:
        keras.config.set_dtype_policy("mixed_float16")
        keras.config.set_floatx("float64")
        tf.config.experimental.enable_op_determinism()
        os.environ["CBRUN_TRIAL_SET_THIS"] = "1"
        sys.path.insert(0, str(tmp_path))
        import user_module_of_a_trial  # noqa: F401
    finally:
        baseline.restore()
    assert keras.config.dtype_policy().name == "float32"
    assert keras.config.floatx() == "float32"
    assert not _op_determinism()
    assert "CBRUN_TRIAL_SET_THIS" not in os.environ
    assert str(tmp_path) not in sys.path
    assert "user_module_of_a_trial" not in sys.modules
    assert "cbrun.run.process_state" in sys.modules  # cbrun's own modules stay loaded


@pytest.mark.parametrize(
    ("distribution", "fresh"),
    [
        (None, False),
        ({"strategy": "mirrored"}, False),
        ({"strategy": "mirrored", "cpu_devices": 2}, True),  # logical devices: once a process
    ],
)
def test_only_trials_that_split_the_cpu_need_a_fresh_process(make_config, distribution, fresh):
    from cbrun.sweeps.executors import TrialJob
    from cbrun.sweeps.warm_pool import needs_fresh_process

    path = make_config({"distribution": distribution} if distribution else {})
    assert needs_fresh_process(TrialJob(0, [str(path)], [], str(path.parent))) is fresh


def test_a_worker_that_cannot_start_fails_the_trial_with_its_own_error(monkeypatch, tmp_path):
    from cbrun.sweeps import warm_pool
    from cbrun.sweeps.executors import TrialJob

    broken = "import sys; print('ImportError: no TensorFlow here', file=sys.stderr); sys.exit(3)"
    monkeypatch.setattr(warm_pool, "WORKER_COMMAND", [sys.executable, "-c", broken])
    config = tmp_path / "experiment.yaml"
    config.write_text(yaml.safe_dump(TINY))
    pool = warm_pool.WarmPool()
    try:
        result = pool.run(TrialJob(0, [str(config)], [], str(tmp_path)))
    finally:
        pool.close()
    assert result["exit_code"] == 3 and result["run_dir"] is None
    assert result["error"] == (
        "the trial's worker process exited with code 3 before the trial started (it is "
        "replaced): ImportError: no TensorFlow here"
    )


def _worker_children() -> list[int]:
    """This process' children that run a warm worker (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:  # not a process, or it ended meanwhile
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == os.getpid() and b"cbrun.sweeps.worker" in command:
            found.append(int(entry.name))
    return found


def _sweep_with_an_early_worker(config, grid, search=None):
    from cbrun.sweeps.executors import Resources
    from cbrun.sweeps.runner import sweep_command
    from cbrun.sweeps.warm_pool import start_early

    flags = {"grid": grid, "random": [], "trials": None, "metric": None, "direction": None}
    flags |= {"search": search, "pruner": None}
    resources = Resources(workers=1)
    warm = start_early(resources, search)
    assert len(_worker_children()) == 1  # started before anything is read
    return sweep_command([config], [], flags, resources, warm=warm)


def test_a_sweep_that_fails_its_checks_kills_the_worker_it_started_early(make_config):
    from cbrun.core.errors import CbrunError

    config = make_config({"training": {"epochs": 1}})
    assert _worker_children() == []
    with pytest.raises(CbrunError, match=r"trial-001 \(model.dropout=7\)"):
        _sweep_with_an_early_worker(config, ["model.dropout=0,7"])
    assert _worker_children() == []  # killed and reaped, not left importing TensorFlow


def test_a_sweep_whose_flags_are_wrong_kills_the_worker_it_started_early(make_config):
    from cbrun.core.errors import CbrunError

    config = make_config({"training": {"epochs": 1}})
    with pytest.raises(CbrunError, match="Did you mean `random`"):
        _sweep_with_an_early_worker(config, ["model.dropout=0,0.2"], search="randon")
    assert _worker_children() == []


def test_no_worker_is_started_early_where_trials_do_not_run_in_warm_workers():
    from cbrun.sweeps.executors import Resources
    from cbrun.sweeps.warm_pool import start_early

    assert start_early(Resources(fresh_processes=True), None) is None
    assert start_early(Resources(backend="ray"), None) is None
    assert start_early(Resources(), "optuna") is None
    assert _worker_children() == []


NO_WORKER_HOOK = """
import os
from pathlib import Path

def refuse_a_warm_worker_beside_me(epoch, logs):
    for entry in Path("/proc").iterdir():
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            command = (entry / "cmdline").read_bytes()
        except (OSError, ValueError):
            continue
        if parent == os.getppid() and b"cbrun.sweeps.worker" in command:
            raise RuntimeError(f"warm worker {entry.name} is running beside this trial")
"""


def test_an_optuna_sweep_kills_the_worker_started_early_before_its_trials(make_config, tmp_path):
    pytest.importorskip("optuna")
    (tmp_path / "no_worker_hooks.py").write_text(NO_WORKER_HOOK)
    config = make_config(
        {
            "training": {"epochs": 1},
            "callbacks": [
                {"type": "lambda", "on_epoch_end": "no_worker_hooks:refuse_a_warm_worker_beside_me"}
            ],
            "sweep": {"search": "optuna", "trials": 1},
        }
    )
    result = _sweep_with_an_early_worker(config, ["model.dropout=0,0.2"])
    assert [t["status"] for t in result.record["trials"]] == ["completed"], result.record
    assert _worker_children() == []
