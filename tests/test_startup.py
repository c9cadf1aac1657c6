"""Light commands never import TensorFlow or Keras (checked in a fresh interpreter)."""

from __future__ import annotations

from conftest import ROOT, probe_commands

LIGHT_COMMANDS = [
    ["--help"],
    ["list-callbacks"],
    ["list-callbacks", "early_stopping"],
    ["list-models", "--json"],
    ["list-datasets"],
    ["schema"],
    ["validate", str(ROOT / "configs" / "quickstart.yaml")],
]


def test_light_commands_do_not_import_tensorflow_or_keras():
    report, result = probe_commands(LIGHT_COMMANDS)
    assert report["codes"] == {" ".join(args): 0 for args in LIGHT_COMMANDS}, result.stderr
    assert report["heavy"] == []
