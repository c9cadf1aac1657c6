"""`cbrun schema` and the `list-*` commands come from the registries."""

import json

import jsonschema
import pytest

from cbrun.experiment.yaml_source import load_yaml
from conftest import ROOT


def test_schema_is_valid_json_schema_that_accepts_the_examples_and_rejects_bad_ones(cli):
    result = cli("schema")
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    for path in sorted((ROOT / "configs").glob("*.yaml")):
        errors = list(validator.iter_errors(load_yaml(path).data))  # YAML 1.2 numbers
        assert not errors, f"{path.name}: {errors[0].message}"
    bad = load_yaml(ROOT / "configs" / "quickstart.yaml").data
    bad["callbacks"][0]["patience"] = -1
    bad["model"]["unitz"] = [3]
    assert len(list(validator.iter_errors(bad))) == 2


def test_list_callbacks_shows_every_callback_with_its_parameters(cli):
    result = cli("list-callbacks")
    assert result.exit_code == 0
    for name in (
        "early_stopping",
        "model_checkpoint",
        "csv_logger",
        "tensorboard",
        "learning_rate_scheduler",
    ):
        assert name in result.stdout
    assert "restore_best_weights" in result.stdout


def test_list_callbacks_name_gives_parameters_defaults_and_an_example(cli):
    result = cli("list-callbacks", "early_stopping")
    assert result.exit_code == 0
    for text in (
        "patience",
        "min_delta",
        "baseline",
        "start_from_epoch",
        "Example:",
        "- type: early_stopping",
    ):
        assert text in result.stdout


def test_list_callbacks_name_shows_each_nested_choice_with_its_parameters(cli):
    result = cli("list-callbacks", "learning_rate_scheduler")
    assert result.exit_code == 0
    for text in (
        "{type: cosine} | {type: exponential}",  # the choices, by their `type:`
        "schedule with type: cosine: Cosine annealing",
        "schedule.decay_epochs",
        "schedule with type: step_decay",
        "schedule.step_size",
    ):
        assert text in result.stdout, text
    entry = json.loads(cli("list-callbacks", "learning_rate_scheduler", "--json").stdout)[0]
    nested = {item["type"]: item for item in entry["nested"]}
    assert nested["one_cycle"]["key"] == "schedule"
    names = [p["name"] for p in nested["one_cycle"]["parameters"]]
    assert "schedule.cycle_epochs" in names


def test_list_json_is_machine_readable(cli):
    result = cli("list-callbacks", "--json")
    entries = {entry["name"]: entry for entry in json.loads(result.stdout)}
    patience = next(p for p in entries["early_stopping"]["parameters"] if p["name"] == "patience")
    assert patience["default"] == "0"
    assert entries["early_stopping"]["schema"]["properties"]["patience"]["minimum"] == 0


@pytest.mark.parametrize(("command", "name"), [("list-models", "mlp"), ("list-datasets", "csv")])
def test_list_models_and_datasets(cli, command, name):
    listing = cli(command)
    assert listing.exit_code == 0 and name in listing.stdout
    detail = cli(command, name)
    assert detail.exit_code == 0 and "Example:" in detail.stdout


def test_unknown_name_in_a_listing_suggests_a_close_one(cli):
    result = cli("list-callbacks", "tensorbord")
    assert result.exit_code == 2
    assert "Did you mean `tensorboard`?" in result.stderr
