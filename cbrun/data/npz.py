"""Arrays from a NumPy `.npz` file, chosen by name."""

from __future__ import annotations

import zipfile
from typing import ClassVar, Literal

import numpy as np
from pydantic import Field

from cbrun.core.errors import CbrunError, did_you_mean
from cbrun.data.base import Arrays, Dataset, FileDataParams, make_file_dataset
from cbrun.registry import datasets


class NpzParams(FileDataParams):
    """Feature and label arrays from a NumPy `.npz` file (saved with `numpy.savez`)."""

    read_by_validate: ClassVar[bool] = True

    type: Literal["npz"]
    x: str = Field("x", description="Name of the features array.")
    y: str = Field("y", description="Name of the labels/targets array.")
    task: Literal["classification", "regression"] = "classification"
    num_classes: int | None = Field(
        None, ge=2, description="Number of classes; default: the largest label + 1."
    )


@datasets.register("npz", NpzParams)
def npz(params: NpzParams, seed: int) -> Dataset:
    def read(path: str) -> Arrays:
        keys = ("path", "validation_path", "test_path")
        where = f"data.{next(k for k in keys if getattr(params, k) == path)}"
        if not zipfile.is_zipfile(path):
            raise CbrunError(f"{where}: {path} is not a .npz file (numpy.savez writes one)")
        try:
            with np.load(path, allow_pickle=False) as archive:
                names = list(archive.files)
                for field, key in (("x", params.x), ("y", params.y)):
                    if key not in names:
                        raise CbrunError(
                            f"data.{field}: {path} has no array `{key}`."
                            f"{did_you_mean(key, names)} Arrays: {', '.join(names)}"
                        )
                return archive[params.x], archive[params.y]
        except (OSError, ValueError) as error:
            raise CbrunError(f"{where}: cannot read {path} as .npz: {error}") from None

    dataset = make_file_dataset(
        read, params, seed, params.task, source=params.path, num_classes=params.num_classes
    )
    if params.task == "classification":
        for name in ("train", "validation", "test"):
            part = getattr(dataset, name)
            if part is not None and part[1].max() >= dataset.num_classes:
                raise CbrunError(
                    f"data.num_classes: {name} labels in {params.path} go up to "
                    f"{int(part[1].max())}, outside the {dataset.num_classes} classes "
                    f"(0..{dataset.num_classes - 1})"
                )
    return dataset
