"""`sweep.search: optuna` with the real Optuna: TPE trials, pruning, a resumable study."""

from __future__ import annotations

import importlib.util
import json
import math
import statistics
import sys
from pathlib import Path

import pytest

from cbrun.experiment.sweep_space import SweepSection, expand
from cbrun.inspect.runs import find_runs  # the trials' runs, as `cbrun runs` finds them

optuna = pytest.importorskip("optuna")

CRASH_HOOK = """
from pathlib import Path

def crash_if_flagged(epoch, logs):
    if (Path(__file__).parent / "crash.flag").exists():
        raise RuntimeError("crashed on purpose")
"""

SPACE = {
    "random": {"compile.optimizer.learning_rate": "loguniform(1e-5, 1e-1)"},
    "grid": {"model.units": [[8], [16, 8]]},
}


def load_study(sweep_dir: Path):
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    storage = JournalStorage(JournalFileBackend(str(sweep_dir / "optuna.journal")))
    return optuna.load_study(study_name="cbrun", storage=storage)


def sweep_record(stdout: str) -> tuple[Path, dict]:
    sweep_dir = Path(stdout.strip().splitlines()[-1])
    return sweep_dir, json.loads((sweep_dir / "sweep.json").read_text())


def in_space(params: dict) -> bool:
    rate = params["compile.optimizer.learning_rate"]
    return 1e-5 <= rate <= 1e-1 and params["model.units"] in ([8], [16, 8])


def test_a_crashed_trial_is_kept_with_its_error_and_resume_continues_the_study(
    make_config, cli, tmp_path
):
    (tmp_path / "crash_hooks.py").write_text(CRASH_HOOK)
    flag = tmp_path / "crash.flag"
    flag.touch()
    config = make_config(
        {
            "callbacks": [{"type": "lambda", "on_epoch_end": "crash_hooks:crash_if_flagged"}],
            "sweep": {"search": "optuna", "trials": 2, **SPACE},
        }
    )
    crashed = cli("sweep", config, "--workers", "2")
    assert crashed.exit_code == 1, crashed.stderr
    sweep_dir, record = sweep_record(crashed.stdout)
    assert [t["status"] for t in record["trials"]] == ["failed", "failed"]
    assert all(t["error"] == "RuntimeError: crashed on purpose" for t in record["trials"])
    study = load_study(sweep_dir)
    assert [t.state.name for t in study.trials] == ["FAIL", "FAIL"]
    assert [t.user_attrs["error"] for t in study.trials] == ["RuntimeError: crashed on purpose"] * 2
    first_params = [t["params"] for t in record["trials"]]
    assert all(in_space(p) for p in first_params)

    flag.unlink()
    resumed = cli("sweep", "--resume", sweep_dir, "--workers", "2")
    assert resumed.exit_code == 0, resumed.stderr
    assert "2 of 2 trials to run" in resumed.stderr
    _, record = sweep_record(resumed.stdout)
    assert [t["status"] for t in record["trials"]] == ["completed", "completed"]
    assert [t["attempts"] for t in record["trials"]] == [2, 2]
    assert [t["params"] for t in record["trials"]] == first_params  # the same points again
    study = load_study(sweep_dir)  # one study: the crashed trials kept, two new ones complete
    assert [t.state.name for t in study.trials] == ["FAIL", "FAIL", "COMPLETE", "COMPLETE"]
    by_number = {t.number: t for t in study.trials}
    for item in record["trials"]:
        trial = by_number[item["optuna_trial"]]
        assert trial.value == item["metric"]
        history = json.loads((sweep_dir / item["run_dir"] / "history.json").read_text())
        assert [trial.intermediate_values[e] for e in sorted(trial.intermediate_values)] == (
            history["val_loss"]
        )
    assert len(find_runs(sweep_dir)) == 4  # the failed runs stay beside the new ones
    for item in record["trials"]:  # HParams rewritten whole: one file per trial, new values
        [events] = (sweep_dir / "hparams" / item["trial"]).glob("events.out.tfevents.*")
        assert b"val_loss" in events.read_bytes()


def test_the_median_pruner_stops_trials_worse_than_the_median_at_their_epoch(
    make_config, cli, tmp_path
):
    # Each epoch ends with a short pause, so the pruner's SIGTERM lands before a trial's last
    # epoch (an idle machine once finished all 4 epochs first).
    (tmp_path / "median_pause.py").write_text(
        "import time\n\ndef pause(epoch, logs):\n    time.sleep(0.5)\n"
    )
    config = make_config(
        {
            "training": {"epochs": 4},
            "callbacks": [{"type": "lambda", "on_epoch_end": "median_pause:pause"}],
            "sweep": {"search": "optuna", "trials": 6, "pruner": "median", **SPACE},
        }
    )
    result = cli("sweep", config, "--workers", "1")
    assert result.exit_code == 0, result.stderr
    sweep_dir, record = sweep_record(result.stdout)
    study = load_study(sweep_dir)
    by_number = {t.number: t for t in study.trials}
    stopped = [t for t in record["trials"] if t["status"] == "stopped"]
    assert stopped, "seed 1 draws trials the median rule stops; none was stopped"
    for item in stopped:
        trial = by_number[item["optuna_trial"]]
        assert trial.state.name == "PRUNED"
        run = json.loads((sweep_dir / item["run_dir"] / "run.json").read_text())
        assert run["status"] == "interrupted" and run["epochs_completed"] < 4
        assert item["note"] == (
            f"stopped by Optuna's median pruner after {run['epochs_completed']} epoch(s)"
        )
        # The rule itself: at the pruned step its value was worse than the median of the
        # trials finished before it at that step.
        step = max(trial.intermediate_values)
        earlier = [
            t.intermediate_values[step]
            for t in study.trials
            if t.number < trial.number and t.state.name == "COMPLETE"
        ]
        assert len(earlier) >= 3 and trial.intermediate_values[step] > statistics.median(earlier)
    for item in record["trials"]:
        assert in_space(item["params"])
        if item["status"] == "completed":
            assert by_number[item["optuna_trial"]].value == item["metric"]
    assert record["ranking"][-len(stopped) :] == [t["trial"] for t in _sorted(stopped)]


def _sorted(items: list[dict]) -> list[dict]:
    return sorted(items, key=lambda item: item["metric"])


def test_on_ray_tunes_optuna_search_draws_the_seeded_points_and_asha_prunes(
    make_config, cli, tmp_path
):
    """`--backend ray`: Ray Tune's OptunaSearch asks the same journal study for each point.

    TPE's first points are its seeded random ones, so they are those a local study with the
    same seed draws. ASHA is the pruning side; Ray's searcher tells the study each trial's last
    reported value, a stopped trial's too (as COMPLETE).
    """
    if not all(importlib.util.find_spec(name) for name in ("ray", "pyarrow")):  # ray[tune]
        pytest.skip("the ray extra is not installed")
    from cbrun.sweeps.optuna_search import Space, make_study

    config = make_config({"sweep": {"search": "optuna", "trials": 4, "seed": 5, **SPACE}})
    result = cli("sweep", config, "--backend", "ray", "--workers", "2", "--scheduler", "asha")
    assert result.exit_code == 0, result.stderr
    sweep_dir, record = sweep_record(result.stdout)
    backend = record["backend"]
    assert backend["search_alg"] == "ray.tune.search.optuna.OptunaSearch"
    assert (backend["sampler"], backend["scheduler"]) == ("TPESampler(seed=5)", "asha")
    assert backend["ray_started_here"] is True

    space = Space(optuna, record["search"])
    (tmp_path / "local").mkdir()
    local = make_study(optuna, tmp_path / "local", record["search"], "min", seed=5)
    expected = [space.decode(local.ask(space.distributions).params) for _ in range(4)]
    items = sorted(record["trials"], key=lambda item: item["optuna_trial"])
    assert [item["params"] for item in items] == expected

    study = load_study(sweep_dir)
    by_number = {t.number: t for t in study.trials}
    assert sorted(by_number) == [item["optuna_trial"] for item in items] == [0, 1, 2, 3]
    for item in items:
        trial = by_number[item["optuna_trial"]]
        assert trial.state.name == "COMPLETE" and space.decode(trial.params) == item["params"]
        history = json.loads((sweep_dir / item["run_dir"] / "history.json").read_text())
        run = json.loads((sweep_dir / item["run_dir"] / "run.json").read_text())
        assert item["ray_node"]  # the Ray node that ran it
        if item["status"] == "completed":
            assert run["epochs_completed"] == 2 and trial.value == history["val_loss"][-1]
            assert item["metric"] == min(history["val_loss"])
        else:
            assert item["status"] == "stopped" and item["note"].startswith("stopped by asha")
            assert run["status"] == "interrupted" and trial.value in history["val_loss"]
    assert any(item["status"] == "completed" for item in items)
    assert backend["best_optuna_trial"] == study.best_trial.number
    assert len(find_runs(sweep_dir)) == 4
    assert sorted(p.name for p in (sweep_dir / "hparams").iterdir() if p.is_dir()) == [
        item["trial"] for item in record["trials"]
    ]


def test_the_same_seed_draws_the_same_trials_and_a_resumed_study_draws_new_ones(tmp_path):
    """TPE is seeded by sweep.seed; a study loaded again does not repeat its first points."""
    from cbrun.sweeps.optuna_search import Space, make_study

    search = SweepSection(search="optuna", trials=1, seed=7, **SPACE).model_dump(mode="json")
    space = Space(optuna, search)

    def draw(folder: Path, count: int) -> list[dict]:
        study = make_study(optuna, folder, search, "min", seed=7)
        points = []
        for _ in range(count):
            trial = study.ask(space.distributions)
            study.tell(trial, 1.0)
            points.append(space.decode(trial.params))
        return points

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = draw(tmp_path / "a", 2)
    assert draw(tmp_path / "b", 2) == first and all(in_space(p) for p in first)
    resumed = draw(tmp_path / "a", 2)  # the same journal, loaded again
    assert not any(point in first for point in resumed)


def test_random_search_draws_every_key_including_grid_keys_as_choices():
    sweep = SweepSection(search="random", trials=20, seed=3, **SPACE).checked()
    trials = expand(sweep, seed=0)
    assert len(trials) == 20 and all(in_space(t.params) for t in trials)
    assert {tuple(t.params["model.units"]) for t in trials} == {(8,), (16, 8)}
    rates = [math.log10(t.params["compile.optimizer.learning_rate"]) for t in trials]
    assert max(rates) - min(rates) > 2  # spread over the log range
    assert expand(sweep, seed=0) == trials  # seeded


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--search", "optuna"], "search `optuna` needs `trials`, the number of trials"),
        (["--search", "optna", "--trials", "2"], "--search: `optna` is not one of"),
        (["--pruner", "median"], "pruner `median` prunes Optuna trials: set search to optuna"),
        (
            ["--search", "optuna", "--trials", "2", "--pruner", "median", "--metric", "test_loss"],
            "`test_loss` exists only after training",
        ),
        (
            ["--search", "optuna", "--trials", "2", "--backend", "ray", "--pruner", "median"],
            "on Ray, Ray Tune's scheduler prunes them",
        ),
    ],
)
def test_bad_optuna_settings_are_user_errors(make_config, cli, runs_dir, args, expected):
    config = make_config()
    result = cli("sweep", config, "--random", "model.dropout=uniform(0, 0.3)", *args)
    assert result.exit_code == 2, result.stderr
    assert expected in result.stderr and "Traceback" not in result.stderr
    assert not runs_dir.exists()


def test_bad_value_in_the_optuna_space_fails_before_any_trial(make_config, cli, runs_dir):
    result = cli(
        "sweep", make_config(), "--search", "optuna", "--trials", "2",
        "--grid", "training.batch_size=16,-4",
    )  # fmt: skip
    assert result.exit_code == 2
    assert "training.batch_size=-4" in result.stderr and "greater than 0" in result.stderr
    assert not runs_dir.exists()


def test_without_optuna_the_error_names_the_extra(make_config, cli, runs_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)  # makes `import optuna` fail
    result = cli("sweep", make_config(), "--search", "optuna", "--trials", "2",
                 "--random", "model.dropout=uniform(0, 0.3)")  # fmt: skip
    assert result.exit_code == 2
    assert 'pip install "cbrun[optuna]"' in result.stderr
    assert not runs_dir.exists()


@pytest.mark.parametrize(
    ("pruner", "kind", "settings"),
    [
        ("none", "NopPruner", {}),
        ("median", "MedianPruner", {"_n_startup_trials": 3, "_n_warmup_steps": 0}),
        ("hyperband", "HyperbandPruner", {"_min_resource": 1, "_reduction_factor": 3}),
    ],
)
def test_pruner_names_give_optunas_pruners(tmp_path, pruner, kind, settings):
    from cbrun.sweeps.optuna_search import make_study

    sweep = SweepSection(search="optuna", trials=2, pruner=pruner, **SPACE)
    study = make_study(optuna, tmp_path, sweep.model_dump(mode="json"), "max", seed=0)
    assert type(study.pruner).__name__ == kind
    assert {key: getattr(study.pruner, key) for key in settings} == settings
    assert study.direction.name == "MAXIMIZE"
    assert (tmp_path / "optuna.journal").is_file()
