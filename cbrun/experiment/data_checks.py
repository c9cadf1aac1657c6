"""The data checks `validate` and `train` share: read the data as training will, and refuse
what cannot train before any run directory exists.

`train` reads every source through `read_data`; `validate` does too for the sources whose
files or functions are the user's and read without TensorFlow (`csv`, `npz`, `import`: see
`DataParams.read_by_validate`), so both refuse the same data with the same words.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cbrun import registry
from cbrun.core.errors import CbrunError, ConfigError
from cbrun.data.base import Dataset, labels_of
from cbrun.data.class_weight import class_weights
from cbrun.experiment.yaml_source import Document

MAX_CLASSES = 100_000  # units of a classification head


@dataclass
class CheckedData:
    dataset: Dataset
    class_weight: dict[str, Any] | None


def read_by_validate(config: Any) -> bool:
    """Whether `cbrun validate` reads this config's data (see the module's docstring); a
    table that streams (large, or with image_path columns) is read by tf.data, in train only."""
    streamed = bool(getattr(config.data, "streamed", False))
    return bool(getattr(type(config.data), "read_by_validate", False)) and not streamed


def read_data(config: Any, document: Document, config_dir: Path | None) -> CheckedData:
    """The config's data, read and checked as training takes it; user errors raise a
    CbrunError naming the config line (`config_dir` is importable for `import` data)."""
    from cbrun.experiment.checks import compile_fits_the_head
    from cbrun.experiment.config import located

    if config_dir is not None and str(config_dir) not in sys.path:
        sys.path.insert(0, str(config_dir))
    with located(document, "data"):  # errors found in the data name the config line
        component = registry.datasets.get(config.data.type)
        dataset = component.factory(config.data, config.experiment.seed)
        classes_to_learn(config, dataset)
    with located(document, "training"):
        weights = class_weights(config.training.class_weight, dataset)
    if getattr(config.data, "task", None) not in ("classification", "regression"):
        problems = compile_fits_the_head(config, dataset.task, document)  # the data decided
        if problems:
            raise ConfigError(problems, source=document.source)
    return CheckedData(dataset, weights)


def classes_to_learn(config: Any, dataset: Dataset) -> None:
    """Classification needs two classes or more in the training split (a file of one class
    may still be evaluated: `cbrun eval --data`), and no more than MAX_CLASSES (labels that
    are ids, not indices, would build a head of that many units)."""
    if dataset.task != "classification":
        return
    found = np.unique(np.asarray(labels_of(dataset.train)))
    if len(found) < 2:
        which = f"class {found[0]} only" if len(found) else "no class"
        raise CbrunError(
            f"{_source(config.data)}: the training labels hold {which}; classification needs "
            "two or more classes"
        )
    if (dataset.num_classes or 0) > MAX_CLASSES:
        raise CbrunError(
            f"{_source(config.data)}: {dataset.num_classes:,} classes (labels go up to "
            f"{dataset.num_classes - 1:,}, {len(found):,} of them used), more than the "
            f"{MAX_CLASSES:,} a classification head takes: number the classes 0..K-1 "
            "(`np.unique(y, return_inverse=True)[1]`)"
        )


def _source(params: Any) -> str:
    """The key and file (or function) the labels came from, for messages."""
    if params.type == "npz":
        return f"data.y: `{params.y}` in {params.path}"
    if params.type == "import":
        return f"data.function: {params.function}"
    if params.type == "csv":
        return f"data.target: `{params.target}` in {params.path}"
    return f"data ({params.type})"
