"""Data timings for bench/run.py: make the big files, time one load, time feeding `fit`.

    python bench/data_bench.py generate FOLDER --rows N
    python bench/data_bench.py load csv|npz|digits|synthetic_classification PATH --how cbrun|direct
    python bench/data_bench.py feed TABULAR.npz IMAGES.npz --repeats N

Each prints one JSON line. `load` imports everything first and times only the load itself.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import datagen  # noqa: E402

FEATURES, CLASSES, IMAGES = 20, 10, 60_000


def generate(folder: Path, rows: int) -> dict[str, str]:
    paths = {k: folder / f"big.{k}" for k in ("csv", "npz")}
    paths["images"] = folder / "images.npz"
    if not all(p.exists() for p in paths.values()):
        x, y = datagen.tabular_arrays(rows, FEATURES, CLASSES, seed=0)
        datagen.write_csv(paths["csv"], x, y)
        np.savez(paths["npz"], x=x, y=y)
        rng = np.random.default_rng(0)
        images = rng.random((IMAGES, 28, 28, 1), dtype="float32")
        np.savez(paths["images"], x=images, y=rng.integers(0, CLASSES, IMAGES))
    return {k: str(v) for k, v in paths.items()}


def load(kind: str, path: str, how: str) -> dict[str, float]:
    import pandas as pd
    from sklearn.datasets import load_digits

    from cbrun.registry import datasets

    no_split = {"validation": 0.0, "test": 0.0}
    if kind == "csv":
        params = {"path": path, "target": "label", "task": "classification"}
    elif kind == "npz":
        params = {"path": path}
    elif kind == "synthetic_classification":
        params = {"samples": int(path), "features": FEATURES, "classes": CLASSES}
    else:
        params = {}
    component = datasets.get(kind)
    config = component.params.model_validate({"type": kind, "split": no_split, **params})
    start = time.perf_counter()
    if how == "cbrun":
        x = component.factory(config, 0).train[0]
    elif kind == "csv":
        frame = pd.read_csv(path)
        x = frame.drop(columns="label").to_numpy("float32")
        y = frame["label"].to_numpy("int32")
    elif kind == "npz":
        with np.load(path) as arrays:
            x, y = arrays["x"].astype("float32"), arrays["y"].astype("int32")
    elif kind == "digits":
        x = load_digits().data / 16.0
    else:
        rng = np.random.default_rng(0)
        centres = rng.normal(size=(CLASSES, FEATURES)) * 2.0 / np.sqrt(FEATURES)
        y = rng.integers(0, CLASSES, size=config.samples)
        x = (centres[y] + rng.normal(size=(config.samples, FEATURES)) / 2).astype("float32")
    return {"seconds": time.perf_counter() - start, "samples": len(x)}


def feed(tabular: str, images: str, repeats: int) -> dict:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf
    from keras.src.trainers.data_adapters import get_data_adapter

    from cbrun.compute.speed import PipelineSection, batches

    def keras_adapter(x, y, size):
        return get_data_adapter(x, y, batch_size=size, shuffle=True).get_tf_dataset()

    pipelines = {
        "Keras' array adapter (cbrun's default)": keras_adapter,
        "cbrun tf.data (`pipeline: {}`)": lambda x, y, size: batches(
            (x, y), size, PipelineSection(), True, 0
        ),
        "cbrun tf.data, in order with `cache: true` (as validation)": lambda x, y, size: batches(
            (x, y), size, PipelineSection(cache=True), False, 0
        ),
        "cbrun tf.data, `shuffle_buffer: 10000`": lambda x, y, size: batches(
            (x, y), size, PipelineSection(shuffle_buffer=10_000), True, 0
        ),
    }
    rows = []
    for label, path, size, is_images in (
        ("tabular", tabular, 128, False),
        ("images", images, 64, True),
    ):
        with np.load(path) as arrays:
            x, y = arrays["x"].astype("float32"), arrays["y"].astype("int32")
        built = {name: make(x, y, size) for name, make in pipelines.items()}
        count = {
            name: tf.function(lambda d=d: d.reduce(np.int64(0), lambda n, _: n + 1))
            for name, d in built.items()
        }
        for run in count.values():
            run()  # warm-up: traces, fills caches
        seconds: dict[str, list[float]] = {name: [] for name in built}
        names = list(built)
        for repeat in range(repeats):
            for name in names if repeat % 2 == 0 else names[::-1]:
                start = time.perf_counter()
                count[name]()
                seconds[name].append(time.perf_counter() - start)
        shape = "x".join(map(str, x.shape[1:]))
        for name in names:
            rows.append(
                {
                    "data": f"{label}: {len(x):,} × {shape}, batch {size}",
                    "pipeline": name,
                    "images": is_images,
                    "samples_per_second": [len(x) / s for s in seconds[name]],
                    "median_seconds": statistics.median(seconds[name]),
                }
            )
    return {"rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate")
    gen.add_argument("folder", type=Path)
    gen.add_argument("--rows", type=int, default=1_000_000)
    one = sub.add_parser("load")
    one.add_argument("kind")
    one.add_argument("path")
    one.add_argument("--how", choices=["cbrun", "direct"], required=True)
    fed = sub.add_parser("feed")
    fed.add_argument("tabular")
    fed.add_argument("images")
    fed.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    if args.command == "generate":
        result = generate(args.folder, args.rows)
    elif args.command == "load":
        result = load(args.kind, args.path, args.how)
    else:
        result = feed(args.tabular, args.images, args.repeats)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
