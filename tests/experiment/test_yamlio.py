"""Reading experiment YAML: numbers, duplicate keys, line numbers and `--set` overrides."""

import pytest

from cbrun.core.errors import CbrunError
from cbrun.experiment.yaml_source import Document, apply_overrides, format_path, parse_yaml

TEXT = """\
experiment:
  name: x
compile:
  optimizer:
    learning_rate: 1e-3
callbacks:
  - type: early_stopping
    patience: 2
"""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1e-3", 0.001),
        ("5E+4", 50000.0),
        ("-2.5e-1", -0.25),
        ("1.0e-3", 0.001),
        ("3", 3),
        (".5", 0.5),
        ("1_000", 1000),
        ("abc", "abc"),
        ("'1e-3'", "1e-3"),
    ],
)
def test_scientific_notation_reads_as_a_number(text, expected):
    assert parse_yaml(f"value: {text}", "t").data["value"] == expected


def test_every_key_path_knows_its_line():
    document = parse_yaml(TEXT, "exp.yaml")
    assert document.where(("compile", "optimizer", "learning_rate")) == "exp.yaml:5"
    assert document.where(("callbacks", 0, "patience")) == "exp.yaml:8"
    assert document.where(("callbacks", 0, "missing_key")) == "exp.yaml:7"


def test_duplicate_keys_are_refused_with_both_lines():
    with pytest.raises(
        CbrunError,
        match=r"exp.yaml:3:1: invalid YAML: duplicate key `a` "
        r"\(first defined on line 1\)",
    ):
        parse_yaml("a: 1\nb: 2\na: 3\n", "exp.yaml")


def test_python_tags_never_construct_objects():
    with pytest.raises(CbrunError, match=r"the tag `!!python/object/apply:os.system` is not"):
        parse_yaml("x: !!python/object/apply:os.system ['echo hi']\n", "exp.yaml")


def test_overrides_set_nested_keys_list_items_and_parse_yaml_values():
    document = parse_yaml(TEXT, "exp.yaml")
    apply_overrides(
        document,
        [
            "compile.optimizer.learning_rate=3e-4",
            "callbacks.0.patience=5",
            "training={epochs: 3}",
            "experiment.tags=[a, b]",
        ],
    )
    assert document.data["compile"]["optimizer"]["learning_rate"] == 0.0003
    assert document.data["callbacks"][0]["patience"] == 5
    assert document.data["training"] == {"epochs": 3}
    assert document.data["experiment"]["tags"] == ["a", "b"]
    assert document.where(("callbacks", 0, "patience")) == "--set callbacks.0.patience=5"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("training.epochs", "expected KEY=VALUE"),
        ("=3", "expected KEY=VALUE"),
        ("callbacks.4.patience=1", r"`callbacks\[4\]` names no item"),
        ("experiment.name.first=1", "cannot set a key inside a value that is not a mapping"),
        ("a..b=1", "empty key segment"),
    ],
)
def test_bad_overrides_say_what_is_wrong(override, message):
    with pytest.raises(CbrunError, match=message):
        apply_overrides(parse_yaml(TEXT, "exp.yaml"), [override])


def test_override_creates_the_mappings_it_names_and_is_their_location():
    document = parse_yaml(TEXT, "exp.yaml")
    apply_overrides(document, ["trainin.epochs=3", "callbacks[0].monitor=loss"])
    assert document.data["trainin"] == {"epochs": 3}  # the schema then refuses `trainin`
    assert document.where(("trainin",)) == "--set trainin.epochs=3"
    assert document.data["callbacks"][0]["monitor"] == "loss"


def test_override_on_an_empty_document():
    document = Document(None, "empty.yaml")
    apply_overrides(document, ["experiment={name: x}"])
    assert document.data == {"experiment": {"name": "x"}}


def test_key_paths_print_like_code():
    assert format_path(("callbacks", 1, "patience")) == "callbacks[1].patience"
    assert format_path(()) == ""


@pytest.mark.parametrize(
    ("text", "stopped", "began"),
    [
        ('experiment:\n  name: "abc\ndata:\n  type: digits\n', "5:1", "line 2, column 9"),
        (
            "model: {type: mlp,\n  units: [16, 8\ntraining: {epochs: 3}\n",
            "3:9",
            "line 2, column 10",
        ),
        ("a: 'x\nb: 2\n", "3:1", "line 1, column 4"),
    ],
)
def test_an_unclosed_bracket_or_quote_names_where_it_began(text, stopped, began):
    with pytest.raises(CbrunError) as raised:
        parse_yaml(text, "exp.yaml")
    assert raised.value.message.startswith(f"exp.yaml:{stopped}: invalid YAML")
    assert f"began at {began}" in raised.value.message


def test_counts_in_messages_agree_with_their_number(make_config, cli):
    from cbrun.core.console import counted

    assert (counted(1, "sample"), counted(2, "sample"), counted(0, "epoch")) == (
        "1 sample",
        "2 samples",
        "0 epochs",
    )
    config = make_config({"callbacks": [{"type": "early_stopping"}]})
    result = cli("validate", config, "--set", "callbacks[3].patience=2")
    assert result.exit_code == 2
    assert "names no item (the list has 1 item)" in result.stderr, result.stderr
