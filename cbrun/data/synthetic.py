"""Seeded synthetic data for smoke runs: Gaussian class blobs and a noisy linear regression."""

from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np
from pydantic import Field, NonNegativeFloat, PositiveInt

from cbrun.data.base import DataParams, Dataset, make_dataset
from cbrun.registry import datasets


class SyntheticClassificationParams(DataParams):
    """Seeded Gaussian blobs, one per class, for smoke runs and tests."""

    task: ClassVar[str] = "classification"

    type: Literal["synthetic_classification"]
    samples: PositiveInt = Field(1000, description="Number of samples.")
    features: PositiveInt = Field(20, description="Number of features.")
    classes: int = Field(3, ge=2, description="Number of classes.")
    separation: NonNegativeFloat = Field(
        2.0, description="Distance between class centres, in noise standard deviations."
    )

    def declared_classes(self) -> tuple[str, list[str] | None]:
        return "classification", [str(index) for index in range(self.classes)]


class SyntheticRegressionParams(DataParams):
    """Seeded linear regression targets with Gaussian noise, for smoke runs and tests."""

    task: ClassVar[str] = "regression"

    type: Literal["synthetic_regression"]
    samples: PositiveInt = Field(1000, description="Number of samples.")
    features: PositiveInt = Field(10, description="Number of features.")
    targets: PositiveInt = Field(1, description="Number of target columns.")
    noise: NonNegativeFloat = Field(0.1, description="Standard deviation of the target noise.")

    def declared_classes(self) -> tuple[str, list[str] | None]:
        return "regression", None


@datasets.register("synthetic_classification", SyntheticClassificationParams)
def synthetic_classification(params: SyntheticClassificationParams, seed: int) -> Dataset:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(params.classes, params.features))
    centres *= params.separation / np.sqrt(params.features)
    y = rng.integers(0, params.classes, size=params.samples)
    x = centres[y] + rng.normal(size=(params.samples, params.features)) / 2
    return make_dataset(
        x,
        y,
        params,
        seed,
        "classification",
        source="data (synthetic_classification)",
        num_classes=params.classes,
    )


@datasets.register("synthetic_regression", SyntheticRegressionParams)
def synthetic_regression(params: SyntheticRegressionParams, seed: int) -> Dataset:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(params.samples, params.features))
    weights = rng.normal(size=(params.features, params.targets))
    y = x @ weights + rng.normal(scale=params.noise, size=(params.samples, params.targets))
    return make_dataset(
        x,
        y if params.targets > 1 else y[:, 0],
        params,
        seed,
        "regression",
        source="data (synthetic_regression)",
    )
