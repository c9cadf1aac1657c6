"""Predictions from a finished run's model, with the callbacks that joined the `predict` phase."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cbrun.core.console import make_console
from cbrun.core.importing import imports_from_run
from cbrun.inspect.report import refresh_report
from cbrun.run.build import build_callbacks
from cbrun.run.evaluate import load_run


def predict_run(
    run_dir: Path,
    x: Any,
    checkpoint: str = "last",
    batch_size: int | None = None,
    *,
    unsafe: bool = False,
    allow_imports: bool = False,
    input_names: list[str] | None = None,
) -> Any:
    """`model.predict(x)` with a run's model, running its predict-phase callbacks.

    Args:
        run_dir: A run directory made by `cbrun train`.
        x: Inputs shaped like the run's training features.
        checkpoint: `last` (the final model), `best`, or a checkpoint file path.
        batch_size: Batch size; default: the run's `training.batch_size`.
        unsafe: Load a model that holds Python code (Keras' safe mode off).
        allow_imports: Import `module:function` code named in the run's saved config (such
            as `lambda` hooks), from the folder of the config it was trained from.
        input_names: The inputs' file names, if they are files (callbacks caption with them).

    Returns:
        The model's outputs as a NumPy array, one row per input.
    """
    run_dir = Path(run_dir)
    with imports_from_run(run_dir, allow_imports):
        config, dataset, model, _ = load_run(run_dir, checkpoint, unsafe=unsafe)
        callbacks = build_callbacks(
            config, run_dir, dataset, "predict", inputs=x, input_names=input_names
        )
    outputs = model.predict(
        x, batch_size=batch_size or config.training.batch_size, verbose=0, callbacks=callbacks
    )
    if callbacks:  # what they drew (saliency maps of the inputs, ...) belongs in the report
        try:
            refresh_report(run_dir)
        except Exception as error:  # noqa: BLE001 - the predictions are what was asked for
            make_console(stderr=True).print(
                f"[yellow]warning:[/] report.html not rewritten: {type(error).__name__}: {error}"
            )
    return outputs
