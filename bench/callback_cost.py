"""Per-batch cost of callbacks with batch hooks, for bench/run.py, measured inside `fit`.

    python bench/callback_cost.py FIVE.yaml FULL.yaml --repeats N --runs-dir DIR

Builds the data and model of FULL.yaml once through cbrun, then each callback of both configs
through cbrun (one item at a time), and the callbacks `cbrun train` always adds itself. For
every callback whose class overrides a batch hook, one epoch with only that callback is timed
against one epoch with none, alternately, after a warm-up. Prints one JSON line.

A callback that overrides a batch-end hook also turns off Keras' asynchronous dispatch of
batch-end calls, so the step loop then waits for every batch's logs: that is part of its cost.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cbrun_timed  # noqa: E402,F401  (registers bench_epoch_timer, used by the configs)

from cbrun import training  # noqa: E402
from cbrun.build import build_callbacks, build_dataset, build_model, import_keras  # noqa: E402
from cbrun.config import load_config  # noqa: E402
from cbrun.rundir import create_run_dir  # noqa: E402

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
    """The callbacks `cbrun train` always adds around the user's, where this tree has them."""
    found = {"cbrun's _LearningRateLogger": training._LearningRateLogger()}
    try:
        from cbrun.interrupts import InterruptGuard
        from cbrun.safeguards import SafetyChecks
    except ImportError:
        return found
    found["cbrun's SafetyChecks"] = SafetyChecks(InterruptGuard(runs_dir, {}), {})
    return found


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("configs", nargs="+", type=Path)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--runs-dir", type=Path, required=True)
    args = parser.parse_args()

    configs = [load_config(path)[0] for path in args.configs]
    keras = import_keras(configs[-1].experiment.seed)
    dataset = build_dataset(configs[-1])
    model = build_model(configs[-1], dataset)
    base = keras.callbacks.Callback
    named, epoch_only = {}, []
    for config in configs:
        for item in config.callbacks:
            if item.type in named or item.type == "bench_epoch_timer":
                continue
            run_dir = create_run_dir(args.runs_dir, f"cost-{item.type}")
            single = config.model_copy(update={"callbacks": [item]})
            built = build_callbacks(single, run_dir, dataset)
            hooks = sorted({h for cb in built for h in batch_hooks(type(cb), base)})
            if hooks:
                named[item.type] = (built, hooks)
            elif item.type not in epoch_only:
                epoch_only.append(item.type)
    for name, own in own_callbacks(args.runs_dir).items():
        hooks = batch_hooks(type(own), base)
        if hooks:
            named[name] = ([own], hooks)
        else:
            epoch_only.append(name)

    x, y = dataset.train
    size = configs[-1].training.batch_size

    def epoch(callbacks) -> tuple[float, float]:
        """Wall and process CPU seconds of one epoch with `callbacks`."""
        start, cpu = time.perf_counter(), time.process_time()
        model.fit(
            x,
            y,
            batch_size=size,
            epochs=1,
            verbose=0,
            callbacks=list(callbacks),
            validation_data=dataset.validation,
        )
        return time.perf_counter() - start, time.process_time() - cpu

    epoch([])
    for built, _ in named.values():
        epoch(built)  # warm-up: first calls open files and writers
    cases = {"": []} | {name: built for name, (built, _) in named.items()}
    seconds = {name: [] for name in cases}
    order = list(cases)
    for repeat in range(args.repeats):
        for name in order if repeat % 2 == 0 else order[::-1]:
            seconds[name].append(epoch(cases[name]))
    steps = math.ceil(len(x) / size)

    def per_batch_us(name: str, which: int) -> float:
        with_it = statistics.median(s[which] for s in seconds[name])
        return (with_it - statistics.median(s[which] for s in seconds[""])) / steps * 1e6

    rows = [
        {
            "name": name,
            "hooks": hooks,
            "with": [s[0] for s in seconds[name]],
            "without": [s[0] for s in seconds[""]],
            "per_batch_us": per_batch_us(name, 0),
            "per_batch_cpu_us": per_batch_us(name, 1),
        }
        for name, (_, hooks) in named.items()
    ]
    print(json.dumps({"steps": steps, "callbacks": rows, "epoch_only": epoch_only}))


if __name__ == "__main__":
    main()
