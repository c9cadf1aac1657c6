"""The image_directory source on images these tests write with Pillow: it trains, evaluates,
predicts, resumes, streams, and every bad folder or file is exit 2 naming it, with no run."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from cbrun import registry
from cbrun.core.errors import CbrunError
from cbrun.data.base import Dataset, Stream, split_size
from tests.conftest import ROOT, run_dirs, run_subprocess

CLASSES = ("bottom", "left", "top")  # where the bright half of the image is
PER_CLASS = 40


def write_images(folder: Path, per_class: int = PER_CLASS, seed: int = 0) -> Path:
    """An easy task: 12x10 noisy RGB images whose bright half is at the bottom, left or top.

    Sizes vary (the source resizes) and a few are JPEG, one in a nested folder.
    """
    rng = np.random.default_rng(seed)
    for label in CLASSES:
        for index in range(per_class):
            height, width = (12, 10) if index % 2 else (14, 12)
            image = rng.uniform(0, 90, size=(height, width, 3))
            if label == "top":
                image[: height // 2] += 150
            elif label == "bottom":
                image[height // 2 :] += 150
            else:
                image[:, : width // 2] += 150
            pixels = Image.fromarray(np.clip(image, 0, 255).astype("uint8"))
            nested = "more/" if index == 0 else ""
            suffix = "jpg" if index % 7 == 0 else "png"
            target = folder / label / f"{nested}{index:03d}.{suffix}"
            target.parent.mkdir(parents=True, exist_ok=True)
            pixels.save(target)
    return folder


def config_text(path: str, runs: Path, **data) -> str:
    config = {
        "experiment": {"name": "images", "seed": 4},
        "output": {"runs_dir": str(runs)},
        "data": {
            "type": "image_directory",
            "path": path,
            "image_size": [8, 8],
            "split": {"validation": 0.2, "test": 0.2},
            **data,
        },
        "model": {"type": "mlp", "units": [32]},
        "compile": {"optimizer": {"name": "adam", "learning_rate": 0.01}},
        "training": {"epochs": 8, "batch_size": 16},
    }
    return yaml.safe_dump(config, sort_keys=False)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One run on a disk-cached image folder, with the callbacks that read data arrays."""
    from cbrun.run.train import train

    root = tmp_path_factory.mktemp("images")
    write_images(root / "shapes")
    config = root / "images.yaml"
    text = yaml.safe_load(config_text("shapes", root / "runs", cache="disk"))
    text["callbacks"] = [
        {"type": "gradient_norm_logger", "batch_size": 8},
        {"type": "prediction_snapshots", "every": 4, "samples": 6},
        {"type": "timing_logger", "batch_every": 0},
    ]
    config.write_text(yaml.safe_dump(text, sort_keys=False))
    result = train(config, quiet=True)
    assert result.exit_code == 0, result.record.get("error")
    return {"root": root, "run": result.run_dir, "record": result.record}


def test_trains_to_high_accuracy_on_the_folder(trained):
    record = trained["record"]
    assert record["status"] == "completed"
    assert record["test_metrics"]["accuracy"] >= 0.9  # three classes; chance is 0.33
    data = json.loads((trained["run"] / "data.json").read_text())
    assert data["class_names"] == list(CLASSES)
    assert data["input_shape"] == [8, 8, 3]
    assert data["samples"] == {"train": 72, "validation": 24, "test": 24}
    assert data["skipped_files"] == 0
    assert data["fingerprint"]["data.path"]["files"] == 3 * PER_CLASS
    assert record["data"]["fingerprint"] == data["fingerprint"]  # also in run.json


def test_streamed_splits_feed_the_callbacks_that_need_arrays(trained):
    run = trained["run"]
    history = json.loads((run / "history.json").read_text())
    assert len(history["grad_norm"]) == 8 and all(v > 0 for v in history["grad_norm"])
    assert (run / "snapshots" / "epoch_008.png").is_file()
    rows = list(csv.DictReader((run / "timing.csv").open()))
    assert {row["samples"] for row in rows if row["phase"] == "fit"} == {"72"}
    assert {row["samples"] for row in rows if row["phase"] == "validation"} == {"24"}


def test_disk_cache_lives_in_the_run_directory(trained):
    cache = trained["run"] / "data_cache"
    assert (cache / "train.index").is_file() and (cache / "validation.index").is_file()
    assert not list(cache.glob("test*"))  # the test split is read once, never cached


def test_eval_rebuilds_the_streamed_test_split(trained, cli):
    result = cli("eval", trained["run"])
    assert result.exit_code == 0, result.stderr
    written = json.loads(Path(result.stdout.strip()).read_text())
    assert written["samples"] == 24
    assert written["metrics"]["accuracy"] == pytest.approx(
        trained["record"]["test_metrics"]["accuracy"]
    )


def test_eval_data_scores_a_folder_of_one_class_in_the_runs_classes(trained, cli, tmp_path):
    write_images(tmp_path / "all", per_class=6, seed=9)
    (tmp_path / "all" / "top").rename(tmp_path / "top-only")
    (tmp_path / "only").mkdir()
    (tmp_path / "top-only").rename(tmp_path / "only" / "top")
    result = cli("eval", trained["run"], "--data", tmp_path / "only")
    assert result.exit_code == 0, result.stderr
    written = json.loads(Path(result.stdout.strip()).read_text())
    assert written["samples"] == 6
    assert written["metrics"]["accuracy"] >= 0.8  # the top class: index 2 of the run's three


def test_predict_takes_image_files_and_folders(trained, cli):
    shapes = trained["root"] / "shapes"
    one = shapes / "top" / "001.png"
    result = cli("predict", trained["run"], one, shapes / "left")
    assert result.exit_code == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == 1 + PER_CLASS
    assert rows[0]["file"] == str(one)
    assert list(rows[0]) == ["file", "prob_bottom", "prob_left", "prob_top", "predicted"]
    assert sum(row["predicted"] == "left" for row in rows[1:]) >= 0.9 * PER_CLASS
    # a folder's images in sorted order, its subfolders after its own files (as Keras lists)
    assert rows[1]["file"].endswith("left/001.png")
    assert rows[-1]["file"].endswith("left/more/000.jpg")


def test_predict_names_a_bad_image(trained, cli, tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    result = cli("predict", trained["run"], bad)
    assert result.exit_code == 2
    assert f"{bad}: cannot read the image" in result.stderr


def test_split_folders_are_the_splits(tmp_path):
    for split, count in (("train", 10), ("validation", 4), ("test", 3)):
        write_images(tmp_path / "data" / split, per_class=count, seed=count)
    params = {"type": "image_directory", "path": str(tmp_path / "data"), "image_size": [6, 6]}
    component = registry.datasets.get("image_directory")
    dataset = component.factory(component.params.model_validate(params), 0)
    assert [split_size(getattr(dataset, s)) for s in ("train", "validation", "test")] == [
        30,
        12,
        9,
    ]
    x, y = dataset.test.load(np.arange(9))
    assert x.shape == (9, 6, 6, 3) and 0 <= x.min() and x.max() <= 1
    assert sorted(np.bincount(y)) == [3, 3, 3]


def test_stream_feature_stats_match_the_arrays():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(700, 5)).astype("float32"), rng.integers(0, 2, 700)

    def batches(size, shuffle, seed, cache_dir, first_epoch):
        import tensorflow as tf

        return tf.data.Dataset.from_tensor_slices((x, y)).batch(size)

    stream = Stream(y, (5,), batches, lambda index: (x[index], y[index]))
    streamed = Dataset(stream, None, None, "classification", num_classes=2).feature_stats()
    in_memory = Dataset((x, y), None, None, "classification", num_classes=2).feature_stats()
    np.testing.assert_allclose(streamed[0], in_memory[0], atol=1e-9)
    np.testing.assert_allclose(streamed[1], in_memory[1], rtol=1e-9)


def test_a_bad_file_is_skipped_and_counted_when_asked(tmp_path, cli):
    write_images(tmp_path / "shapes", per_class=10)
    (tmp_path / "shapes" / "top" / "zz-broken.png").write_bytes(b"\x89PNG\r\n\x1a\n cut")
    config = tmp_path / "c.yaml"
    config.write_text(config_text("shapes", tmp_path / "runs", on_bad_file="skip"))
    result = cli("train", config, "--smoke")
    assert result.exit_code == 0, result.stderr
    assert "skipped 1 unreadable file (see data.json)" in result.stderr
    data = json.loads((Path(result.stdout.strip()) / "data.json").read_text())
    assert data["skipped_files"] == 1
    assert data["skipped"][0].startswith(str(tmp_path / "shapes" / "top" / "zz-broken.png"))
    assert sum(data["samples"].values()) == 30


def _corrupt(root: Path) -> str:
    path = root / "top" / "005.png"
    path.write_bytes(path.read_bytes()[:40])  # cut short: the header survives, the data not
    return f"data.path: cannot read the image {path}"


def _empty_class(root: Path) -> str:
    (root / "empty").mkdir()
    return f"data.path: the class folder {root / 'empty'} has no images"


def _one_class(root: Path) -> str:
    for name in ("left", "bottom"):
        shutil.rmtree(root / name)
    return f"data.path: {root} has only one class folder (`top`)"


def _loose_images(root: Path) -> str:
    for name in CLASSES:
        os.rename(root / name / "001.png", root / f"{name}.png")
        shutil.rmtree(root / name)
    return f"data.path: {root} has no class folders; the images lie directly in it"


def _not_an_image(root: Path) -> str:
    path = root / "left" / "notes.png"
    path.write_text("these are notes, not pixels")
    return f"data.path: cannot read the image {path}: not an image file Pillow recognises"


@pytest.mark.parametrize(
    "damage", [_corrupt, _empty_class, _one_class, _loose_images, _not_an_image]
)
def test_bad_folders_and_files_are_exit_2_naming_them_with_no_run(tmp_path, cli, damage):
    root = write_images(tmp_path / "shapes", per_class=8)
    expected = damage(root)
    config = tmp_path / "c.yaml"
    config.write_text(config_text("shapes", tmp_path / "runs"))
    result = cli("train", config)
    assert result.exit_code == 2
    message = " ".join(result.stderr.split())
    assert f"{config}:8: data.path: " in message  # the config line of `path:`
    assert " ".join(expected.split()) in message
    assert "Traceback" not in result.stderr
    assert run_dirs(tmp_path / "runs") == []


def test_a_missing_folder_is_exit_2_at_validate(tmp_path, cli):
    config = tmp_path / "c.yaml"
    config.write_text(config_text("no-such-folder", tmp_path / "runs"))
    result = cli("validate", config)
    assert result.exit_code == 2
    assert f"data.path: folder not found: {tmp_path / 'no-such-folder'}" in result.stderr
    assert cli("train", config).exit_code == 2 and run_dirs(tmp_path / "runs") == []


def _weights(run: Path) -> list[np.ndarray]:
    import keras

    return keras.saving.load_model(run / "model.keras").get_weights()


@pytest.mark.parametrize("cache", ["none", "disk"])
def test_resume_after_an_interrupted_run_finishes_it(tmp_path, cli, cache):
    """Stopped by SIGTERM after epoch 2 of 4 and resumed; without a cache each epoch's file
    order depends only on the seed and the epoch, so the result equals an unbroken run."""
    write_images(tmp_path / "shapes", per_class=12)
    (tmp_path / "stop_hook.py").write_text(
        "import os, signal\n\n\ndef stop(epoch, logs):\n"
        "    if epoch == 1:\n        os.kill(os.getpid(), signal.SIGTERM)\n"
    )
    config = yaml.safe_load(config_text("shapes", tmp_path / "runs", cache=cache))
    config["training"]["epochs"] = 4
    unbroken = tmp_path / "unbroken.yaml"
    unbroken.write_text(yaml.safe_dump(config, sort_keys=False))
    config["callbacks"] = [{"type": "lambda", "on_epoch_end": "stop_hook:stop"}]
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    try:
        first = cli("train", path, "--quiet")
        assert first.exit_code == 143, first.stderr
        run = Path(first.stdout.strip())
        assert json.loads((run / "run.json").read_text())["epochs_completed"] == 2
        (tmp_path / "stop_hook.py").write_text("def stop(epoch, logs):\n    pass\n")
        sys.modules.pop("stop_hook", None)
        resumed = cli("train", "--resume", run, "--allow-imports", "--quiet")
    finally:
        sys.modules.pop("stop_hook", None)
    assert resumed.exit_code == 0, resumed.stderr
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "completed" and record["epochs_completed"] == 4
    assert len(json.loads((run / "history.json").read_text())["loss"]) == 4
    if cache == "none":
        whole = cli("train", unbroken, "--quiet")
        assert whole.exit_code == 0, whole.stderr
        for mine, theirs in zip(_weights(run), _weights(Path(whole.stdout.strip())), strict=True):
            np.testing.assert_allclose(mine, theirs, atol=1e-5)


def test_the_bundled_digits_folder_is_what_the_script_writes(tmp_path):
    sys.path.insert(0, str(ROOT / "configs" / "data"))
    try:
        from write_digits_images import DEFAULT, write_digits_images
    finally:
        sys.path.pop(0)
    assert write_digits_images(tmp_path) == 1797
    fresh = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*.png"))
    committed = sorted(p.relative_to(DEFAULT) for p in DEFAULT.rglob("*.png"))
    assert fresh == committed
    for name in fresh:
        same = np.asarray(Image.open(tmp_path / name)) == np.asarray(Image.open(DEFAULT / name))
        assert same.all(), name


def test_unknown_class_folder_in_a_split_folder_is_named(tmp_path):
    write_images(tmp_path / "data" / "train", per_class=3)
    write_images(tmp_path / "data" / "validation", per_class=2)
    (tmp_path / "data" / "validation" / "right").mkdir()
    component = registry.datasets.get("image_directory")
    params = component.params.model_validate(
        {"type": "image_directory", "path": str(tmp_path / "data")}
    )
    with pytest.raises(CbrunError, match="class folders not in the training folder: right"):
        component.factory(params, 0)


@pytest.mark.parametrize(
    ("crop", "color_mode", "channels", "center_only"),
    [(True, "rgb", 3, True), (False, "rgb", 3, False), (True, "grayscale", 1, True)],
)
def test_crop_to_aspect_ratio_keeps_the_centre_and_color_mode_sets_channels(
    tmp_path, crop, color_mode, channels, center_only
):
    """A 20x10 image: red top quarter, green middle half, blue bottom quarter, as RGBA."""
    pixels = np.zeros((20, 10, 4), dtype="uint8")
    pixels[..., 3] = 255
    pixels[:5, :, 0] = pixels[5:15, :, 1] = pixels[15:, :, 2] = 255
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        Image.fromarray(pixels).save(tmp_path / name / "x.png")
    component = registry.datasets.get("image_directory")
    params = component.params.model_validate(
        {
            "type": "image_directory",
            "path": str(tmp_path),
            "image_size": [4, 4],
            "crop_to_aspect_ratio": crop,
            "color_mode": color_mode,
            "interpolation": "nearest",
            "split": {"validation": 0, "test": 0},
        }
    )
    dataset = component.factory(params, 0)
    x, _ = dataset.train.load(np.array([0]))
    assert x.shape == (1, 4, 4, channels) and dataset.input_shape == (4, 4, channels)
    if color_mode == "rgb":
        green_only = bool((x[0, ..., 1] == 1).all() and (x[0, ..., [0, 2]] == 0).all())
        assert green_only == center_only
    else:  # the centre is pure green: one gray level everywhere
        assert np.ptp(x) == 0 and 0 < x.max() < 1


def test_limit_takes_a_seeded_stratified_subset_of_the_files(tmp_path):
    write_images(tmp_path / "shapes", per_class=10)
    component = registry.datasets.get("image_directory")
    params = {"type": "image_directory", "path": str(tmp_path / "shapes"), "limit": 15}
    params["split"] = {"validation": 0.2, "test": 0.2}
    first = component.factory(component.params.model_validate(params), 3)
    again = component.factory(component.params.model_validate(params), 3)
    sizes = [split_size(getattr(first, s)) for s in ("train", "validation", "test")]
    assert sizes == [9, 3, 3]
    for name in ("train", "validation", "test"):  # the same seed, the same files
        np.testing.assert_array_equal(getattr(first, name).labels, getattr(again, name).labels)


def test_training_pipeline_options_apply_to_the_stream(tmp_path):
    from cbrun.compute.speed import PipelineSection, fit_inputs

    write_images(tmp_path / "shapes", per_class=4)
    component = registry.datasets.get("image_directory")
    params = {"type": "image_directory", "path": str(tmp_path / "shapes"), "image_size": [4, 4]}
    dataset = component.factory(component.params.model_validate(params), 0)

    class Training:
        batch_size, shuffle = 4, True
        pipeline = PipelineSection(threads=1, deterministic=False)

    inputs = fit_inputs(dataset, Training, 0)
    options = inputs["x"].options()
    assert options.threading.private_threadpool_size == 1 and options.deterministic is False
    x, y = next(iter(inputs["x"]))
    assert tuple(x.shape) == (4, 4, 4, 3) and inputs["shuffle"] is False


def test_the_bundled_image_config_reaches_the_accuracy_the_readme_states(tmp_path):
    from cbrun.run.train import train

    result = train(ROOT / "configs" / "digits_images.yaml", runs_dir=tmp_path, quiet=True)
    assert result.exit_code == 0, result.record.get("error")
    assert result.record["test_metrics"]["accuracy"] >= 0.95  # 0.9889 on our machine


def test_a_stream_trains_under_the_mirrored_strategy(tmp_path):
    """In a fresh process: the two virtual CPU devices must exist before TensorFlow starts."""
    write_images(tmp_path / "shapes", per_class=10)
    config = yaml.safe_load(config_text("shapes", tmp_path / "runs"))
    config["distribution"] = {"strategy": "mirrored", "cpu_devices": 2}
    config["training"]["epochs"] = 2
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    result = run_subprocess("train", path, "--quiet")
    assert result.returncode == 0, result.stderr
    record = json.loads((Path(result.stdout.strip()) / "run.json").read_text())
    assert record["status"] == "completed" and record["distribution"]["replicas"] == 2
    assert record["test_metrics"]["accuracy"] > 0
