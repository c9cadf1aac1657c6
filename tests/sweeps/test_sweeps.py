"""`cbrun sweep`: trials from grid and random search, run on a process pool and on local Ray."""

from __future__ import annotations

import csv
import importlib.util
import json
import sys
from pathlib import Path

import pytest
import yaml

from cbrun.experiment.sweep_space import SweepSection, expand
from cbrun.inspect.runs import find_runs  # the trials' runs, as `cbrun runs` finds them
from conftest import TINY, merge

GRID = [
    "--grid",
    "compile.optimizer.learning_rate=0.01,0.001",
    "--grid",
    "training.batch_size=16,32",
]


def _sweep_record(stdout: str) -> tuple[Path, dict]:
    sweep_dir = Path(stdout.strip().splitlines()[-1])
    return sweep_dir, json.loads((sweep_dir / "sweep.json").read_text())


def _check_complete_grid(sweep_dir: Path, record: dict) -> None:
    """Four completed trials, each an ordinary run directory with its model and history."""
    assert record["status"] == "completed"
    assert [t["status"] for t in record["trials"]] == ["completed"] * 4
    runs = find_runs(sweep_dir)
    assert len(runs) == 4
    assert sorted(str(p.relative_to(sweep_dir)) for p in runs) == sorted(
        t["run_dir"] for t in record["trials"]
    )
    for trial in record["trials"]:
        run = json.loads((sweep_dir / trial["run_dir"] / "run.json").read_text())
        assert run["status"] == "completed"
        assert (sweep_dir / trial["run_dir"] / "model.keras").is_file()
        history = json.loads((sweep_dir / trial["run_dir"] / "history.json").read_text())
        assert trial["metric"] == min(history["val_loss"])
        config = yaml.safe_load((sweep_dir / trial["run_dir"] / "config.yaml").read_text())
        assert config["compile"]["optimizer"]["learning_rate"] == pytest.approx(
            trial["params"]["compile.optimizer.learning_rate"]
        )
        assert config["training"]["batch_size"] == trial["params"]["training.batch_size"]
    metrics = [t["metric"] for t in record["trials"]]
    by_name = {t["trial"]: t["metric"] for t in record["trials"]}
    assert [by_name[name] for name in record["ranking"]] == sorted(metrics)
    with open(sweep_dir / "summary.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["trial"] for row in rows] == record["ranking"]
    assert (sweep_dir / "metric_vs_params.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def grid_config(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("sweep")
    path = folder / "experiment.yaml"
    data = merge(TINY, {"output": {"runs_dir": str(folder / "runs")}})
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def pool_sweep(grid_config) -> tuple[Path, dict]:
    from cbrun.sweeps.executors import Resources
    from cbrun.sweeps.runner import plan_search, start_sweep

    grid = ["compile.optimizer.learning_rate=0.01,0.001", "training.batch_size=16,32"]
    search = plan_search(grid_config, [], grid, [])
    result = start_sweep(grid_config, [], search, Resources(workers=2))
    assert result.exit_code == 0
    return result.sweep_dir, result.record


def test_grid_on_a_process_pool_gives_four_complete_runs(pool_sweep):
    sweep_dir, record = pool_sweep
    _check_complete_grid(sweep_dir, record)
    assert sweep_dir.parent.name == "sweeps" and sweep_dir.parent.parent.name == "tiny"
    assert record["backend"]["name"] == "local" and record["backend"]["workers"] == 2


def test_grid_on_a_local_ray_instance_ranks_the_same(pool_sweep, grid_config, cli, tmp_path):
    if importlib.util.find_spec("ray") is None:  # not imported here: cbrun imports it first
        pytest.skip("the ray extra is not installed")
    result = cli(
        "sweep", grid_config, *GRID, "--backend", "ray", "--workers", "2", "--runs-dir", tmp_path
    )
    assert result.exit_code == 0, result.stderr
    sweep_dir, record = _sweep_record(result.stdout)
    assert sweep_dir.is_relative_to(tmp_path)
    _check_complete_grid(sweep_dir, record)
    assert record["ranking"] == pool_sweep[1]["ranking"]
    assert record["backend"]["ray_started_here"] is True
    assert len({trial["worker_pid"] for trial in record["trials"]}) == 2  # 2 reused actors
    assert record["backend"]["ray_address"].startswith("127.0.0.1:")  # loopback only
    assert not sys.modules["ray"].is_initialized()  # the sweep shut its Ray instance down


CRASH_HOOK = """
def fine(epoch, logs):
    pass


def crash(epoch, logs):
    raise RuntimeError("crashed on purpose")
"""


def test_failed_trial_is_recorded_and_resume_reruns_only_it(make_config, cli, tmp_path):
    """The second trial's callback raises in fit: it fails, the first completes."""
    (tmp_path / "crash_hook.py").write_text(CRASH_HOOK)
    path = make_config({"callbacks": [{"type": "lambda", "on_epoch_end": "crash_hook:fine"}]})
    result = cli(
        "sweep",
        path,
        "--grid",
        "callbacks[0].on_epoch_end=crash_hook:fine,crash_hook:crash",
        "--workers",
        "2",
    )
    assert result.exit_code == 1
    sweep_dir, record = _sweep_record(result.stdout)
    good, bad = record["trials"]
    assert good["status"] == "completed" and good["metric"] is not None
    assert bad["status"] == "failed" and "crashed on purpose" in bad["error"]
    assert record["status"] == "failed" and record["ranking"] == ["trial-000", "trial-001"]
    bad_run = json.loads((sweep_dir / bad["run_dir"] / "run.json").read_text())
    assert bad_run["status"] == "failed"
    good_run_json = (sweep_dir / good["run_dir"] / "run.json").read_text()

    result = cli("sweep", "--resume", sweep_dir)
    assert result.exit_code == 1
    assert "1 of 2 trials to run" in result.stderr
    _, resumed = _sweep_record(result.stdout)
    good_again, bad_again = resumed["trials"]
    assert good_again == good  # kept, not re-run
    assert (good_again["attempts"], bad_again["attempts"]) == (1, 2)
    assert bad_again["run_dir"] != bad["run_dir"]  # a new run; the failed one is kept
    assert len(find_runs(sweep_dir)) == 3
    assert (sweep_dir / good["run_dir"] / "run.json").read_text() == good_run_json


def test_bad_grid_value_fails_before_any_trial_runs(make_config, cli, runs_dir):
    path = make_config()
    result = cli("sweep", path, "--grid", "training.batch_size=16,-4,32")
    assert result.exit_code == 2
    assert "trial-001 (training.batch_size=-4)" in result.stderr
    assert "--set training.batch_size=-4: training.batch_size" in result.stderr
    assert not runs_dir.exists()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--grid", "training.epochs"], "expected KEY=V1,V2"),
        (
            ["--random", "compile.optimizer.learning_rate=logunif(1e-4,1e-2)"],
            "unknown distribution `logunif`. Did you mean `loguniform`?",
        ),
        (["--random", "training.batch_size=randint(64,16)"], "low < high"),
        (["--grid", "output.runs_dir=a,b"], "cannot be swept"),
        (["--trials", "3"], "`trials` counts random draws"),
        ([], "nothing to sweep"),
        (["--grid", "training.epochs=1", "--backend", "slurm"], "--backend: expected `local`"),
        (["--grid", "training.epochs=1", "--scheduler", "asha"], "add --backend ray"),
        (["--grid", "training.epochs=1", "--scheduler", "hyperband"], "one of asha, median"),
        (
            ["--grid", "callbacks[3].patience=1,2"],
            "--set callbacks[3].patience=1: `callbacks[3]` names no item (there is no "
            "`callbacks` list)",
        ),
        (
            [
                "--grid",
                "callbacks.0.patience=1,2",
                "--random",
                "callbacks[0].patience=randint(1,3)",
            ],
            "`callbacks[0].patience` is both a grid key and a random key",
        ),
        (["--grid", "callbacks[x].patience=1"], "is not a config key like"),
    ],
)
def test_bad_sweep_flags_are_user_errors(make_config, cli, runs_dir, args, expected):
    result = cli("sweep", make_config(), *args)
    assert result.exit_code == 2
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert not runs_dir.exists()


def test_sweep_section_expands_grid_times_seeded_random_draws(make_config, cli):
    """The `sweep:` section validates with the experiment; trials are the same on every call."""
    section = {
        "grid": {"training.batch_size": [16, 32]},
        "random": {
            "compile.optimizer.learning_rate": "loguniform(1e-4, 1e-2)",
            "model.units": "choice([8], [16, 8])",
            "training.epochs": "randint(1, 3)",
        },
        "trials": 3,
        "metric": "val_accuracy",
    }
    assert cli("validate", make_config({"sweep": section})).exit_code == 0
    sweep = SweepSection.model_validate(section).checked()
    trials = expand(sweep, seed=1)
    assert len(trials) == 6 and trials == expand(sweep, seed=1)
    assert [t.params["training.batch_size"] for t in trials] == [16, 16, 16, 32, 32, 32]
    for trial in trials:
        assert 1e-4 <= trial.params["compile.optimizer.learning_rate"] <= 1e-2
        assert trial.params["model.units"] in ([8], [16, 8])
        assert trial.params["training.epochs"] in (1, 2, 3)
    assert len({t.params["compile.optimizer.learning_rate"] for t in trials}) == 6
    assert sweep.resolved_direction == "max"
    assert trials[0].overrides()[0] == "training.batch_size=16"


def test_list_items_are_swept_by_the_key_paths_cbrun_prints(make_config, cli):
    """`--grid callbacks[0].patience=...` (or `callbacks.0.patience`) reaches the item."""
    from cbrun.sweeps.runner import plan_search

    config = make_config({"callbacks": [{"type": "early_stopping", "patience": 1}]})
    for key in ("callbacks[0].patience", "callbacks.0.patience"):
        sweep = plan_search(config, [], grid=[f"{key}=3,4"], random=[]).checked()
        assert [t.overrides() for t in expand(sweep, seed=1)] == [
            ["callbacks[0].patience=3"],
            ["callbacks[0].patience=4"],
        ]


def test_ties_go_to_the_first_epoch_that_reached_the_best_value(tmp_path):
    """As run.json's `monitors` (train) does, for either direction."""
    from cbrun.sweeps.runner import _metric

    (tmp_path / "history.json").write_text(json.dumps({"val_accuracy": [0.5, 0.9, 0.9, 0.7]}))
    assert _metric(tmp_path, {}, "val_accuracy", "max") == (0.9, 2, None)
    (tmp_path / "history.json").write_text(json.dumps({"val_loss": [0.5, 0.2, 0.2, 0.7]}))
    assert _metric(tmp_path, {}, "val_loss", "min") == (0.2, 2, None)


def test_bad_sweep_section_points_at_its_line(make_config, cli):
    path = make_config({"sweep": {"random": {"training.epochs": "randint(1)"}}})
    result = cli("validate", path)
    assert result.exit_code == 2
    assert f"{path}:" in result.stderr and "sweep.random" in result.stderr
    assert "randint(low, high) needs two numbers" in result.stderr


def test_ray_backend_without_ray_says_how_to_install(make_config, cli, runs_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # makes `import ray` fail
    result = cli("sweep", make_config(), "--grid", "training.epochs=1", "--backend", "ray")
    assert result.exit_code == 2
    assert 'pip install "cbrun[ray]"' in result.stderr
    assert not runs_dir.exists()


def test_asha_on_ray_stops_bad_trials_early(make_config, cli, runs_dir, tmp_path):
    """Ray Tune's ASHA ends trials whose first epoch is worse than the best trial's.

    One trial at a time, so the scheduler has seen the good trial (lr 0.05) before the two
    hopeless ones (lr 1e-5): those stop after their first epochs; their runs are kept as
    interrupted runs with those epochs saved. Each epoch ends with a short pause, so that a
    trial cannot finish all its epochs while Tune is still deciding to stop it.
    """
    if not all(importlib.util.find_spec(name) for name in ("ray", "pyarrow")):  # ray[tune]
        pytest.skip("the ray extra is not installed")
    (tmp_path / "slow_epochs.py").write_text(
        "import time\n\ndef pause(epoch, logs):\n    time.sleep(0.5)\n"
    )
    path = make_config(
        {
            "training": {"epochs": 3},
            "callbacks": [{"type": "lambda", "on_epoch_end": "slow_epochs:pause"}],
        }
    )
    grid = "compile.optimizer.learning_rate=0.05,0.00001,0.00002"
    result = cli(
        "sweep", path, "--grid", grid, "--backend", "ray", "--scheduler", "asha", "--workers", "1"
    )
    assert result.exit_code == 0, result.stderr
    sweep_dir, record = _sweep_record(result.stdout)
    best, *bad = record["trials"]
    assert record["status"] == "completed" and record["backend"]["scheduler"] == "asha"
    assert best["status"] == "completed" and best["metric_epoch"] is not None
    assert (
        json.loads((sweep_dir / best["run_dir"] / "run.json").read_text())["epochs_completed"] == 3
    )
    for trial in bad:
        assert trial["status"] == "stopped" and trial["note"].startswith("stopped by asha")
        run = json.loads((sweep_dir / trial["run_dir"] / "run.json").read_text())
        assert run["status"] == "interrupted" and run["signal"] == "SIGTERM"
        assert 1 <= run["epochs_completed"] < 3
    assert record["ranking"][0] == "trial-000"


def test_sweep_writes_hparams_summaries_tensorboard_reads_back(pool_sweep):
    """Every trial is an HParams session with its values and metrics, read by TensorBoard."""
    from tensorboard.backend.event_processing.plugin_event_multiplexer import EventMultiplexer
    from tensorboard.plugins.hparams import metadata
    from tensorboard.util.tensor_util import make_ndarray

    sweep_dir, record = pool_sweep
    events = EventMultiplexer()
    events.AddRunsFromDirectory(str(sweep_dir / "hparams"))
    events.Reload()
    trials = {item["trial"]: item for item in record["trials"]}
    assert set(events.Runs()) == {".", *trials}

    def scalar(run: str, tag: str) -> float:
        [event] = events.Tensors(run, tag)  # TensorBoard reads scalars as tensors
        return float(make_ndarray(event.tensor_proto))

    [experiment] = events.PluginRunToTagToContent(metadata.PLUGIN_NAME)["."].values()
    experiment = metadata.parse_experiment_plugin_data(experiment)
    domains = {
        h.name: [v.number_value for v in h.domain_discrete.values] for h in experiment.hparam_infos
    }
    assert domains == {
        "compile.optimizer.learning_rate": [0.001, 0.01],  # TensorBoard sorts them
        "training.batch_size": [16.0, 32.0],
    }
    metric_tags = [m.name.tag for m in experiment.metric_infos]
    assert metric_tags[0] == "val_loss"
    assert {"final/loss", "final/val_accuracy", "test/accuracy"} <= set(metric_tags)

    for name, item in trials.items():
        [content] = events.PluginRunToTagToContent(metadata.PLUGIN_NAME)[name].values()
        session = metadata.parse_session_start_info_plugin_data(content)
        assert session.group_name == name
        values = {key: value.number_value for key, value in session.hparams.items()}
        assert values == pytest.approx(item["params"])
        assert scalar(name, "val_loss") == pytest.approx(item["metric"])
        run = json.loads((sweep_dir / item["run_dir"] / "run.json").read_text())
        assert scalar(name, "test/accuracy") == pytest.approx(run["test_metrics"]["accuracy"])


def test_data_that_train_would_refuse_fails_the_sweep_before_any_trial(
    make_config, cli, runs_dir, tmp_path
):
    rows = ["a,b,label"] + [f"{i % 7},{i % 5},{i % 2}" for i in range(40)]
    rows[6] = "3,,1"  # line 7 of the file: a missing cell under `missing: error`
    (tmp_path / "table.csv").write_text("\n".join(rows) + "\n")
    config = merge(TINY, {"output": {"runs_dir": str(runs_dir)}})
    config["data"] = {"type": "csv", "path": str(tmp_path / "table.csv"), "target": "label"}
    path = make_config(text=yaml.safe_dump(config, sort_keys=False))
    result = cli("sweep", path, "--grid", "compile.optimizer.learning_rate=0.01,0.001")
    assert result.exit_code == 2, result.stderr
    assert result.stderr.startswith("error: trial-000 (compile.optimizer.learning_rate=0.0100): ")
    assert "missing cells" in result.stderr and "`b` (line 7)" in result.stderr
    assert "Traceback" not in result.stderr
    assert not runs_dir.exists()
