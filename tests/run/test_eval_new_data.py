"""`cbrun eval RUN --data PATH`: new labelled data read like the training data, scored into a
new eval file (the old ones untouched); a layout that does not fit is exit 2 naming it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import train_tiny
from tests.data.test_image_directory import CLASSES, write_images
from tests.run.test_changed_data import SYNTHETIC_KEYS, write_table


def keras_accuracy(run: Path, x: np.ndarray, y: np.ndarray) -> float:
    import keras

    model = keras.saving.load_model(run / "model.keras")
    return float(model.evaluate(x, y, verbose=0, return_dict=True)["accuracy"])


def evaluated(cli, run: Path, data: Path) -> dict:
    """Run `eval --data`, check it added exactly one file and left the others' bytes as they
    were; the new file's contents."""
    before = {p: p.read_bytes() for p in run.glob("eval*.json")}
    result = cli("eval", run, "--data", data)
    assert result.exit_code == 0, result.stderr
    written = Path(result.stdout.strip())
    assert written.name.startswith(f"eval-data-{data.stem}-") and written not in before
    assert {p: p.read_bytes() for p in before} == before
    assert sorted(run.glob("eval*.json")) == sorted([*before, written])
    return json.loads(written.read_text())


def refused(cli, run: Path, data: Path) -> str:
    before = sorted(run.glob("eval*.json"))
    result = cli("eval", run, "--data", data)
    assert result.exit_code == 2 and "Traceback" not in result.stderr, result.stderr
    assert sorted(run.glob("eval*.json")) == before
    return result.stderr


@pytest.fixture(scope="module")
def csv_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("new-csv")
    write_table(folder / "table.csv")
    data = {"type": "csv", "path": "table.csv", "target": "label", **SYNTHETIC_KEYS}
    return train_tiny(folder, {"data": data, "training": {"epochs": 10}}).run_dir


def test_a_held_out_csv_scores_as_keras_does(csv_run, cli, tmp_path):
    rng = np.random.default_rng(7)
    x = rng.normal(size=(60, 3)).round(3)
    table = pd.DataFrame(x, columns=["a", "b", "c"])
    table.insert(0, "label", np.where(x[:, 0] > 0, "up", "down"))  # another column order
    table.to_csv(tmp_path / "held_out.csv", index=False)

    written = evaluated(cli, csv_run, tmp_path / "held_out.csv")
    assert written["split"] == "data" and written["samples"] == 60
    assert written["data"]["path"] == str(tmp_path / "held_out.csv")
    fingerprint = written["data"]["fingerprint"]["data.path"]
    assert fingerprint["size"] == (tmp_path / "held_out.csv").stat().st_size
    y = (table["label"] == "up").to_numpy().astype("int32")  # classes sorted: down, up
    expected = keras_accuracy(csv_run, table[["a", "b", "c"]].to_numpy("float32"), y)
    assert written["metrics"]["accuracy"] == pytest.approx(expected, abs=1e-6)
    assert written["accuracy"] == pytest.approx(expected, abs=1e-6)
    assert written["accuracy"] >= 0.8  # label = sign of `a`: easy

    only_up = table[table["label"] == "up"]  # one class: still the model's class `up`
    only_up.to_csv(tmp_path / "only_up.csv", index=False)
    one_class = evaluated(cli, csv_run, tmp_path / "only_up.csv")
    expected = keras_accuracy(
        csv_run, only_up[["a", "b", "c"]].to_numpy("float32"), np.ones(len(only_up), "int32")
    )
    assert one_class["metrics"]["accuracy"] == pytest.approx(expected, abs=1e-6)
    assert one_class["confusion_matrix"]["labels"] == ["down", "up"]

    shown = cli("show", csv_run).stdout
    assert "held_out.csv" in shown and "only_up.csv" in shown and "eval-data-held_out" in shown


def test_a_csv_that_does_not_fit_is_refused_by_name(csv_run, cli, tmp_path):
    write_table(tmp_path / "table.csv", rows=30)
    pd.read_csv(tmp_path / "table.csv").drop(columns="b").to_csv(tmp_path / "no_b.csv")
    stderr = refused(cli, csv_run, tmp_path / "no_b.csv")
    assert f"{tmp_path / 'no_b.csv'} has no column `b`" in stderr

    other = pd.read_csv(tmp_path / "table.csv")
    other.loc[0, "label"] = "sideways"
    other.to_csv(tmp_path / "sideways.csv", index=False)
    stderr = refused(cli, csv_run, tmp_path / "sideways.csv")
    assert "sideways.csv" in stderr and "sideways" in stderr.split("sideways.csv", 1)[1]

    assert "no such file or folder" in refused(cli, csv_run, tmp_path / "absent.csv")
    both = cli("eval", csv_run, "--data", tmp_path / "table.csv", "--split", "test")
    assert both.exit_code == 2 and "not both" in both.stderr


def test_npz_new_data_and_a_wrong_feature_count(tmp_path_factory, cli):
    folder = tmp_path_factory.mktemp("new-npz")
    rng = np.random.default_rng(3)
    x = rng.normal(size=(150, 4)).astype("float32")
    np.savez(folder / "train.npz", x=x, y=(x[:, 1] > 0).astype("int32"))
    data = {"type": "npz", "path": "train.npz", **SYNTHETIC_KEYS}
    run = train_tiny(folder, {"data": data}).run_dir

    new = rng.normal(size=(40, 4)).astype("float32")
    labels = (new[:, 1] > 0).astype("int32")
    np.savez(folder / "new.npz", x=new, y=labels)
    written = evaluated(cli, run, folder / "new.npz")
    assert written["samples"] == 40
    assert written["metrics"]["accuracy"] == pytest.approx(
        keras_accuracy(run, new, labels), abs=1e-6
    )

    np.savez(folder / "wide.npz", x=np.zeros((10, 5), "float32"), y=np.zeros(10, "int32"))
    stderr = refused(cli, run, folder / "wide.npz")
    assert f"{folder / 'wide.npz'}: samples of shape [5]" in stderr and "[4]" in stderr


def test_an_image_folder_with_some_classes_scores_them_as_trained(tmp_path_factory, cli):
    folder = tmp_path_factory.mktemp("new-images")
    write_images(folder / "shapes", per_class=12)
    data = {"type": "image_directory", "path": "shapes", "image_size": [8, 8], **SYNTHETIC_KEYS}
    run = train_tiny(folder, {"data": data, "training": {"epochs": 4}}).run_dir

    new = write_images(folder / "new", per_class=5, seed=1)
    shutil.rmtree(new / "bottom")  # only `left` and `top`: the run's classes 1 and 2
    written = evaluated(cli, run, new)
    assert written["samples"] == 10
    assert written["confusion_matrix"]["labels"] == list(CLASSES)
    assert written["data"]["fingerprint"]["data.path"]["files"] == 10

    from cbrun import registry

    params = registry.datasets.get("image_directory").params.model_validate(
        {"type": "image_directory", "path": str(new), "image_size": [8, 8]}
    )
    files, x = params.prediction_inputs([new])
    y = np.array([CLASSES.index(Path(f).relative_to(new).parts[0]) for f in files])
    assert written["metrics"]["accuracy"] == pytest.approx(keras_accuracy(run, x, y), abs=1e-6)

    (new / "sideways").mkdir()
    (new / "left" / "001.png").rename(new / "sideways" / "001.png")
    stderr = refused(cli, run, new)
    assert str(new) in stderr and "sideways" in stderr


def test_eval_and_predict_never_write_through_a_planted_link(csv_run, cli, tmp_path):
    outside = tmp_path / "outside.json"
    outside.write_text("keep")
    write_table(tmp_path / "table.csv", rows=5)
    pd.read_csv(tmp_path / "table.csv").drop(columns="label").to_csv(tmp_path / "x.csv")
    link = csv_run / "eval-test-model.json"  # the name the next eval would write
    link.symlink_to(outside)
    try:
        for args in (("eval", csv_run), ("predict", csv_run, tmp_path / "x.csv")):
            result = cli(*args)
            assert result.exit_code == 2, result.stderr
            assert f"{link}: a symbolic link in the run directory" in result.stderr
    finally:
        link.unlink()
    assert outside.read_text() == "keep"
