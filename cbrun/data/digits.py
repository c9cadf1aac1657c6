"""scikit-learn's bundled handwritten digits (1,797 8x8 images): real data, no download."""

from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np
from pydantic import Field

from cbrun.data.base import DataParams, Dataset, make_dataset
from cbrun.registry import datasets


class DigitsParams(DataParams):
    """Handwritten digits 0-9 bundled with scikit-learn (1,797 samples of 8x8 pixels)."""

    task: ClassVar[str] = "classification"

    type: Literal["digits"]
    as_images: bool = Field(
        False, description="Give 8x8x1 images (for convolutions) instead of 64 flat features."
    )
    scale: bool = Field(True, description="Divide pixel values (0-16) by 16.")

    def prepare_features(self, x: np.ndarray) -> np.ndarray:
        """Raw pixel values (0-16) as the model saw them: divided by 16 if `scale`."""
        return x / 16.0 if self.scale else x

    def declared_classes(self) -> tuple[str, list[str] | None]:
        return "classification", [str(digit) for digit in range(10)]


@datasets.register("digits", DigitsParams)
def digits(params: DigitsParams, seed: int) -> Dataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = bunch.images if params.as_images else bunch.data
    if params.as_images:
        x = x[..., None]
    return make_dataset(
        params.prepare_features(x),
        bunch.target,
        params,
        seed,
        "classification",
        source="data (digits)",
        num_classes=10,
        class_names=[str(c) for c in bunch.target_names],
        extra={"image": params.as_images},
    )
