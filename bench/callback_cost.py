"""Per-batch cost of callbacks with batch hooks, for bench/run.py, measured inside `fit`.

    python bench/callback_cost.py FIVE.yaml FULL.yaml --repeats N --runs-dir DIR

Builds the data and model of FULL.yaml once through cbrun, then the callbacks through cbrun:
the whole list of each config, each item alone, and the callbacks `cbrun train` always adds
itself. Short fits of the same model with each set (none; five; full; every callback that
overrides a batch hook, alone) alternate after a warm-up; each gives its steady-state epoch
time (median gap between epoch ends). Prints one JSON line.

A callback that overrides a batch-end hook also turns off Keras' asynchronous dispatch of
batch-end calls, so the step loop then waits for every batch's logs: that is part of its cost.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cbrun_timed  # noqa: E402,F401  (registers bench_epoch_timer, used by the configs)
from timer import EpochTimer  # noqa: E402

from cbrun.core.run_dir import create_run_dir  # noqa: E402
from cbrun.experiment.config import load_config  # noqa: E402
from cbrun.run import train as training  # noqa: E402
from cbrun.run.build import build_callbacks, build_dataset, build_model, import_keras  # noqa: E402

HOOKS = (
    "on_batch_begin",
    "on_batch_end",
    "on_train_batch_begin",
    "on_train_batch_end",
    "on_test_batch_begin",
    "on_test_batch_end",
)


def batch_hooks(callback_class, base) -> list[str]:
    return [h for h in HOOKS if getattr(callback_class, h) is not getattr(base, h)]


def own_callbacks(runs_dir: Path) -> dict:
    """Makers of the callbacks `cbrun train` always adds around the user's (where present)."""
    found = {"cbrun's _LearningRateLogger": training._LearningRateLogger}
    try:
        from cbrun.run.interrupts import InterruptGuard
        from cbrun.run.safeguards import SafetyChecks
    except ImportError:
        return found
    found["cbrun's SafetyChecks"] = lambda: SafetyChecks(InterruptGuard(runs_dir, {}), {})
    return found


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("five", type=Path)
    parser.add_argument("full", type=Path)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--runs-dir", type=Path, required=True)
    args = parser.parse_args()

    five, full = load_config(args.five)[0], load_config(args.full)[0]
    keras = import_keras(full.experiment.seed)
    dataset = build_dataset(full)
    model = build_model(full, dataset)

    def build(config, items) -> list:
        single = config.model_copy(update={"callbacks": items})
        return build_callbacks(single, create_run_dir(args.runs_dir, "cost"), dataset)

    def user_items(config) -> list:
        return [item for item in config.callbacks if item.type != "bench_epoch_timer"]

    # Builders, not built callbacks: every fit gets fresh callbacks in a fresh run directory,
    # so nothing (a backup to restore, a best value, a stop flag) carries over between fits.
    lists = {
        "no callbacks": list,
        "the five standard callbacks": lambda: build(five, user_items(five)),
        "the example config's callbacks": lambda: build(full, user_items(full)),
    }
    base = keras.callbacks.Callback
    named, epoch_only = {}, []
    for config in (five, full):
        for item in user_items(config):
            if item.type in named or item.type in epoch_only:
                continue
            built = build(config, [item])
            hooks = sorted({h for cb in built for h in batch_hooks(type(cb), base)})
            if hooks:
                named[item.type] = (lambda c=config, i=item: build(c, [i]), hooks)
            else:
                epoch_only.append(item.type)
    for name, make in own_callbacks(args.runs_dir).items():
        hooks = batch_hooks(type(make()), base)
        if hooks:
            named[name] = (lambda make=make: [make()], hooks)
        else:
            epoch_only.append(name)

    x, y = dataset.train
    size = full.training.batch_size

    def steady_epoch(callbacks) -> tuple[float, float]:
        """Median wall and CPU seconds between epoch ends of a fit with `callbacks`."""
        timer = EpochTimer()
        model.fit(
            x,
            y,
            batch_size=size,
            epochs=args.epochs,
            verbose=0,
            callbacks=[*callbacks, timer],
            validation_data=dataset.validation,
        )
        return (
            steady(timer.started, timer.epoch_ends),
            steady(timer.cpu_started, timer.cpu_epoch_ends),
        )

    cases = lists | {name: make for name, (make, _) in named.items()}
    for make in cases.values():
        steady_epoch(make())  # warm-up: traces, imports what the callbacks need
    seconds = {name: [] for name in cases}
    order = list(cases)
    for repeat in range(args.repeats):
        for name in order if repeat % 2 == 0 else order[::-1]:
            seconds[name].append(steady_epoch(cases[name]()))
    steps = math.ceil(len(x) / size)

    def med(name: str, which: int) -> float:
        return statistics.median(s[which] for s in seconds[name])

    def per_batch_us(name: str, which: int) -> float:
        return (med(name, which) - med("no callbacks", which)) / steps * 1e6

    rows = [
        {
            "name": name,
            "hooks": hooks,
            "with": [s[0] for s in seconds[name]],
            "without": [s[0] for s in seconds["no callbacks"]],
            "per_batch_us": per_batch_us(name, 0),
            "per_batch_cpu_us": per_batch_us(name, 1),
        }
        for name, (_, hooks) in named.items()
    ]
    list_rows = [
        {
            "name": name,
            "count": len(make()),
            "wall": [s[0] for s in seconds[name]],
            "cpu": [s[1] for s in seconds[name]],
        }
        for name, make in lists.items()
    ]
    result = {"steps": steps, "lists": list_rows, "callbacks": rows, "epoch_only": epoch_only}
    print(json.dumps(result))


def steady(begin: float, ends: list[float]) -> float:
    """The median gap between epoch ends; the first epoch alone if there is only one."""
    gaps = [b - a for a, b in zip(ends[:-1], ends[1:], strict=True)]
    if not ends:
        return float("nan")  # a callback stopped the fit before its first epoch ended
    return statistics.median(gaps) if gaps else ends[0] - begin


if __name__ == "__main__":
    main()
