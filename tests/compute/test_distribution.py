"""The `distribution` section: mirrored training on 2 logical CPU devices matches one device."""

from __future__ import annotations

import csv
import json

import pytest

from conftest import run_dirs, run_subprocess

# Checkpoints and the CSV logger must keep working under the strategy.
CALLBACKS = [
    {"type": "model_checkpoint", "filepath": "checkpoints/best.keras", "save_best_only": True},
    {"type": "csv_logger", "filename": "epochs.csv"},
]


def test_mirrored_on_two_cpu_devices_matches_the_single_device_run(make_config, cli, runs_dir):
    """Same seed, same epochs: the final loss agrees to a relative 1e-4.

    With the global batch split over 2 replicas and the gradients summed back, only the order
    of float additions differs from the single-device run (we measured agreement to ~1e-7).
    Logical devices can be set only once per process, so the mirrored run gets a fresh one.
    """
    mirrored = make_config(
        {
            "distribution": {"strategy": "mirrored", "cpu_devices": 2},
            "callbacks": CALLBACKS,
            "training": {"epochs": 2, "batch_size": 32},
        },
        name="mirrored.yaml",
    )
    done = run_subprocess("train", mirrored, "--quiet")
    assert done.returncode == 0, done.stderr[-2000:]
    single = make_config({"callbacks": CALLBACKS}, name="single.yaml")
    assert cli("train", single, "--quiet").exit_code == 0

    records = {}
    for run_dir in run_dirs(runs_dir):
        record = json.loads((run_dir / "run.json").read_text())
        records[record["distribution"]["strategy"]] = (run_dir, record)
    mirrored_dir, mirrored_run = records["mirrored"]
    _, single_run = records["default"]

    assert mirrored_run["status"] == "completed"
    assert mirrored_run["distribution"]["replicas"] == 2
    assert [d.rsplit("/", 1)[-1] for d in mirrored_run["distribution"]["devices"]] == [
        "device:CPU:0",
        "device:CPU:1",
    ]
    assert single_run["distribution"]["replicas"] == 1
    assert mirrored_run["epochs_completed"] == single_run["epochs_completed"] == 2
    for name in ("loss", "val_loss"):
        assert mirrored_run["final_metrics"][name] == pytest.approx(
            single_run["final_metrics"][name], rel=1e-4
        )
    assert (mirrored_dir / "checkpoints" / "best.keras").is_file()
    assert mirrored_run["checkpoints"]["best"] == "checkpoints/best.keras"
    with open(mirrored_dir / "epochs.csv") as handle:
        assert len(list(csv.DictReader(handle))) == 2


@pytest.mark.parametrize(
    ("distribution", "expected"),
    [
        (
            {"strategy": "multi_worker_mirrored"},
            "Keras 3 does not support tf.distribute.MultiWorkerMirroredStrategy "
            "(keras-team/keras issue 20585)",
        ),
        ({"strategy": "mirored"}, "unknown strategy `mirored`. Did you mean `mirrored`?"),
        ({"strategy": "mirrored", "device": "/cpu:0"}, "`device` applies only to strategy"),
        ({"strategy": "default", "cpu_devices": 2}, "`cpu_devices` applies only to strategy"),
        ({"strategy": "mirrored", "cpu_devices": 1}, "greater than or equal to 2"),
    ],
)
def test_bad_distribution_is_a_config_error(make_config, cli, runs_dir, distribution, expected):
    path = make_config({"distribution": distribution})
    result = cli("train", path)
    assert result.exit_code == 2
    assert expected in result.stderr
    assert f"{path}:" in result.stderr and "distribution" in result.stderr
    assert "Traceback" not in result.stderr
    assert run_dirs(runs_dir) == []


def test_multi_worker_message_says_what_to_use_instead(make_config, cli):
    result = cli("validate", make_config({"distribution": {"strategy": "multi_worker_mirrored"}}))
    assert result.exit_code == 2
    assert "Use `mirrored`" in result.stderr and "cbrun sweep --backend ray" in result.stderr
