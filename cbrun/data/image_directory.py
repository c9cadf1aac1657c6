"""Images on disk, one subfolder per class, decoded and resized by tf.data while training.

The layout and the decoding follow Keras' `image_dataset_from_directory`: labels are the
sorted class folder names, class folders are searched recursively for `.bmp`, `.gif`,
`.jpeg`, `.jpg` and `.png` files, and each image is read with `tf.io.decode_image` and
resized with `tf.image.resize`. What cbrun adds: every file is checked with Pillow before
training (a bad file is an error naming it, or skipped and counted), seeded stratified
splits over the file list, a cache in memory or in the run directory, and a fingerprint.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
from pydantic import Field, PositiveInt

from cbrun.core.errors import CbrunError
from cbrun.core.fields import InputFolder
from cbrun.core.native_logs import quiet_native_logs
from cbrun.data.base import (
    DataParams,
    Dataset,
    Stream,
    limit_arrays,
    split_arrays,
)
from cbrun.data.fingerprint import fingerprint_data
from cbrun.registry import datasets

FORMATS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")  # what tf.io.decode_image reads
SPLIT_FOLDERS = ("train", "validation", "test")
CHANNELS = {"grayscale": 1, "rgb": 3, "rgba": 4}
Interpolation = Literal[
    "bilinear", "nearest", "bicubic", "area", "lanczos3", "lanczos5", "gaussian", "mitchellcubic"
]
SHUFFLE_BUFFER = 1024  # decoded images held for shuffling a cached split (see _pipeline)


class ImageDirectoryParams(DataParams):
    """Image files in one subfolder per class (or in train/validation/test folders of those)."""

    task: ClassVar[str] = "classification"

    type: Literal["image_directory"]
    path: Annotated[str, InputFolder] = Field(
        description="Folder with one subfolder of images per class, or with `train/` (and "
        "optionally `validation/`, `test/`) folders laid out so; relative to the config file.",
        examples=["images"],
    )
    image_size: tuple[PositiveInt, PositiveInt] = Field(
        (256, 256),
        description="Height and width in pixels every image is resized to.",
    )
    color_mode: Literal["grayscale", "rgb", "rgba"] = Field(
        "rgb", description="Channels: grayscale 1, rgb 3, rgba 4 (converted on decoding)."
    )
    interpolation: Interpolation = Field("bilinear", description="Resize method (tf.image.resize).")
    crop_to_aspect_ratio: bool = Field(
        False, description="Crop the largest centred box of the target aspect ratio first."
    )
    scale: bool = Field(True, description="Divide pixel values (0-255) by 255.")
    cache: Literal["none", "memory", "disk"] = Field(
        "none",
        description="Keep decoded training and validation images after the first epoch: in "
        "memory, or on disk in the run directory's `data_cache/`.",
    )
    classes: list[str] | None = Field(
        None,
        min_length=2,
        description="Class names in the model's order (default: the sorted class folders); "
        "the folder may then hold a few of them (`cbrun eval --data` sets this).",
    )
    on_bad_file: Literal["error", "skip"] = Field(
        "error",
        description="An unreadable image stops with its name (`error`) or is left out and "
        "counted in data.json (`skip`).",
    )

    @property
    def channels(self) -> int:
        return CHANNELS[self.color_mode]

    @property
    def sample_shape(self) -> tuple[int, int, int]:
        return (*self.image_size, self.channels)

    def prediction_inputs(self, paths: list[Path]) -> tuple[list[str], np.ndarray]:
        """Image files, or folders searched recursively for images, decoded as in training."""
        files: list[str] = []
        for path in paths:
            if path.is_dir():
                found = _image_files(path)
                if not found:
                    raise CbrunError(f"{path}: no images ({', '.join(FORMATS)}) in this folder")
                files.extend(found)
            elif path.is_file():
                files.append(str(path))
            else:
                raise CbrunError(f"{path}: no such file or folder")
        for path, reason in bad_files(files):
            raise CbrunError(f"{path}: cannot read the image: {reason}")
        return files, self.load_images(np.array(files, dtype=object))

    def load_images(self, paths: np.ndarray) -> np.ndarray:
        """Decode and resize these files eagerly, as training does (for samples and predict)."""
        tf = quiet_tensorflow()

        if not len(paths):
            return np.zeros((0, *self.sample_shape), dtype="float32")
        data = tf.data.Dataset.from_tensor_slices(paths.astype(str)).map(self.decoder())
        return np.concatenate(list(data.batch(256).map(self.rescale).as_numpy_iterator()))

    def rescale(self, images: Any) -> Any:
        """Pixel values as the model sees them (0-1 with `scale`); applied to whole batches,
        which costs less than one small operation per image."""
        return images / 255.0 if self.scale else images

    def decoder(self) -> Any:
        """The tf.data function from a file path to a float32 image of `sample_shape`, with
        pixel values 0-255 (see `rescale`)."""
        return image_decoder(
            self.image_size, self.channels, self.interpolation, self.crop_to_aspect_ratio
        )


def image_decoder(
    image_size: tuple[int, int], channels: int, interpolation: str, crop: bool
) -> Any:
    """The tf.data function from a file path to a float32 image of `(*image_size, channels)`,
    pixel values 0-255: decoded by `tf.io.decode_image`, centre-cropped to the aspect ratio
    if `crop`, resized by `tf.image.resize` with `interpolation` (as Keras' loader does)."""
    import tensorflow as tf

    height, width = image_size

    def decode(path: Any) -> Any:
        image = tf.io.decode_image(
            tf.io.read_file(path), channels=channels, expand_animations=False
        )
        if crop:
            image = _central_crop(image, height / width)
        image = tf.image.resize(image, (height, width), method=interpolation)
        image = tf.cast(image, tf.float32)  # `nearest` keeps the decoded uint8
        image.set_shape((height, width, channels))
        return image

    return decode


def quiet_tensorflow() -> Any:
    """TensorFlow, imported (if `predict` reads inputs before loading the model) without its
    native start-up chatter."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with quiet_native_logs():
        import tensorflow as tf

        tf.config.list_physical_devices()
    return tf


def _central_crop(image: Any, ratio: float) -> Any:
    """The largest centred box with height / width == ratio (as Keras' smart_resize crops)."""
    import tensorflow as tf

    shape = tf.cast(tf.shape(image)[:2], tf.float64)
    height = tf.maximum(tf.minimum(shape[0], tf.floor(shape[1] * ratio)), 1.0)
    width = tf.maximum(tf.minimum(shape[1], tf.floor(shape[0] / ratio)), 1.0)
    top = tf.cast((shape[0] - height) / 2, tf.int32)
    left = tf.cast((shape[1] - width) / 2, tf.int32)
    return image[top : top + tf.cast(height, tf.int32), left : left + tf.cast(width, tf.int32)]


@datasets.register("image_directory", ImageDirectoryParams)
def image_directory(params: ImageDirectoryParams, seed: int) -> Dataset:
    root = Path(params.path)
    folders = _split_folders(root)
    main = folders.get("train", root)
    class_names = list(params.classes) if params.classes else _class_names(main)
    files = {name: _list_images(folder, class_names) for name, folder in folders.items()}
    if not folders:
        files["train"] = _list_images(root, class_names)
    every = [path for paths, _ in files.values() for path in paths]
    bad = bad_files(every)
    if bad and params.on_bad_file == "error":
        path, reason = bad[0]
        more = f" ({len(bad) - 1} more bad files)" if len(bad) > 1 else ""
        raise CbrunError(
            f"data.path: cannot read the image {path}: {reason}{more}; fix or remove it, or "
            "set data.on_bad_file: skip"
        )
    skipped = {path for path, _ in bad}
    files = {name: _without(pair, skipped) for name, pair in files.items()}

    x, y = limit_arrays(*files["train"], params.limit, seed)
    split = params.split.model_copy(update={k: 0.0 for k in files if k != "train"})
    train, validation, test = split_arrays(x, y, split, seed, stratify=True)
    parts = {"train": train, "validation": validation, "test": test}
    for name in ("validation", "test"):
        if name in files:
            parts[name] = limit_arrays(*files[name], params.limit, seed)
    if not len(parts["train"][0]):
        raise CbrunError(f"data.path: no training images left in {main}")
    streams = {
        name: None if pair is None or not len(pair[0]) else _stream(params, name, *pair)
        for name, pair in parts.items()
    }
    return Dataset(
        streams["train"],
        streams["validation"],
        streams["test"],
        "classification",
        num_classes=len(class_names),
        class_names=class_names,
        extra={"image": True},
        record={
            "source": "image_directory",
            "skipped_files": len(bad),
            **({"skipped": [f"{path}: {reason}" for path, reason in bad[:20]]} if bad else {}),
        },
    ).add_fingerprint(fingerprint_data({}, {"data.path": (params.path, FORMATS)}))


def _split_folders(root: Path) -> dict[str, Path]:
    """`train/`, `validation/`, `test/` under `root` when the folder is laid out by split."""
    found = {name: root / name for name in SPLIT_FOLDERS if (root / name).is_dir()}
    if found and "train" not in found:
        raise CbrunError(
            f"data.path: {root} has {', '.join(f'`{n}/`' for n in found)} but no `train/` "
            "folder; split folders need train/ (validation/ and test/ are optional)"
        )
    return found


def _class_names(folder: Path) -> list[str]:
    names = sorted(entry.name for entry in os.scandir(folder) if entry.is_dir())
    if not names:
        loose = any(p.suffix.lower() in FORMATS for p in folder.iterdir())
        hint = (
            "; the images lie directly in it: put them in one subfolder per class" if loose else ""
        )
        raise CbrunError(f"data.path: {folder} has no class folders{hint}")
    if len(names) == 1:
        raise CbrunError(
            f"data.path: {folder} has only one class folder (`{names[0]}`); classification "
            "needs at least 2"
        )
    return names


def _list_images(folder: Path, class_names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Every image path under each class folder (recursively, sorted) and its class index."""
    present = sorted(entry.name for entry in os.scandir(folder) if entry.is_dir())
    unknown = [name for name in present if name not in class_names]
    if unknown:
        raise CbrunError(
            f"data.path: {folder} has class folders not in the training folder: "
            f"{', '.join(unknown)} (classes: {', '.join(class_names)})"
        )
    paths: list[str] = []
    labels: list[int] = []
    for index, name in enumerate(class_names):
        if name not in present:
            continue
        found = _image_files(folder / name)
        if not found:
            raise CbrunError(
                f"data.path: the class folder {folder / name} has no images "
                f"({', '.join(FORMATS)}); add some or remove the folder"
            )
        paths.extend(found)
        labels.extend([index] * len(found))
    return np.array(paths, dtype=object), np.array(labels, dtype="int32")


def _image_files(folder: Path) -> list[str]:
    """Image files under `folder`, recursively, in sorted order (as Keras lists them)."""
    return [
        os.path.join(top, file)
        for top, _, names in sorted(os.walk(folder), key=lambda item: item[0])
        for file in sorted(names)
        if file.lower().endswith(FORMATS)
    ]


def bad_files(paths: list[str]) -> list[tuple[str, str]]:
    """(path, reason) for each file Pillow cannot open and verify, in path order."""
    with ThreadPoolExecutor(max_workers=8) as pool:
        reasons = list(pool.map(_check_image, paths, chunksize=64))
    return [(path, reason) for path, reason in zip(paths, reasons, strict=True) if reason]


def _check_image(path: str) -> str | None:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            kind = image.format
            image.verify()  # structure and checksums, without decoding the pixels
    except UnidentifiedImageError:
        return "not an image file Pillow recognises"
    except (OSError, SyntaxError, ValueError) as error:
        return f"{type(error).__name__}: {error}"
    if kind not in ("PNG", "JPEG", "GIF", "BMP", "MPO"):
        return f"a {kind} file; TensorFlow decodes only PNG, JPEG, GIF and BMP"
    return None


def _without(pair: tuple[np.ndarray, np.ndarray], skipped: set[str]) -> tuple:
    if not skipped:
        return pair
    keep = np.array([path not in skipped for path in pair[0]], dtype=bool)
    return pair[0][keep], pair[1][keep]


def _stream(
    params: ImageDirectoryParams, split: str, paths: np.ndarray, labels: np.ndarray
) -> Stream:
    def batches(batch_size: int, shuffle: bool, seed: int, cache_dir: Any, first: int) -> Any:
        # Only fit passes a cache folder: a single pass (evaluate, predict, statistics) and
        # the test split are never cached.
        cache = params.cache if split != "test" and cache_dir is not None else "none"
        order = (seed, first) if shuffle else None
        return _pipeline(
            params, paths, labels, batch_size, order, cache, Path(cache_dir or "."), split
        )

    def load(index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return params.load_images(paths[index]), labels[index]

    return Stream(labels, params.sample_shape, batches, load)


def _pipeline(
    params: ImageDirectoryParams,
    paths: np.ndarray,
    labels: np.ndarray,
    batch_size: int,
    shuffle: tuple[int, int] | None,
    cache: str,
    cache_folder: Path,
    split: str,
) -> Any:
    """Batches of decoded images: file names shuffled each epoch, decoded in parallel.

    `shuffle` is `(seed, first_epoch)`, or None to keep the order. Without a cache, epoch e
    visits the files in an order drawn from (seed, e) alone, so a resumed run sees the order
    the unbroken run saw. A cached split is decoded once in a seeded random order and then
    shuffled through a buffer of SHUFFLE_BUFFER images each epoch (the whole split would
    double the memory).
    """
    import tensorflow as tf

    count = len(paths)
    if cache != "none" and shuffle:
        order = np.random.default_rng(shuffle[0]).permutation(count)
        paths, labels = paths[order], labels[order]
    if shuffle and cache == "none":
        data = _epoch_orders(paths.astype(str), labels, *shuffle)
    else:
        data = tf.data.Dataset.from_tensor_slices((paths.astype(str), labels))
    decode = params.decoder()
    data = data.map(lambda path, label: (decode(path), label), num_parallel_calls=tf.data.AUTOTUNE)
    if cache == "memory":
        data = data.cache()
    elif cache == "disk":
        data = data.cache(_disk_cache(cache_folder, split))
    if shuffle and cache != "none":
        buffer = min(count, SHUFFLE_BUFFER)
        data = data.shuffle(buffer, seed=shuffle[0], reshuffle_each_iteration=True)
    data = data.batch(batch_size)
    if params.scale:
        data = data.map(lambda images, label: (params.rescale(images), label))
    data = data.prefetch(tf.data.AUTOTUNE)
    return data.apply(tf.data.experimental.assert_cardinality(-(-count // batch_size)))


def _epoch_orders(paths: np.ndarray, labels: np.ndarray, seed: int, first: int) -> Any:
    """(path, label) pairs in a new order at each pass: pass k takes epoch first + k's order,
    a stateless permutation drawn from (seed, epoch)."""
    import tensorflow as tf

    count = len(paths)
    epoch = tf.Variable(first, dtype=tf.int64, trainable=False)
    names, classes = tf.constant(paths), tf.constant(labels)

    def one_pass(_: Any) -> Any:
        key = tf.stack([tf.constant(seed, tf.int64), epoch.assign_add(1) - 1])
        order = tf.argsort(tf.random.stateless_uniform([count], seed=key))
        return tf.data.Dataset.from_tensor_slices(
            (tf.gather(names, order), tf.gather(classes, order))
        )

    one = tf.data.experimental.assert_cardinality(count)
    return tf.data.Dataset.range(1).flat_map(one_pass).apply(one)


def _disk_cache(folder: Path, split: str) -> str:
    """The cache file prefix of a split; an unfinished cache (a killed run) is removed."""
    folder.mkdir(parents=True, exist_ok=True)
    prefix = folder / split
    if not Path(f"{prefix}.index").exists():
        for stale in folder.glob(f"{split}*"):
            stale.unlink()
    return str(prefix)
