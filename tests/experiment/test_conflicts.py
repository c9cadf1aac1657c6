"""Callback conflicts are config errors: exit 2, a message saying what to change, no run dir."""

import pytest

from conftest import run_dirs

COSINE_DECAY = {"type": "cosine_decay", "initial_learning_rate": 0.01, "decay_steps": 100}
NO_VALIDATION = {"data": {"split": {"validation": 0.0, "test": 0.2}}}

# id: (updates to TINY, text the error must hold)
CONFLICTS = {
    "plateau_with_optimizer_schedule": (
        {
            "compile": {"optimizer": {"learning_rate": COSINE_DECAY}},
            "callbacks": [{"type": "reduce_lr_on_plateau"}],
        },
        "callbacks[0]: `reduce_lr_on_plateau` sets the optimizer's learning rate each epoch, but "
        "compile.optimizer.learning_rate is a `cosine_decay` schedule, which Keras cannot change."
        " Use a number for compile.optimizer.learning_rate, or drop this callback.",
    ),
    "scheduler_with_optimizer_schedule": (
        {
            "compile": {"optimizer": {"learning_rate": COSINE_DECAY}},
            "callbacks": [{"type": "learning_rate_scheduler", "schedule": {"type": "exponential"}}],
        },
        "callbacks[0]: `learning_rate_scheduler` sets the optimizer's learning rate each epoch",
    ),
    "scheduler_and_plateau_together": (
        {
            "callbacks": [
                {"type": "reduce_lr_on_plateau"},
                {"type": "learning_rate_scheduler", "schedule": {"type": "exponential"}},
            ]
        },
        "callbacks[1]: `learning_rate_scheduler` and callbacks[0] (`reduce_lr_on_plateau`) both "
        "set the learning rate",
    ),
    "val_monitor_without_validation_data": (
        {**NO_VALIDATION, "callbacks": [{"type": "early_stopping", "monitor": "val_loss"}]},
        "callbacks[0].monitor: `val_loss` needs validation data, but data.split.validation is 0 "
        "and there is no data.validation_path: set data.split.validation (e.g. 0.2) or use `loss`",
    ),
    "default_monitor_without_validation_data": (
        {**NO_VALIDATION, "callbacks": [{"type": "reduce_lr_on_plateau"}]},
        "callbacks[0].monitor: `val_loss` needs validation data",
    ),
    "metric_not_compiled": (
        {"callbacks": [{"type": "early_stopping", "monitor": "val_acc"}]},
        "callbacks[0].monitor: `val_acc` is not logged by this run. Did you mean `val_accuracy`? "
        "Available: loss, accuracy, val_loss, val_accuracy, learning_rate",
    ),
    "metric_of_another_task": (
        {
            "compile": {"metrics": ["accuracy", "SparseTopKCategoricalAccuracy"]},
            "callbacks": [{"type": "reduce_lr_on_plateau", "monitor": "val_mae"}],
        },
        "`val_mae` is not logged by this run. Available: loss, accuracy, "
        "SparseTopKCategoricalAccuracy, val_loss, val_accuracy, val_SparseTopKCategoricalAccuracy, "
        "learning_rate",
    ),
    "checkpoint_template_names_an_unlogged_metric": (
        {
            "callbacks": [
                {"type": "model_checkpoint", "filepath": "ckpt/{epoch}-{val_acc:.2f}.keras"}
            ]
        },
        "callbacks[0].filepath: `val_acc` is not logged by this run. Did you mean `val_accuracy`?",
    ),
    "checkpoint_suffix_keras_rejects": (
        {"callbacks": [{"type": "model_checkpoint", "filepath": "checkpoints/best.ckpt"}]},
        "filepath must end with `.keras` (or `.h5`) to save the whole model (got "
        "`checkpoints/best.ckpt`); set save_weights_only: true for `.weights.h5`",
    ),
    "weights_only_checkpoint_without_weights_suffix": (
        {
            "callbacks": [
                {"type": "model_checkpoint", "filepath": "best.keras", "save_weights_only": True}
            ]
        },
        "filepath must end with `.weights.h5` when save_weights_only is true (got `best.keras`)",
    ),
    "two_csv_loggers_one_file": (
        {"callbacks": [{"type": "csv_logger"}, {"type": "csv_logger", "filename": "./log.csv"}]},
        "callbacks[1] (`csv_logger`) writes `./log.csv`, which clashes with `log.csv` of "
        "callbacks[0] (`csv_logger`): give it another path",
    ),
    "two_checkpoints_one_template": (
        {"callbacks": [{"type": "model_checkpoint"}, {"type": "model_checkpoint"}]},
        "callbacks[1] (`model_checkpoint`) writes `checkpoints/epoch{epoch:03d}.keras`, which "
        "clashes with `checkpoints/epoch{epoch:03d}.keras` of callbacks[0]",
    ),
    "file_inside_the_tensorboard_folder": (
        {
            "callbacks": [
                {"type": "tensorboard"},
                {"type": "csv_logger", "filename": "tensorboard/e.csv"},
            ]
        },
        "callbacks[1] (`csv_logger`) writes `tensorboard/e.csv`, which clashes with `tensorboard/`"
        " of callbacks[0] (`tensorboard`)",
    ),
    "checkpoint_inside_the_backup_folder": (
        {
            "callbacks": [
                {"type": "model_checkpoint", "filepath": "backup/best.keras"},
                {"type": "backup_and_restore", "backup_dir": "backup"},
            ]
        },
        "callbacks[1] (`backup_and_restore`) writes `backup/`, which clashes with "
        "`backup/best.keras` of callbacks[0] (`model_checkpoint`)",
    ),
    "callback_overwrites_a_run_file": (
        {"callbacks": [{"type": "csv_logger", "filename": "history.csv"}]},
        "callbacks[0] (`csv_logger`) writes `history.csv`, which clashes with `history.csv` of "
        "cbrun's own run files",
    ),
    "checkpoint_in_cbruns_state_folder": (
        {"callbacks": [{"type": "model_checkpoint", "filepath": "state/model.keras"}]},
        "callbacks[0] (`model_checkpoint`) writes `state/model.keras`, which clashes with "
        "`state/` of cbrun's own run files",
    ),
    "swap_ema_weights_without_ema": (
        {"callbacks": [{"type": "swap_ema_weights"}]},
        "callbacks[0]: `swap_ema_weights` needs an optimizer that keeps an exponential moving "
        "average of the weights: set compile.optimizer.use_ema: true, or drop this callback",
    ),
    "auc_on_a_multiclass_head": (
        {"compile": {"metrics": ["accuracy", "auc"]}},
        "compile.metrics[1]: `auc` cannot score this classification model: it outputs one "
        "probability per class and the labels are class indices (Keras would fail mid-run); use "
        "accuracy, sparse_categorical_accuracy, sparse_top_k_categorical_accuracy",
    ),
    "a_keras_class_name_is_judged_too": (
        {"compile": {"metrics": ["Precision"]}},
        "compile.metrics[0]: `Precision` cannot score this classification model",
    ),
    "one_hot_loss_for_class_indices": (
        {"compile": {"loss": "categorical_crossentropy"}},
        "compile.loss: `categorical_crossentropy` cannot score this classification model",
    ),
    "class_weight_names_no_class_of_generated_data": (
        {"training": {"class_weight": {"cat": 2}}},
        "training.class_weight: `cat` is not a class. Classes: 0, 1, 2 (or their indices 0..2)",
    ),
    "class_weight_on_generated_regression": (
        {
            "data": {"type": "synthetic_regression", "classes": None},
            "training": {"class_weight": "balanced"},
        },
        "training.class_weight: the data is a regression task; class weights apply to "
        "classification only",
    ),
    "class_metric_on_regression": (
        {
            "data": {"type": "synthetic_regression", "classes": None},
            "compile": {"metrics": ["accuracy"]},
        },
        "compile.metrics[0]: `accuracy` scores classes, but this is a regression task; use mae, "
        "mse or root_mean_squared_error",
    ),
}


@pytest.mark.parametrize("case", list(CONFLICTS))
def test_conflict_fails_in_validate_and_train_alike(case, make_config, cli, runs_dir):
    updates, message = CONFLICTS[case]
    config = make_config(updates)
    validated, trained = cli("validate", config), cli("train", config)
    for result in (validated, trained):
        assert result.exit_code == 2
        assert message in result.stderr
        assert result.stderr.startswith("error: ") and "Traceback" not in result.stderr
    assert validated.stderr == trained.stderr  # one code path: the same words
    assert run_dirs(runs_dir) == []


def test_a_task_the_data_decides_is_judged_once_the_data_is_read(tmp_path, make_config, cli):
    rows = "a,b,label\n" + "".join(f"{i},{i % 3},{'yes' if i % 2 else 'no'}\n" for i in range(30))
    (tmp_path / "table.csv").write_text(rows)
    data = {"type": "csv", "path": "table.csv", "target": "label"}
    data.update(dict.fromkeys(("samples", "features", "classes")))  # TINY's, removed
    config = make_config({"data": data, "compile": {"metrics": ["auc"]}})
    validated, trained = cli("validate", config), cli("train", config)
    for result in (validated, trained):
        assert result.exit_code == 2 and "Traceback" not in result.stderr
        assert "compile.metrics[0]: `auc` cannot score this classification model" in result.stderr
    assert validated.stderr == trained.stderr
    assert run_dirs(tmp_path / "runs") == []


def test_conflicts_name_the_file_and_line(make_config, cli):
    config = make_config({"callbacks": [{"type": "early_stopping", "monitor": "val_acc"}]})
    result = cli("validate", config)
    lines = config.read_text().splitlines()
    line = next(i for i, text in enumerate(lines, 1) if "monitor: val_acc" in text)
    assert result.stderr.startswith(f"error: {config}:{line}: callbacks[0].monitor:")


# Names Keras logs, which monitors may use: (updates to TINY, monitor)
ACCEPTED = {
    "accuracy": ({}, "accuracy"),
    "val_accuracy": ({}, "val_accuracy"),
    "loss": (NO_VALIDATION, "loss"),
    "learning_rate": ({}, "learning_rate"),
    "regression_default_metric": (
        {"data": {"type": "synthetic_regression", "classes": None}},
        "val_mae",
    ),
    "compiled_metric_by_its_name": (
        {
            "data": {"type": "synthetic_regression", "classes": None},
            "compile": {"metrics": ["mse"]},
        },
        "val_mse",
    ),
}


@pytest.mark.parametrize("case", list(ACCEPTED))
def test_monitors_keras_logs_are_accepted(case, make_config, cli):
    updates, monitor = ACCEPTED[case]
    callbacks = [{"type": "reduce_lr_on_plateau", "monitor": monitor}]
    result = cli("validate", make_config({**updates, "callbacks": callbacks}))
    assert result.exit_code == 0, result.stderr


def test_validation_file_counts_as_validation_data(tmp_path, make_config, cli):
    rows = "a,b,label\n" + "".join(f"{i},{i % 3},{i % 2}\n" for i in range(20))
    for name in ("train.csv", "val.csv"):
        (tmp_path / name).write_text(rows)
    data = {
        "type": "csv",
        "path": "train.csv",
        "validation_path": "val.csv",
        "target": "label",
        "split": {"validation": 0.0, "test": 0.0},
        **dict.fromkeys(("samples", "features", "classes")),  # TINY's, removed
    }
    callbacks = [{"type": "early_stopping", "monitor": "val_loss"}]
    result = cli("validate", make_config({"data": data, "callbacks": callbacks}))
    assert result.exit_code == 0, result.stderr


def test_files_in_different_folders_do_not_clash(make_config, cli):
    callbacks = [
        {"type": "tensorboard", "log_dir": "tb"},
        {"type": "csv_logger", "filename": "tb_log.csv"},
        {"type": "backup_and_restore"},
        {"type": "model_checkpoint", "filepath": "checkpoints/last.keras"},
    ]
    assert cli("validate", make_config({"callbacks": callbacks})).exit_code == 0


# Data `train` refuses once it has read it, and `validate` with it (the same data checks):
# id: (files to write, data section, expected text). Files: name -> text, or arrays for .npz.
ROWS = range(30)
TABLE = {"samples": None, "features": None, "classes": None}  # TINY's, removed


def _table(cell) -> str:
    return "a,b,label\n" + "".join(f"{i},{cell(i, 'b')},{cell(i, 'label')}\n" for i in ROWS)


def _npz(y, x=None):
    import numpy as np

    rng = np.random.default_rng(0)
    return {"x": rng.normal(size=(30, 4)) if x is None else x, "y": np.asarray(y)}


def _one_hot():
    import numpy as np

    return np.eye(3)[np.arange(30) % 3]


def _with_gaps(task_values):
    import numpy as np

    y = np.asarray(task_values, dtype=float)
    y[[4, 11]] = np.nan
    return y


GOOD = _table(lambda i, col: i % 3 if col == "b" else i % 2)
BAD_DATA = {
    "csv_missing_cells": (
        {"t.csv": _table(lambda i, col: "" if (i, col) == (4, "b") else i % 2)},
        {"type": "csv", "path": "t.csv", "target": "label"},
        "data.path: missing cells in {dir}/t.csv: `b` (line 6)",
    ),
    "csv_single_class": (
        {"t.csv": _table(lambda i, col: "yes" if col == "label" else i)},
        {"type": "csv", "path": "t.csv", "target": "label"},
        "data.target: `label` in {dir}/t.csv holds one class only (yes); classification needs "
        "two or more",
    ),
    "csv_test_file_lacks_a_feature": (
        {"t.csv": GOOD, "test.csv": "a,label\n" + "".join(f"{i},{i % 2}\n" for i in ROWS)},
        {"type": "csv", "path": "t.csv", "test_path": "test.csv", "target": "label"},
        "data.test_path: {dir}/test.csv has no column `b`, a feature of {dir}/t.csv.",
    ),
    "csv_target_with_gaps": (
        {"t.csv": _table(lambda i, col: "" if col == "label" and i in (3, 9) else i * 0.5)},
        {"type": "csv", "path": "t.csv", "target": "label", "task": "regression"},
        "data.target: `label` is empty in {dir}/t.csv: lines 5, 11",
    ),
    "csv_number_beyond_float32": (
        {"t.csv": _table(lambda i, col: "1e300" if (i, col) == (3, "b") else i % 2)},
        {"type": "csv", "path": "t.csv", "target": "label", "missing": "impute"},
        "data.path: column `b` holds infinite values in {dir}/t.csv (or numbers beyond "
        "float32's 3.4e38): line 5 (first value '1e+300')",
    ),
    "csv_target_among_the_features": (
        {"t.csv": GOOD},
        {"type": "csv", "path": "t.csv", "target": "label", "features": ["a", "label"]},
        "data.features: lists `label`, which is the target: the model would see it",
    ),
    "class_weight_of_no_class": (
        {"t.csv": GOOD},
        {"type": "csv", "path": "t.csv", "target": "label", "class_weight": {"cat": 2}},
        "training.class_weight: `cat` is not a class. Classes: 0, 1",
    ),
    "npz_one_hot_labels": (
        {"d.npz": _npz(_one_hot())},
        {"type": "npz", "path": "d.npz"},
        "data: {dir}/d.npz: the labels have shape [30, 3] (one-hot, or several labels per "
        "sample); classification takes one class index per sample: save `y.argmax(axis=1)`",
    ),
    "npz_one_feature_as_a_1d_array": (
        {"d.npz": _npz(list(ROWS), x=[float(i) for i in ROWS])},
        {"type": "npz", "path": "d.npz", "task": "regression"},
        "data: {dir}/d.npz: the features have shape [30], one number per sample",
    ),
    "npz_samples_without_features": (
        {"d.npz": _npz(list(ROWS), x=[[] for _ in ROWS])},
        {"type": "npz", "path": "d.npz", "task": "regression"},
        "data: {dir}/d.npz: the samples have no features (shape [30, 0])",
    ),
    "npz_targets_beyond_float32": (
        {"d.npz": _npz([i * 1e39 for i in ROWS])},
        {"type": "npz", "path": "d.npz", "task": "regression"},
        "data: {dir}/d.npz: 29 targets are missing or not finite, or beyond float32",
    ),
    "npz_validation_file_of_another_shape": (
        {"d.npz": _npz([i % 3 for i in ROWS]), "v.npz": _npz([0, 1] * 15, x=[[1.0] * 3] * 30)},
        {"type": "npz", "path": "d.npz", "validation_path": "v.npz"},
        "data.validation_path: {dir}/v.npz has samples of shape [3], but {dir}/d.npz has [4]",
    ),
    "npz_single_class": (
        {"d.npz": _npz([0] * 30)},
        {"type": "npz", "path": "d.npz"},
        "data.y: `y` in {dir}/d.npz: the training labels hold class 0 only; classification "
        "needs two or more classes",
    ),
    "npz_labels_that_are_ids_not_indices": (
        {"d.npz": _npz([(i % 2) * 10**9 for i in ROWS])},
        {"type": "npz", "path": "d.npz"},
        "data.y: `y` in {dir}/d.npz: 1,000,000,001 classes (labels go up to 1,000,000,000, 2 "
        "of them used), more than the 100,000 a classification head takes",
    ),
    "npz_targets_with_gaps": (
        {"d.npz": _npz(_with_gaps([i * 0.1 for i in ROWS]))},
        {"type": "npz", "path": "d.npz", "task": "regression"},
        "data: {dir}/d.npz: 2 targets are missing or not finite, or beyond float32 (samples 4, 11, "
        "counted from 0)",
    ),
    "npz_labels_with_gaps": (
        {"d.npz": _npz(_with_gaps([i % 3 for i in ROWS]))},
        {"type": "npz", "path": "d.npz"},
        "data: {dir}/d.npz: 2 labels are missing or not finite, or beyond float32 (samples 4, 11, "
        "counted from 0)",
    ),
    "import_one_hot_labels": (
        {
            "onehot_data.py": "import numpy as np\n\ndef load():\n"
            "    return np.ones((30, 4)), np.eye(3)[np.arange(30) % 3]\n"
        },
        {"type": "import", "function": "onehot_data:load"},
        "data.function (onehot_data:load): the labels have shape [30, 3]",
    ),
}


def _write(folder, files) -> None:
    import numpy as np

    for name, content in files.items():
        if name.endswith(".npz"):
            np.savez(folder / name, **content)
        else:
            (folder / name).write_text(content)


@pytest.mark.parametrize("case", list(BAD_DATA))
def test_data_that_cannot_train_fails_in_validate_and_train_alike(
    case, tmp_path, make_config, cli, runs_dir
):
    files, data, message = BAD_DATA[case]
    _write(tmp_path, files)
    data = dict(data)
    training = {"class_weight": data.pop("class_weight")} if "class_weight" in data else {}
    config = make_config({"data": {**TABLE, "split": None, **data}, "training": training})
    validated, trained = cli("validate", config), cli("train", config)
    for result in (validated, trained):
        assert result.exit_code == 2, result.stderr
        assert message.format(dir=tmp_path) in result.stderr, result.stderr
        assert result.stderr.startswith(f"error: {config}:") and "Traceback" not in result.stderr
    assert validated.stderr == trained.stderr  # one code path: the same words
    assert run_dirs(runs_dir) == []


def test_a_column_of_class_indices_is_one_label_per_sample(tmp_path, make_config, cli):
    import numpy as np

    _write(tmp_path, {"d.npz": _npz((np.arange(30) % 3)[:, None])})
    config = make_config({"data": {**TABLE, "type": "npz", "path": "d.npz"}})
    result = cli("validate", config)  # reads and splits (stratified) the data as train does
    assert result.exit_code == 0, result.stderr


def test_the_keras_names_validate_knows_are_the_installed_keras_names():
    """validate refuses unknown loss and metric names from a list, without Keras: the list
    is what the installed Keras resolves, no more and no less."""
    from cbrun.experiment.keras_names import LOSSES, METRICS
    from cbrun.run.build import import_keras

    keras = import_keras()

    def resolved(module, names) -> set[str]:
        found = set()
        for name in names:
            try:
                found |= {name} if module.get(name) is not None else set()
            except (ValueError, TypeError):
                pass
        return found

    for module, known in ((keras.losses, LOSSES), (keras.metrics, METRICS)):
        public = {n for n in dir(module) if not n.startswith("_")} - {"get", "serialize"}
        assert resolved(module, known) == set(known)  # each one resolves
        assert resolved(module, public) <= set(known)  # and none Keras offers is missing
