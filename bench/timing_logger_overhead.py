"""How much `timing_logger` slows training down, measured inside `fit`.

    .venv/bin/python bench/timing_logger_overhead.py [--repeats 9] [--epochs 3]

Trains an MLP (128, 64) on scikit-learn's digits (1,257 training samples, batch 32, so 40
batches per epoch) and times whole `fit` calls without callbacks and with a `timing_logger`
built through cbrun's registry (`batch_every` 10, 1 and 0), after a warm-up, in a shuffled
order each round so a busy machine's drift hits every variant alike. Reports the minimum and
the median of wall time and of process CPU time: on a shared machine the minimum is the
run least disturbed by others. Then times the seconds spent inside the callback's hooks
during `--repeats` more fits (the median): its own cost, which a busy machine blurs less.
Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cbrun import registry
from cbrun.callbacks.base import BuildContext
from cbrun.experiment.config import experiment_model
from cbrun.run.build import build_dataset, build_model, import_keras

CONFIG = {
    "experiment": {"name": "timing_overhead", "seed": 0},
    "data": {"type": "digits", "split": {"validation": 0.15, "test": 0.15}},
    "model": {"type": "mlp", "units": [128, 64]},
    "training": {"batch_size": 32},
}
VARIANTS = {"batch_every=10": 10, "batch_every=1": 1, "batch_every=0": 0}


def timing_logger(context: BuildContext, batch_every: int) -> object:
    params = registry.callbacks.get("timing_logger").params(
        type="timing_logger", filename=f"timing-{batch_every}.csv", batch_every=batch_every
    )
    return registry.callbacks.get("timing_logger").factory(params, context)


def _timed(hook: Callable[..., Any], total: dict[str, float]) -> Callable[..., Any]:
    """`hook`, adding the seconds spent in each call to `total["seconds"]`."""

    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return hook(*args, **kwargs)
        finally:
            total["seconds"] += time.perf_counter() - started

    return timed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()

    import_keras(0)
    config = experiment_model().model_validate(CONFIG)
    dataset = build_dataset(config)
    model = build_model(config, dataset)
    run_dir = Path(tempfile.mkdtemp(prefix="timing-overhead-"))
    context = BuildContext(run_dir=run_dir, config=config, dataset=dataset)

    def fit_seconds(callbacks: list) -> tuple[float, float]:
        started, cpu = time.perf_counter(), time.process_time()
        model.fit(
            *dataset.train,
            batch_size=32,
            epochs=args.epochs,
            verbose=0,
            validation_data=dataset.validation,
            callbacks=callbacks,
        )
        return time.perf_counter() - started, time.process_time() - cpu

    fit_seconds([])  # warm-up: traces the train and test functions
    every = {"none": None, **VARIANTS}
    wall: dict[str, list[float]] = {name: [] for name in every}
    cpu: dict[str, list[float]] = {name: [] for name in every}
    shuffler = random.Random(0)
    for _ in range(args.repeats):
        for name in shuffler.sample(list(every), len(every)):
            callbacks = [] if every[name] is None else [timing_logger(context, every[name])]
            seconds, cpu_seconds = fit_seconds(callbacks)
            wall[name].append(seconds)
            cpu[name].append(cpu_seconds)

    shares, hook_seconds = [], []  # per probe fit: time inside the hooks, and its share
    for _ in range(args.repeats):
        inside = {"seconds": 0.0}
        probe = timing_logger(context, 10)
        for name in [n for n in dir(probe) if n.startswith("on_")]:
            setattr(probe, name, _timed(getattr(probe, name), inside))
        seconds = fit_seconds([probe])[0]
        shares.append(inside["seconds"] / seconds)
        hook_seconds.append(inside["seconds"])

    batches = args.epochs * -(-len(dataset.train[0]) // 32)
    summary = {
        f"{clock}_{stat.__name__}": {name: stat(values[name]) for name in every}
        for clock, values in (("wall", wall), ("cpu", cpu))
        for stat in (min, statistics.median)
    }
    overhead = {
        key: {name: round(100 * (v / row["none"] - 1), 2) for name, v in row.items()}
        for key, row in summary.items()
    }
    result = {
        "epochs": args.epochs,
        "batches_per_fit": batches,
        "repeats": args.repeats,
        "seconds": {k: {n: round(v, 4) for n, v in row.items()} for k, row in summary.items()},
        "overhead_percent": overhead,
        "median_seconds_inside_hooks": round(statistics.median(hook_seconds), 5),
        "median_percent_of_fit_inside_hooks": round(100 * statistics.median(shares), 3),
    }
    print(f"{'overhead vs no callback':<24}" + "".join(f"{k:>13}" for k in summary))
    for name in VARIANTS:
        print(f"{name:<24}" + "".join(f"{overhead[k][name]:>12.2f}%" for k in summary))
    print(
        f"{'(no callback, seconds)':<24}" + "".join(f"{summary[k]['none']:>13.3f}" for k in summary)
    )
    print(
        f"time inside timing_logger's hooks (batch_every=10), median of {args.repeats} fits: "
        f"{result['median_percent_of_fit_inside_hooks']:.3f}% of the fit, "
        f"{statistics.median(hook_seconds) / batches * 1e6:.1f} µs per batch"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
