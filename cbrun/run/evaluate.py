"""`cbrun eval`: re-evaluate a finished run from its directory."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from cbrun.core.console import format_number
from cbrun.core.errors import CbrunError
from cbrun.core.importing import imports_from_run
from cbrun.core.run_dir import (
    CONFIG_FILE,
    RUN_RECORD,
    create_exclusive,
    read_json,
    refuse_links,
    utc_now,
    write_json_atomic,
)
from cbrun.data.base import Dataset, split_size
from cbrun.experiment.config import load_config
from cbrun.inspect.plots import PLOTS_DIR
from cbrun.inspect.report import refresh_report
from cbrun.inspect.show import evaluation_tables
from cbrun.run.build import build_callbacks, build_dataset, build_model, import_keras
from cbrun.run.data_check import check_data
from cbrun.run.model_file import load_model_file
from cbrun.run.new_data import new_data_overrides, new_dataset
from cbrun.run.scores import analyse
from cbrun.run.train import MODEL_FILE


@dataclass
class EvalResult:
    path: Path
    metrics: dict[str, float]
    split: str
    checkpoint: str
    details: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    data: Path | None = None

    def table(self) -> Group:
        """The metrics, then the per-class table and confusion matrix (or regression errors)."""
        title = f"{self.split} metrics of {self.checkpoint}"
        if self.data is not None:
            title = f"metrics of {self.checkpoint} on {self.data}"
        table = Table(title=title)
        table.add_column("metric")
        table.add_column("value", justify="right")
        for name, value in self.metrics.items():
            table.add_row(name, format_number(value))
        warnings = [Text(f"warning: {w}", style="yellow") for w in self.warnings]
        return Group(table, *evaluation_tables(self.details), *warnings)


def evaluate_run(
    run_dir: Path,
    checkpoint: str = "last",
    split: str = "test",
    *,
    unsafe: bool = False,
    allow_imports: bool = False,
    allow_changed_data: bool = False,
    data: Path | None = None,
) -> EvalResult:
    """Rebuild the run's data, load a checkpoint in safe mode, evaluate, record the result.

    Code named in the run's config is imported only with `allow_imports` (see
    `cbrun.core.importing.imports_from_run`); a model holding code loads only with `unsafe`.
    Data changed since training is refused unless `allow_changed_data` (then the eval file
    says what changed). `data`: evaluate on all of this new labelled file or folder instead.
    """
    changes = [] if data is not None else check_data(run_dir, _record(run_dir), allow_changed_data)
    with imports_from_run(run_dir, allow_imports):
        config, dataset, model, path = load_run(run_dir, checkpoint, unsafe=unsafe, data=data)
        part = "train" if data is not None else split  # new data is one split, held in `train`
        if getattr(dataset, part) is None:
            raise CbrunError(f"{run_dir}: the run's data has no {split} split")
        evaluated = split if data is None else "data"
        callbacks = build_callbacks(config, run_dir, dataset, "evaluate", evaluated=evaluated)
    metrics = model.evaluate(
        **dataset.feed(part, config.training.batch_size),
        verbose=0,
        return_dict=True,
        callbacks=callbacks,
    )
    shown = str(path.relative_to(run_dir)) if path.is_relative_to(run_dir) else str(path)
    what = split if data is None else f"data-{data.resolve().stem}"
    out = create_exclusive(run_dir, f"eval-{what}-{Path(shown).stem.replace('.', '_')}", ".json")
    details, warnings = analyse(
        model, dataset, part, config.training.batch_size, run_dir, f"{PLOTS_DIR}/{out.stem}"
    )
    result: dict[str, Any] = {
        "split": split if data is None else "data",
        "checkpoint": shown,
        "metrics": {k: float(v) for k, v in metrics.items()},
        "samples": split_size(getattr(dataset, part)),
        "evaluated_at": utc_now(),
    }
    if data is not None:
        fingerprint = dataset.record.get("fingerprint") or {}
        result["data"] = {"path": str(data.resolve()), "fingerprint": fingerprint}
    if changes:
        result["data_changed"] = changes
        warnings.append(f"the data changed since training: {'; '.join(changes)}")
    write_json_atomic(out, {**result, **details})
    try:  # the report shows every evaluation; failing to redraw it loses none
        refresh_report(run_dir)
    except Exception as error:  # noqa: BLE001 - any failure here becomes a warning
        warnings.append(f"report.html not rewritten: {type(error).__name__}: {error}")
    return EvalResult(out, result["metrics"], result["split"], shown, details, warnings, data)


def _record(run_dir: Path) -> dict[str, Any]:
    """run.json, or {} if it is missing or damaged (then there is no fingerprint to check)."""
    try:
        return read_json(run_dir / RUN_RECORD)
    except CbrunError:
        return {}


def load_run(
    run_dir: Path, checkpoint: str = "last", *, unsafe: bool = False, data: Path | None = None
) -> tuple[Any, Dataset, Any, Path]:
    """A run's config, its rebuilt data (or the new labelled `data`), and the model of
    `checkpoint` (safe mode unless unsafe).

    A weights-only checkpoint rebuilds the model from the config, which for an `import` model
    imports code: callers wrap this in `cbrun.core.importing.imports_from_run`, as evaluate_run and
    prediction.predict_run do.
    """
    if not (run_dir / CONFIG_FILE).is_file():
        raise CbrunError(f"{run_dir}: not a run directory (no {CONFIG_FILE})")
    refuse_links(run_dir, "cbrun")  # eval files, plots, callbacks' logs: none through a link
    overrides = [] if data is None else new_data_overrides(run_dir, data)
    config, _ = load_config(run_dir / CONFIG_FILE, overrides)
    import_keras(config.experiment.seed)
    dataset = build_dataset(config) if data is None else new_dataset(config, run_dir, data)
    path, weights_only = _checkpoint_path(run_dir, checkpoint)
    if weights_only:
        model = build_model(config, dataset)
        model.load_weights(path)
    else:
        model = load_model_file(path, unsafe=unsafe)
    return config, dataset, model, path


def _checkpoint_path(run_dir: Path, checkpoint: str) -> tuple[Path, bool]:
    if checkpoint == "last":
        return _existing(run_dir / MODEL_FILE), False
    if checkpoint == "best":
        record: dict[str, Any] = read_json(run_dir / RUN_RECORD)
        best = (record.get("checkpoints") or {}).get("best")
        if not best:
            raise CbrunError(
                f"{run_dir}: no best checkpoint recorded "
                "(add a model_checkpoint callback with save_best_only: true)"
            )
        return _existing(run_dir / best), bool(record["checkpoints"].get("best_weights_only"))
    path = Path(checkpoint)
    if not path.is_absolute() and not path.exists():
        path = run_dir / path
    return _existing(path), path.name.endswith(".weights.h5")


def _existing(path: Path) -> Path:
    if not path.is_file():
        raise CbrunError(f"{path}: checkpoint not found")
    return path
