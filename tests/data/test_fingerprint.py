"""Data fingerprints: every file source records one, and each kind of change is named."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from cbrun import registry
from cbrun.data.fingerprint import data_changes, file_fingerprint, fingerprint_data
from tests.data.test_image_directory import write_images


def build(data: dict):
    component = registry.datasets.get(data["type"])
    return component.factory(component.params.model_validate(data), 0)


def test_csv_and_npz_record_each_file_they_read(tmp_path):
    table = pd.DataFrame({"a": np.arange(40.0), "label": [0, 1] * 20})
    for name in ("train", "val", "test"):
        table.to_csv(tmp_path / f"{name}.csv", index=False)
    paths = {k: str(tmp_path / f"{n}.csv") for k, n in (("path", "train"), ("test_path", "test"))}
    csv = build({"type": "csv", "target": "label", "validation_path": None, **paths})
    assert sorted(csv.record["fingerprint"]) == ["data.path", "data.test_path"]
    entry = csv.record["fingerprint"]["data.path"]
    assert entry == file_fingerprint(paths["path"])
    assert entry["size"] == (tmp_path / "train.csv").stat().st_size
    assert csv.summary()["fingerprint"] == csv.record["fingerprint"]  # run.json's `data`

    np.savez(tmp_path / "d.npz", x=np.zeros((20, 2)), y=np.arange(20) % 2)
    npz = build({"type": "npz", "path": str(tmp_path / "d.npz")})
    assert npz.record["fingerprint"]["data.path"]["size"] == (tmp_path / "d.npz").stat().st_size
    assert "fingerprint" not in build({"type": "digits"}).record  # built in: its params suffice


def test_each_kind_of_file_change_is_named(tmp_path):
    path = tmp_path / "x.csv"
    path.write_bytes(b"a,label\n1,0\n2,1\n")
    recorded = fingerprint_data({"data.path": str(path)}).entries
    assert data_changes(recorded) == {}

    path.write_bytes(b"a,label\n1,0\n3,1\n")  # one byte, same size
    assert data_changes(recorded) == {str(path): "content changed"}
    path.write_bytes(b"a,label\n1,0\n2,1\n4,0\n")
    assert data_changes(recorded) == {str(path): "size 16 → 20 bytes"}
    path.unlink()
    assert data_changes(recorded) == {str(path): "missing"}


def test_folder_changes_count_added_and_removed_images(tmp_path):
    folder = write_images(tmp_path / "shapes", per_class=3)
    dataset = build({"type": "image_directory", "path": str(folder), "split": {"test": 0}})
    recorded, listings = dataset.record["fingerprint"], dataset.listings
    assert recorded["data.path"]["files"] == 9 and len(listings["data.path"]) == 9
    assert data_changes(recorded, listings) == {}

    (folder / "top" / "001.png").rename(folder / "top" / "new-1.png")
    (folder / "left" / "001.png").write_bytes((folder / "left" / "002.png").read_bytes() * 2)
    (folder / "left" / "notes.txt").write_text("not an image: not part of the data")
    key = f"{folder}/"
    assert data_changes(recorded, listings) == {key: "1 file added, 1 removed, 1 changed size"}
    assert data_changes(recorded) == {key: "9 → 9 files; names or sizes changed"}  # no listing
    (folder / "left" / "001.png").unlink()
    assert data_changes(recorded, listings)[key] == "1 file added, 2 removed"


@settings(max_examples=40, deadline=None)
@given(
    content=st.binary(min_size=1, max_size=3000),
    position=st.integers(min_value=0),
    value=st.integers(min_value=0, max_value=255),
)
def test_fingerprint_changes_iff_a_byte_does(tmp_path_factory, content, position, value):
    path = tmp_path_factory.mktemp("bytes") / "data.bin"
    path.write_bytes(content)
    recorded = fingerprint_data({"data.path": str(path)}).entries
    edited = bytearray(content)
    edited[position % len(content)] = value
    path.write_bytes(bytes(edited))
    changed = data_changes(recorded)
    assert bool(changed) == (bytes(edited) != content)
    assert changed in ({}, {str(path): "content changed"})


values = st.none() | st.booleans() | st.integers() | st.text(max_size=8)
values = values | st.lists(values, max_size=3)


@settings(max_examples=60, deadline=None)
@given(
    entry=st.dictionaries(
        st.sampled_from(["size", "sha256", "suffixes", "files", "names_and_sizes_sha256"]), values
    ),
    listing=values | st.lists(st.lists(values, max_size=3), max_size=3),
)
def test_a_hand_edited_fingerprint_never_raises(tmp_path_factory, entry, listing):
    folder = tmp_path_factory.mktemp("edited")
    (folder / "a.png").write_bytes(b"png")
    for path in (folder, folder / "a.png", folder / "absent"):
        changes = data_changes({"data.path": {**entry, "path": str(path)}}, {"data.path": listing})
        assert all(isinstance(how, str) for how in changes.values())
