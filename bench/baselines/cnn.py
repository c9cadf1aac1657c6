"""Hand-written Keras: the CNN of bench/configs/cnn.yaml on the same .npz files, with the
same Keras callbacks, calling `model.fit` directly. What a user would write without cbrun."""

import argparse
import sys
from pathlib import Path

import keras
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from timer import EpochTimer  # noqa: E402  (the bench's shared epoch timer)


def load(path):
    with np.load(path) as arrays:
        return arrays["x"].astype("float32"), arrays["y"].astype("int32")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()

    keras.utils.set_random_seed(1)
    x, y = load(args.data / "images-train.npz")
    validation = load(args.data / "images-validation.npz")
    test = load(args.data / "images-test.npz")

    model = keras.Sequential(
        [
            keras.Input(shape=x.shape[1:]),
            keras.layers.Conv2D(16, 3, activation="relu"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Conv2D(32, 3, activation="relu"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Flatten(),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
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
