"""Warm sweep workers vs fresh processes vs one `cbrun train`, on the quickstart's digits MLP.

    python bench/sweep_workers_bench.py [--repeats 3] [--workers 1 2]
        [--out bench/SWEEP_WORKERS_RESULTS.md]

Each repetition runs, one after another, these commands as a user would type them:

- `cbrun train configs/quickstart.yaml -q --set training.epochs=1`: one trial, alone;
- `cbrun sweep configs/quickstart.yaml --set training.epochs=1` over a grid of six trials
  (three learning rates x two dropouts) on the local pool, warm workers (the default);
- the same sweep with `--fresh-processes` (a new `cbrun train` process per trial);

the warm sweep once per `--workers` count given (the machine has 2 cores), the fresh one with
the first count only; and, if Keras Tuner is installed (`pip install "cbrun[bench]"`), the same
six trials as a Keras Tuner `GridSearch` in one hand-written process (same data split, model,
optimizer and epoch, but none of cbrun's run records, checkpoints, plots or evaluation files).

Each command's wall time and CPU time (user + system, of the command and every process it
waited for: `os.wait4`) are measured. The order of the commands is rotated between repetitions,
so a slow moment of the shared machine does not always hit the same one. The figures reported
are medians over the repetitions; the ratio is a sweep's wall time over one train's.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "configs" / "quickstart.yaml"
ONE_EPOCH = ["--set", "training.epochs=1"]
GRID = ["--grid", "compile.optimizer.learning_rate=3e-3,1e-3,3e-4", "--grid", "model.dropout=0,0.2"]
TRIALS = 6

# The same six trials as a Keras Tuner grid search in one process: the quickstart's data split
# (70/15/15, stratified, seed 42), model (128-64 ReLU, dropout), Adam, batch 32, one epoch.
KERAS_TUNER = """
import os, tempfile
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
import keras, keras_tuner
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

x, y = load_digits(return_X_y=True)
x = (x / 16.0).astype("float32")
x_train, x_rest, y_train, y_rest = train_test_split(
    x, y, test_size=0.3, random_state=42, stratify=y)
x_val, x_test, y_val, y_test = train_test_split(
    x_rest, y_rest, test_size=0.5, random_state=42, stratify=y_rest)

def build(hp):
    keras.utils.set_random_seed(42)
    dropout = hp.Choice("dropout", [0.0, 0.2])
    model = keras.Sequential([
        keras.Input((64,)),
        keras.layers.Dense(128, activation="relu"), keras.layers.Dropout(dropout),
        keras.layers.Dense(64, activation="relu"), keras.layers.Dropout(dropout),
        keras.layers.Dense(10, activation="softmax"),
    ])
    rate = hp.Choice("learning_rate", [3e-3, 1e-3, 3e-4])
    model.compile(optimizer=keras.optimizers.Adam(rate),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model

with tempfile.TemporaryDirectory() as folder:
    tuner = keras_tuner.GridSearch(build, objective="val_loss", max_trials=6,
                                   directory=folder, project_name="bench", overwrite=True)
    tuner.search(x_train, y_train, validation_data=(x_val, y_val), epochs=1, batch_size=32,
                 verbose=0)
    assert len(tuner.oracle.trials) == 6, tuner.oracle.trials
    tuner.get_best_models(1)[0].evaluate(x_test, y_test, verbose=0)
"""


def commands(runs_dir: Path, workers: list[int]) -> dict[str, list[str]]:
    cbrun = [sys.executable, "-m", "cbrun"]
    train = [*cbrun, "train", str(CONFIG), "-q", *ONE_EPOCH, "--runs-dir", str(runs_dir)]
    named = {"one `cbrun train`": train}
    for count in workers:
        sweep = [*cbrun, "sweep", str(CONFIG), *ONE_EPOCH, *GRID, "--workers", str(count)]
        sweep += ["--runs-dir", str(runs_dir)]
        named[f"sweep, warm workers, --workers {count}"] = sweep
        if count == workers[0]:  # the slow one: once
            named[f"sweep, fresh processes, --workers {count}"] = [*sweep, "--fresh-processes"]
    if importlib.util.find_spec("keras_tuner"):
        named["Keras Tuner `GridSearch`, the 6 trials in one process"] = [
            sys.executable,
            "-c",
            KERAS_TUNER,
        ]
    return named


def run_one(command: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds of `command` (and every process it waited for), via os.wait4."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    with tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=err, env=env)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            err.seek(0)
            raise SystemExit(
                f"{' '.join(command)} failed ({process.returncode}):\n{err.read().decode()}"
            )
    return wall, usage.ru_utime + usage.ru_stime


def load() -> str:
    return " / ".join(f"{value:.2f}" for value in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "SWEEP_WORKERS_RESULTS.md")
    args = parser.parse_args()

    started_at = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    loads = [load()]
    figures: dict[str, list[tuple[float, float]]] = {}
    clock = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="cbrun-sweep-bench-") as folder:
        named = commands(Path(folder), args.workers)
        names = list(named)
        for repeat in range(args.repeats):
            order = names[repeat % len(names) :] + names[: repeat % len(names)]
            for name in order:
                wall, cpu = run_one(named[name])
                figures.setdefault(name, []).append((wall, cpu))
                print(f"repeat {repeat + 1} {name}: {wall:.1f} s wall, {cpu:.1f} s CPU", flush=True)
            loads.append(load())
    minutes = (time.perf_counter() - clock) / 60
    args.out.write_text(report(figures, loads, started_at, minutes, args))
    print(f"wrote {args.out}")


def report(
    figures: dict[str, list[tuple[float, float]]],
    loads: list[str],
    started_at: str,
    minutes: float,
    args: argparse.Namespace,
) -> str:
    from importlib.metadata import version

    train = "one `cbrun train`"
    wall = {name: statistics.median(w for w, _ in runs) for name, runs in figures.items()}
    cpu = {name: statistics.median(c for _, c in runs) for name, runs in figures.items()}
    lines = [
        "# Sweep workers: warm workers vs fresh processes vs one `cbrun train`",
        "",
        f"Written by `python bench/sweep_workers_bench.py --repeats {args.repeats} --workers "
        f"{' '.join(map(str, args.workers))}` on {started_at} in {minutes:.1f} min.",
        "",
        f"- Machine: {platform.machine()}, {os.cpu_count()} cores; load average "
        "(1/5/15 min) at the start "
        f"{loads[0]}, after each repetition {'; '.join(loads[1:])}.",
        f"- Python {platform.python_version()}; TensorFlow {version('tensorflow')}, Keras "
        f"{version('keras')}; CPU only.",
        "- Trial: `configs/quickstart.yaml` (digits, MLP 128-64 with dropout, early stopping, "
        "best-only checkpoint, CSV logger, TensorBoard) with `training.epochs=1`.",
        f"- Sweep: {TRIALS} trials, grid `compile.optimizer.learning_rate=3e-3,1e-3,3e-4` x "
        "`model.dropout=0,0.2`, on the local pool.",
        "- Each command timed whole, as typed (interpreter start, imports, every trial, the "
        "sweep's summary, plot and HParams files); CPU time is user + system of the command "
        "and every process it waited for. Medians over the repetitions, run in rotated order.",
        "",
        "| command | wall (median) | × one train | CPU (median) | CPU × one train | "
        "trials per minute | wall of each repetition |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, runs in figures.items():
        trials = 1 if name == train else TRIALS
        each = ", ".join(f"{w:.1f}" for w, _ in runs)
        lines.append(
            f"| {name} | {wall[name]:.1f} s | {wall[name] / wall[train]:.2f}× | "
            f"{cpu[name]:.1f} s | {cpu[name] / cpu[train]:.2f}× | "
            f"{60 * trials / wall[name]:.1f} | {each} s |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
