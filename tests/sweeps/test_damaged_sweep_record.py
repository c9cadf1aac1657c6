"""`cbrun sweep --resume` of a sweep whose sweep.json was hand-edited to any JSON shape, cut
short or had any key replaced: exit 0 (the sweep as documented) or exit 2 naming the file and
the key, never a traceback. In-process, and no trial trains: the sweep's config is invalid, so
a damaged record that leaves a trial to run stops at its check (exit 2) before any runs."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from conftest import assert_clean, run_cbrun

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10)
    | st.sampled_from(["completed", "stopped", "failed", "trial-000", "grid", "min", "../x"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=10,
)
# Key paths into the record, each replaced (or, with None as the marker, deleted).
PATHS = [
    (),
    ("trials",),
    ("trials", 0),
    ("trials", 0, "trial"),
    ("trials", 0, "params"),
    ("trials", 0, "params", "training.batch_size"),
    ("trials", 0, "status"),
    ("trials", 0, "attempts"),
    ("trials", 0, "metric"),
    ("trials", 0, "run_dir"),
    ("trials", 1, "metric_epoch"),
    ("search",),
    ("search", "search"),
    ("search", "grid"),
    ("search", "grid", "training.batch_size"),
    ("search", "metric"),
    ("configs",),
    ("configs", 0),
    ("config",),
    ("overrides",),
    ("metric",),
    ("direction",),
    ("experiment",),
    ("max_epochs",),
]


def pristine(folder: Path) -> dict:
    """What `cbrun sweep` writes for a grid of two trials, both finished."""
    from cbrun.experiment.sweep_space import SweepSection

    config = str(folder / "invalid.yaml")
    return {
        "status": "interrupted",
        "experiment": "s",
        "config": config,
        "configs": [config],
        "overrides": [],
        "metric": "val_loss",
        "direction": "min",
        "search": SweepSection(grid={"training.batch_size": [16, 32]}).model_dump(mode="json"),
        "seed": 0,
        "max_epochs": 2,
        "trials": [
            {
                "trial": "trial-000",
                "params": {"training.batch_size": 16},
                "status": "completed",
                "attempts": 1,
                "metric": 0.5,
                "metric_epoch": 2,
                "run_dir": "../s/20260101-000000",
            },
            {
                "trial": "trial-001",
                "params": {"training.batch_size": 32},
                "status": "stopped",
                "attempts": 1,
                "metric": 0.7,
                "metric_epoch": 1,
            },
        ],
    }


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> tuple[Path, dict]:
    folder = tmp_path_factory.mktemp("sweep")
    (folder / "invalid.yaml").write_text("experiment: {name: s}\n")  # no data: exit 2
    sweep_dir = folder / "sweeps" / "20260101-000000"
    sweep_dir.mkdir(parents=True)
    return sweep_dir, pristine(folder)


def replaced(record: dict, path: tuple, value: object, delete: bool) -> object:
    """`record` with the value at `path` (as far as it reaches) replaced or deleted."""
    if not path:
        return value
    data = copy.deepcopy(record)
    parent = data
    for part in path[:-1]:
        try:
            parent = parent[part]
        except (KeyError, IndexError, TypeError):
            return data
    if isinstance(parent, dict) or (isinstance(parent, list) and path[-1] < len(parent)):
        if delete:
            del parent[path[-1]]
        else:
            parent[path[-1]] = value
    return data


def test_the_pristine_record_resumes_with_nothing_left_to_run(sweep):
    sweep_dir, record = sweep
    (sweep_dir / "sweep.json").write_text(json.dumps(record))
    code, stderr = run_cbrun("sweep", "--resume", str(sweep_dir))
    assert code == 0, stderr
    assert "0 of 2 trials to run" in stderr
    assert (sweep_dir / "summary.csv").read_text().count("trial-") == 2


@settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    path=st.sampled_from(PATHS),
    value=json_values,
    delete=st.booleans(),
    cut=st.integers(0, 2000) | st.none(),
)
@example(path=("trials", 0, "trial"), value="../../../escape", delete=False, cut=None)
@example(path=("trials", 0, "params"), value=[1, 2], delete=False, cut=None)
@example(path=("search", "grid"), value={"k": 3}, delete=False, cut=None)
@example(path=("trials", 0, "metric"), value="0.5", delete=False, cut=None)
@example(path=("configs", 0), value="a\x00b", delete=False, cut=None)
@example(path=("trials",), value=[], delete=False, cut=None)
@example(path=(), value=None, delete=False, cut=100)
def test_resume_of_any_damaged_sweep_record_is_exit_0_or_2(sweep, path, value, delete, cut):
    sweep_dir, record = sweep
    text = json.dumps(replaced(record, path, value, delete))
    (sweep_dir / "sweep.json").write_text(text if cut is None else text[:cut])
    code, stderr = run_cbrun("sweep", "--resume", str(sweep_dir))
    assert_clean(code, stderr)
    if code == 2:
        assert "sweep.json" in stderr or "invalid.yaml" in stderr or "--resume" in stderr, stderr
    assert not (sweep_dir.parent.parent.parent / "escape").exists()
