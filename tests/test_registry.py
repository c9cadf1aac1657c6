"""The registry: names bound to params models and factories, with helpful lookups."""

from typing import Literal

import pytest
from pydantic import BaseModel

from cbrun import registry
from cbrun.core.errors import CbrunError
from cbrun.registry import Registry


class WidgetParams(BaseModel):
    """A widget for tests."""

    type: Literal["widget"]
    size: int = 1


def test_lookup_returns_the_component_with_its_first_docstring_line():
    widgets = Registry("widget", "cbrun.test_widgets")
    widgets.register("widget", WidgetParams)(lambda params: params.size)
    component = widgets.get("widget")
    assert component.description == "A widget for tests."
    assert component.factory(WidgetParams(type="widget", size=3)) == 3


def test_unknown_names_list_the_choices_and_a_close_match():
    with pytest.raises(CbrunError) as error:
        registry.callbacks.get("early_stoping")
    assert "unknown callback `early_stoping`. Did you mean `early_stopping`?" in error.value.message
    assert "csv_logger" in error.value.message


def test_registering_a_name_twice_names_both_origins():
    widgets = Registry("widget", "cbrun.test_widgets")

    def first(params):
        return 1

    def second(params):
        return 2

    widgets.register("widget", WidgetParams)(first)
    with pytest.raises(CbrunError, match=r"registered twice: by .*first and by .*second"):
        widgets.register("widget", WidgetParams)(second)


def test_params_must_declare_their_type_tag():
    widgets = Registry("widget", "cbrun.test_widgets")
    with pytest.raises(CbrunError, match=r"must declare `type: Literal\['gadget'\]`"):
        widgets.register("gadget", WidgetParams)


def test_builtins_are_imported_on_first_lookup_only():
    lazy = Registry("widget", "cbrun.test_widgets", ("tests.widget_module_that_does_not_exist",))
    with pytest.raises(ModuleNotFoundError):
        lazy.names()


@pytest.mark.parametrize(
    ("reg", "names"),
    [
        (
            registry.callbacks,
            {
                "early_stopping",
                "model_checkpoint",
                "csv_logger",
                "tensorboard",
                "learning_rate_scheduler",
            },
        ),
        (registry.models, {"mlp", "sequential", "import"}),
        (
            registry.datasets,
            {"synthetic_classification", "synthetic_regression", "csv", "npz", "digits"},
        ),
        (registry.schedules, {"step_decay", "exponential", "cosine"}),
    ],
)
def test_built_in_components_are_registered(reg, names):
    assert names <= set(reg.names())
