"""Any run-directory file hand-edited to any JSON shape, or truncated, gives every reading
command a clear result: exit 0 (damage reported in the output) or exit 2, never a traceback."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from conftest import assert_clean, run_cbrun, train_tiny

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10)
    | st.sampled_from(["completed", "failed", "running", "interrupted", "loss", "accuracy"]),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "status",
                    "epochs_completed",
                    "history",
                    "loss",
                    "val_loss",
                    "metrics",
                    "test_metrics",
                    "input_shape",
                    "feature_names",
                    "task",
                    "num_classes",
                    "started_at",
                    "duration_seconds",
                    "best",
                    "pid",
                    "epoch",
                    "stop_reason",
                ]
            )
            | st.text(max_size=6),
            inner,
            max_size=5,
        )
    ),
    max_leaves=15,
)
RECORDS = ["run.json", "data.json", "history.json", "eval.json", "config.yaml"]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("finished")
    return train_tiny(folder, {"training": {"epochs": 1}}).run_dir


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("damaged")


def damaged_copy(run_dir: Path, scratch: Path, name: str, content: bytes) -> Path:
    """A copy of the run (as runs/<experiment>/<stamp>) with one file replaced."""
    target = scratch / "runs" / "tiny" / run_dir.name
    shutil.rmtree(scratch / "runs", ignore_errors=True)
    shutil.copytree(run_dir, target, ignore=shutil.ignore_patterns("tensorboard", "state"))
    (target / name).write_bytes(content)
    return target


def contents(draw_json: object, original: bytes, cut: int) -> list[bytes]:
    return [json.dumps(draw_json).encode(), original[: cut % (len(original) + 1)]]


def damaging(names: list[str]):
    """Draws which file to damage, and the JSON value or the truncation that replaces it."""
    return given(
        name=st.sampled_from(names),
        value=json_values,
        cut=st.integers(0, 10_000),
        truncate=st.booleans(),
    )


SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))


@SETTINGS
@damaging(RECORDS)
@example(
    name="run.json", value={"status": "completed", "epochs_completed": "x"}, cut=0, truncate=False
)
@example(name="history.json", value={"loss": [None, "a"]}, cut=0, truncate=False)
def test_runs_show_and_compare_survive_any_damaged_file(
    finished_run, scratch, name, value, cut, truncate
):
    original = (finished_run / name).read_bytes()
    content = contents(value, original, cut)[int(truncate)]
    run = damaged_copy(finished_run, scratch, name, content)
    assert_clean(*run_cbrun("runs", str(scratch / "runs")))
    assert_clean(*run_cbrun("runs", str(scratch / "runs"), "--json", "--sort", "val_loss"))
    assert_clean(*run_cbrun("show", str(run)))
    assert_clean(
        *run_cbrun("compare", str(run), str(finished_run), "--output", str(scratch / "compare.png"))
    )


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@damaging(RECORDS)
def test_eval_and_predict_survive_any_damaged_file(
    finished_run, scratch, name, value, cut, truncate
):
    original = (finished_run / name).read_bytes()
    content = contents(value, original, cut)[int(truncate)]
    run = damaged_copy(finished_run, scratch, name, content)
    inputs = scratch / "inputs.csv"
    inputs.write_text(",".join(f"f{i}" for i in range(8)) + "\n" + ",".join(["0.5"] * 8) + "\n")
    assert_clean(*run_cbrun("eval", str(run)))
    assert_clean(
        *run_cbrun("predict", str(run), str(inputs), "--output", str(scratch / "predictions.csv"))
    )


def test_a_truncated_model_file_is_named_as_damaged_not_missing(finished_run, scratch):
    original = (finished_run / "model.keras").read_bytes()
    run = damaged_copy(finished_run, scratch, "model.keras", original[: len(original) // 2])
    code, stderr = run_cbrun("eval", str(run))
    assert code == 2, stderr
    assert "model.keras: the model file is damaged" in stderr, stderr


def resume_damaged(
    run_dir: Path, scratch: Path, name: str, value: object, cut: int, truncate: bool
) -> tuple[int, str]:
    """`train --resume` (two epochs) of a copy of the run, state included, with one file
    replaced by the JSON value or cut short."""
    original = (run_dir / name).read_bytes()
    target = scratch / "runs" / "tiny" / run_dir.name
    shutil.rmtree(scratch / "runs", ignore_errors=True)
    shutil.copytree(run_dir, target, ignore=shutil.ignore_patterns("tensorboard"))
    (target / name).write_bytes(contents(value, original, cut)[int(truncate)])
    return run_cbrun("train", "--resume", str(target), "--set", "training.epochs=2", "-q")


STATE_FILES = ["state/latest.json", "state/epoch-0001/state.json"]


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@damaging(STATE_FILES)
@example(name="state/latest.json", value={"folder": "../../elsewhere"}, cut=0, truncate=False)
@example(
    name="state/epoch-0001/state.json",
    value={"epoch": 1, "history": {}, "callbacks": [{"class": "X", "attributes": {"model": 1}}]},
    cut=0,
    truncate=False,
)
def test_resume_survives_any_damaged_state_file(finished_run, scratch, name, value, cut, truncate):
    """`train --resume` of a run whose saved state was hand-edited or truncated: exit 2 naming
    the file (or a resume as documented), never a traceback, and never a path out of state/."""
    code, stderr = resume_damaged(finished_run, scratch, name, value, cut, truncate)
    assert_clean(code, stderr)
    if code == 2:  # the damaged file is named, or its epoch is past the one asked for
        assert "state/" in stderr or "epochs already" in stderr, stderr


@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
@damaging(["run.json", "config.yaml"])  # data.json and history.json: a resume writes them anew
@example(name="run.json", value=[], cut=0, truncate=False)
@example(name="run.json", value={}, cut=0, truncate=False)
@example(name="run.json", value={"status": "failed", "segments": {"a": 1}}, cut=0, truncate=False)
@example(name="run.json", value={"resumes": 5, "class_weight": [1]}, cut=0, truncate=False)
def test_resume_survives_any_damaged_record(finished_run, scratch, name, value, cut, truncate):
    """`train --resume` of a run whose run.json or config.yaml was hand-edited or truncated:
    exit 2 naming the file before anything changes, or a resume as documented, never a
    traceback (run.json once failed with an AttributeError, or a TypeError after training)."""
    code, stderr = resume_damaged(finished_run, scratch, name, value, cut, truncate)
    assert_clean(code, stderr)
    if code == 2:
        assert name in stderr or "epochs already" in stderr, stderr
