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
    result = cli("train", make_config({"data": data, "compile": {"metrics": ["auc"]}}))
    assert result.exit_code == 2 and "Traceback" not in result.stderr
    assert "compile.metrics[0]: `auc` cannot score this classification model" in result.stderr
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
