"""saliency_maps and activation_maps on data where the answer is known: the class is in a corner.

8×8 images of uniform noise in [0, 0.5]; the top-left 3×3 corner holds a checkerboard (class 0)
or its inverse (class 1) and nothing else tells the classes apart. Any model that classifies
them must use the corner, so the attribution mass must sit there, far above the 9/64 = 14 % a
map spread evenly would give.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from cbrun.callbacks.attribution import Attributor, saliency
from cbrun.callbacks.visual import epoch_frames, next_number
from cbrun.experiment.config import load_config
from cbrun.run.build import build_dataset, import_keras
from conftest import find_chromium, ink, screenshot, train_tiny

keras = import_keras()

CORNER = (slice(0, 3), slice(0, 3))
CHANCE = 9 / 64
EPOCHS, EVERY, SAMPLES = 6, 3, 16
# The least mean share of the attribution in the corner each method must reach (measured on
# this run: integrated gradients 0.81, gradient 0.51, SmoothGrad 0.47, Grad-CAM 0.50).
LEAST_SHARE = {"integrated_gradients": 0.65, "gradient": 0.4, "smoothgrad": 0.35, "grad_cam": 0.35}
CNN = {
    "type": "sequential",
    "layers": [
        {
            "class_name": "Conv2D",
            "args": {"filters": 8, "kernel_size": 3, "activation": "relu", "padding": "same"},
        },
        {
            "class_name": "Conv2D",
            "args": {
                "filters": 8,
                "kernel_size": 3,
                "activation": "relu",
                "padding": "same",
                "name": "last_conv",
            },
        },
        {"class_name": "GlobalMaxPooling2D", "args": {"name": "pooled"}},
    ],
    "units": None,
}


def corner_images(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, count)
    x = rng.uniform(0, 0.5, size=(count, 8, 8, 1)).astype("float32")
    checkerboard = (np.indices((3, 3)).sum(axis=0) % 2 == 0).astype("float32")
    x[y == 0, 0:3, 0:3, 0] = checkerboard
    x[y == 1, 0:3, 0:3, 0] = 1 - checkerboard
    return x, y


def corner_share(maps: np.ndarray) -> np.ndarray:
    """Each map's share of its attribution mass in the corner."""
    return maps[:, CORNER[0], CORNER[1]].sum(axis=(1, 2)) / maps.sum(axis=(1, 2))


@pytest.fixture(scope="module")
def corner(tmp_path_factory):
    folder = tmp_path_factory.mktemp("corner")
    x, y = corner_images(600, seed=0)
    np.savez(folder / "corner.npz", x=x, y=y)
    callbacks = [
        {
            "type": "saliency_maps",
            "method": method,
            "every": EVERY,
            "samples": SAMPLES,
            "directory": method,
        }
        for method in LEAST_SHARE
    ]
    callbacks[0]["phases"] = ["fit", "evaluate", "predict"]
    callbacks += [
        {"type": "activation_maps", "every": EVERY, "phases": ["fit", "predict"]},
        {
            "type": "activation_maps",
            "every": 4,
            "layers": ["last_conv", "pooled"],
            "channels": 4,
            "samples": 3,
            "directory": "pooled",
        },
    ]
    result = train_tiny(
        folder,
        {
            "data": {
                "type": "npz",
                "path": "corner.npz",
                "split": {"validation": 0.2, "test": 0.2},
                "samples": None,
                "features": None,
                "classes": None,
            },
            "model": CNN,
            "training": {"epochs": EPOCHS},
            "callbacks": callbacks,
        },
    )
    config, _ = load_config(result.run_dir / "config.yaml")
    return {
        "run_dir": result.run_dir,
        "dataset": build_dataset(config),
        "model": keras.saving.load_model(result.run_dir / "model.keras"),
        "record": result.record,
    }


# The corner images saved as corner.npz beside the config (TINY's synthetic keys unset).
CORNER_NPZ = {
    "type": "npz",
    "path": "corner.npz",
    "samples": None,
    "features": None,
    "classes": None,
}


def test_the_model_learned_the_corner(corner):
    assert corner["record"]["test_metrics"]["accuracy"] == 1.0


@pytest.mark.parametrize("method", list(LEAST_SHARE))
def test_each_method_puts_the_attribution_in_the_corner(corner, method):
    with np.load(corner["run_dir"] / method / f"epoch_{EPOCHS:03d}.npz") as saved:
        maps = saved["maps"]
    assert maps.shape == (SAMPLES, 8, 8) and (maps >= 0).all() and maps.sum() > 0
    shares = corner_share(maps)
    assert shares.mean() > LEAST_SHARE[method] > 2.4 * CHANCE, shares.round(2)
    assert (shares > 1.5 * CHANCE).all(), shares.round(2)  # every sample, not just on average


def test_the_default_maps_every_sample_mostly_in_the_corner(corner):
    with np.load(corner["run_dir"] / "integrated_gradients" / f"epoch_{EPOCHS:03d}.npz") as saved:
        assert (corner_share(saved["maps"]) > 0.5).all()


def test_saved_maps_are_the_final_models_on_the_recorded_samples(corner):
    x_val, y_val = corner["dataset"].validation
    with np.load(corner["run_dir"] / "integrated_gradients" / f"epoch_{EPOCHS:03d}.npz") as saved:
        indices, labels, maps = saved["indices"], saved["labels"], saved["maps"]
        assert str(saved["method"]) == "integrated_gradients"
        np.testing.assert_array_equal(saved["targets"], labels)  # target: true
    assert len(set(indices)) == SAMPLES and indices.max() < len(x_val)
    np.testing.assert_array_equal(labels, y_val[indices])
    again = saliency(Attributor(corner["model"])(x_val[indices], labels), 3)
    np.testing.assert_allclose(maps, again, rtol=1e-3, atol=1e-6)


def test_permuting_the_uninformative_pixels_leaves_the_corner_attribution(corner):
    x_val, y_val = corner["dataset"].validation
    x, y = x_val[:SAMPLES], y_val[:SAMPLES]
    outside = np.ones((8, 8), bool)
    outside[CORNER] = False
    rows, columns = np.nonzero(outside)
    order = np.random.default_rng(1).permutation(len(rows))
    shuffled = x.copy()
    shuffled[:, rows, columns] = x[:, rows[order], columns[order]]
    attribute = Attributor(corner["model"])
    before = saliency(attribute(x, y), 3)
    after = saliency(attribute(shuffled, y), 3)
    assert corner_share(after).mean() > LEAST_SHARE["integrated_gradients"]
    # The noise still moves a little of the mass (global max pooling picks other maxima), but
    # neither the share on average nor which corner pixels matter most.
    assert abs(corner_share(after).mean() - corner_share(before).mean()) < 0.05
    inside_before, inside_after = before[:, CORNER[0], CORNER[1]], after[:, CORNER[0], CORNER[1]]
    assert np.corrcoef(inside_before.ravel(), inside_after.ravel())[0, 1] > 0.8


def test_the_default_survives_a_confident_model(corner):
    """The softmax is saturated, so its gradient vanishes; the logit's does not."""
    import tensorflow as tf

    x_val, y_val = corner["dataset"].validation
    x, y = tf.constant(x_val[:SAMPLES]), y_val[:SAMPLES]
    model = corner["model"]
    with tf.GradientTape() as tape:
        tape.watch(x)
        probability = tf.gather(model(x, training=False), y, axis=1, batch_dims=1)
    assert float(tf.reduce_min(probability)) > 0.99
    through_softmax = np.abs(tape.gradient(probability, x).numpy()).max()
    before_softmax = np.abs(Attributor(model, "gradient")(x.numpy(), y)).max()
    assert through_softmax < 0.02 * before_softmax


def test_pngs_per_write_a_gif_over_epochs_and_maps_of_each_evaluation(corner, cli):
    folder = corner["run_dir"] / "integrated_gradients"
    written = [f"epoch_{e:03d}" for e in range(EVERY, EPOCHS + 1, EVERY)]
    assert sorted(p.stem for p in folder.glob("epoch_*.png")) == written
    assert sorted(p.stem for p in folder.glob("epoch_*.npz")) == written
    for png in folder.glob("*.png"):
        with Image.open(png) as image:
            assert image.format == "PNG" and image.size[0] > 200
    with Image.open(folder / "saliency.gif") as gif:
        assert gif.n_frames == len(written)
    # `evaluate` in phases: train's final test evaluation, then one per `cbrun eval`
    x_test, y_test = corner["dataset"].test
    with np.load(folder / "evaluate_01.npz") as saved:
        assert saved["indices"].max() < len(x_test)
        np.testing.assert_array_equal(saved["labels"], y_test[saved["indices"]])
        assert corner_share(saved["maps"]).mean() > LEAST_SHARE["integrated_gradients"]
    assert cli("eval", corner["run_dir"]).exit_code == 0
    assert (folder / "evaluate_02.npz").is_file() and (folder / "evaluate_02.png").is_file()
    assert not (corner["run_dir"] / "gradient" / "evaluate_01.npz").exists()  # fit only


def in_report(run_dir, picture) -> bool:
    import base64

    data = base64.b64encode(picture.read_bytes()).decode("ascii")
    return data in (run_dir / "report.html").read_text()


def test_cbrun_eval_maps_a_sample_of_what_it_evaluates_and_rewrites_the_report(
    corner, cli, tmp_path
):
    folder = corner["run_dir"] / "integrated_gradients"
    number = next_number(folder, "evaluate_")
    result = cli("eval", corner["run_dir"], "--split", "validation")
    assert result.exit_code == 0, result.stderr
    x_val, y_val = corner["dataset"].validation
    with np.load(folder / f"evaluate_{number:02d}.npz") as saved:
        assert saved["indices"].max() < len(x_val)
        np.testing.assert_array_equal(saved["labels"], y_val[saved["indices"]])
        again = saliency(Attributor(corner["model"])(x_val[saved["indices"]], saved["labels"]), 3)
        np.testing.assert_allclose(saved["maps"], again, rtol=1e-3, atol=1e-6)
    assert in_report(corner["run_dir"], folder / f"evaluate_{number:02d}.png")
    # New labelled data: only it is needed (the run's validation split is not read for a sample)
    x, y = corner_images(40, seed=7)
    np.savez(tmp_path / "new.npz", x=x, y=y)
    result = cli("eval", corner["run_dir"], "--data", tmp_path / "new.npz")
    assert result.exit_code == 0, result.stderr
    with np.load(folder / f"evaluate_{number + 1:02d}.npz") as saved:
        assert saved["indices"].max() < 40 and len(saved["indices"]) == SAMPLES
        assert corner_share(saved["maps"]).mean() > LEAST_SHARE["integrated_gradients"]
    assert in_report(corner["run_dir"], folder / f"evaluate_{number + 1:02d}.png")
    assert not in_report(corner["run_dir"], folder / f"evaluate_{number:02d}.png")  # the newest


def test_cbrun_predict_maps_the_first_inputs_for_their_predicted_class(corner):
    from cbrun.run.predict import predict_run

    run_dir, model = corner["run_dir"], corner["model"]
    x = corner["dataset"].test[0][:5]
    folder, activations = run_dir / "integrated_gradients", run_dir / "activations"
    number = next_number(folder, "predict_")
    outputs = predict_run(run_dir, x)
    predicted = outputs.argmax(axis=1)
    with np.load(folder / f"predict_{number:02d}.npz") as saved:
        assert "labels" not in saved.files  # inputs to predict have none
        np.testing.assert_array_equal(saved["indices"], np.arange(5))
        assert saved["input_names"].tolist() == [f"input {i}" for i in range(5)]  # their rows
        np.testing.assert_array_equal(saved["targets"], predicted)
        np.testing.assert_array_equal(saved["predicted"], predicted)
        np.testing.assert_allclose(
            saved["maps"], saliency(Attributor(model)(x, predicted), 3), rtol=1e-3, atol=1e-6
        )
        assert corner_share(saved["maps"]).mean() > LEAST_SHARE["integrated_gradients"]
    with np.load(activations / f"predict_{number:02d}.npz") as saved:
        probe = keras.Model(model.inputs[0], model.get_layer("last_conv").output)
        expected = keras.ops.convert_to_numpy(probe(x[:2], training=False))
        np.testing.assert_allclose(saved["last_conv"], expected, rtol=1e-4, atol=1e-5)
    first = (folder / f"predict_{number:02d}.png").read_bytes()
    files = [f"photos/cat-{i}.png" for i in range(3)]  # as `cbrun predict` names image files
    predict_run(run_dir, x[:3], input_names=files)  # a second prediction: new files, the
    assert (folder / f"predict_{number:02d}.png").read_bytes() == first  # first ones kept
    with np.load(folder / f"predict_{number + 1:02d}.npz") as saved:
        assert saved["maps"].shape == (3, 8, 8)
        assert saved["input_names"].tolist() == ["cat-0.png", "cat-1.png", "cat-2.png"]
    with np.load(activations / f"predict_{number + 1:02d}.npz") as saved:
        assert saved["input_names"].tolist() == ["cat-0.png", "cat-1.png"]  # its 2 samples
    assert not list((run_dir / "gradient").glob("predict_*"))  # its phases: fit only
    assert in_report(run_dir, folder / f"predict_{number + 1:02d}.png")
    assert in_report(run_dir, activations / f"predict_{number + 1:02d}.png")


# A functional model whose two conv layers sit inside a functional block `block`.
NESTED_MODEL = """
import keras


def build(input_shape, num_classes):
    block_inputs = keras.Input(input_shape)
    hidden = keras.layers.Conv2D(8, 3, activation="relu", padding="same", name="conv_a")(
        block_inputs
    )
    hidden = keras.layers.Conv2D(8, 3, activation="relu", padding="same", name="conv")(hidden)
    block = keras.Model(block_inputs, hidden, name="block")
    inputs = keras.Input(input_shape)
    pooled = keras.layers.GlobalMaxPooling2D(name="pooled")(block(inputs))
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="output")(pooled)
    return keras.Model(inputs, outputs)
"""


def test_grad_cam_and_activation_maps_find_conv_layers_inside_a_block(tmp_path):
    x, y = corner_images(400, seed=3)
    np.savez(tmp_path / "corner.npz", x=x, y=y)
    (tmp_path / "nested_model.py").write_text(NESTED_MODEL)
    common = {"method": "grad_cam", "every": 5, "samples": SAMPLES}
    result = train_tiny(
        tmp_path,
        {
            "data": {**CORNER_NPZ, "split": {"validation": 0.2, "test": 0.2}},
            "model": {"type": "import", "function": "nested_model:build", "units": None},
            "training": {"epochs": 5},
            "callbacks": [
                {"type": "saliency_maps", **common, "directory": "cam"},  # default: block/conv
                {"type": "saliency_maps", **common, "layer": "block/conv", "directory": "path"},
                {"type": "saliency_maps", **common, "layer": "conv_a", "directory": "first"},
                {"type": "activation_maps", "every": 5},
            ],
        },
    )
    run_dir = result.run_dir
    assert result.record["test_metrics"]["accuracy"] > 0.9
    with np.load(run_dir / "cam" / "epoch_005.npz") as default:
        with np.load(run_dir / "path" / "epoch_005.npz") as named:
            np.testing.assert_allclose(default["maps"], named["maps"], rtol=1e-5, atol=1e-7)
        assert corner_share(default["maps"]).mean() > LEAST_SHARE["grad_cam"]
    with np.load(run_dir / "first" / "epoch_005.npz") as first:
        assert first["maps"].shape == (SAMPLES, 8, 8) and first["maps"].sum() > 0
    model = keras.saving.load_model(run_dir / "model.keras")
    block = model.get_layer("block")
    with np.load(run_dir / "activations" / "epoch_005.npz") as saved:
        assert sorted(saved.files) == ["block/conv", "block/conv_a", "indices", "labels"]
        inputs = build_dataset(load_config(run_dir / "config.yaml")[0]).validation[0]
        inputs = inputs[saved["indices"]]
        for name in ("conv_a", "conv"):
            probe = keras.Model(block.inputs[0], block.get_layer(name).output)
            expected = keras.ops.convert_to_numpy(probe(inputs, training=False))
            np.testing.assert_allclose(saved[f"block/{name}"], expected, rtol=1e-4, atol=1e-5)


def test_a_wrong_layer_path_is_refused_with_the_paths_there_are(cli, make_config, tmp_path):
    x, y = corner_images(60, seed=2)
    np.savez(tmp_path / "corner.npz", x=x, y=y)
    (tmp_path / "nested_model.py").write_text(NESTED_MODEL)
    model = {"type": "import", "function": "nested_model:build", "units": None}
    cam = {"type": "saliency_maps", "method": "grad_cam", "layer": "blok/conv"}
    result = cli("train", make_config({"data": CORNER_NPZ, "model": model, "callbacks": [cam]}))
    assert result.exit_code == 2
    assert "the model has no layer `blok/conv`. Did you mean `block/conv`?" in result.stderr
    assert "Conv layers: block/conv_a, block/conv" in result.stderr
    layers = {"type": "activation_maps", "layers": ["block/conv", "block/pooled"]}
    result = cli("train", make_config({"data": CORNER_NPZ, "model": model, "callbacks": [layers]}))
    assert result.exit_code == 2 and "no layer `block/pooled`" in result.stderr


def test_tabular_data_gets_per_feature_bars_and_a_map_at_the_end(tmp_path):
    result = train_tiny(
        tmp_path,
        {
            "training": {"epochs": 3},
            "callbacks": [
                {"type": "saliency_maps", "every": 2, "samples": 5, "target": "predicted"}
            ],
        },
    )
    folder = result.run_dir / "saliency"
    assert sorted(p.name for p in folder.glob("epoch_*")) == [
        "epoch_002.npz",
        "epoch_002.png",
        "epoch_003.npz",
        "epoch_003.png",
    ]  # every 2 epochs, and at the end
    with np.load(folder / "epoch_003.npz") as saved:
        assert saved["maps"].shape == (5, 8)
        np.testing.assert_array_equal(saved["targets"], saved["predicted"])
    image = np.asarray(Image.open(folder / "epoch_003.png").convert("RGB")).astype(int)
    bars = (np.abs(image - (31, 119, 180)).max(axis=-1) < 30).sum()
    assert bars > 500  # matplotlib's blue bars


@pytest.mark.parametrize(
    ("updates", "message"),
    [
        (
            {"callbacks": [{"type": "saliency_maps", "method": "grad_cam"}]},
            "method grad_cam needs a conv layer",
        ),
        (
            {"callbacks": [{"type": "saliency_maps", "layer": "conv"}]},
            "`layer` is used by method grad_cam only",
        ),
        (
            {"callbacks": [{"type": "saliency_maps", "phases": ["fit", "predcit"]}]},
            "callbacks[0].phases[1]",
        ),
        (
            {
                "data": {"split": {"validation": 0, "test": 0.2}},
                "callbacks": [{"type": "saliency_maps"}],
            },
            "needs validation data",
        ),
    ],
)
def test_bad_settings_are_refused_before_a_run_starts(cli, make_config, runs_dir, updates, message):
    result = cli("train", make_config(updates))
    assert result.exit_code == 2
    assert message in result.stderr
    assert not list(runs_dir.glob("*/*"))


def test_grad_cam_names_an_existing_conv_layer(cli, make_config, runs_dir, tmp_path):
    x, y = corner_images(60, seed=2)
    np.savez(tmp_path / "corner.npz", x=x, y=y)
    config = make_config(
        {
            "data": CORNER_NPZ,
            "model": CNN,
            "callbacks": [{"type": "saliency_maps", "method": "grad_cam", "layer": "last_cnv"}],
        }
    )
    result = cli("train", config)
    assert result.exit_code == 2
    assert "has no layer `last_cnv`. Did you mean `last_conv`?" in result.stderr
    assert not list(runs_dir.glob("*/*"))


# --- activation_maps on the same run ------------------------------------------------------


def test_activation_maps_save_what_each_conv_layer_outputs(corner):
    model = corner["model"]
    x_val, y_val = corner["dataset"].validation
    convs = [layer.name for layer in model.layers if "Conv" in type(layer).__name__]
    assert len(convs) == 2
    folder = corner["run_dir"] / "activations"
    written = [f"epoch_{e:03d}" for e in range(EVERY, EPOCHS + 1, EVERY)]
    assert sorted(p.stem for p in folder.glob("epoch_*.png")) == written
    with np.load(folder / f"epoch_{EPOCHS:03d}.npz") as saved:
        assert sorted(saved.files) == sorted([*convs, "indices", "labels"])
        indices = saved["indices"]
        np.testing.assert_array_equal(saved["labels"], y_val[indices])
        for name in convs:
            probe = keras.Model(model.inputs[0], model.get_layer(name).output)
            expected = keras.ops.convert_to_numpy(probe(x_val[indices], training=False))
            assert saved[name].shape == (2, 8, 8, 8)
            np.testing.assert_allclose(saved[name], expected, rtol=1e-4, atol=1e-5)
    with Image.open(folder / "activations.gif") as gif:
        assert gif.n_frames == len(written)


def test_activation_maps_of_named_layers_every_n_epochs_and_at_the_end(corner):
    folder = corner["run_dir"] / "pooled"
    assert sorted(p.stem for p in folder.glob("epoch_*.npz")) == ["epoch_004", "epoch_006"]
    with np.load(folder / "epoch_006.npz") as saved:
        assert saved["last_conv"].shape == (3, 8, 8, 8) and saved["pooled"].shape == (3, 8)
        # global max pooling: each channel's maximum over the map
        np.testing.assert_allclose(saved["pooled"], saved["last_conv"].max(axis=(1, 2)), rtol=1e-5)


def test_activation_maps_name_existing_layers(cli, make_config, runs_dir, tmp_path):
    x, y = corner_images(60, seed=2)
    np.savez(tmp_path / "corner.npz", x=x, y=y)
    data = {"type": "npz", "path": "corner.npz", "samples": None, "features": None, "classes": None}
    config = make_config(
        {
            "data": data,
            "model": CNN,
            "callbacks": [{"type": "activation_maps", "layers": ["pooled", "last_cnv"]}],
        }
    )
    result = cli("train", config)
    assert result.exit_code == 2
    assert "activation_maps.layers: the model has no layer `last_cnv`." in result.stderr
    assert "Did you mean `last_conv`?" in result.stderr
    assert not list(runs_dir.glob("*/*"))
    tabular = cli("train", make_config({"callbacks": [{"type": "activation_maps"}]}))
    assert tabular.exit_code == 2 and "the model has no conv layer" in tabular.stderr


def test_the_report_shows_the_newest_picture_of_each_folder_and_links_its_gif(corner):
    import base64

    html = (corner["run_dir"] / "report.html").read_text()
    assert "<h2>Inside the model</h2>" in html
    for folder, gif in [(m, "saliency.gif") for m in LEAST_SHARE] + [
        ("activations", "activations.gif"),
        ("pooled", "activations.gif"),
    ]:
        last = sorted((corner["run_dir"] / folder).glob("epoch_*.png"))[-1]
        assert base64.b64encode(last.read_bytes()).decode("ascii") in html, folder
        assert f'<a href="{folder}/{gif}">' in html
    newest = epoch_frames(corner["run_dir"] / "integrated_gradients", "evaluate_")[-1]
    assert base64.b64encode(newest.read_bytes()).decode("ascii") in html


def test_a_headless_browser_draws_every_picture_inside_the_model(corner, tmp_path):
    """The report's `Inside the model` section (with the report's own head and style), with and
    without its pictures: together they take away the ink of that many pictures."""
    import re

    chromium = find_chromium()
    html = (corner["run_dir"] / "report.html").read_text()
    head, rest = html.split("<h2>Inside the model</h2>")
    inside = rest.split("<h2>")[0]
    images = re.findall(r'src="data:image/png;base64,[^"]*"', inside)
    assert len(images) >= len(LEAST_SHARE) + 2 + 1  # a last epoch each, IG's evaluation
    section = head.split("<body>")[0] + "<body><h2>Inside the model</h2>"
    bare = inside
    for image in images:
        bare = bare.replace(image, 'src=""')
    (tmp_path / "inside.html").write_text(f"{section}{inside}</body></html>")
    (tmp_path / "bare.html").write_text(f"{section}{bare}</body></html>")
    height = 9000
    page = screenshot(chromium, tmp_path / "inside.html", tmp_path / "inside.png", height)
    assert ink(page[-300:]) == 0  # the whole section fits in the screenshot
    lost = ink(page) - ink(
        screenshot(chromium, tmp_path / "bare.html", tmp_path / "bare.png", height)
    )
    assert lost > 2000 * len(images), f"{lost} drawn pixels fewer without {len(images)} pictures"


def test_maps_under_a_mirrored_strategy_are_those_of_the_trained_model(make_config, runs_dir):
    """Two logical CPU devices need a fresh process; the maps come from the mirrored weights."""
    from conftest import run_dirs, run_subprocess

    x, y = corner_images(200, seed=4)
    config = make_config(
        {
            "data": CORNER_NPZ,
            "distribution": {"strategy": "mirrored", "cpu_devices": 2},
            "model": CNN,
            "training": {"epochs": 1},
            "callbacks": [
                {"type": "saliency_maps", "samples": 4},
                {"type": "saliency_maps", "method": "grad_cam", "samples": 4, "directory": "cam"},
                {"type": "activation_maps", "samples": 1},
            ],
        }
    )
    np.savez(config.parent / "corner.npz", x=x, y=y)
    done = run_subprocess("train", config, "--quiet")
    assert done.returncode == 0, done.stderr[-2000:]
    (run_dir,) = run_dirs(runs_dir)
    assert json.loads((run_dir / "run.json").read_text())["distribution"]["replicas"] == 2
    model = keras.saving.load_model(run_dir / "model.keras")
    dataset = build_dataset(load_config(run_dir / "config.yaml")[0])
    for folder, method in (("saliency", "integrated_gradients"), ("cam", "grad_cam")):
        with np.load(run_dir / folder / "epoch_001.npz") as saved:
            inputs = dataset.validation[0][saved["indices"]]
            again = saliency(Attributor(model, method)(inputs, saved["labels"]), 3)
            np.testing.assert_allclose(saved["maps"], again, rtol=1e-3, atol=1e-6)
    assert (run_dir / "activations" / "epoch_001.png").is_file()


def test_regression_attributes_the_prediction_to_each_feature(tmp_path):
    """y = x @ w: the integrated gradients of the final model add up to its prediction."""
    result = train_tiny(
        tmp_path,
        {
            "data": {
                "type": "synthetic_regression",
                "samples": 200,
                "features": 6,
                "classes": None,
            },
            "model": {"type": "mlp", "units": [8]},
            "training": {"epochs": 2},
            "callbacks": [{"type": "saliency_maps", "every": 2, "samples": 5, "steps": 256}],
        },
    )
    model = keras.saving.load_model(result.run_dir / "model.keras")
    dataset = build_dataset(load_config(result.run_dir / "config.yaml")[0])
    with np.load(result.run_dir / "saliency" / "epoch_002.npz") as saved:
        assert saved["maps"].shape == (5, 6)
        x = dataset.validation[0][saved["indices"]]
        np.testing.assert_allclose(saved["predicted"], model.predict(x, verbose=0)[:, 0], rtol=1e-5)
    # Completeness: attributions sum to f(x) - f(baseline 0).
    signed = Attributor(model, steps=256, classification=False)(x, np.zeros(5, int))
    difference = model.predict(x, verbose=0)[:, 0] - model.predict(0 * x, verbose=0)[:, 0]
    np.testing.assert_allclose(signed.sum(axis=1), difference, rtol=0.02, atol=1e-3)
