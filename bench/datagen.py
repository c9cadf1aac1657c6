"""Seeded data files for the benchmark: tabular CSVs and image .npz files, split by file."""

from __future__ import annotations

from pathlib import Path

import numpy as np

SPLITS = {"train": 0.8, "validation": 0.1, "test": 0.1}


def tabular_arrays(rows: int, features: int, classes: int, seed: int):
    """Gaussian class blobs that overlap enough to keep an MLP learning for many epochs."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, features)).astype("float32")
    y = rng.integers(0, classes, size=rows)
    x = centres[y] + rng.normal(scale=1.5, size=(rows, features)).astype("float32")
    return x.astype("float32"), y.astype("int64")


def write_csv(path: Path, x: np.ndarray, y: np.ndarray) -> Path:
    """A CSV with columns f0..fN and `label`, written fast with fixed 4-decimal floats."""
    header = ",".join([*(f"f{i}" for i in range(x.shape[1])), "label"])
    table = np.column_stack([x, y])
    fmt = ["%.4f"] * x.shape[1] + ["%d"]
    np.savetxt(path, table, fmt=fmt, delimiter=",", header=header, comments="")
    return path


def tabular_files(folder: Path, rows: int, features: int, classes: int, seed: int = 0):
    """train/validation/test CSV files; returns {split: path}."""
    x, y = tabular_arrays(rows, features, classes, seed)
    return {
        name: write_csv(folder / f"tabular-{name}.csv", x[part], y[part])
        for name, part in _parts(rows).items()
    }


def image_files(folder: Path, images: int, side: int, classes: int, seed: int = 0):
    """train/validation/test .npz files of noisy class templates (side x side x 1, in 0..1)."""
    rng = np.random.default_rng(seed)
    templates = rng.random((classes, side, side, 1)).astype("float32")
    y = rng.integers(0, classes, size=images)
    x = np.clip(templates[y] + rng.normal(scale=0.6, size=(images, side, side, 1)), 0, 1)
    paths = {}
    for name, part in _parts(images).items():
        paths[name] = folder / f"images-{name}.npz"
        np.savez(paths[name], x=x[part].astype("float32"), y=y[part])
    return paths


def _parts(rows: int) -> dict[str, slice]:
    train = int(rows * SPLITS["train"])
    validation = int(rows * SPLITS["validation"])
    return {
        "train": slice(0, train),
        "validation": slice(train, train + validation),
        "test": slice(train + validation, rows),
    }
