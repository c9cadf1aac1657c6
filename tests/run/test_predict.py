"""`cbrun predict`: CSV/NPZ inputs prepared like the training data, CSV out, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import TINY, merge, probe_commands

FEATURES = ["width", "height", "depth", "weight"]
CLASSES = ["bolt", "nut", "washer"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """A real run on a CSV with named features and text labels, and one on raw digits."""
    from cbrun.run.train import train

    base = tmp_path_factory.mktemp("predict")
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 240)
    frame = pd.DataFrame(rng.normal(size=(240, 4)) + labels[:, None] * 2.0, columns=FEATURES)
    frame.insert(2, "part", [CLASSES[i] for i in labels])  # the target sits between features
    frame.to_csv(base / "parts.csv", index=False)
    configs = {
        "parts": merge(
            TINY,
            {
                "experiment": {"name": "parts"},
                "data": {
                    "type": "csv",
                    "path": str(base / "parts.csv"),
                    "target": "part",
                    "samples": None,
                    "features": None,
                    "classes": None,
                },
                "training": {"epochs": 3},
                "callbacks": [{"type": "metrics_jsonl", "phases": ["fit", "predict"]}],
            },
        ),
        "regression": merge(
            TINY,
            {
                "experiment": {"name": "regression"},
                "data": {
                    "type": "synthetic_regression",
                    "samples": 120,
                    "features": 5,
                    "targets": 2,
                    "classes": None,
                },
            },
        ),
        "digits": merge(
            TINY,
            {
                "experiment": {"name": "digits"},
                "data": {
                    "type": "digits",
                    "limit": 300,
                    "samples": None,
                    "features": None,
                    "classes": None,
                },
            },
        ),
    }
    made = {}
    for name, config in configs.items():
        config["output"] = {"runs_dir": str(base / "runs")}
        (base / f"{name}.yaml").write_text(yaml.safe_dump(config))
        result = train(base / f"{name}.yaml", quiet=True)
        assert result.status == "completed", result.record.get("error")
        made[name] = result.run_dir
    made["csv"] = base / "parts.csv"
    return made


def model_outputs(run_dir: Path, x: np.ndarray) -> np.ndarray:
    import keras

    model = keras.saving.load_model(run_dir / "model.keras", safe_mode=True)
    return model.predict(x.astype("float32"), verbose=0)


def test_csv_input_gives_probabilities_and_labels_per_row(runs, cli, tmp_path):
    frame = pd.read_csv(runs["csv"]).head(30)
    shuffled = frame[["part", "depth", "weight", "height", "width"]]  # any order, extra column
    shuffled.to_csv(tmp_path / "new.csv", index=False)
    out = tmp_path / "predictions.csv"
    result = cli("predict", runs["parts"], tmp_path / "new.csv", "--output", out)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == str(out)
    table = pd.read_csv(out)
    assert list(table.columns) == [f"prob_{c}" for c in CLASSES] + ["predicted"]
    assert len(table) == 30
    probabilities = table[[f"prob_{c}" for c in CLASSES]].to_numpy()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1, atol=1e-4)
    expected = model_outputs(runs["parts"], frame[FEATURES].to_numpy())
    np.testing.assert_allclose(probabilities, expected, atol=1e-5)
    assert table["predicted"].tolist() == [CLASSES[i] for i in expected.argmax(axis=1)]
    assert (table["predicted"] == frame["part"]).mean() > 0.6  # the model learned something


def test_predict_runs_the_predict_phase_callbacks(runs, cli, tmp_path):
    pd.read_csv(runs["csv"]).head(5).to_csv(tmp_path / "five.csv", index=False)
    assert cli("predict", runs["parts"], tmp_path / "five.csv").exit_code == 0
    events = [json.loads(line)["event"] for line in (runs["parts"] / "metrics.jsonl").open()]
    assert events.count("epoch") == 3 and "predict" in events


def test_npz_input_gets_the_training_preprocessing(runs, cli, tmp_path):
    from sklearn.datasets import load_digits

    raw = load_digits().data[:40]  # pixel values 0-16, as the digits source reads them
    np.savez(tmp_path / "digits.npz", pixels=raw)
    result = cli("predict", runs["digits"], tmp_path / "digits.npz")
    assert result.exit_code == 0, result.stderr
    table = pd.read_csv(pd.io.common.StringIO(result.stdout))
    assert list(table.columns) == [f"prob_{i}" for i in range(10)] + ["predicted"]
    expected = model_outputs(runs["digits"], raw / 16.0)  # the source's scaling, applied once
    np.testing.assert_allclose(table.iloc[:, :10].to_numpy(), expected, atol=1e-5)


@pytest.mark.parametrize(
    ("write", "message"),
    [
        (
            lambda d: d.drop(columns="depth").rename(columns={"width": "widht"}),
            "missing feature columns `width`, `depth`. Did you mean `widht`?",
        ),
        (lambda d: d.assign(height="tall"), "not numeric: height"),
        (lambda d: d.assign(weight=np.nan), "missing or non-finite values in rows 1, 2, 3"),
    ],
    ids=["wrong columns", "text feature", "missing values"],
)
def test_bad_csv_input_is_a_clear_user_error(runs, cli, tmp_path, write, message):
    write(pd.read_csv(runs["csv"]).head(5)).to_csv(tmp_path / "bad.csv", index=False)
    result = cli("predict", runs["parts"], tmp_path / "bad.csv")
    assert result.exit_code == 2 and message in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_npz_and_output_are_user_errors(runs, cli, tmp_path):
    np.savez(tmp_path / "wrong.npz", x=np.zeros((4, 7)))
    result = cli("predict", runs["digits"], tmp_path / "wrong.npz")
    assert result.exit_code == 2
    assert "inputs have shape (4, 7), but the model takes (4, 64)" in result.stderr
    np.savez(tmp_path / "two.npz", a=np.zeros((4, 64)), b=np.zeros(4))
    result = cli("predict", runs["digits"], tmp_path / "two.npz")
    assert result.exit_code == 2 and "no array `x`" in result.stderr
    existing = tmp_path / "taken.csv"
    existing.write_text("mine\n")
    result = cli("predict", runs["parts"], runs["csv"], "--output", existing)
    assert result.exit_code == 2 and "already exists" in result.stderr
    assert existing.read_text() == "mine\n"
    result = cli("predict", runs["parts"], tmp_path / "data.parquet")
    assert result.exit_code == 2


def test_a_bad_input_fails_before_tensorflow_is_imported(runs, tmp_path):
    pd.read_csv(runs["csv"]).drop(columns="width").to_csv(tmp_path / "bad.csv", index=False)
    commands = [["predict", str(runs["parts"]), str(tmp_path / "bad.csv")]]
    report, result = probe_commands(commands)
    assert list(report["codes"].values()) == [2] and report["heavy"] == []
    assert "missing feature column `width`" in result.stderr


def test_a_regression_run_predicts_one_column_per_target(runs, cli, tmp_path):
    x = np.random.default_rng(1).normal(size=(6, 5))
    pd.DataFrame(x, columns=[f"f{i}" for i in range(5)]).to_csv(tmp_path / "x.csv", index=False)
    result = cli("predict", runs["regression"], tmp_path / "x.csv")
    assert result.exit_code == 0, result.stderr
    table = pd.read_csv(pd.io.common.StringIO(result.stdout))
    assert list(table.columns) == ["prediction_0", "prediction_1"]
    np.testing.assert_allclose(table.to_numpy(), model_outputs(runs["regression"], x), atol=1e-5)
