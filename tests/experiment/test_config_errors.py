"""Broken experiments are refused before anything runs: exit 2, where, what, no run directory.

Each case is a broken variant of the tiny config (or raw YAML text, or `--set` overrides, or a
broken data file). `at` is the text of the YAML line the message must point at (or the
`--set ...` override), and `says` are fragments the message must hold: the key path and what
was expected.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conftest import run_dirs

NO_SYNTHETIC = {"samples": None, "features": None, "classes": None}


def csv_data(path: str = "data.csv", **params: Any) -> dict[str, Any]:
    return {"data": {**NO_SYNTHETIC, "type": "csv", "path": path, "target": "label", **params}}


def npz_data(path: str = "arrays.npz", **params: Any) -> dict[str, Any]:
    return {"data": {**NO_SYNTHETIC, "type": "npz", "path": path, **params}}


def callback(**params: Any) -> dict[str, Any]:
    return {"callbacks": [params]}


@dataclass
class Case:
    id: str
    updates: dict[str, Any] = field(default_factory=dict)
    at: str = ""  # text on the line the message names, or the `--set ...` it names
    says: tuple[str, ...] = ()
    text: str | None = None  # raw YAML instead of TINY + updates
    overrides: tuple[str, ...] = ()


CASES = [
    # YAML itself
    Case("yaml-unclosed-flow", text="experiment: {name: x\ndata: 1\n", at="data: 1",
         says=("invalid YAML", "expected ',' or '}'")),
    Case("yaml-tab-indent", text="experiment:\n\tname: x\n", at="\tname: x",
         says=("invalid YAML", "'\\t'")),
    Case("yaml-bad-indent", text="experiment:\n  name: x\n seed: 1\n", at=" seed: 1",
         says=("invalid YAML",)),
    Case("yaml-duplicate-section", text="experiment: {name: a}\nexperiment: {name: b}\n",
         at="experiment: {name: b}", says=("duplicate key `experiment`", "first defined on line")),
    Case("yaml-python-object", text="experiment: !!python/object/apply:os.getcwd []\n",
         at="experiment:", says=("!!python/object/apply:os.getcwd", "never construct Python")),
    Case("yaml-python-name", text="experiment: {name: a}\nmodel: !!python/name:os.system\n",
         at="model:", says=("!!python/name:os.system", "not allowed")),
    Case("yaml-top-level-list", text="- experiment\n- data\n", at="- experiment",
         says=("expected a mapping of sections",)),
    # unknown keys and names
    Case("unknown-section", {"trainng": {"epochs": 3}}, at="trainng:",
         says=("trainng: unknown key", "Did you mean `training`?")),
    Case("unknown-training-key", {"training": {"epoch": 3}}, at="epoch: 3",
         says=("training.epoch: unknown key", "Did you mean `epochs`?")),
    Case("unknown-data-type", {"data": {"type": "synthetic_clasification"}},
         at="type: synthetic_clasification",
         says=("data.type: unknown dataset", "Did you mean `synthetic_classification`?")),
    Case("missing-data-type", {"data": {"type": None}}, at="data:",
         says=("data: missing `type:`", "synthetic_classification")),
    Case("unknown-model-type", {"model": {"type": "mlpp"}}, at="type: mlpp",
         says=("model.type: unknown model", "Did you mean `mlp`?")),
    Case("missing-model", {"model": None}, at="experiment:", says=("model: required key",)),
    Case("unknown-callback", callback(type="early_stoping"), at="- type: early_stoping",
         says=("callbacks[0].type: unknown callback", "Did you mean `early_stopping`?")),
    Case("missing-callback-type", callback(patience=2), at="- patience: 2",
         says=("callbacks[0]: missing `type:`", "early_stopping")),
    Case("unknown-callback-param", callback(type="early_stopping", patiense=2),
         at="patiense: 2", says=("callbacks[0].patiense: unknown key", "`patience`")),
    Case("unknown-optimizer", {"compile": {"optimizer": {"name": "adamm"}}}, at="name: adamm",
         says=("compile.optimizer.name", "not one of", "Did you mean `adam`?")),
    Case("unknown-schedule", callback(type="learning_rate_scheduler", schedule={"type": "stepp"}),
         at="type: stepp", says=("callbacks[0].schedule.type: unknown schedule", "step_decay")),
    Case("unknown-loss", {"compile": {"loss": "sparse_categorical_crossentropyy"}},
         at="loss: sparse_categorical_crossentropyy",
         says=("compile.loss: unknown Keras loss", "`sparse_categorical_crossentropy`")),
    Case("unknown-metric", {"compile": {"metrics": ["acuracy"]}}, at="- acuracy",
         says=("compile.metrics[0]: unknown Keras metric", "Did you mean `accuracy`?")),
    # wrong types
    Case("epochs-not-a-number", {"training": {"epochs": "ten"}}, at="epochs: ten",
         says=("training.epochs", "valid integer")),
    Case("epochs-fraction", {"training": {"epochs": 2.5}}, at="epochs: 2.5",
         says=("training.epochs", "integer")),
    Case("shuffle-not-bool", {"training": {"shuffle": "sometimes"}}, at="shuffle: sometimes",
         says=("training.shuffle", "valid boolean")),
    Case("units-not-a-list", {"model": {"units": "wide"}}, at="units: wide",
         says=("model.units", "valid list")),
    Case("callbacks-not-a-list", {"callbacks": {"type": "csv_logger"}}, at="callbacks:",
         says=("callbacks", "valid list")),
    Case("section-not-a-mapping", {"training": 5}, at="training: 5",
         says=("training", "expected a mapping")),
    # numbers out of range
    Case("negative-patience", callback(type="early_stopping", patience=-1), at="patience: -1",
         says=("callbacks[0].patience", "greater than or equal to 0")),
    Case("plateau-factor-one", callback(type="reduce_lr_on_plateau", factor=1.0),
         at="factor: 1.0", says=("callbacks[0].factor", "less than 1")),
    Case("learning-rate-zero", {"compile": {"optimizer": {"learning_rate": 0}}},
         at="learning_rate: 0", says=("compile.optimizer.learning_rate", "greater than 0")),
    Case("learning-rate-negative", {"compile": {"optimizer": {"learning_rate": -0.1}}},
         at="learning_rate: -0.1", says=("compile.optimizer.learning_rate", "greater than 0")),
    Case("epochs-zero", {"training": {"epochs": 0}}, at="epochs: 0",
         says=("training.epochs", "greater than 0")),
    Case("batch-size-negative", {"training": {"batch_size": -8}}, at="batch_size: -8",
         says=("training.batch_size", "greater than 0")),
    Case("dropout-one", {"model": {"dropout": 1.0}}, at="dropout: 1.0",
         says=("model.dropout", "less than 1")),
    Case("seed-negative", {"experiment": {"seed": -1}}, at="seed: -1",
         says=("experiment.seed", "greater than or equal to 0")),
    Case("split-fraction-over-one", {"data": {"split": {"validation": 1.5}}},
         at="validation: 1.5", says=("data.split.validation", "less than 1")),
    Case("split-fractions-sum", {"data": {"split": {"validation": 0.6, "test": 0.5}}},
         at="split:", says=("data.split", "validation (0.6) + test (0.5)", "less than 1")),
    # names and paths that would leave the runs directory
    Case("name-climbs-out", {"experiment": {"name": "../elsewhere"}}, at="name: ../elsewhere",
         says=("experiment.name", "one folder inside the runs directory")),
    Case("name-absolute", {"experiment": {"name": "/tmp/elsewhere"}}, at="name: /tmp/elsewhere",
         says=("experiment.name", "starting with a letter or digit")),
    Case("checkpoint-climbs-out", callback(type="model_checkpoint", filepath="../up.keras"),
         at="filepath: ../up.keras", says=("callbacks[0].filepath", "climbs out with `..`")),
    Case("checkpoint-template-climbs-out",
         callback(type="model_checkpoint", filepath="{epoch}/../../up.keras"),
         at="filepath: '{epoch}/../../up.keras'", says=("callbacks[0].filepath", "climbs out")),
    Case("checkpoint-bad-template",
         callback(type="model_checkpoint", filepath="c/{epoch:02d.keras"),
         at="- type: model_checkpoint", says=("callbacks[0]", "bad template", "{epoch:02d")),
    Case("csv-log-absolute", callback(type="csv_logger", filename="/tmp/log.csv"),
         at="filename: /tmp/log.csv", says=("callbacks[0].filename", "relative to the run dir")),
    Case("tensorboard-climbs-out", callback(type="tensorboard", log_dir="../../tb"),
         at="log_dir: ../../tb", says=("callbacks[0].log_dir", "climbs out")),
    Case("checkpoint-weights-name-saves-a-model",
         callback(type="model_checkpoint", filepath="best.weights.h5"),
         at="- type: model_checkpoint", says=("names a weights file", "save_weights_only: true")),
    Case("mirrored-steps-per-execution",
         {"distribution": {"strategy": "mirrored", "cpu_devices": 2},
          "training": {"steps_per_execution": 4}},
         at="steps_per_execution: 4", says=("training.steps_per_execution", "use 1 or auto")),
    Case("epochs-yes", {"training": {"epochs": True}}, at="epochs: true",
         says=("training.epochs", "got the boolean `true`")),
    Case("learning-rate-inf", {"compile": {"optimizer": {"learning_rate": float("inf")}}},
         at="learning_rate: .inf", says=("learning_rate", "finite number")),
    # overrides
    Case("override-names-an-unknown-section", overrides=("trainingg.epochs=3",),
         at="--set trainingg.epochs=3", says=("unknown key `trainingg`", "Did you mean")),
    Case("override-names-no-item", overrides=("callbacks.3.patience=1",),
         updates=callback(type="csv_logger"), at="--set callbacks.3.patience=1",
         says=("callbacks[3]", "names no item", "1 item)")),
    Case("override-unknown-key", overrides=("training.epochz=3",), at="--set training.epochz=3",
         says=("training.epochz: unknown key", "Did you mean `epochs`?")),
    Case("override-out-of-range", overrides=("training.epochs=-1",),
         at="--set training.epochs=-1", says=("training.epochs", "greater than 0")),
    Case("override-not-key-value", overrides=("training.epochs",), at="--set training.epochs",
         says=("expected KEY=VALUE",)),
    Case("override-bad-yaml", overrides=("training.epochs=[3",), at="--set training.epochs=[3",
         says=("invalid YAML",)),
    # files and data
    Case("data-file-missing", csv_data("missing.csv"), at="path: missing.csv",
         says=("data.path", "file not found")),
    Case("data-file-is-a-folder", csv_data("."), at="path: .",
         says=("data.path", "expected a file, found a folder")),
    Case("data-file-is-a-device", csv_data("/dev/zero"), at="path: /dev/zero",
         says=("data.path", "expected a regular file, found a device, pipe or socket")),
    Case("csv-missing-target", csv_data(target="lable"), at="target: lable",
         says=("data.target", "no column `lable`", "Did you mean `label`?")),
    Case("csv-missing-feature", csv_data(features=["a", "c"]), at="features:",
         says=("data.features", "no column `c`", "Columns: a, b, label")),
    Case("csv-text-in-numeric-column", csv_data("text.csv", columns={"b": "numeric"}),
         at="path: text.csv", says=("data.path", "`b` is numeric but holds text", "line 2")),
    Case("csv-missing-cell", csv_data("gap.csv"), at="path: gap.csv",
         says=("data.path", "missing cells", "`b` (line 3)")),
    Case("csv-unknown-column-kind", csv_data(columns={"bb": "text"}), at="bb: text",
         says=("data.columns.bb", "no column `bb`", "Did you mean `b`?")),
    Case("csv-no-rows", csv_data("empty.csv"), at="path: empty.csv",
         says=("data.path", "no data rows")),
    Case("npz-labels-outside-classes", npz_data(num_classes=3), at="num_classes: 3",
         says=("data.num_classes", "go up to 4", "outside the 3 classes")),
    Case("npz-missing-array", npz_data(x="features"), at="x: features",
         says=("data.x", "no array `features`", "Arrays: x, y")),
    Case("npz-not-an-archive", npz_data("data.csv"), at="path: data.csv",
         says=("data.path", "not a .npz file")),
    Case("import-model-missing-module", {"model": {"type": "import", "units": None,
                                                   "function": "no_such_module:build"}},
         at="function: no_such_module:build", says=("model.function", "cannot import")),
]  # fmt: skip


@pytest.fixture
def data_files(tmp_path: Path) -> None:
    (tmp_path / "data.csv").write_text("a,b,label\n" + "1,2,x\n3,4,y\n" * 10)
    (tmp_path / "text.csv").write_text("a,b,label\n1,two,x\n3,4,y\n5,6,x\n")
    (tmp_path / "empty.csv").write_text("a,b,label\n")
    (tmp_path / "gap.csv").write_text("a,b,label\n1,2,x\n3,,y\n5,6,x\n")
    np.savez(tmp_path / "arrays.npz", x=np.zeros((30, 3)), y=np.arange(30) % 5)


def test_there_are_at_least_forty_cases():
    assert len(CASES) >= 40
    assert len({case.id for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_broken_config_is_refused(case, cli, make_config, runs_dir, data_files):
    if case.text is not None:
        config = make_config(text=case.text)
    else:
        config = make_config(case.updates)
    overrides = [arg for o in case.overrides for arg in ("--set", o)]
    result = cli("train", config, *overrides)
    assert cli("validate", config, *overrides).stderr == result.stderr  # one code path

    assert result.exit_code == 2, result.stderr
    message = result.stderr
    assert message.startswith("error: ") and "Traceback" not in message
    if case.at.startswith("--set "):
        assert case.at in message
    else:
        lines = config.read_text().splitlines()
        line = next(n for n, text in enumerate(lines, 1) if case.at in text)
        assert f"{config}:{line}" in message
    for fragment in case.says:
        assert fragment in message
    assert run_dirs(runs_dir) == []


def test_a_python_tag_constructs_nothing(cli, make_config, tmp_path):
    target = tmp_path / "created-by-yaml"
    config = make_config(text=f"experiment: !!python/object/apply:os.mkdir ['{target}']\n")
    assert cli("validate", config).exit_code == 2
    assert not target.exists()
