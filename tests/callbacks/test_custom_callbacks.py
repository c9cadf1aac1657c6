"""The custom callbacks on real tiny Keras runs: what each one writes, logs and changes.

Three trained runs are shared by the tests (module-scoped): digits images carrying six
callbacks (then evaluated and predicted), an overfitting MLP, and a frozen linear model whose
training loss measures the Gaussian noise the augmentation layer really added.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from cbrun.callbacks.gradient_norm_logger import fixed_batch
from cbrun.experiment.config import load_config
from cbrun.run.build import build_callbacks, build_dataset, import_keras
from cbrun.run.train import train
from conftest import TINY, merge, run_dirs

keras = import_keras()


def _train(directory: Path, updates: dict) -> tuple[Path, dict]:
    """Train TINY merged with `updates` in `directory`; the run directory and its history."""
    config = directory / "experiment.yaml"
    data = merge(TINY, updates)
    data["output"] = {"runs_dir": str(directory / "runs")}
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    result = train(config, quiet=True)
    assert result.exit_code == 0, result.record.get("error")
    return result.run_dir, json.loads((result.run_dir / "history.json").read_text())


# --- digits images: pruning, gradient norms, snapshots, timing, JSONL, flip schedule -----------

EPOCHS, BATCH = 4, 32
PRUNE_TARGET = 0.75


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """A trained, evaluated and predicted digits-image run; its run dir, history and data."""
    logging_phases = ["fit", "evaluate", "predict"]
    run_dir, history = _train(
        tmp_path_factory.mktemp("images"),
        {
            "data": {
                "type": "digits",
                "as_images": True,
                "limit": 200,
                "split": {"validation": 0.2, "test": 0.2},
                "samples": None,
                "features": None,
                "classes": None,
            },
            "training": {"epochs": EPOCHS, "batch_size": BATCH},
            "callbacks": [
                {
                    "type": "augmentation_schedule",
                    "augmentation": "random_flip",
                    "schedule": "step",
                    "end": 0.6,
                    "end_epoch": 4,
                    "steps": 2,
                },
                {
                    "type": "magnitude_pruning",
                    "target_sparsity": PRUNE_TARGET,
                    "end_epoch": 2,
                    "frequency": 1,
                },
                {"type": "gradient_norm_logger", "per_variable": True},
                {"type": "prediction_snapshots", "every": 2, "samples": 9},
                {"type": "timing_logger", "batch_every": 2, "phases": logging_phases},
                {
                    "type": "metrics_jsonl",
                    "batch_every": 2,
                    "phases": logging_phases,
                    "filename": "logs/metrics.jsonl",  # a folder of its own is made
                },
            ],
        },
    )
    from cbrun.run.evaluate import evaluate_run

    evaluation = evaluate_run(run_dir)
    config, _ = load_config(run_dir / "config.yaml")
    dataset = build_dataset(config)
    model = keras.saving.load_model(run_dir / "model.keras")
    predict_callbacks = build_callbacks(config, run_dir, dataset, phase="predict")
    model.predict(dataset.test[0], batch_size=BATCH, callbacks=predict_callbacks, verbose=0)
    return {
        "run_dir": run_dir,
        "history": history,
        "dataset": dataset,
        "config": config,
        "model": model,
        "evaluation": evaluation,
    }


def test_magnitude_pruning_reaches_the_target_on_the_schedule_and_keeps_zeros(images):
    steps = math.ceil(len(images["dataset"].train[0]) / BATCH)
    report = json.loads((images["run_dir"] / "pruning.json").read_text())
    assert report["schedule_steps"] == [0, 2 * steps]
    assert abs(report["overall_sparsity"] - PRUNE_TARGET) < 0.01
    assert set(report["layers"]) == {"dense_0", "output"}
    # After epoch 1 the schedule is half-way: target * (1 - 0.5**3) with power 3.
    sparsity = images["history"]["sparsity"]
    assert sparsity[0] == pytest.approx(PRUNE_TARGET * (1 - 0.5**3), abs=0.01)
    # From the end of the ramp (epoch 2) to the end of training the zeros stay.
    assert all(abs(s - PRUNE_TARGET) < 0.01 for s in sparsity[1:])
    for name in ("dense_0", "output"):
        kernel = keras.ops.convert_to_numpy(images["model"].get_layer(name).kernel)
        assert abs(np.mean(kernel == 0) - PRUNE_TARGET) < 0.01
        assert report["layers"][name]["sparsity"] == pytest.approx(np.mean(kernel == 0))


def test_gradient_norm_logger_logs_the_norms_of_the_fixed_batch(images):
    import tensorflow as tf
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    history = images["history"]
    assert len(history["grad_norm"]) == EPOCHS
    assert all(v > 0 for v in history["grad_norm"] + history["weight_norm"])
    # Recompute the last epoch's norms from the saved final model on the same fixed batch.
    model = images["model"]
    x, y = fixed_batch(images["dataset"].train, BATCH, images["config"].experiment.seed)
    with tf.GradientTape() as tape:
        loss = keras.losses.sparse_categorical_crossentropy(y, model(x, training=False))
        loss = tf.reduce_mean(loss)
    gradients = tape.gradient(loss, model.trainable_variables)
    assert history["grad_norm"][-1] == pytest.approx(
        float(tf.linalg.global_norm(gradients)), rel=1e-4
    )
    weights = [keras.ops.convert_to_numpy(w) for w in model.trainable_variables]
    assert history["weight_norm"][-1] == pytest.approx(
        math.sqrt(sum(float(np.sum(w**2)) for w in weights)), rel=1e-4
    )
    events = EventAccumulator(str(images["run_dir"] / "gradient_norms"))
    events.Reload()
    tags = events.Tags()["tensors"]
    assert {"grad_norm", "weight_norm"} <= set(tags)
    assert any(t.startswith("grad_norm/") and "dense_0" in t for t in tags)
    logged = [(e.step, float(tf.make_ndarray(e.tensor_proto))) for e in events.Tensors("grad_norm")]
    assert [step for step, _ in logged] == list(range(EPOCHS))
    assert [v for _, v in logged] == pytest.approx(history["grad_norm"], rel=1e-5)


def test_prediction_snapshots_write_pngs_and_a_gif_with_one_frame_each(images):
    from PIL import Image

    folder = images["run_dir"] / "snapshots"
    assert sorted(p.name for p in folder.glob("*.png")) == ["epoch_002.png", "epoch_004.png"]
    for png in folder.glob("*.png"):
        with Image.open(png) as image:
            assert image.format == "PNG" and image.size[0] > 100
    with Image.open(folder / "predictions.gif") as gif:
        assert gif.format == "GIF" and gif.n_frames == 2


def test_augmentation_step_schedule_sets_the_flip_probability_each_epoch(images):
    # step schedule, 0 -> 0.6 over epochs 0..4 in 2 steps: progress 0, .25, .5, .75
    assert images["history"]["augmentation_random_flip"] == pytest.approx([0, 0, 0.3, 0.3])
    layer = images["model"].get_layer("scheduled_random_flip")
    assert float(layer.strength) == pytest.approx(0.3)


def test_timing_logger_writes_epoch_batch_and_phase_rows(images):
    with open(images["run_dir"] / "timing.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["phase", "epoch", "batch", "seconds", "samples", "samples_per_second"]
    train_size, validation_size = (
        len(images["dataset"].train[0]),
        len(images["dataset"].validation[0]),
    )
    steps = math.ceil(train_size / BATCH)
    fit_epochs = [r for r in rows if r["phase"] == "fit" and not r["batch"]]
    assert [int(r["epoch"]) for r in fit_epochs] == list(range(1, EPOCHS + 1))
    assert {int(r["samples"]) for r in fit_epochs} == {train_size}
    batches = [int(r["batch"]) for r in rows if r["phase"] == "fit" and r["batch"]]
    assert batches == list(range(1, steps + 1, 2)) * EPOCHS
    validation = [r for r in rows if r["phase"] == "validation" and not r["batch"]]
    assert [int(r["samples"]) for r in validation] == [validation_size] * EPOCHS
    predict = [r for r in rows if r["phase"] == "predict" and not r["batch"]]
    assert [int(r["samples"]) for r in predict] == [len(images["dataset"].test[0])]
    assert [r["phase"] for r in rows].count("evaluate") >= 1
    for row in rows:
        seconds, samples = float(row["seconds"]), int(row["samples"])
        assert seconds > 0 and samples > 0
        assert float(row["samples_per_second"]) == pytest.approx(samples / seconds, rel=1e-3)


def test_metrics_jsonl_lines_parse_and_count(images):
    lines = [json.loads(line) for line in (images["run_dir"] / "logs/metrics.jsonl").open()]
    steps = math.ceil(len(images["dataset"].train[0]) / BATCH)
    epochs = [line for line in lines if line["event"] == "epoch"]
    assert [line["epoch"] for line in epochs] == list(range(1, EPOCHS + 1))
    assert [line["metrics"]["val_loss"] for line in epochs] == pytest.approx(
        images["history"]["val_loss"]
    )
    batches = [line for line in lines if line["event"] == "batch"]
    assert len(batches) == EPOCHS * (steps // 2)
    assert all(line["phase"] == "fit" and "loss" in line["metrics"] for line in batches)
    # One line for train's own test evaluation, one for `cbrun eval`, then the predict line.
    evaluate = [line["metrics"] for line in lines if line["event"] == "evaluate"]
    record = json.loads((images["run_dir"] / "run.json").read_text())
    assert evaluate == [
        pytest.approx(record["test_metrics"]),
        pytest.approx(images["evaluation"].metrics),
    ]
    assert [line["event"] for line in lines[-2:]] == ["evaluate", "predict"]


# --- overfitting_guard: a wide MLP on 60 barely separable samples --------------------------


def test_overfitting_guard_stops_at_the_first_epoch_past_patience(tmp_path_factory):
    ratio, patience, start = 2.0, 2, 2
    run_dir, history = _train(
        tmp_path_factory.mktemp("overfit"),
        {
            "data": {
                "samples": 120,
                "features": 20,
                "separation": 0.5,
                "split": {"validation": 0.5, "test": 0},
            },
            "model": {"units": [64]},
            "training": {"epochs": 30},
            "callbacks": [
                {
                    "type": "overfitting_guard",
                    "ratio": ratio,
                    "patience": patience,
                    "start_from_epoch": start,
                },
                {"type": "prediction_snapshots", "samples": 12},
            ],
        },
    )
    ratios = [v / t for v, t in zip(history["val_loss"], history["loss"], strict=True)]
    assert history["overfitting_ratio"] == pytest.approx(ratios)
    above = [i >= start and r > ratio for i, r in enumerate(ratios)]
    first_stop = (
        i for i in range(patience - 1, len(above)) if all(above[i - patience + 1 : i + 1])
    )
    expected = next(first_stop) + 1
    record = json.loads((run_dir / "run.json").read_text())
    assert record["epochs_completed"] == expected == len(ratios) < 30
    assert record["stop_reason"].startswith("overfitting_guard: val_loss / loss was above 2")
    assert f"stopped after epoch {expected}" in record["stop_reason"]
    from PIL import Image

    with Image.open(run_dir / "snapshots" / "predictions.gif") as gif:
        assert gif.n_frames == expected  # tabular class-probability plots, one per epoch


# --- augmentation_schedule: the noise the training step really used ------------------------

FEATURES = 4
FROZEN_MODEL = f"""
import keras


def build(input_shape):
    inputs = keras.Input(shape=input_shape)
    dense = keras.layers.Dense(
        1, use_bias=False, trainable=False,
        kernel_initializer=keras.initializers.Constant({FEATURES**-0.5}),
    )
    return keras.Model(inputs, dense(inputs))
"""


@pytest.mark.filterwarnings("ignore:The model does not have any trainable weights")
def test_gaussian_noise_follows_the_linear_schedule_in_training_only(tmp_path_factory):
    """y = w.x with a frozen w of norm 1, so the training MSE is the added noise's variance."""
    directory = tmp_path_factory.mktemp("noise")
    x = np.random.default_rng(0).normal(size=(300, FEATURES)).astype("float32")
    np.savez(directory / "data.npz", x=x, y=x.sum(axis=1) * FEATURES**-0.5)
    (directory / "frozen_linear.py").write_text(FROZEN_MODEL)
    epochs, end = 5, 1.0
    run_dir, history = _train(
        directory,
        {
            "data": {
                "type": "npz",
                "path": "data.npz",
                "task": "regression",
                "split": {"validation": 0.2, "test": 0},
                "samples": None,
                "features": None,
                "classes": None,
            },
            "model": {"type": "import", "function": "frozen_linear:build", "units": None},
            "training": {"epochs": epochs},
            "callbacks": [
                {
                    "type": "augmentation_schedule",
                    "augmentation": "gaussian_noise",
                    "end": end,
                    "end_epoch": 4,
                },
                {"type": "prediction_snapshots", "every": 2},
            ],
        },
    )
    strengths = [end * min(epoch / 4, 1) for epoch in range(epochs)]
    assert history["augmentation_gaussian_noise"] == pytest.approx(strengths)
    for loss, strength in zip(history["loss"], strengths, strict=True):
        assert loss == pytest.approx(strength**2, rel=0.25, abs=1e-9)
    assert max(history["val_loss"]) < 1e-9  # validation sees clean inputs
    from PIL import Image

    with Image.open(run_dir / "snapshots" / "predictions.gif") as gif:
        assert gif.n_frames == 3  # predicted-vs-true scatter plots after epochs 2, 4 and 5 (last)


def test_random_flip_layer_flips_in_training_and_passes_through_in_inference():
    from cbrun.models.layers import ScheduledAugmentation

    images = np.arange(2 * 3 * 4, dtype="float32").reshape(2, 3, 4, 1)
    layer = ScheduledAugmentation("random_flip", seed=0)
    layer.strength.assign(1.0)
    flipped = keras.ops.convert_to_numpy(layer(images, training=True))
    np.testing.assert_array_equal(flipped, images[:, :, ::-1])
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(images)), images)
    layer.strength.assign(0.0)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(images, training=True)), images)


def test_random_rotation_layer_turns_each_image_about_its_centre_in_training_only():
    from cbrun.models.layers import ScheduledAugmentation

    images = np.zeros((64, 9, 9, 1), dtype="float32")
    images[:, 4, 8, 0] = 1.0  # one bright pixel, 4 pixels right of the centre
    layer = ScheduledAugmentation("random_rotation", seed=0)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(layer(images, training=True)), images, atol=1e-6
    )  # strength 0: no turn
    layer.strength.assign(0.5)  # angles uniform in ±180°
    turned = keras.ops.convert_to_numpy(layer(images, training=True))[..., 0]
    rows, columns = np.mgrid[0:9, 0:9]
    mass = turned.sum(axis=(1, 2))
    dy = (turned * rows).sum(axis=(1, 2)) / mass - 4
    dx = (turned * columns).sum(axis=(1, 2)) / mass - 4
    np.testing.assert_allclose(np.hypot(dx, dy), 4, atol=0.3)  # still 4 pixels from the centre
    angles = np.degrees(np.arctan2(dy, dx))
    assert angles.min() < -90 and angles.max() > 90  # spread over the whole circle
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(images)), images)


@pytest.mark.parametrize(
    ("outputs", "expected"),
    [
        ([[0.2, 0.3, 0.5]], [[0.2, 0.3, 0.5]]),  # softmax: as it is
        ([[0.0, 0.0, math.log(2)]], [[0.25, 0.25, 0.5]]),  # logits: through a softmax
        ([[0.2], [0.9]], [[0.8, 0.2], [0.1, 0.9]]),  # one sigmoid column: two classes
        ([[0.0], [math.log(3)]], [[0.5, 0.5], [0.25, 0.75]]),  # one logit column
    ],
)
def test_snapshot_class_probabilities_from_each_kind_of_output(outputs, expected):
    from cbrun.callbacks.visual import class_probabilities

    np.testing.assert_allclose(class_probabilities(np.array(outputs)), expected, atol=1e-9)


# --- params are checked before anything trains ---------------------------------------------


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ({"type": "overfitting_guard", "ratio": 0.9}, "callbacks[0].ratio"),
        ({"type": "overfitting_guard", "val_metric": "loss"}, "did you mean `val_loss`"),
        (
            {
                "type": "augmentation_schedule",
                "augmentation": "gaussian_noise",
                "end": 0.1,
                "begin_epoch": 3,
                "end_epoch": 3,
            },
            "must be after begin_epoch",
        ),
        (
            {
                "type": "augmentation_schedule",
                "augmentation": "random_flip",
                "end": 1.5,
                "end_epoch": 3,
            },
            "must be ≤ 1",
        ),
        (
            {"type": "magnitude_pruning", "target_sparsity": 0.5, "end_step": 10, "end_epoch": 2},
            "in steps or in epochs, not both",
        ),
        (
            {"type": "magnitude_pruning", "target_sparsity": 1.0, "end_epoch": 2},
            "callbacks[0].target_sparsity",
        ),
        ({"type": "timing_logger", "filename": "../timing.csv"}, "inside the run directory"),
        ({"type": "metrics_jsonl", "batch_every": -1}, "callbacks[0].batch_every"),
        (
            {
                "type": "magnitude_pruning",
                "target_sparsity": 0.5,
                "end_epoch": 2,
                "phases": ["fit", "evaluate"],
            },
            "callbacks[0].phases[1]",
        ),
    ],
)
def test_bad_params_are_rejected_by_validate(make_config, cli, item, message):
    result = cli("validate", make_config({"callbacks": [item]}))
    assert result.exit_code == 2
    assert message in result.stderr


def test_random_flip_on_tabular_data_fails_before_a_run_starts(make_config, cli, runs_dir):
    item = {
        "type": "augmentation_schedule",
        "augmentation": "random_flip",
        "end": 0.5,
        "end_epoch": 2,
    }
    result = cli("train", make_config({"callbacks": [item]}))
    assert result.exit_code == 2
    assert "random_flip needs images" in result.stderr
    assert not list(runs_dir.glob("*/*"))


@pytest.mark.parametrize(
    ("updates", "message"),
    [
        ({"data": {"split": {"validation": 0}}}, "`val_loss` needs validation data"),
        (
            {
                "callbacks": [
                    {"type": "overfitting_guard", "metric": "acuracy", "val_metric": "val_accuracy"}
                ]
            },
            "Did you mean `accuracy`?",
        ),
    ],
)
def test_overfitting_guard_metrics_are_checked_before_training(make_config, cli, updates, message):
    config = merge({"callbacks": [{"type": "overfitting_guard"}]}, updates)
    result = cli("validate", make_config(config))
    assert result.exit_code == 2
    assert message in result.stderr


def test_a_smoke_run_leaves_every_periodic_writer_with_a_picture(make_config, cli, runs_dir):
    """`every: 4` in a one-epoch smoke run: each writer still draws the last epoch once."""
    config = make_config(
        {
            "callbacks": [
                {"type": "prediction_snapshots", "every": 4, "samples": 6},
                {"type": "saliency_maps", "method": "gradient", "every": 4, "samples": 4},
            ]
        }
    )
    result = cli("train", config, "--smoke", "--quiet")
    assert result.exit_code == 0, result.stderr
    (run,) = run_dirs(runs_dir)
    assert sorted(p.name for p in (run / "snapshots").glob("*.png")) == ["epoch_001.png"]
    assert (run / "snapshots" / "predictions.gif").is_file()
    assert [p.name for p in (run / "saliency").glob("epoch_*.png")] == ["epoch_001.png"]
