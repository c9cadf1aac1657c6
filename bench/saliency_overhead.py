"""What `saliency_maps` and `activation_maps` add to the epochs of the digits CNN.

    .venv/bin/python bench/saliency_overhead.py [--epochs 15] [--every 5] [--repeats 3]

Builds configs/digits_saliency.yaml's CNN through cbrun, fits it with each callback (its
defaults, a write every `--every` epochs) and times the seconds spent inside the callback's
hooks, separately for the first write (which traces the gradient function) and the later
ones, against the fit's own time without them. On a shared machine the hook time is the
callback's cost and is blurred less than whole-fit comparisons. Each fit runs in a fresh
process (`--variant NAME` runs one), so no variant inherits another's first-call costs;
variants take turns over `--repeats` rounds, and the medians are printed as one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cbrun import registry
from cbrun.callbacks.base import BuildContext
from cbrun.experiment.config import load_config
from cbrun.run.build import build_dataset, build_model, import_keras

ROOT = Path(__file__).resolve().parent.parent
VARIANTS = {
    "saliency_maps (integrated_gradients)": {"type": "saliency_maps"},
    "saliency_maps (grad_cam)": {"type": "saliency_maps", "method": "grad_cam"},
    "activation_maps": {"type": "activation_maps"},
}


def fit_once(name: str, epochs: int, every: int) -> dict[str, float | None]:
    """One fit with the callback of variant `name`, in this process: seconds per epoch, of
    the first write, and the median of the later writes."""
    keras = import_keras(0)
    config, _ = load_config(ROOT / "configs" / "digits_saliency.yaml", ["callbacks=[]"])
    dataset = build_dataset(config)
    item = VARIANTS[name]
    with tempfile.TemporaryDirectory() as folder:
        keras.utils.set_random_seed(0)
        model = build_model(config, dataset)
        spec = registry.callbacks.get(item["type"])
        params = spec.params(**item, every=every, directory=name.split()[0])
        callback = spec.factory(params, BuildContext(Path(folder), config, dataset))
        writes: list[float] = []
        for hook in ("on_epoch_end", "on_train_end"):
            original = getattr(callback, hook)

            def timed(*a, _original=original, _writes=writes, **k):  # noqa: ANN002, ANN003
                started = time.perf_counter()
                _original(*a, **k)
                seconds = time.perf_counter() - started
                if seconds > 1e-3:  # a write (other epochs return at once)
                    _writes.append(seconds)

            setattr(callback, hook, timed)
        started = time.perf_counter()
        model.fit(
            *dataset.train,
            validation_data=dataset.validation,
            epochs=epochs,
            batch_size=config.training.batch_size,
            callbacks=[callback],
            verbose=0,
        )
        total = time.perf_counter() - started
    later = writes[1:]
    return {
        "epoch_seconds": (total - sum(writes)) / epochs,
        "first_write_seconds": writes[0],
        "later_write_seconds": statistics.median(later) if later else None,
    }


def summary(fits: list[dict[str, float | None]], epochs: int, every: int) -> dict[str, float]:
    """Medians over the fits, and the overheads they give: a later write against the `every`
    epochs between writes, and all writes of a fit (first included) against its epochs."""

    def median(key: str) -> float:
        return statistics.median(float(fit[key]) for fit in fits if fit[key] is not None)

    epoch, first, later = (
        median(k) for k in ("epoch_seconds", "first_write_seconds", "later_write_seconds")
    )
    writes = -(-epochs // every)  # every `every` epochs, the last one included
    return {
        "epoch_seconds": round(epoch, 4),
        "first_write_seconds": round(first, 4),
        "first_write_range": [
            round(min(f["first_write_seconds"] for f in fits), 4),
            round(max(f["first_write_seconds"] for f in fits), 4),
        ],
        "later_write_seconds": round(later, 4),
        "steady_overhead_percent": round(100 * later / (epoch * every), 2),
        "whole_fit_overhead_percent": round(
            100 * (first + later * (writes - 1)) / (epoch * epochs), 2
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--every", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--variant", choices=list(VARIANTS), help="one fit, in this process")
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(fit_once(args.variant, args.epochs, args.every)))
        return
    fits: dict[str, list] = {name: [] for name in VARIANTS}
    loads = [round(os.getloadavg()[0], 2)]
    for round_ in range(args.repeats):
        names = list(VARIANTS)[round_ % len(VARIANTS) :] + list(VARIANTS)[: round_ % len(VARIANTS)]
        for name in names:  # each variant first in turn
            command = [
                sys.executable,
                __file__,
                "--variant",
                name,
                "--epochs",
                str(args.epochs),
                "--every",
                str(args.every),
            ]
            done = subprocess.run(command, capture_output=True, text=True, check=True)
            fits[name].append(json.loads(done.stdout.strip().splitlines()[-1]))
            loads.append(round(os.getloadavg()[0], 2))
            print(name, fits[name][-1], flush=True)
    results = {name: summary(runs, args.epochs, args.every) for name, runs in fits.items()}
    print(
        json.dumps(
            {
                "epochs": args.epochs,
                "every": args.every,
                "repeats": args.repeats,
                "load_average_1min": loads,
                "results": results,
            }
        )
    )


if __name__ == "__main__":
    main()
