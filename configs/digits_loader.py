"""The loader of configs/digits_tfdata.yaml: scikit-learn's digits as tf.data datasets.

An example of `data: {type: import}`: a function in the config's folder returning a dict of
splits. The unbatched datasets are shuffled each epoch and batched by cbrun.
"""

import tensorflow as tf
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split


def splits(test_size: float = 0.15, seed: int = 0) -> dict:
    """Train, validation and test datasets of (64 pixels / 16, digit) pairs."""
    digits = load_digits()
    x, y = digits.data / 16.0, digits.target
    x_train, x_rest, y_train, y_rest = train_test_split(
        x, y, test_size=2 * test_size, stratify=y, random_state=seed
    )
    x_val, x_test, y_val, y_test = train_test_split(
        x_rest, y_rest, test_size=0.5, stratify=y_rest, random_state=seed
    )
    return {
        "train": tf.data.Dataset.from_tensor_slices((x_train, y_train)),
        "validation": tf.data.Dataset.from_tensor_slices((x_val, y_val)),
        "test": tf.data.Dataset.from_tensor_slices((x_test, y_test)),
    }
