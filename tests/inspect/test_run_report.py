"""Every run gets learning-curve PNGs and a self-contained report.html that a browser renders."""

from __future__ import annotations

import base64
import html as html_module
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from conftest import TINY, find_chromium, ink, merge, screenshot, train_tiny

# matplotlib's first two line colours: the train (C0) and validation (C1) curves.
TRAIN_BLUE, VALIDATION_ORANGE = (31, 119, 180), (255, 127, 14)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A real 4-epoch run with a step-decay learning rate and an early-stopping monitor."""
    from cbrun.run.train import train

    base = tmp_path_factory.mktemp("report")
    config = merge(TINY, {"training": {"epochs": 4}, "output": {"runs_dir": str(base / "runs")}})
    config["callbacks"] = [
        {"type": "early_stopping", "monitor": "val_loss", "patience": 10},
        {
            "type": "learning_rate_scheduler",
            "schedule": {
                "type": "step_decay",
                "initial_learning_rate": 0.01,
                "factor": 0.5,
                "step_size": 1,
            },
        },
    ]
    (base / "cfg.yaml").write_text(yaml.safe_dump(config))
    result = train(base / "cfg.yaml", quiet=True)
    assert result.status == "completed"
    return result.run_dir


def colour_pixels(image: np.ndarray, colour: tuple[int, int, int], tolerance: int = 40) -> int:
    return int((np.abs(image[..., :3].astype(int) - colour).max(axis=-1) < tolerance).sum())


def test_each_metric_gets_a_png_with_train_and_validation_curves(run):
    record = json.loads((run / "run.json").read_text())
    assert record["plots"] == ["plots/loss.png", "plots/accuracy.png", "plots/learning_rate.png"]
    assert record["report"] == "report.html" and "warnings" not in record
    for name in record["plots"]:
        image = np.asarray(Image.open(run / name).convert("RGB"))
        assert image.shape == (400, 640, 3)
        assert (image.min(axis=-1) < 250).mean() > 0.03, f"{name} is blank"
        assert colour_pixels(image, TRAIN_BLUE) > 200, f"{name} has no train curve"
        validation = colour_pixels(image, VALIDATION_ORANGE)
        assert (validation > 200) == (name != "plots/learning_rate.png"), name


def test_report_is_self_contained(run):
    html = (run / "report.html").read_text()
    record = json.loads((run / "run.json").read_text())
    sources = re.findall(r'src="([^"]*)"', html)
    evaluation = json.loads((run / "eval.json").read_text())
    assert evaluation["plots"] == ["plots/confusion_matrix.png"]  # three classes: no ROC/PR
    assert len(sources) == 3 + 1 and all(s.startswith("data:image/png;base64,") for s in sources)
    assert not re.search(r"(href|src)=\"?(https?:)?//", html)  # nothing fetched from a network
    assert "@import" not in html and "url(" not in html
    assert record["stop_reason"] in html and "step_decay" in html  # status and config
    assert f"{record['test_metrics']['accuracy']:.4f}" in html
    summary = (run / "model_summary.txt").read_text()
    assert "<h2>Model</h2>" in html and "Total params" in summary
    assert html_module.escape(summary) in html


def test_report_shows_its_plots_in_a_headless_browser(run, tmp_path):
    chromium = find_chromium()
    page = screenshot(chromium, run / "report.html", tmp_path / "report.png")
    # The same report with its images removed: whatever colour remains is not from the plots.
    html = (run / "report.html").read_text()
    bare = tmp_path / "bare.html"
    bare.write_text(re.sub(r'src="data:image/png;base64,[^"]*"', 'src=""', html))
    without = screenshot(chromium, bare, tmp_path / "bare.png")
    assert page.shape == (2000, 1200, 3)
    for colour in (TRAIN_BLUE, VALIDATION_ORANGE):
        assert colour_pixels(page, colour) > 300
        assert colour_pixels(without, colour) == 0
    blue = np.abs(page.astype(int) - TRAIN_BLUE).max(axis=-1) < 40
    columns = np.flatnonzero(blue.any(axis=0))
    assert columns.min() < 600 < columns.max()  # two plots side by side, both drawn


@pytest.fixture(scope="module")
def binary_run(tmp_path_factory) -> Path:
    """Two classes, so that the report holds a confusion matrix, a ROC and a PR curve."""
    return train_tiny(
        tmp_path_factory.mktemp("binary"), {"data": {"classes": 2, "split": {"test": 0.3}}}
    ).run_dir


def test_report_shows_the_evaluation_tables(binary_run):
    html = (binary_run / "report.html").read_text()
    evaluation = json.loads((binary_run / "eval.json").read_text())
    assert "<h2>Evaluation on the test split</h2>" in html
    (true_0, false_1), (false_0, true_1) = evaluation["confusion_matrix"]["counts"]
    assert (
        f'<tr><td>0</td><td class="num">{true_0}</td><td class="num">{false_1}</td></tr>'
        f'<tr><td>1</td><td class="num">{false_0}</td><td class="num">{true_1}</td></tr>'
    ) in html
    recall = evaluation["per_class"]["1"]["recall"]
    assert f'<td>1</td><td class="num">{evaluation["per_class"]["1"]["precision"]:.4f}' in html
    assert f'<td class="num">{recall:.4f}</td>' in html
    assert f"{evaluation['roc']['auc']:.4f}" in html


def test_report_shows_each_evaluation_picture_in_a_headless_browser(binary_run, tmp_path):
    """Each picture, removed alone from the page, takes away what the browser drew for it."""
    chromium = find_chromium()
    evaluation = json.loads((binary_run / "eval.json").read_text())
    assert evaluation["plots"] == ["plots/confusion_matrix.png", "plots/roc.png", "plots/pr.png"]
    html = (binary_run / "report.html").read_text()
    full = screenshot(chromium, binary_run / "report.html", tmp_path / "full.png", 4000)
    dark_green = (0, 68, 27)  # the biggest cells of the `Greens` confusion matrix
    assert colour_pixels(full, dark_green, 30) > 500
    for name in evaluation["plots"]:
        data = base64.b64encode((binary_run / name).read_bytes()).decode("ascii")
        assert html.count(data) == 1, name
        page = tmp_path / f"without-{Path(name).stem}.html"
        page.write_text(html.replace(data, ""))
        without = screenshot(chromium, page, tmp_path / f"without-{Path(name).stem}.png", 4000)
        lost = ink(full) - ink(without)  # counted over the page, wherever the layout moved
        assert lost > 3000, f"{name}: only {lost} drawn pixels fewer without it"
        if name.endswith("confusion_matrix.png"):
            assert colour_pixels(without, dark_green, 30) == 0
        else:
            # the curves are drawn in matplotlib's first colour, like the train curves
            assert colour_pixels(without, TRAIN_BLUE) < colour_pixels(full, TRAIN_BLUE) - 300


def test_a_plotting_failure_is_a_recorded_warning_not_a_failed_run(cli, make_config, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("no fonts today")

    monkeypatch.setattr("cbrun.inspect.report.plot_run", broken)
    result = cli("train", make_config(), "--json")
    assert result.exit_code == 0, result.stderr
    assert "warning: plots/report not written: RuntimeError: no fonts today" in result.stderr
    record = json.loads((Path(json.loads(result.stdout)["path"]) / "run.json").read_text())
    assert record["status"] == "completed"
    assert record["warnings"] == ["plots/report not written: RuntimeError: no fonts today"]


def test_a_failed_run_still_gets_a_report_saying_why(cli, make_config, tmp_path):
    (tmp_path / "hooks.py").write_text(
        "def boom(epoch, logs):\n    raise RuntimeError('the disk is full')\n"
    )
    config = make_config({"callbacks": [{"type": "lambda", "on_epoch_end": "hooks:boom"}]})
    result = cli("train", config, "--json", "--quiet")
    assert result.exit_code == 1
    summary = json.loads(result.stdout)
    assert summary["status"] == "failed" and summary["exit_code"] == 1
    record = json.loads((Path(summary["path"]) / "run.json").read_text())
    assert record["report"] == "report.html" and record["plots"] == []
    html = (Path(summary["path"]) / "report.html").read_text()
    assert '<span class="status failed">failed</span>' in html
    assert "RuntimeError: the disk is full" in html
    assert html.count("the disk is full") == 1  # the error row, not again as `stopped`


def test_report_renders_messages_data_and_artifacts_for_people(tmp_path):
    from cbrun.inspect.report import render_report

    run_dir = tmp_path / "exp" / "20261201-000000"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "checkpoints" / "best.keras").write_bytes(b"x" * 10)
    (run_dir / "config.yaml").write_text("experiment: {name: exp}\n")
    record = {
        "status": "completed",
        "experiment": "exp",
        "stop_reason": "early_stopping: `val_loss` did not improve for 5 epochs <now>",
        "warnings": ["`a` & `b`"],
        "data": {
            "task": "classification",
            "input_shape": [8, 8, 1],
            "num_classes": 3,
            "class_names": ["cat", "dog", "eel"],
            "samples": {"train": 70, "validation": 15, "test": 15},
        },
    }
    html = render_report(run_dir, record, [])
    assert "early_stopping: <code>val_loss</code> did not improve for 5 epochs &lt;now&gt;" in html
    assert "warning: <code>a</code> &amp; <code>b</code>" in html
    body = html.split("<h2>Config</h2>")[0]
    assert "`" not in body  # every message rendered
    assert "<td>input shape</td><td>8 × 8 × 1</td>" in html
    assert "<td>class names</td><td>cat, dog, eel</td>" in html
    assert "<td>samples</td><td>train 70, validation 15, test 15</td>" in html
    assert '"input_shape"' not in html  # a table, not raw JSON
    assert '<a href="checkpoints/best.keras">checkpoints/best.keras</a>' in html


def test_curves_spanning_two_decades_get_a_log_axis_and_the_learning_rate_steps():
    from cbrun.inspect.plots import curve_figure, panels

    history = {
        "epoch": [1, 2, 3, 4],
        "loss": [10.0, 1.0, 0.1, 0.05],
        "accuracy": [0.5, 0.7, 0.8, 0.9],
        "learning_rate": [0.01, 0.01, 0.005, 0.005],
    }
    curves = panels(history)
    loss = curve_figure("loss", curves["loss"], {}, "exp/20261201-000000").axes[0]
    assert loss.get_yscale() == "log" and loss.get_title() == "exp/20261201-000000: loss"
    assert curve_figure("accuracy", curves["accuracy"], {}).axes[0].get_yscale() == "linear"
    rate = curve_figure("learning_rate", curves["learning_rate"], {}).axes[0]
    assert rate.get_ylabel() == "learning rate" and rate.get_yscale() == "linear"
    assert rate.lines[0].get_drawstyle() == "steps-pre"
    from cbrun.inspect.plots import overlay_figure

    overlay = overlay_figure({"a/1 (model.units=[8])": history, "a/2 (model.units=[16])": history})
    by_title = {axes.get_title(): axes for axes in overlay.axes}
    assert by_title["loss"].get_yscale() == "log"
    assert by_title["learning_rate"].get_ylabel() == "learning rate"
    assert {line.get_drawstyle() for line in by_title["learning_rate"].lines} == {"steps-pre"}
    assert [t.get_text() for t in by_title["loss"].get_legend().get_texts()] == [
        "a/1 (model.units=[8]) (train)",
        "a/2 (model.units=[16]) (train)",
    ]


@pytest.fixture(scope="module")
def evaluated(binary_run, tmp_path_factory) -> Path:
    """A copy of binary_run after `cbrun eval` of the test split, then of the validation split."""
    from cbrun.run.evaluate import evaluate_run

    run_dir = tmp_path_factory.mktemp("evaluated") / "binary" / binary_run.name
    shutil.copytree(binary_run, run_dir)
    for split in ("test", "validation"):
        result = evaluate_run(run_dir, split=split)
        assert not result.warnings, result.warnings
    return run_dir


def test_cbrun_eval_rewrites_the_report_with_every_evaluation_and_the_newest_in_full(evaluated):
    html = (evaluated / "report.html").read_text()
    assert "<h2>Evaluation on the test split</h2>" in html  # train's, as before
    assert "<h2>Evaluations by <code>cbrun eval</code> (2)</h2>" in html
    for name in ("eval-test-model.json", "eval-validation-model.json"):
        assert f'<a href="{name}">{name}</a>' in html
    assert (
        "<h2>Newest evaluation: the validation split of model.keras "
        "(eval-validation-model.json)</h2>"
    ) in html
    newest = json.loads((evaluated / "eval-validation-model.json").read_text())
    (true_0, false_1), (false_0, true_1) = newest["confusion_matrix"]["counts"]
    assert (
        f'<tr><td>0</td><td class="num">{true_0}</td><td class="num">{false_1}</td></tr>'
        f'<tr><td>1</td><td class="num">{false_0}</td><td class="num">{true_1}</td></tr>'
    ) in html
    assert newest["plots"] == [
        f"plots/eval-validation-model/{name}.png" for name in ("confusion_matrix", "roc", "pr")
    ]
    for name in newest["plots"]:
        assert base64.b64encode((evaluated / name).read_bytes()).decode("ascii") in html, name
    older = json.loads((evaluated / "eval-test-model.json").read_text())
    for name in older["plots"]:  # the same pictures as train's test evaluation: shown once
        assert html.count(base64.b64encode((evaluated / name).read_bytes()).decode("ascii")) == 1


def test_the_newest_evaluations_pictures_show_in_a_headless_browser(evaluated, tmp_path):
    chromium = find_chromium()
    html = (evaluated / "report.html").read_text()
    newest = json.loads((evaluated / "eval-validation-model.json").read_text())
    full = screenshot(chromium, evaluated / "report.html", tmp_path / "full.png", 6000)
    without = html
    for name in newest["plots"]:
        without = without.replace(base64.b64encode((evaluated / name).read_bytes()).decode(), "")
    page = tmp_path / "without.html"
    page.write_text(without)
    lost = ink(full) - ink(screenshot(chromium, page, tmp_path / "without.png", 6000))
    assert lost > 3 * 3000, f"only {lost} drawn pixels fewer without the newest evaluation's"


def test_an_edited_eval_file_embeds_no_picture_from_outside_the_run(tmp_path):
    from cbrun.inspect.report import render_report

    run_dir = tmp_path / "exp" / "20261201-000000"
    (run_dir / "plots").mkdir(parents=True)
    (run_dir / "config.yaml").write_text("experiment: {name: exp}\n")
    (tmp_path / "secret.png").write_bytes(b"outside the run")
    (run_dir / "plots" / "inside.png").write_bytes(b"inside the run")
    evaluation = {"split": "test", "metrics": {"loss": 1.0}, "per_class": {}, "plots": None}
    for plots in (["../../secret.png", "plots/inside.png", 7], "plots/inside.png", {"a": 1}):
        (run_dir / "eval-test-model.json").write_text(json.dumps({**evaluation, "plots": plots}))
        html = render_report(run_dir, {"status": "completed"}, [])
        assert base64.b64encode(b"outside the run").decode() not in html
        shown = base64.b64encode(b"inside the run").decode() in html
        assert shown == isinstance(plots, list), plots
