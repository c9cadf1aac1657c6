"""Model builders: an MLP, Keras layers by name, and the user's own function."""

import pytest

from cbrun import registry
from cbrun.core.errors import CbrunError


@pytest.fixture(scope="module")
def digits():
    component = registry.datasets.get("digits")
    return component.factory(component.params.model_validate({"type": "digits"}), 0)


def build(params, dataset):
    component = registry.models.get(params["type"])
    return component.factory(component.params.model_validate(params), dataset)


def test_mlp_has_the_requested_layers_and_a_softmax_over_the_classes(digits):
    model = build({"type": "mlp", "units": [32, 16], "dropout": 0.2, "batch_norm": True}, digits)
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == [
        "Normalization",
        "Dense",
        "BatchNormalization",
        "Activation",
        "Dropout",
        "Dense",
        "BatchNormalization",
        "Activation",
        "Dropout",
        "Dense",
    ]
    assert model.output_shape == (None, 10)


def test_sequential_builds_keras_layers_by_class_name(digits):
    model = build(
        {
            "type": "sequential",
            "layers": [{"class_name": "Dense", "args": {"units": 8, "activation": "relu"}}],
        },
        digits,
    )
    assert [type(layer).__name__ for layer in model.layers] == ["Dense", "Dense"]


@pytest.mark.parametrize(
    ("layer", "message"),
    [
        (
            {"class_name": "Dens"},
            r"model.layers\[0\].class_name: `Dens` is not a Keras layer. "
            "Did you mean `Dense`?",
        ),
        ({"class_name": "Dense", "args": {"unitz": 3}}, r"model.layers\[0\].args: Dense"),
    ],
)
def test_sequential_layer_errors_name_the_layer(digits, layer, message):
    with pytest.raises(CbrunError, match=message):
        build({"type": "sequential", "layers": [layer]}, digits)


def test_import_calls_the_users_function_with_what_it_asks_for(digits, tmp_path, monkeypatch):
    (tmp_path / "my_models.py").write_text(
        "import keras\n"
        "def build(input_shape, num_classes, width=4):\n"
        "    return keras.Sequential([keras.Input(input_shape), keras.layers.Dense(width),\n"
        "                             keras.layers.Dense(num_classes, activation='softmax')])\n"
        "def not_a_model():\n"
        "    return 42\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    model = build({"type": "import", "function": "my_models:build", "args": {"width": 7}}, digits)
    assert model.layers[0].units == 7 and model.output_shape == (None, 10)
    with pytest.raises(CbrunError, match="returned int, expected a keras.Model"):
        build({"type": "import", "function": "my_models:not_a_model"}, digits)
    with pytest.raises(CbrunError, match="cannot import `no_such_module`"):
        build({"type": "import", "function": "no_such_module:build"}, digits)
