"""Hand-written Keras: `keras.utils.image_dataset_from_directory` with prefetch, and the CNN
of bench/configs/image_folder.yaml. What a user would write without cbrun."""

import argparse
import sys
from pathlib import Path

import keras
import tensorflow as tf

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from timer import EpochTimer  # noqa: E402  (the bench's shared epoch timer)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--size", type=int, default=32)
    args = parser.parse_args()

    keras.utils.set_random_seed(1)
    train = keras.utils.image_dataset_from_directory(
        args.data, image_size=(args.size, args.size), batch_size=args.batch_size, seed=1
    )
    classes = len(train.class_names)
    train = train.map(lambda x, y: (x / 255.0, y)).prefetch(tf.data.AUTOTUNE)
    model = keras.Sequential(
        [
            keras.Input(shape=(args.size, args.size, 3)),
            keras.layers.Conv2D(16, 3, activation="relu"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Conv2D(32, 3, activation="relu"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Flatten(),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(classes, activation="softmax"),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=1e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    model.fit(train, epochs=args.epochs, callbacks=[EpochTimer()], verbose=0)


if __name__ == "__main__":
    main()
