"""`cbrun list-callbacks NAME` prints a YAML example that validates as it stands, for every one."""

import pytest
import yaml

from cbrun import registry


@pytest.mark.parametrize("name", registry.callbacks.names())
def test_example_snippet_validates_in_the_tiny_config(name, cli, make_config):
    listing = cli("list-callbacks", name)
    assert listing.exit_code == 0, listing.stderr
    snippet = yaml.safe_load(listing.stdout.split("\nExample:\n", 1)[1])
    assert snippet["callbacks"][0]["type"] == name
    config = make_config(snippet)
    result = cli("validate", config)
    assert result.exit_code == 0, f"{name}:\n{yaml.safe_dump(snippet)}\n{result.stderr}"
