"""A table read in chunks (`data.stream`): the same split, the same preprocessing and about
the same accuracy as the table read whole; it resumes exactly, evaluates and predicts, and
a bad cell far down the file is the in-memory path's message with the right line."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import yaml

from cbrun import registry
from conftest import ROOT, TINY, merge, stopped_then_resumed, train_tiny

sys.path.insert(0, str(ROOT / "configs" / "data"))
from write_loans import loans  # noqa: E402  (the bundled example's own generator)

DATA = {
    "type": "csv",
    "path": "loans.csv",
    "target": "repaid",
    "columns": {"note": "text"},
    "missing": "impute",
    "split": {"validation": 0.2, "test": 0.2},
}
NULLS = {"samples": None, "features": None, "classes": None}  # TINY's keys csv has not
STREAM = {"stream": True, "chunk_rows": 64, "shuffle_buffer": 128}
RUN = {
    "model": {"type": "mlp", "units": [32]},
    "training": {"epochs": 3, "batch_size": 32, "pipeline": {"deterministic": True}},
}
HOOK = """
import os
import signal


def stop_in_epoch_2(batch, logs):
    if os.environ.get("TABLE_STREAM_STOP") and batch == 3:
        os.kill(os.getpid(), signal.SIGTERM)
"""


def load(folder, seed: int = 1, **data):
    component = registry.datasets.get("csv")
    params = {**DATA, "path": str(folder / "loans.csv"), **data}
    return component.factory(component.params.model_validate(params), seed)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("table-stream")
    loans(600, seed=1).to_csv(folder / "loans.csv", index=False)
    return folder


@pytest.fixture(scope="module")
def runs(folder):
    """The table trained whole, streamed, and streamed but stopped in epoch 2 and resumed."""
    streamed_data = {**NULLS, **DATA, **STREAM}
    whole = train_tiny(folder, {"data": {**NULLS, **DATA, "stream": False}, **RUN}, "whole.yaml")
    streamed = train_tiny(folder, {"data": streamed_data, **RUN}, name="streamed.yaml")
    (folder / "table_hook.py").write_text(HOOK)
    config = merge(TINY, {"output": {"runs_dir": str(folder / "runs")}, "data": streamed_data})
    config = merge(config, RUN)
    config["callbacks"] = [{"type": "lambda", "on_train_batch_end": "table_hook:stop_in_epoch_2"}]
    path = folder / "stopped.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    resumed = stopped_then_resumed(path, "TABLE_STREAM_STOP")
    return whole, streamed, resumed


def test_streamed_chunks_split_and_fit_as_the_whole_table(folder):
    whole, streamed = load(folder, stream=False), load(folder, **STREAM)
    assert streamed.streamed and not whole.streamed
    for name in ("train", "validation", "test"):  # the same rows, in the same order
        np.testing.assert_array_equal(getattr(streamed, name).labels, getattr(whole, name)[1])
    assert streamed.record["preprocessing"] == whole.record["preprocessing"]
    for column, facts in whole.extra["fitted"].items():
        for key, value in facts.items():
            got = streamed.extra["fitted"][column][key]
            assert (
                got == pytest.approx(value, rel=1e-9) if isinstance(value, float) else got == value
            )
    x, y = streamed.test.load(np.array([7, 0, 3]))
    np.testing.assert_array_equal(x["income"], whole.test[0]["income"][[7, 0, 3]])
    np.testing.assert_array_equal(x["note"], whole.test[0]["note"][[7, 0, 3]])
    np.testing.assert_array_equal(y, whole.test[1][[7, 0, 3]])
    limited, smaller = load(folder, stream=False, limit=100), load(folder, limit=100, **STREAM)
    np.testing.assert_array_equal(smaller.train.labels, limited.train[1])
    assert len(smaller.test) == len(limited.test[1]) == 20


def test_each_epoch_shuffles_by_seed_and_epoch_only(folder):
    stream = load(folder, **STREAM).train

    def labels(first: int) -> np.ndarray:
        batches = stream.batches(32, True, 5, None, first).as_numpy_iterator()
        return np.concatenate([y for _, y in batches])

    epoch_0, epoch_1 = labels(0), labels(1)
    assert sorted(epoch_0) == sorted(stream.labels) and not np.array_equal(epoch_0, epoch_1)
    np.testing.assert_array_equal(labels(1), epoch_1)  # a run resumed at epoch 1 sees these


def test_streamed_training_reaches_the_whole_tables_accuracy(runs):
    whole, streamed, _ = runs
    accuracy = [r.record["test_metrics"]["accuracy"] for r in (whole, streamed)]
    assert min(accuracy) >= 0.8 and abs(accuracy[0] - accuracy[1]) <= 0.06, accuracy
    data = json.loads((streamed.run_dir / "data.json").read_text())
    assert data["samples"] == {"train": 360, "validation": 120, "test": 120}
    assert data["streamed"] == {"chunk_rows": 64, "rows": {"train": 600}}
    assert "data.path" in data["fingerprint"]


def test_a_stopped_streamed_run_resumes_to_the_unbroken_weights(runs):
    import keras

    _, streamed, resumed = runs
    assert resumed.record["epochs_completed"] == 3
    final = keras.saving.load_model(resumed.run_dir / "model.keras").get_weights()
    unbroken = keras.saving.load_model(streamed.run_dir / "model.keras").get_weights()
    for a, b in zip(final, unbroken, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6, rtol=0)


def test_a_streamed_run_evaluates_and_predicts_raw_rows(runs, cli, tmp_path):
    _, streamed, _ = runs
    evaluated = cli("eval", streamed.run_dir)
    assert evaluated.exit_code == 0, evaluated.stderr
    written = json.loads(next(streamed.run_dir.glob("eval-test-*.json")).read_text())
    trained = streamed.record["test_metrics"]["accuracy"]
    assert abs(written["metrics"]["accuracy"] - trained) < 1e-6
    rows = tmp_path / "rows.csv"
    rows.write_text(
        "income,debt,age,purpose,region,note\n"
        "90,2,40,business,north,stable salaried savings permanent\n"
        "20,60,30,spaceship,,late gambling overdraft unemployed\n"
    )
    predicted = cli("predict", streamed.run_dir, rows)
    assert predicted.exit_code == 0, predicted.stderr
    assert [row.split(",")[-1] for row in predicted.stdout.split()[1:]] == ["yes", "no"]


def test_auto_streams_above_the_size_and_bad_cells_name_their_line(folder, tmp_path):
    assert load(folder, stream="auto", stream_above_mb=0.001).streamed
    assert not load(folder).streamed  # 600 rows are far below the default 256 MB
    frame = loans(300, seed=2)
    frame["age"] = frame["age"].astype(object)
    frame.loc[250, "age"] = "sixty"  # in the fourth chunk of 64 rows: line 252 of the file
    frame.to_csv(tmp_path / "loans.csv", index=False)
    with pytest.raises(Exception, match="line 252 .first value 'sixty'.") as raised:
        load(tmp_path, **STREAM, columns={"note": "text", "age": "numeric"})
    assert type(raised.value).__name__ == "CbrunError"


@pytest.mark.parametrize("suffix", [".parquet", ".jsonl", ".tsv"])
def test_parquet_jsonl_and_tsv_stream_as_they_read_whole(tmp_path, suffix):
    frame = loans(200, seed=3)
    path = tmp_path / f"loans{suffix}"
    if suffix == ".parquet":
        frame.to_parquet(path)
    elif suffix == ".jsonl":
        frame.to_json(path, orient="records", lines=True)
    else:
        frame.to_csv(path, sep="\t", index=False)
    whole = load(tmp_path, path=str(path), stream=False)
    streamed = load(tmp_path, path=str(path), stream=True, chunk_rows=30)
    np.testing.assert_array_equal(streamed.train.labels, whole.train[1])
    assert streamed.record["preprocessing"] == whole.record["preprocessing"]
