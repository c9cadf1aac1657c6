"""The `cbrun` command line. Light commands never import TensorFlow; heavy ones import it late."""

from __future__ import annotations

import errno
import json
import os
import sys
import traceback
from pathlib import Path
from typing import Annotated, Optional

import typer

from cbrun.core.errors import CbrunError

app = typer.Typer(
    name="cbrun",
    help="Run Keras experiments described in YAML: validate, train, evaluate, inspect.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

ConfigArg = Annotated[
    list[Path],
    typer.Argument(
        help="Experiment YAML file(s); later files merge over earlier ones.", show_default=False
    ),
]
SetOption = Annotated[
    Optional[list[str]],  # noqa: UP045 - typer reads this annotation at run time on 3.10
    typer.Option(
        "--set", "-s", help="Override a key, e.g. --set training.epochs=3 (value read as YAML)."
    ),
]
RunDirArg = Annotated[Path, typer.Argument(help="A run directory made by `cbrun train`.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
UnsafeOption = Annotated[
    bool,
    typer.Option(
        "--unsafe",
        help="Load a saved model that holds Python code (e.g. a Lambda layer): runs that code.",
    ),
]
AllowImportsOption = Annotated[
    bool,
    typer.Option(
        "--allow-imports",
        help="Import `module:function` code named in the run directory's saved config.",
    ),
]
AllowChangedDataOption = Annotated[
    bool,
    typer.Option(
        "--allow-changed-data",
        help="Go on with data files that changed since the run trained (the change is recorded).",
    ),
]


def _versions(value: bool) -> None:
    if not value:
        return
    from importlib.metadata import PackageNotFoundError, version
    from platform import python_version

    def installed(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "not installed"

    # Read from package metadata: importing TensorFlow to ask would take seconds.
    _stdout(
        f"cbrun {installed('cbrun')}\ntensorflow {installed('tensorflow')}\n"
        f"keras {installed('keras')}\npython {python_version()}"
    )
    raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_versions,
            is_eager=True,
            help="Print cbrun, TensorFlow, Keras and Python versions.",
        ),
    ] = False,
) -> None:
    """Run Keras experiments described in YAML: validate, train, evaluate, inspect."""


def _stdout(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


@app.command()
def train(
    config: Annotated[
        Optional[list[Path]],  # noqa: UP045
        typer.Argument(
            help="Experiment YAML file(s), later ones merged over earlier ones (not with "
            "--resume).",
            show_default=False,
        ),
    ] = None,
    set_: SetOption = None,
    smoke: Annotated[
        bool, typer.Option(help="CI smoke run: 1 epoch, 2 batches, 256 samples, all callbacks.")
    ] = False,
    runs_dir: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(help="Where to create the run directory (default: output.runs_dir)."),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the run dir.")] = False,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help="Print one JSON line (run dir, status, metrics, exit_code) instead of the run "
            "dir. Exit codes: 0 completed, 1 training failed, 2 invalid config or input, "
            "130/143 interrupted.",
        ),
    ] = False,
    resume: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(
            help="Continue this interrupted, failed or killed run directory from its last "
            "saved epoch; with --set training.epochs=N, train a run (a completed one too) "
            "for longer.",
            show_default=False,
        ),
    ] = None,
    unsafe: UnsafeOption = False,
    allow_imports: AllowImportsOption = False,
    allow_changed_data: AllowChangedDataOption = False,
) -> None:
    """Train an experiment and print the run directory it made (on stdout).

    Exit codes: 0 completed, 1 failed, 2 invalid config or input, 130/143 interrupted by
    Ctrl-C/SIGTERM (continue with --resume RUN_DIR).
    """
    try:
        trust = (unsafe, allow_imports, allow_changed_data)
        result = _train_or_resume(config, set_ or [], smoke, runs_dir, quiet, resume, *trust)
    except CbrunError as error:
        if as_json:
            _stdout(
                json.dumps(
                    {
                        "path": None,
                        "status": "invalid",
                        "exit_code": error.exit_code,
                        "error": error.render(),
                    }
                )
            )
        raise
    if as_json:
        from cbrun.inspect.runs import read_run

        _stdout(json.dumps({**read_run(result.run_dir).row(), "exit_code": result.exit_code}))
    else:
        _stdout(str(result.run_dir))
    raise typer.Exit(result.exit_code)


def _train_or_resume(
    config: list[Path] | None,
    overrides: list[str],
    smoke: bool,
    runs_dir: Path | None,
    quiet: bool,
    resume: Path | None,
    unsafe: bool,
    allow_imports: bool,
    allow_changed_data: bool,
):
    if resume is None:
        if not config:
            raise CbrunError("train: give an experiment file, or --resume RUN_DIR")
        if unsafe or allow_imports or allow_changed_data:
            raise CbrunError(
                "train: --unsafe, --allow-imports and --allow-changed-data apply only with --resume"
            )
        from cbrun.run.train import train as run_training

        return run_training(config, overrides, smoke=smoke, runs_dir=runs_dir, quiet=quiet)
    if config or smoke or runs_dir is not None:
        raise CbrunError(
            "train --resume: continues the run with its saved config; give no config file, "
            "--smoke or --runs-dir (--set training.epochs=N extends it)"
        )
    from cbrun.run.resume import resume_run

    return resume_run(
        resume,
        overrides,
        quiet=quiet,
        unsafe=unsafe,
        allow_imports=allow_imports,
        allow_changed_data=allow_changed_data,
    )


@app.command("eval")
def evaluate(
    run_dir: RunDirArg,
    checkpoint: Annotated[
        str, typer.Option(help="`last` (the final model), `best`, or a checkpoint file path.")
    ] = "last",
    split: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(help="`test` (the default) or `validation`.", show_default=False),
    ] = None,
    data: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(
            help="Evaluate on this new labelled data instead, laid out like the training data "
            "(a CSV with its columns, an NPZ with x/y, an image folder of its class folders).",
            show_default=False,
        ),
    ] = None,
    unsafe: UnsafeOption = False,
    allow_imports: AllowImportsOption = False,
    allow_changed_data: AllowChangedDataOption = False,
) -> None:
    """Re-evaluate a finished run; writes a new eval-*.json in its directory.

    The model loads in Keras' safe mode, and no code named in the run's config is imported,
    unless --unsafe / --allow-imports say you trust the run directory. Data that changed
    since training is refused unless --allow-changed-data.
    """
    if split not in (None, "test", "validation"):
        raise CbrunError(f"--split: expected `test` or `validation`, got `{split}`")
    if split is not None and data is not None:
        raise CbrunError("eval: --data is evaluated whole; give --split or --data, not both")
    from cbrun.core.console import make_console
    from cbrun.run.evaluate import evaluate_run

    result = evaluate_run(
        run_dir,
        checkpoint,
        split or "test",
        unsafe=unsafe,
        allow_imports=allow_imports,
        allow_changed_data=allow_changed_data,
        data=data,
    )
    make_console(stderr=True).print(result.table())
    _stdout(str(result.path))


@app.command()
def validate(config: ConfigArg, set_: SetOption = None) -> None:
    """Check an experiment file (or several, merged in order) and print it as resolved."""
    from cbrun.experiment.config import load_config, resolved_dict
    from cbrun.experiment.data_checks import read_by_validate, read_data
    from cbrun.experiment.yaml_source import dump_yaml

    experiment, document = load_config(config, set_ or [])
    if read_by_validate(experiment):  # the data checks `train` makes, through the same code
        read_data(experiment, document, config_dir=config[0].resolve().parent)
    _stdout(dump_yaml(resolved_dict(experiment)).rstrip())
    print(f"{' + '.join(map(str, config))}: valid", file=sys.stderr)


@app.command()
def schema() -> None:
    """Print the JSON Schema of experiment files (for editors and jsonschema)."""
    from cbrun.experiment.config import json_schema

    _stdout(json.dumps(json_schema(), indent=2))


def _listing(kind: str, name: Optional[str], as_json: bool) -> None:  # noqa: UP045
    from cbrun.experiment import listing

    _stdout(listing.render(kind, name, as_json))


NameArg = Annotated[Optional[str], typer.Argument(help="Show one in detail.")]  # noqa: UP045


@app.command("list-callbacks")
def list_callbacks(name: NameArg = None, as_json: JsonOption = False) -> None:
    """Callbacks you can put under `callbacks:`, with their parameters."""
    _listing("callbacks", name, as_json)


@app.command("list-models")
def list_models(name: NameArg = None, as_json: JsonOption = False) -> None:
    """Model builders you can choose under `model:`."""
    _listing("models", name, as_json)


@app.command("list-datasets")
def list_datasets(name: NameArg = None, as_json: JsonOption = False) -> None:
    """Data sources you can choose under `data:`."""
    _listing("datasets", name, as_json)


RunsDirArg = Annotated[Path, typer.Argument(help="Folder holding the run directories.")]


def _print(renderable: object) -> None:
    """A rich table or group on stdout (the command's own output)."""
    from cbrun.core.console import make_console

    make_console().print(renderable)


@app.command()
def runs(
    runs_dir: RunsDirArg = Path("runs"),
    status: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            help="Only runs with this status: completed, failed, interrupted, running, damaged."
        ),
    ] = None,
    failed: Annotated[bool, typer.Option("--failed", help="Same as --status failed.")] = False,
    tag: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option(help="Only runs tagged T (experiment.tags); repeat to require several."),
    ] = None,
    smoke: Annotated[
        Optional[bool],  # noqa: UP045
        typer.Option("--smoke/--no-smoke", help="Only smoke runs, or only full runs."),
    ] = None,
    experiment: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(help="Only runs of this experiment name."),
    ] = None,
    older_than: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(help="Only runs started longer ago than this: 30m, 12h, 7d, 2w."),
    ] = None,
    sort: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(help="Best first by a metric (test_accuracy, val_loss, ...) or duration."),
    ] = None,
    limit: Annotated[Optional[int], typer.Option(min=1, help="Show at most N runs.")] = None,  # noqa: UP045
    as_json: JsonOption = False,
    paths: Annotated[
        bool,
        typer.Option(
            "--paths", help="Print only the run directories, one per line (for `xargs cbrun rm`)."
        ),
    ] = False,
) -> None:
    """List run directories, newest first, from their run.json and eval.json."""
    from cbrun.inspect.runs import RunFilter, list_runs

    if failed and status not in (None, "failed"):
        raise CbrunError(f"runs: --failed and --status {status} contradict each other")
    where = RunFilter(
        "failed" if failed else status, tuple(tag or ()), smoke, experiment, older_than
    )
    output = list_runs(
        runs_dir, where, sort, limit, "json" if as_json else "paths" if paths else "table"
    )
    _stdout(output) if isinstance(output, str) else _print(output)


@app.command()
def rm(
    run_dirs: Annotated[list[Path], typer.Argument(help="Run directories to remove.")],
    purge: Annotated[
        bool, typer.Option("--purge", help="Delete for good instead of moving to the trash.")
    ] = False,
) -> None:
    """Move runs to the trash inside their runs directory (`.trash/`), or delete with --purge."""
    from cbrun.inspect.remove import remove_runs

    for line in remove_runs(run_dirs, purge):
        print(line, file=sys.stderr)


@app.command()
def show(run_dir: RunDirArg) -> None:
    """One run: status and why it stopped, metrics, curves, artifacts and config."""
    from cbrun.inspect.show import show_run

    _print(show_run(run_dir))


@app.command()
def compare(
    run_dirs: Annotated[list[Path], typer.Argument(help="Two or more run directories.")],
    output: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(help="PNG to write (default: a new compare-<time>.png here)."),
    ] = None,
) -> None:
    """Config differences and metrics side by side (stderr); overlay PNG path on stdout."""
    from cbrun.core.console import make_console
    from cbrun.inspect.compare import compare_runs

    tables, path = compare_runs(run_dirs, output)
    make_console(stderr=True).print(tables)
    if path is not None:
        _stdout(str(path))


ListOption = Optional[list[str]]  # noqa: UP045


@app.command()
def sweep(
    config: Annotated[
        Optional[list[Path]],  # noqa: UP045
        typer.Argument(
            help="Experiment YAML file(s), later ones merged over earlier ones, `sweep:` "
            "section included (not needed with --resume).",
            show_default=False,
        ),
    ] = None,
    set_: SetOption = None,
    grid: Annotated[
        ListOption, typer.Option(help="KEY=V1,V2,... values to try (read as YAML; repeatable).")
    ] = None,
    random: Annotated[
        ListOption,
        typer.Option(help="KEY=DIST: uniform(a,b), loguniform(a,b), randint(a,b), choice(...)."),
    ] = None,
    trials: Annotated[
        Optional[int],  # noqa: UP045
        typer.Option(min=1, help="Random draws per grid combination (random, optuna: in all)."),
    ] = None,
    search: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(help='grid, random or optuna (pip install "cbrun[optuna]").'),
    ] = None,
    pruner: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(help="optuna, local pool: none, median or hyperband (Ray: --scheduler)."),
    ] = None,
    metric: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(help="Ranks trials: best epoch of a history metric, or test_<metric>."),
    ] = None,
    direction: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(help="min or max (default: from the metric's name)."),
    ] = None,
    workers: Annotated[
        Optional[int],  # noqa: UP045
        typer.Option(min=1, help="Trials at once (local default 1; Ray: as resources allow)."),
    ] = None,
    backend: Annotated[str, typer.Option(help="local (process pool) or ray.")] = "local",
    address: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(help="Ray cluster to join (default: start a private local instance)."),
    ] = None,
    cpus_per_trial: Annotated[float, typer.Option(min=0, help="Ray CPUs per trial.")] = 1.0,
    gpus_per_trial: Annotated[float, typer.Option(min=0, help="Ray GPUs per trial.")] = 0.0,
    scheduler: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(help="Ray Tune early stopping of bad trials: asha or median."),
    ] = None,
    fresh_processes: Annotated[
        bool,
        typer.Option(
            "--fresh-processes",
            help="A new `cbrun train` process per trial (on Ray, a task per trial), instead "
            "of warm workers that import TensorFlow once and train trial after trial.",
        ),
    ] = False,
    runs_dir: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(help="Where the sweep directory goes (default: output.runs_dir)."),
    ] = None,
    resume: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(help="A sweep directory: run again the trials that did not complete."),
    ] = None,
) -> None:
    """Run a grid, random or Optuna search as ordinary runs; ranks them, prints the sweep dir."""
    from cbrun.sweeps.executors import Resources
    from cbrun.sweeps.warm_pool import start_early

    resources = Resources(
        workers, backend, address, cpus_per_trial, gpus_per_trial, scheduler, fresh_processes
    )
    warm = start_early(resources, search)  # first: the runner's imports overlap its start
    from cbrun.sweeps.runner import sweep_command

    flags = {
        "grid": grid or [],
        "random": random or [],
        "trials": trials,
        "metric": metric,
        "direction": direction,
        "search": search,
        "pruner": pruner,
    }
    result = sweep_command(config, set_ or [], flags, resources, runs_dir, resume, warm)
    _stdout(str(result.sweep_dir))
    raise typer.Exit(result.exit_code)


@app.command()
def predict(
    run_dir: RunDirArg,
    inputs: Annotated[
        list[Path],
        typer.Argument(
            metavar="INPUT...",
            help="CSV (with a header) or NPZ of features; for an image_directory run, image "
            "files or folders of images.",
        ),
    ],
    output: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(help="CSV file to write (never overwritten); default: stdout."),
    ] = None,
    checkpoint: Annotated[
        str, typer.Option(help="`last` (the final model), `best`, or a checkpoint file path.")
    ] = "last",
    unsafe: UnsafeOption = False,
    allow_imports: AllowImportsOption = False,
) -> None:
    """Predict with a run's model: class probabilities and label (or values) as CSV."""
    from cbrun.run.predict_inputs import predict_file

    text = predict_file(run_dir, inputs, output, checkpoint, unsafe, allow_imports)
    if text is None:
        _stdout(str(output))
    else:
        sys.stdout.write(text)


@app.command()
def init(
    path: Annotated[Path, typer.Argument(help="The experiment file to create (.yaml).")],
    template: Annotated[
        str, typer.Option(help="classification (digits MLP), regression, or cnn.")
    ] = "classification",
) -> None:
    """Write a commented starter experiment file that validates as is (never overwrites)."""
    from cbrun.experiment.starter import write_starter

    _stdout(str(write_starter(path, template)))
    print(f"next: cbrun validate {path} && cbrun train {path}", file=sys.stderr)


@app.command()
def board(
    runs_dir: RunsDirArg = Path("runs"),
    port: Annotated[int, typer.Option(help="Port to serve on.")] = 6006,
    host: Annotated[str, typer.Option(help="Address to bind (0.0.0.0 for all).")] = "localhost",
) -> None:
    """Start TensorBoard on a runs directory (every run's tensorboard/ logs); Ctrl-C stops it."""
    from cbrun.inspect.board import run_board

    run_board(runs_dir, port, host)


def main() -> None:
    """Entry point: user errors print one message and exit 2; CBRUN_DEBUG=1 adds tracebacks."""
    try:
        app()
    except CbrunError as error:
        if os.environ.get("CBRUN_DEBUG"):
            traceback.print_exc()
        print(f"error: {error.render()}", file=sys.stderr)
        sys.exit(error.exit_code)
    except OSError as error:
        if error.errno != errno.ENAMETOOLONG:
            raise
        if os.environ.get("CBRUN_DEBUG"):
            traceback.print_exc()
        name = str(error.filename or "")
        shown = name if len(name) <= 80 else f"{name[:60]}...{name[-16:]}"
        print(f"error: {shown}: the name is too long for the file system", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:  # Ctrl-C before training started (training handles its own)
        if os.environ.get("CBRUN_DEBUG"):
            traceback.print_exc()
        print("interrupted", file=sys.stderr)
        sys.exit(130)
