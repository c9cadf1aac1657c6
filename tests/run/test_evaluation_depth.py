"""Evaluation beyond one number: eval.json's per-class scores, confusion matrix, ROC/PR curves and
regression errors equal scikit-learn's on the same predictions, in `train` and in `cbrun eval`.

Each expectation is recomputed here from the saved model's own predictions on the rebuilt split,
so a number in eval.json that does not follow from the model fails.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn import metrics

from cbrun.experiment.config import load_config
from cbrun.run.build import build_dataset, import_keras
from cbrun.run.scores import classification_details, regression_details
from conftest import ROOT, train_tiny

keras = import_keras()

OLD_KEYS = {"split", "checkpoint", "metrics", "samples", "evaluated_at"}


def strict_json(path: Path) -> dict:
    """The JSON in `path`, refusing NaN and Infinity (not JSON, and jq rejects them)."""

    def refuse(constant: str) -> None:
        raise AssertionError(f"{path.name} holds {constant}")

    return json.loads(path.read_text(), parse_constant=refuse)


def predictions(run_dir: Path, split: str = "test") -> tuple[np.ndarray, np.ndarray, object]:
    """The split's targets and the saved final model's raw outputs on it, and the dataset."""
    config, _ = load_config(run_dir / "config.yaml")
    dataset = build_dataset(config)
    x, y = getattr(dataset, split)
    model = keras.saving.load_model(run_dir / "model.keras")
    return y, np.asarray(model.predict(x, verbose=0), dtype="float64"), dataset


@pytest.fixture(scope="module")
def iris(tmp_path_factory) -> Path:
    """Three named species from a CSV (the class names come from the file)."""
    folder = tmp_path_factory.mktemp("iris")
    updates = {
        "data": {
            "type": "csv",
            "path": str(ROOT / "configs" / "data" / "iris.csv"),
            "target": "species",
            "split": {"validation": 0.2, "test": 0.3},
            "samples": None,
            "features": None,
            "classes": None,
        },
        "training": {"epochs": 4, "batch_size": 16},
    }
    return train_tiny(folder, updates).run_dir


@pytest.fixture(scope="module")
def binary(tmp_path_factory) -> Path:
    updates = {"data": {"classes": 2, "samples": 300, "split": {"test": 0.3}}}
    return train_tiny(tmp_path_factory.mktemp("binary"), updates).run_dir


@pytest.fixture(scope="module")
def regression(tmp_path_factory) -> Path:
    updates = {
        "data": {"type": "synthetic_regression", "samples": 200, "classes": None},
        "training": {"epochs": 3},
    }
    return train_tiny(tmp_path_factory.mktemp("regression"), updates).run_dir


def test_the_confusion_matrix_sums_to_the_test_count_and_equals_sklearns(iris):
    evaluation = strict_json(iris / "eval.json")
    y, outputs, dataset = predictions(iris)
    matrix = evaluation["confusion_matrix"]
    assert matrix["labels"] == ["setosa", "versicolor", "virginica"] == dataset.class_names
    counts = np.array(matrix["counts"])
    assert counts.sum() == evaluation["samples"] == len(y) == 45
    expected = metrics.confusion_matrix(y, outputs.argmax(axis=1), labels=[0, 1, 2])
    np.testing.assert_array_equal(counts, expected)
    assert counts.sum(axis=1).tolist() == np.bincount(y, minlength=3).tolist()  # rows: true
    # The diagonal agrees with Keras' own accuracy from model.evaluate.
    assert np.trace(counts) / counts.sum() == pytest.approx(evaluation["metrics"]["accuracy"])


def test_per_class_scores_equal_sklearns_classification_report(iris):
    evaluation = strict_json(iris / "eval.json")
    y, outputs, dataset = predictions(iris)
    report = metrics.classification_report(
        y,
        outputs.argmax(axis=1),
        labels=[0, 1, 2],
        target_names=dataset.class_names,
        output_dict=True,
        zero_division=0,
    )
    rows = {**evaluation["per_class"]}
    rows.update({f"{k} avg": v for k, v in evaluation["averages"].items()})
    assert set(rows) == {"setosa", "versicolor", "virginica", "macro avg", "weighted avg"}
    for name, scores in rows.items():
        assert scores["precision"] == pytest.approx(report[name]["precision"]), name
        assert scores["recall"] == pytest.approx(report[name]["recall"]), name
        assert scores["f1"] == pytest.approx(report[name]["f1-score"]), name
        assert scores["support"] == report[name]["support"], name
    assert evaluation["accuracy"] == pytest.approx(report["accuracy"])


def test_eval_json_keeps_its_keys_and_the_run_record_its_test_metrics(iris):
    evaluation = strict_json(iris / "eval.json")
    record = json.loads((iris / "run.json").read_text())
    assert OLD_KEYS <= set(evaluation)
    assert evaluation["metrics"] == record["test_metrics"]
    assert record["plots"] == ["plots/loss.png", "plots/accuracy.png", "plots/learning_rate.png"]
    assert evaluation["plots"] == ["plots/confusion_matrix.png"]  # three classes: no ROC


def test_two_classes_get_roc_and_pr_curves_equal_to_sklearns(binary):
    evaluation = strict_json(binary / "eval.json")
    y, outputs, _ = predictions(binary)
    score = outputs[:, 1]
    roc, pr = evaluation["roc"], evaluation["pr"]
    assert roc["positive_class"] == pr["positive_class"] == "1"
    assert roc["auc"] == pytest.approx(metrics.roc_auc_score(y, score), abs=1e-6)
    assert pr["average_precision"] == pytest.approx(
        metrics.average_precision_score(y, score), abs=1e-6
    )
    fpr, tpr, _ = metrics.roc_curve(y, score)
    assert roc["fpr"] == pytest.approx(fpr.tolist(), abs=1e-6)
    assert roc["tpr"] == pytest.approx(tpr.tolist(), abs=1e-6)
    assert (roc["fpr"][0], roc["tpr"][0], roc["fpr"][-1], roc["tpr"][-1]) == (0, 0, 1, 1)
    assert roc["thresholds"][0] is None  # sklearn's infinite first threshold
    assert len(pr["precision"]) == len(pr["recall"]) == len(pr["thresholds"])
    assert pr["positive_rate"] == pytest.approx(np.mean(y == 1))
    assert evaluation["plots"] == ["plots/confusion_matrix.png", "plots/roc.png", "plots/pr.png"]


def test_regression_gets_mae_rmse_r2_equal_to_sklearns_and_a_residual_plot(regression):
    evaluation = strict_json(regression / "eval.json")
    y, outputs, _ = predictions(regression)
    predicted = outputs.reshape(y.shape)
    scores = evaluation["regression"]
    assert scores["mae"] == pytest.approx(metrics.mean_absolute_error(y, predicted), rel=1e-5)
    assert scores["rmse"] == pytest.approx(
        np.sqrt(metrics.mean_squared_error(y, predicted)), rel=1e-5
    )
    assert scores["r2"] == pytest.approx(metrics.r2_score(y, predicted), rel=1e-5)
    assert scores["mae"] == pytest.approx(evaluation["metrics"]["mae"], rel=1e-4)  # Keras' own
    assert "confusion_matrix" not in evaluation and "per_class" not in evaluation
    assert evaluation["plots"] == ["plots/residuals.png"]
    image = np.asarray(Image.open(regression / "plots" / "residuals.png").convert("RGB"))
    blue = (np.abs(image.astype(int) - (31, 119, 180)).max(axis=-1) < 40).sum()
    assert blue > 500  # the residual points and histogram bars are drawn


def dark_green(image: np.ndarray) -> np.ndarray:
    """Pixels of the top of matplotlib's `Greens` colour map (the biggest cells)."""
    return np.abs(image[..., :3].astype(int) - (0, 68, 27)).max(axis=-1) < 30


def test_confusion_matrix_png_shows_counts_and_row_normalised_panels(iris):
    image = np.asarray(Image.open(iris / "plots" / "confusion_matrix.png").convert("RGB"))
    height, width, _ = image.shape
    assert width > 1.5 * height
    green = dark_green(image)
    assert green[:, : width // 2].sum() > 300 and green[:, width // 2 :].sum() > 300


def test_cbrun_eval_adds_the_details_for_the_split_it_evaluates(cli, iris):
    result = cli("eval", iris, "--split", "validation")
    assert result.exit_code == 0, result.stderr
    out = Path(result.stdout.strip())
    assert out.name.startswith("eval-validation-model")
    evaluation = strict_json(out)
    y, outputs, _ = predictions(iris, "validation")
    assert OLD_KEYS <= set(evaluation) and evaluation["samples"] == len(y) == 30
    np.testing.assert_array_equal(
        evaluation["confusion_matrix"]["counts"],
        metrics.confusion_matrix(y, outputs.argmax(axis=1), labels=[0, 1, 2]),
    )
    folder = f"plots/{out.stem}"
    assert evaluation["plots"] == [f"{folder}/confusion_matrix.png"]
    assert (iris / folder / "confusion_matrix.png").is_file()
    assert "per class" in result.stderr and "virginica" in result.stderr
    assert "confusion matrix, 30 samples" in result.stderr
    # train's own eval.json and its picture are left alone
    assert strict_json(iris / "eval.json")["split"] == "test"


def test_show_prints_the_per_class_table_and_the_confusion_matrix(cli, iris):
    evaluation = strict_json(iris / "eval.json")
    result = cli("show", iris)
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any("confusion matrix, 45 samples" in line for line in lines)
    for name, row in zip(
        evaluation["confusion_matrix"]["labels"],
        evaluation["confusion_matrix"]["counts"],
        strict=True,
    ):
        matrix_row = next(
            line
            for line in lines
            if line.startswith(f"│ {name} ") and "│" in line[2:] and len(line.split("│")) == 6
        )
        assert [int(cell) for cell in matrix_row.split("│")[2:5]] == row
    scores = evaluation["per_class"]["setosa"]
    per_class_row = next(
        line for line in lines if line.startswith("│ setosa") and len(line.split("│")) == 7
    )
    assert f"{scores['recall']:.4f}" in per_class_row and str(scores["support"]) in per_class_row
    assert any("macro avg" in line for line in lines)


def test_a_binary_split_holding_one_class_skips_the_curves_with_a_reason():
    outputs = np.array([[0.9, 0.1], [0.7, 0.3], [0.2, 0.8]])
    details = classification_details(np.array([0, 0, 0]), outputs, ["no", "yes"])
    assert details["roc"]["skipped"].startswith("needs both classes")
    assert details["pr"] is None
    assert details["confusion_matrix"]["counts"] == [[2, 1], [0, 0]]
    assert details["per_class"]["yes"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}


def test_one_sigmoid_column_is_read_as_the_second_class_probability():
    details = classification_details(
        np.array([0, 1, 1, 0]), np.array([[0.2], [0.9], [0.4], [0.6]]), ["a", "b"]
    )
    assert details["confusion_matrix"]["counts"] == [[1, 1], [1, 1]]
    assert details["roc"]["auc"] == pytest.approx(0.75)


def test_several_regression_targets_are_scored_together_and_each():
    y = np.array([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0]])
    guess = y + np.array([[0.5, -1.0], [-0.5, 1.0], [0.0, 0.0]])
    scores = regression_details(y, guess)["regression"]
    assert scores["per_target"][0]["mae"] == pytest.approx(1 / 3)
    assert scores["per_target"][1]["rmse"] == pytest.approx(np.sqrt(2 / 3))
    assert scores["mae"] == pytest.approx(metrics.mean_absolute_error(y, guess))
    assert scores["r2"] == pytest.approx(metrics.r2_score(y, guess))


def test_long_curves_are_thinned_evenly_keeping_both_ends():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 5000)
    score = np.clip(y * 0.3 + rng.uniform(size=5000), 0, 1)
    details = classification_details(y, np.stack([1 - score, score], axis=1), ["a", "b"])
    full_fpr, _, _ = metrics.roc_curve(y, score)
    full_precision, _, _ = metrics.precision_recall_curve(y, score)
    assert len(full_precision) > 400
    for curve, full in (
        (details["roc"]["fpr"], full_fpr),
        (details["pr"]["precision"], full_precision),
    ):
        assert len(curve) == min(len(full), 400)
        assert curve[0] == pytest.approx(full[0]) and curve[-1] == pytest.approx(full[-1])
    assert details["pr"]["average_precision"] == pytest.approx(
        metrics.average_precision_score(y, score)
    )  # the scores use every point


def test_show_leaves_a_confusion_matrix_of_many_classes_to_the_picture():
    from rich.console import Console

    from cbrun.inspect.show import evaluation_tables

    def printed(classes: int) -> str:
        names = [f"c{i}" for i in range(classes)]
        counts = np.eye(classes, dtype=int).tolist()
        console = Console(width=400, record=True)
        for table in evaluation_tables({"confusion_matrix": {"labels": names, "counts": counts}}):
            console.print(table)
        return console.export_text()

    assert "c19" in printed(20) and "see plots" not in printed(20)
    many = printed(21)
    assert "21 classes: see plots/confusion_matrix.png" in many and "c20" not in many


@pytest.mark.parametrize(
    ("broken", "warning", "kept"),
    [
        (
            "cbrun.inspect.plots.plot_confusion_matrix",
            "evaluation plots not written: RuntimeError: broken",
            OLD_KEYS | {"accuracy", "per_class", "averages", "confusion_matrix"},
        ),
        (
            "cbrun.run.scores.classification_details",
            "evaluation details not computed: RuntimeError: broken",
            OLD_KEYS,
        ),
    ],
)
def test_a_failure_to_score_or_draw_is_a_warning_not_a_failed_run(
    cli, make_config, monkeypatch, broken, warning, kept
):
    def fail(*args, **kwargs):
        raise RuntimeError("broken")

    monkeypatch.setattr(broken, fail)
    result = cli("train", make_config(), "--json", "--quiet")
    assert result.exit_code == 0, result.stderr
    run_dir = Path(json.loads(result.stdout)["path"])
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "completed" and record["warnings"] == [warning]
    evaluation = strict_json(run_dir / "eval.json")
    assert set(evaluation) == kept  # no `plots`
    assert evaluation["metrics"] == record["test_metrics"]
