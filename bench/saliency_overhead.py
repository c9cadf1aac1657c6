"""What `saliency_maps` and `activation_maps` add to the epochs of the digits CNN.

    .venv/bin/python bench/saliency_overhead.py [--epochs 15] [--every 5]

Builds configs/digits_saliency.yaml's CNN through cbrun, fits it once with each callback (its
defaults, a write every `--every` epochs) and times the seconds spent inside the callback's
hooks, separately for the first write (which traces the gradient function) and the later
ones, against the fit's own time without them. On a shared machine the hook time is the
callback's cost and is blurred less than whole-fit comparisons. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import statistics
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--every", type=int, default=5)
    args = parser.parse_args()
    keras = import_keras(0)
    config, _ = load_config(ROOT / "configs" / "digits_saliency.yaml", ["callbacks=[]"])
    dataset = build_dataset(config)
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        for name, item in VARIANTS.items():
            keras.utils.set_random_seed(0)
            model = build_model(config, dataset)
            spec = registry.callbacks.get(item["type"])
            params = spec.params(**item, every=args.every, directory=name.split()[0])
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
                epochs=args.epochs,
                batch_size=config.training.batch_size,
                callbacks=[callback],
                verbose=0,
            )
            total = time.perf_counter() - started
            fit = total - sum(writes)
            later = writes[1:]
            results[name] = {
                "epoch_seconds": round(fit / args.epochs, 4),
                "first_write_seconds": round(writes[0], 4),
                "later_write_seconds": round(statistics.median(later), 4) if later else None,
                "steady_overhead_percent": (
                    round(100 * statistics.median(later) / (fit / args.epochs * args.every), 2)
                    if later
                    else None
                ),
                "whole_fit_overhead_percent": round(100 * sum(writes) / fit, 2),
            }
            print(name, results[name], flush=True)
    print(json.dumps({"epochs": args.epochs, "every": args.every, "results": results}))


if __name__ == "__main__":
    main()
