"""Epoch time of the bench MLP under each speed setting, for bench/run.py (one process).

    python bench/settings_cost.py CONFIG.yaml --repeats N

For each setting (a list of `--set` overrides), cbrun builds the data and compiled model from
CONFIG.yaml with those overrides and feeds `fit` the way `cbrun train` does. After one warm-up
epoch each, one-epoch fits of all settings alternate. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cbrun_timed  # noqa: E402,F401  (registers bench_epoch_timer, used by the configs)

from cbrun.compute import speed  # noqa: E402
from cbrun.experiment.config import load_config  # noqa: E402
from cbrun.run.build import build_dataset, build_model, import_keras  # noqa: E402

SETTINGS = {
    "defaults (float32, steps_per_execution 1, Keras' array adapter)": [],
    "steps_per_execution: 8": ["training.steps_per_execution=8"],
    "steps_per_execution: 32": ["training.steps_per_execution=32"],
    "jit_compile: true (XLA)": ["training.jit_compile=true"],
    "precision: mixed_bfloat16": ["training.precision=mixed_bfloat16"],
    "pipeline: {} (cbrun tf.data)": ["training.pipeline={}"],
    "pipeline: {cache: true}": ["training.pipeline={cache: true}"],
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("config", type=Path)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    fits = {}
    for name, overrides in SETTINGS.items():
        config, _ = load_config(args.config, overrides)
        import_keras(config.experiment.seed)
        dataset = build_dataset(config)
        model = build_model(config, dataset)
        inputs = speed.fit_inputs(dataset, config.training, config.experiment.seed)
        fits[name] = (model, inputs)

    def epoch(name: str) -> tuple[float, float]:
        model, inputs = fits[name]
        start, cpu = time.perf_counter(), time.process_time()
        model.fit(**inputs, epochs=1, verbose=0)
        return time.perf_counter() - start, time.process_time() - cpu

    for name in fits:
        epoch(name)  # warm-up: traces and compiles
    seconds = {name: [] for name in fits}
    order = list(fits)
    for repeat in range(args.repeats):
        for name in order if repeat % 2 == 0 else order[::-1]:
            seconds[name].append(epoch(name))
    base = statistics.median(s[0] for s in seconds[order[0]])
    rows = [
        {
            "name": name,
            "wall": [s[0] for s in values],
            "cpu": [s[1] for s in values],
            "speedup": base / statistics.median(s[0] for s in values),
        }
        for name, values in seconds.items()
    ]
    print(json.dumps({"rows": rows}))


if __name__ == "__main__":
    main()
