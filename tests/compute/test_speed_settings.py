"""Speed settings (steps_per_execution, jit_compile, precision, tf.data pipeline): checked up
front, applied to the real Keras run, and recorded in run.json."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from conftest import TINY, merge, run_dirs


@pytest.mark.parametrize(
    ("training", "key_path"),
    [
        ({"steps_per_execution": 0}, "training.steps_per_execution"),
        ({"jit_compile": "sometimes"}, "training.jit_compile"),
        ({"precision": "float16"}, "training.precision"),
        ({"pipeline": {"prefetch": 0}}, "training.pipeline.prefetch"),
        ({"pipeline": {"cache": "often"}}, "training.pipeline.cache"),
        ({"pipeline": {"shuffle_bufer": 10}}, "training.pipeline.shuffle_bufer"),
    ],
)
def test_bad_speed_settings_exit_2_naming_the_key(cli, make_config, runs_dir, training, key_path):
    result = cli("train", make_config({"training": training}))
    assert result.exit_code == 2
    assert key_path in result.stderr
    assert "Traceback" not in result.stderr
    assert run_dirs(runs_dir) == []


@pytest.fixture(scope="module")
def fast_runs(tmp_path_factory):
    """Two tiny runs: mixed float16 fed by a tf.data pipeline, and XLA with bfloat16."""
    from cbrun.run.train import train

    folder = tmp_path_factory.mktemp("speed")
    settings = {
        "pipeline": {
            "steps_per_execution": 3,
            "precision": "mixed_float16",
            "steps_per_epoch": 4,
            "epochs": 3,
            "pipeline": {"cache": True, "prefetch": 2, "threads": 1},
        },
        "xla": {"jit_compile": True, "precision": "mixed_bfloat16"},
    }
    results = {}
    for name, training in settings.items():
        path = folder / f"{name}.yaml"
        config = merge(TINY, {"training": training, "output": {"runs_dir": str(folder / "runs")}})
        path.write_text(yaml.safe_dump(config))
        results[name] = train(path, quiet=True)
    return results


def test_pipeline_run_trains_every_epoch_and_records_its_settings(fast_runs):
    result = fast_runs["pipeline"]
    record = json.loads((result.run_dir / "run.json").read_text())
    assert record["status"] == "completed"
    assert record["epochs_completed"] == 3  # steps_per_epoch over a finite tf.data pipeline
    assert record["speed"] == {
        "steps_per_execution": 3,
        "steps_per_execution_chosen_by": "training.steps_per_execution",
        "jit_compile": False,
        "precision": "mixed_float16",
        "input": "cbrun tf.data",
        "pipeline": {
            "shuffle_buffer": None,
            "cache": True,
            "prefetch": 2,
            "deterministic": True,
            "threads": 1,
        },
    }
    assert "val_loss" in record["final_metrics"]
    assert record["test_metrics"]["accuracy"] > 0


def test_mixed_precision_computes_in_half_precision_with_a_float32_output(fast_runs):
    import keras

    model = keras.saving.load_model(fast_runs["pipeline"].run_dir / "model.keras")
    hidden, output = model.get_layer("dense_0"), model.get_layer("output")
    assert hidden.compute_dtype == "float16" and hidden.variable_dtype == "float32"
    assert output.compute_dtype == "float32"
    assert model.predict(np.zeros((2, 8), "float32"), verbose=0).dtype == np.float32
    assert keras.mixed_precision.global_policy().name == "float32"  # restored after building


def test_xla_run_records_jit_compile_and_bfloat16(fast_runs):
    record = json.loads((fast_runs["xla"].run_dir / "run.json").read_text())
    assert record["status"] == "completed"
    assert record["speed"]["jit_compile"] is True
    assert record["speed"]["precision"] == "mixed_bfloat16"
    assert record["speed"]["input"] == "keras arrays"


def test_pipeline_shuffles_each_epoch_and_keeps_order_when_not_shuffling():
    from cbrun.compute.speed import PipelineSection, batches

    x = np.arange(40, dtype="float32")[:, None]
    y = np.arange(40, dtype="int32")
    options = PipelineSection(cache=True)
    shuffled = batches((x, y), 8, options, shuffle=True, seed=1)
    first, second = ([int(v) for b in shuffled for v in b[1]] for _ in range(2))
    assert sorted(first) == sorted(second) == list(range(40))
    assert first != second and first != list(range(40))
    ordered = batches((x, y), 8, options, shuffle=False, seed=1)
    assert [int(v) for b in ordered for v in b[1]] == list(range(40))
    buffered = batches((x, y), 16, PipelineSection(shuffle_buffer=10), shuffle=True, seed=1)
    assert sorted(int(v) for b in buffered for v in b[1]) == list(range(40))
