"""Epoch time of `cbrun train` on a mixed-type CSV against a hand-written pandas + Keras
preprocessing-layers script training the same model on the same rows.

    python bench/table_bench.py FOLDER [--rows 20000] [--epochs 6] [--repeats 3]

The table has 5 numeric, 4 categorical and 1 text column and a 3-class label. Both sides fit
an MLP (64 units) behind the same preprocessing layers (Normalization, StringLookup one-hot,
TextVectorization TF-IDF), batch 256, 15% validation, timed by bench/timer.py's EpochTimer:
the steady-state epoch is the median gap between epoch ends, the first (tracing) epoch left
out. The two sides alternate, each in a fresh process. Prints one JSON line.
`--state-every N` sets cbrun's `training.state_every` (the resume state it saves each epoch).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

HERE = Path(__file__).resolve().parent
NUMERIC = [f"n{i}" for i in range(5)]
CATEGORICAL = {"colour": 8, "city": 50, "device": 4, "plan": 12}
WORDS = "fast slow cheap costly broken great awful fine late early".split()
BATCH, UNITS, TOKENS = 256, 64, 2000


def generate(path: Path, rows: int) -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({c: rng.normal(size=rows).round(4) for c in NUMERIC})
    for column, count in CATEGORICAL.items():
        frame[column] = [f"{column}_{i}" for i in rng.integers(0, count, rows)]
    frame["review"] = [" ".join(rng.choice(WORDS, 6)) for _ in range(rows)]
    score = frame["n0"] - frame["n1"] + frame["device"].isin(["device_0", "device_1"])
    score += frame["review"].str.contains("great").astype(float)
    score -= frame["review"].str.contains("awful").astype(float)
    frame["label"] = np.digitize(score + rng.normal(0, 0.5, rows), [-0.5, 0.8])
    frame.to_csv(path, index=False)


def cbrun_side(csv: Path, folder: Path, epochs: int, times: Path, state_every: int) -> None:
    config = {
        "experiment": {"name": "table-bench", "seed": 0},
        "data": {
            "type": "csv",
            "path": str(csv),
            "target": "label",
            "task": "classification",
            "columns": {"review": "text"},
            "text_tokens": TOKENS,
            "split": {"validation": 0.15, "test": 0.0},
        },
        "model": {"type": "mlp", "units": [UNITS]},
        "compile": {"optimizer": {"name": "adam", "learning_rate": 1e-3}},
        "training": {"epochs": epochs, "batch_size": BATCH, "state_every": state_every},
        "callbacks": [{"type": "bench_epoch_timer"}],
    }
    path = folder / "table_bench.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    command = [sys.executable, str(HERE / "cbrun_timed.py"), "train", str(path), "--quiet"]
    command += ["--runs-dir", str(folder / "runs")]
    subprocess.run(command, check=True, env={**os.environ, "CBRUN_BENCH_TIMES": str(times)})


def hand_side(csv: str, epochs: int) -> None:
    """What a user would write: pandas, one input per column, Keras preprocessing layers."""
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras
    from timer import EpochTimer

    keras.utils.set_random_seed(0)
    frame = pd.read_csv(csv)
    order = np.random.default_rng(0).permutation(len(frame))
    cut = int(len(frame) * 0.85)
    train, valid = frame.iloc[np.sort(order[:cut])], frame.iloc[np.sort(order[cut:])]

    def columns(part: pd.DataFrame) -> dict:
        x = {c: part[c].to_numpy("float32") for c in NUMERIC}
        x.update({c: part[c].to_numpy(object) for c in [*CATEGORICAL, "review"]})
        return x

    inputs, encoded = {}, []
    for column in NUMERIC:
        inputs[column] = keras.Input(shape=(1,), name=column)
        values = train[column].to_numpy("float64")
        norm = keras.layers.Normalization(mean=values.mean(), variance=values.var())
        encoded.append(norm(inputs[column]))
    for column in CATEGORICAL:
        inputs[column] = keras.Input(shape=(1,), dtype="string", name=column)
        lookup = keras.layers.StringLookup(
            vocabulary=sorted(train[column].unique()), output_mode="one_hot"
        )
        encoded.append(lookup(inputs[column]))
    inputs["review"] = keras.Input(shape=(1,), dtype="string", name="review")
    text = keras.layers.TextVectorization(max_tokens=TOKENS, output_mode="tf_idf")
    text.adapt(train["review"].to_numpy(object))
    encoded.append(keras.layers.Flatten()(text(inputs["review"])))
    hidden = keras.layers.Dense(UNITS, activation="relu")(keras.layers.Concatenate()(encoded))
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(hidden))
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    model.fit(
        columns(train),
        train["label"].to_numpy("int32"),
        batch_size=BATCH,
        epochs=epochs,
        validation_data=(columns(valid), valid["label"].to_numpy("int32")),
        callbacks=[EpochTimer()],
        verbose=0,
    )


def steady(times: dict, key: str) -> float:
    ends = times[key]
    return statistics.median(b - a for a, b in zip(ends[1:], ends[2:], strict=False))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("folder", type=Path)
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--state-every", type=int, default=1, help="cbrun's training.state_every (default 1)"
    )
    parser.add_argument("--hand", help=argparse.SUPPRESS)  # the hand-written side, in-process
    args = parser.parse_args()
    if args.hand:
        sys.path.insert(0, str(HERE))
        return hand_side(args.hand, args.epochs)
    args.folder.mkdir(parents=True, exist_ok=True)
    csv = args.folder / "table.csv"
    if not csv.exists():
        generate(csv, args.rows)
    results: dict[str, list] = {"cbrun": [], "hand": []}
    for repeat in range(args.repeats):
        for side in ("cbrun", "hand"):
            times = args.folder / f"times-{side}-{repeat}.json"
            if side == "cbrun":
                cbrun_side(csv, args.folder, args.epochs, times, args.state_every)
            else:
                command = [sys.executable, __file__, str(args.folder), "--hand", str(csv)]
                command += ["--epochs", str(args.epochs)]
                env = {**os.environ, "CBRUN_BENCH_TIMES": str(times)}
                subprocess.run(command, check=True, env=env)
            measured = json.loads(times.read_text())
            results[side].append(
                {"wall": steady(measured, "epoch_ends"), "cpu": steady(measured, "cpu_epoch_ends")}
            )
    summary = {
        side: {k: statistics.median(r[k] for r in runs) for k in ("wall", "cpu")}
        for side, runs in results.items()
    }
    summary["ratio_wall"] = summary["cbrun"]["wall"] / summary["hand"]["wall"]
    summary["ratio_cpu"] = summary["cbrun"]["cpu"] / summary["hand"]["cpu"]
    load = os.getloadavg()
    print(
        json.dumps(
            {
                "rows": args.rows,
                "state_every": args.state_every,
                "runs": results,
                **summary,
                "load": load,
            }
        )
    )


if __name__ == "__main__":
    main()
