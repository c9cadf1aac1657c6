"""`cbrun list-callbacks NAME` prints a YAML example that validates as it stands, for every one."""

import pytest
import yaml

from cbrun import registry
from conftest import ROOT, run_dirs


@pytest.mark.parametrize("name", registry.callbacks.names())
def test_example_snippet_validates_in_the_tiny_config(name, cli, make_config):
    listing = cli("list-callbacks", name)
    assert listing.exit_code == 0, listing.stderr
    snippet = yaml.safe_load(listing.stdout.split("\nExample:\n", 1)[1])
    assert snippet["callbacks"][0]["type"] == name
    config = make_config(snippet)
    result = cli("validate", config)
    assert result.exit_code == 0, f"{name}:\n{yaml.safe_dump(snippet)}\n{result.stderr}"


def test_callbacks_tour_combines_eight_callbacks_and_passes_a_smoke_run(cli, runs_dir):
    config = ROOT / "configs" / "callbacks_tour.yaml"
    types = {item["type"] for item in yaml.safe_load(config.read_text())["callbacks"]}
    assert len(types) == 8
    result = cli("train", config, "--smoke", "--quiet", "--runs-dir", runs_dir)
    assert result.exit_code == 0, result.stderr
    (run,) = run_dirs(runs_dir)
    assert (run / "checkpoints" / "best.keras").is_file()
    assert sorted(p.name for p in (run / "backup").iterdir()) == [
        "latest.weights.h5",
        "training_metadata.json",
    ]
    assert "learning_rate" in (run / "logs" / "epochs.csv").read_text().splitlines()[0]
    assert list((run / "tensorboard" / "train").glob("events.out.tfevents.*"))
