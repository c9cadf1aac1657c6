"""A table column of image file paths (`columns: {photo: image_path}`): the images are
decoded by tf.data beside the other columns, the model takes both, predict reads raw rows
with paths, the fingerprint covers the images, and a missing or corrupt image is exit 2
naming the line and the file."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from conftest import TINY, assert_refused, merge, train_tiny

DATA = {
    "type": "csv",
    "samples": None,  # TINY's keys the csv source has not
    "features": None,
    "classes": None,
    "path": "pets.csv",
    "target": "kind",
    "columns": {"photo": "image_path"},
    "image_size": [8, 8],
    "color_mode": "grayscale",
    "split": {"validation": 0.2, "test": 0.2},
}


def write_table(folder, rows: int = 100) -> None:
    """Dark or bright 10x12 grey images in pics/; the class is the brightness, `size` and
    `shop` are noise."""
    rng = np.random.default_rng(0)
    (folder / "pics").mkdir()
    table = []
    for index in range(rows):
        bright = index % 2
        pixels = rng.integers(0, 100, (10, 12)) + 140 * bright
        Image.fromarray(pixels.astype("uint8"), "L").save(folder / "pics" / f"{index:03d}.png")
        table.append(
            {
                "photo": f"pics/{index:03d}.png",
                "size": rng.normal(),
                "shop": rng.choice(["a", "b"]),
                "kind": ["dark", "bright"][bright],
            }
        )
    pd.DataFrame(table).to_csv(folder / "pets.csv", index=False)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("table-images")
    write_table(folder)
    result = train_tiny(
        folder,
        {
            "data": DATA,
            "model": {"type": "mlp", "units": [16]},
            "training": {"epochs": 3, "batch_size": 16},
        },
    )
    return folder, result


def test_an_image_column_trains_beside_the_other_columns(trained):
    folder, result = trained
    assert result.record["test_metrics"]["accuracy"] >= 0.9
    data = json.loads((result.run_dir / "data.json").read_text())
    assert data["columns"] == {"photo": "image_path", "size": "numeric", "shop": "categorical"}
    images = data["fingerprint"]["data.path:images"]
    assert images["files"] == 100 and images["listed"] is True
    summary = (result.run_dir / "model_summary.txt").read_text()
    assert "conv1_photo" in summary and "lookup_shop" in summary


def test_eval_and_predict_read_the_images_and_a_changed_image_is_refused(trained, cli, tmp_path):
    folder, result = trained
    evaluated = cli("eval", result.run_dir)
    assert evaluated.exit_code == 0, evaluated.stderr
    (folder / "rows.csv").write_text("photo,size,shop\npics/001.png,0.1,a\npics/000.png,0.3,new\n")
    predicted = cli("predict", result.run_dir, folder / "rows.csv")
    assert predicted.exit_code == 0, predicted.stderr
    assert [row.split(",")[-1] for row in predicted.stdout.split()[1:]] == ["bright", "dark"]
    original = (folder / "pics" / "007.png").read_bytes()
    Image.new("L", (30, 30)).save(folder / "pics" / "007.png")
    try:
        refused = cli("eval", result.run_dir)
        assert refused.exit_code == 2 and "1 file changed size" in refused.stderr
    finally:
        (folder / "pics" / "007.png").write_bytes(original)


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        ("missing", "pets.csv: no image file"),
        ("corrupt", "pets.csv: cannot read the image"),
    ],
)
def test_a_missing_or_corrupt_image_is_exit_2_naming_line_and_file(tmp_path, cli, damage, expected):
    write_table(tmp_path, rows=12)
    image = tmp_path / "pics" / "003.png"  # the fourth data row: line 5
    if damage == "missing":
        image.unlink()
    else:
        image.write_bytes(b"not a png at all")
    config = tmp_path / "pets.yaml"
    text = merge(TINY, {"output": {"runs_dir": str(tmp_path / "runs")}, "data": DATA})
    config.write_text(yaml.safe_dump(text, sort_keys=False))
    assert_refused(cli, config, tmp_path / "runs", expected)
    stderr = cli("train", config).stderr
    assert "data.columns.photo: line 5 of " in stderr and "pics/003.png" in stderr
