"""Several experiment files merged in order, and `--set` with the key paths cbrun prints."""

from __future__ import annotations

import json

import yaml

from conftest import TINY, merge, run_dirs

BASE = merge(
    TINY,
    {
        "callbacks": [
            {"type": "early_stopping", "patience": 2},
            {"type": "csv_logger"},
        ]
    },
)


def write(path, data):
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def resolved(cli, *args):
    result = cli("validate", *args)
    assert result.exit_code == 0, result.stderr
    return yaml.safe_load(result.stdout)


def test_later_files_merge_mappings_and_replace_lists(cli, tmp_path):
    base = write(tmp_path / "base.yaml", BASE)
    small = write(tmp_path / "small.yaml", {"data": {"samples": 120}, "model": {"units": [4]}})
    config = resolved(cli, base, small)
    assert config["data"]["samples"] == 120 and config["data"]["features"] == 8
    assert config["model"]["units"] == [4]
    assert [c["type"] for c in config["callbacks"]] == ["early_stopping", "csv_logger"]


def test_a_later_callbacks_list_replaces_and_a_mapping_patches_or_appends(cli, tmp_path):
    base = write(tmp_path / "base.yaml", BASE)
    replace = write(tmp_path / "replace.yaml", {"callbacks": [{"type": "terminate_on_nan"}]})
    assert [c["type"] for c in resolved(cli, base, replace)["callbacks"]] == ["terminate_on_nan"]
    patch = write(
        tmp_path / "patch.yaml",
        {
            "callbacks": {
                "early_stopping": {"patience": 7},
                "append": [{"type": "terminate_on_nan"}],
            }
        },
    )
    callbacks = resolved(cli, base, patch)["callbacks"]
    assert [c["type"] for c in callbacks] == ["early_stopping", "csv_logger", "terminate_on_nan"]
    assert callbacks[0]["patience"] == 7


def test_errors_name_the_file_and_line_the_bad_value_came_from(cli, tmp_path):
    base = write(tmp_path / "base.yaml", BASE)
    later = tmp_path / "later.yaml"
    later.write_text("training:\n  epochs: 3\n  batch_size: -1\n")
    result = cli("validate", base, later)
    assert result.exit_code == 2
    assert f"{later}:3: training.batch_size" in result.stderr, result.stderr
    patched = tmp_path / "patched.yaml"
    patched.write_text("callbacks:\n  early_stopping:\n    patience: -4\n")
    result = cli("validate", base, patched)
    assert result.exit_code == 2
    assert f"{patched}:3: callbacks[0].patience" in result.stderr, result.stderr


def test_patching_a_callback_type_that_is_absent_names_the_types(cli, tmp_path):
    base = write(tmp_path / "base.yaml", BASE)
    patch = write(tmp_path / "patch.yaml", {"callbacks": {"early_stoping": {"patience": 1}}})
    result = cli("validate", base, patch)
    assert result.exit_code == 2
    assert "no callback of type `early_stoping`" in result.stderr
    assert "Did you mean `early_stopping`?" in result.stderr


def test_set_takes_printed_key_paths_and_creates_missing_sections(cli, tmp_path):
    base = write(tmp_path / "base.yaml", merge(BASE, {"compile": None}))
    config = resolved(
        cli,
        base,
        "--set",
        "callbacks[0].patience=9",
        "--set",
        "compile.optimizer.learning_rate=0.01",
    )
    assert config["callbacks"][0]["patience"] == 9
    assert config["compile"]["optimizer"]["learning_rate"] == 0.01
    result = cli("validate", base, "--set", "trainig.epochs=3")
    assert result.exit_code == 2
    assert "--set trainig.epochs=3: trainig: unknown key `trainig`" in result.stderr
    assert "Did you mean `training`?" in result.stderr


def test_a_run_from_several_files_records_them_and_saves_the_merged_config(cli, tmp_path, runs_dir):
    base = write(tmp_path / "base.yaml", merge(BASE, {"output": {"runs_dir": str(runs_dir)}}))
    short = write(tmp_path / "short.yaml", {"training": {"epochs": 1}})
    result = cli("train", base, short, "-q")
    assert result.exit_code == 0, result.stderr
    (run,) = run_dirs(runs_dir)
    record = json.loads((run / "run.json").read_text())
    assert record["config_files"] == [str(base.resolve()), str(short.resolve())]
    assert record["epochs_completed"] == 1
    assert yaml.safe_load((run / "config.yaml").read_text())["training"]["epochs"] == 1


def test_version_names_cbrun_tensorflow_keras_and_python(cli):
    result = cli("--version")
    assert result.exit_code == 0
    names = [line.split()[0] for line in result.stdout.splitlines()]
    assert names == ["cbrun", "tensorflow", "keras", "python"]


def test_a_sweep_of_several_files_trains_every_trial_on_the_merged_config(cli, tmp_path):
    base = write(tmp_path / "base.yaml", merge(BASE, {"output": {"runs_dir": str(tmp_path)}}))
    small = write(tmp_path / "small.yaml", {"data": {"samples": 120}, "training": {"epochs": 1}})
    result = cli("sweep", base, small, "--grid", "compile.optimizer.learning_rate=0.01,0.02")
    assert result.exit_code == 0, result.stderr
    sweep_dir = tmp_path / result.stdout.strip()
    record = json.loads((sweep_dir / "sweep.json").read_text())
    assert record["configs"] == [str(base.resolve()), str(small.resolve())]
    for trial in record["trials"]:
        run = sweep_dir / trial["run_dir"]
        config = yaml.safe_load((run / "config.yaml").read_text())
        assert config["data"]["samples"] == 120 and config["training"]["epochs"] == 1
        assert json.loads((run / "run.json").read_text())["config_files"] == record["configs"]

    other = cli("sweep", base, "--resume", sweep_dir)
    assert other.exit_code == 2
    assert f"that sweep is of {base.resolve()} {small.resolve()}, not {base}" in other.stderr
