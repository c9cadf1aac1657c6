"""Write scikit-learn's bundled digits as PNG files, one folder per class, for image_directory.

    python configs/data/write_digits_images.py [FOLDER]     # default: configs/data/digits_images

Each of the 1,797 8x8 grayscale images becomes FOLDER/<digit>/<index>.png, its 0-16 pixel
values stretched to 0-255. The output is the same on every run, so the committed folder can
be checked against a fresh copy (tests/data/test_image_directory.py does).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.datasets import load_digits

DEFAULT = Path(__file__).resolve().parent / "digits_images"


def write_digits_images(folder: Path) -> int:
    """Write the PNG files under `folder` (which must not hold a digits folder yet)."""
    bunch = load_digits()
    pixels = np.rint(bunch.images * (255 / 16)).astype("uint8")
    for index, (image, digit) in enumerate(zip(pixels, bunch.target, strict=True)):
        target = folder / str(digit) / f"{index:04d}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(target, optimize=True)
    return len(pixels)


if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT
    if out.exists() and any(out.iterdir()):
        sys.exit(f"{out}: already exists and is not empty; remove it first")
    print(f"wrote {write_digits_images(out)} images under {out}")
