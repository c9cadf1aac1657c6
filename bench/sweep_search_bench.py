"""Optuna TPE (cbrun's `search: optuna`) vs random search vs Keras Tuner, same space and data.

    python bench/sweep_search_bench.py [--trials 20] [--seeds 3] [--epochs 10]
        [--out bench/SWEEP_SEARCH_RESULTS.md]

Needs the optuna extra and Keras Tuner (`pip install "cbrun[optuna,bench]"`). Each search
gets the same budget of trials on scikit-learn's digits (a fixed 70/30 train/validation
split) with a one-hidden-layer MLP over a 3-parameter space: learning rate log-uniform,
hidden units an integer range, dropout uniform. A trial trains `--epochs` epochs; its score
is its best epoch's validation accuracy, as `cbrun sweep --metric val_accuracy` ranks trials.

The points come from cbrun's own code: `search: optuna` is `optuna_search.Space` and
`make_study` (seeded TPE, journal file), told each trial's score in turn as the local pool
does with `--workers 1`; `search: random` is `sweep_space.expand`. Keras Tuner's
`BayesianOptimization` gets the same space, budget and seed. Trials run in this process (not
as `cbrun train` processes), so the figures compare the searches, not process start-up.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SPACE = {
    "compile.optimizer.learning_rate": "loguniform(1e-4, 1e-1)",
    "model.units": "randint(8, 256)",
    "model.dropout": "uniform(0.0, 0.6)",
}
BATCH_SIZE = 64
Objective = Callable[[float, int, float, int], float]


def digits_objective(epochs: int) -> Objective:
    """Train the MLP at (learning rate, units, dropout) with a seed; its best val accuracy."""
    import keras
    import numpy as np
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype("float32")
    x_train, x_val, y_train, y_val = train_test_split(
        x, y, test_size=0.3, random_state=0, stratify=y
    )

    fit_args = {
        "x": x_train,
        "y": y_train,
        "validation_data": (x_val, y_val),
        "epochs": epochs,
        "batch_size": BATCH_SIZE,
        "verbose": 0,
    }

    def objective(learning_rate: float, units: int, dropout: float, seed: int) -> float:
        keras.utils.set_random_seed(seed)
        history = mlp(learning_rate, units, dropout).fit(**fit_args)
        return float(np.max(history.history["val_accuracy"]))

    objective.fit_args = fit_args  # type: ignore[attr-defined]
    return objective


def mlp(learning_rate: float, units: int, dropout: float):
    """The benchmark's model: 64 inputs, one ReLU hidden layer, dropout, softmax over 10."""
    import keras

    model = keras.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Dense(units, activation="relu"),
            keras.layers.Dropout(dropout),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(
        keras.optimizers.Adam(learning_rate),
        "sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def _args(params: dict) -> tuple[float, int, float]:
    return (
        params["compile.optimizer.learning_rate"],
        int(params["model.units"]),
        params["model.dropout"],
    )


def run_optuna(objective: Objective, trials: int, seed: int) -> list[float]:
    """cbrun's `search: optuna` study (seeded TPE from the sweep's space), one trial at a time."""
    import optuna

    from cbrun.experiment.sweep_space import SweepSection
    from cbrun.sweeps.optuna_search import Space, make_study

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    search = SweepSection(search="optuna", trials=trials, seed=seed, random=SPACE)
    search = search.model_dump(mode="json")
    space = Space(optuna, search)
    scores = []
    with tempfile.TemporaryDirectory() as folder:
        study = make_study(optuna, Path(folder), search, "max", seed)
        for index in range(trials):
            trial = study.ask(space.distributions)
            score = objective(*_args(space.decode(trial.params)), seed * 1000 + index)
            study.tell(trial, score)
            scores.append(score)
    return scores


def run_random(objective: Objective, trials: int, seed: int) -> list[float]:
    """cbrun's `search: random`: `trials` seeded draws of every key."""
    from cbrun.experiment.sweep_space import SweepSection, expand

    sweep = SweepSection(search="random", trials=trials, seed=seed, random=SPACE).checked()
    return [
        objective(*_args(trial.params), seed * 1000 + trial.index) for trial in expand(sweep, seed)
    ]


def run_keras_tuner(objective: Objective, trials: int, seed: int) -> list[float]:
    """Keras Tuner's BayesianOptimization over the same space, budget and seed."""
    import keras
    import keras_tuner

    count = iter(range(trials * 10))

    def build(hp: keras_tuner.HyperParameters) -> keras.Model:
        keras.utils.set_random_seed(seed * 1000 + next(count))
        return mlp(
            hp.Float("learning_rate", 1e-4, 1e-1, sampling="log"),
            hp.Int("units", 8, 256),
            hp.Float("dropout", 0.0, 0.6),
        )

    with tempfile.TemporaryDirectory() as folder:
        tuner = keras_tuner.BayesianOptimization(
            build,
            objective=keras_tuner.Objective("val_accuracy", "max"),
            max_trials=trials,
            seed=seed,
            directory=folder,
            project_name="bench",
            overwrite=True,
        )
        tuner.search(**objective.fit_args)  # type: ignore[attr-defined]
        done = sorted(tuner.oracle.trials.values(), key=lambda trial: int(trial.trial_id))
        return [trial.score for trial in done if trial.score is not None]


SEARCHES = {
    "cbrun `search: optuna` (Optuna TPE)": run_optuna,
    "cbrun `search: random`": run_random,
    "Keras Tuner BayesianOptimization": run_keras_tuner,
}


def best_after(scores: list[float], count: int) -> float:
    return max(scores[:count])


def spread(values: list[float]) -> str:
    mean = statistics.mean(values)
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{mean:.4f} ± {std:.4f} ({min(values):.4f}–{max(values):.4f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--out", type=Path, default=Path("bench/SWEEP_SEARCH_RESULTS.md"))
    args = parser.parse_args()

    import keras
    import keras_tuner
    import optuna

    loads = [os.getloadavg()]
    started = time.time()
    objective = digits_objective(args.epochs)
    results: dict[str, list[tuple[list[float], float]]] = {name: [] for name in SEARCHES}
    for seed in range(args.seeds):
        for name, search in SEARCHES.items():
            clock = time.perf_counter()
            scores = search(objective, args.trials, seed)
            seconds = time.perf_counter() - clock
            results[name].append((scores, seconds))
            print(f"seed {seed} {name}: best {max(scores):.4f} in {seconds:.0f} s", flush=True)
        loads.append(os.getloadavg())
    checkpoints = sorted({5, 10, args.trials} & set(range(1, args.trials + 1)))
    lines = [
        "# Sweep search: Optuna TPE vs random vs Keras Tuner",
        "",
        f"Written by `python bench/sweep_search_bench.py --trials {args.trials} --seeds "
        f"{args.seeds} --epochs {args.epochs}` on "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} "
        f"in {(time.time() - started) / 60:.1f} min.",
        "",
        f"- Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"shared with other sessions' test runs: load average (1/5/15 min) at the start "
        f"{' / '.join(f'{v:.2f}' for v in loads[0])}, after each seed "
        + "; ".join(" / ".join(f"{v:.2f}" for v in load) for load in loads[1:])
        + ". Wall times are therefore noisy; the accuracy figures are what this compares.",
        f"- Python {platform.python_version()}; Keras {keras.__version__}, Optuna "
        f"{optuna.__version__}, Keras Tuner {keras_tuner.__version__}.",
        "- Data: scikit-learn's digits (1,797 8x8 images), one fixed stratified 70/30 "
        "train/validation split. Model: 64 inputs, one ReLU hidden layer, dropout, softmax over "
        f"10 classes; Adam; batch {BATCH_SIZE}; {args.epochs} epochs per trial.",
        "- Space (cbrun syntax): "
        + ", ".join(f"`{key}: {text}`" for key, text in SPACE.items())
        + "; Keras Tuner: `Float(log)`, `Int`, `Float` over the same ranges.",
        f"- Budget: {args.trials} trials per search, sequential; seeds 0–{args.seeds - 1} (the "
        "sampler's seed; each trial's weights are seeded too). A trial's score is its best "
        "epoch's validation accuracy.",
        "",
        "Best validation accuracy found, mean ± standard deviation over the seeds "
        "(min–max), after the first N trials:",
        "",
        "| search | " + " | ".join(f"after {n} trials" for n in checkpoints) + " | wall time |",
        "| --- | " + " | ".join("---" for _ in checkpoints) + " | --- |",
    ]
    for name, runs in results.items():
        cells = [spread([best_after(scores, n) for scores, _ in runs]) for n in checkpoints]
        seconds = [s for _, s in runs]
        lines.append(
            f"| {name} | " + " | ".join(cells) + f" | {statistics.mean(seconds):.0f} s per search |"
        )
    lines += ["", "Per seed, the best validation accuracy after all trials:", ""]
    lines.append("| search | " + " | ".join(f"seed {s}" for s in range(args.seeds)) + " |")
    lines.append("| --- | " + " | ".join("---" for _ in range(args.seeds)) + " |")
    for name, runs in results.items():
        lines.append(f"| {name} | " + " | ".join(f"{max(s):.4f}" for s, _ in runs) + " |")
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
