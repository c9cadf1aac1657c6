"""`cbrun eval RUN --data PATH`: new labelled data, read by the run's own data source.

The run's data section is reused with `path` pointing at the new file or folder, no split
and no separate split files, the training's feature columns and task; the labels are then
put in the training's class order, so class `b` is the class `b` the model learned.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from cbrun import registry
from cbrun.core.errors import CbrunError
from cbrun.core.run_dir import CONFIG_FILE, read_json
from cbrun.data.base import Dataset, SplitParams, Stream, labels_of


def new_data_overrides(run_dir: Path, path: Path) -> list[str]:
    """`--set`-style overrides of the run's config that point its data source at `path`
    alone (so the training's own files need not exist any more)."""
    if not path.exists():
        raise CbrunError(f"--data: {path}: no such file or folder")
    try:
        data = yaml.safe_load((run_dir / CONFIG_FILE).read_text(encoding="utf-8"))["data"]
        fields = registry.datasets.get(data["type"]).params.model_fields
    except (OSError, yaml.YAMLError, KeyError, TypeError, CbrunError) as error:
        raise CbrunError(f"{run_dir / CONFIG_FILE}: unreadable data section: {error}") from None
    if "path" not in fields:
        raise CbrunError(
            f"--data: the run's data source `{data['type']}` reads no files; --data takes data "
            "laid out like a csv, npz or image_directory run's"
        )
    unset = [f"data.{key}=" for key in ("validation_path", "test_path") if key in fields]
    return [f"data.path={json.dumps(str(path.resolve()))}", *unset]


def new_dataset(config: Any, run_dir: Path, path: Path) -> Dataset:
    """All of `path` (already in `config.data.path`) as the `train` split of a Dataset,
    labelled as the run's training data."""
    params = config.data
    fields = type(params).model_fields
    trained = read_json(run_dir / "data.json")
    updates: dict[str, Any] = {"split": SplitParams(validation=0, test=0), "limit": None}
    if "features" in fields and trained.get("feature_names"):
        updates["features"] = trained["feature_names"]
    if "task" in fields:
        updates["task"] = trained["task"]
    if "num_classes" in fields and trained.get("num_classes"):
        updates["num_classes"] = trained["num_classes"]
    if "classes" in fields and trained.get("class_names"):  # a file may hold a few classes
        updates["classes"] = trained["class_names"]
    try:
        dataset = registry.datasets.get(params.type).factory(
            params.model_copy(update=updates), config.experiment.seed
        )
    except CbrunError as error:
        raise CbrunError(f"--data: {error.message}", hint=error.hint) from None
    if list(dataset.input_shape) != list(trained["input_shape"]):
        raise CbrunError(
            f"--data: {path}: samples of shape {list(dataset.input_shape)} (features), but the "
            f"run trained on {list(trained['input_shape'])}"
        )
    return _labelled_as_trained(dataset, trained, path)


def _labelled_as_trained(dataset: Dataset, trained: dict[str, Any], path: Path) -> Dataset:
    """`dataset` with its class indices mapped to the training's classes (by name)."""
    names = trained.get("class_names")
    if dataset.task != "classification" or not names or dataset.class_names == names:
        return dataset
    unknown = [name for name in dataset.class_names or [] if name not in names]
    if unknown:
        raise CbrunError(
            f"--data: {path}: classes the run did not train on: {', '.join(unknown)} "
            f"(its classes: {', '.join(names)})"
        )
    table = np.array([names.index(name) for name in dataset.class_names or []], dtype="int32")
    dataset.train = _relabel(dataset.train, table)
    dataset.num_classes, dataset.class_names = len(names), list(names)
    return dataset


def _relabel(split: Any, table: np.ndarray) -> Any:
    if not isinstance(split, Stream):
        return split[0], table[labels_of(split)]

    def batches(*args: Any) -> Any:
        import tensorflow as tf

        lookup = tf.constant(table)
        return split.batches(*args).map(lambda x, y: (x, tf.gather(lookup, y)))

    def load(index: np.ndarray) -> Any:
        x, y = split.load(index)
        return x, table[y]

    return Stream(table[split.labels], split.input_shape, batches, load)
