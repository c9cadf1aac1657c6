"""Hand-written Keras: the MLP of bench/configs/tabular.yaml on the same CSV files, with the
same Keras callbacks, calling `model.fit` directly. What a user would write without cbrun."""

import argparse
import sys
from pathlib import Path

import keras
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from timer import EpochTimer  # noqa: E402  (the bench's shared epoch timer)


def load(path):
    frame = pd.read_csv(path)
    return frame.drop(columns="label").to_numpy("float32"), frame["label"].to_numpy("int32")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=128)
    args = parser.parse_args()

    keras.utils.set_random_seed(1)
    x, y = load(args.data / "tabular-train.csv")
    validation = load(args.data / "tabular-validation.csv")
    test = load(args.data / "tabular-test.csv")

    model = keras.Sequential(
        [
            keras.Input(shape=(x.shape[1],)),
            keras.layers.Normalization(mean=x.mean(axis=0), variance=x.var(axis=0)),
            keras.layers.Dense(128),
            keras.layers.Activation("relu"),
            keras.layers.Dense(64),
            keras.layers.Activation("relu"),
            keras.layers.Dense(int(y.max()) + 1, activation="softmax"),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=1e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    (args.out / "checkpoints").mkdir(parents=True, exist_ok=True)
    callbacks = [
        keras.callbacks.EarlyStopping(monitor="val_loss", mode="min", patience=1000),
        keras.callbacks.ModelCheckpoint(
            str(args.out / "checkpoints" / "best.keras"),
            monitor="val_accuracy",
            mode="max",
            save_best_only=True,
        ),
        keras.callbacks.CSVLogger(str(args.out / "log.csv")),
        EpochTimer(),
    ]
    model.fit(
        x,
        y,
        batch_size=args.batch_size,
        epochs=args.epochs,
        validation_data=validation,
        callbacks=callbacks,
        verbose=0,
    )
    print(model.evaluate(*test, batch_size=args.batch_size, verbose=0, return_dict=True))
    model.save(args.out / "model.keras")


if __name__ == "__main__":
    main()
