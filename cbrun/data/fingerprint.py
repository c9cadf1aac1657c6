"""Fingerprints of the files a data source reads, and what changed in them since.

A file is fingerprinted by its size and the SHA-256 of its bytes, read in 1 MiB chunks. A
folder is fingerprinted by its file count and the SHA-256 of every file's name (relative to
the folder) and size, so a million images cost a directory walk, not a read; its names and
sizes are also kept (`Fingerprint.listings`) so a later check can say which files came and
went. A source calls `fingerprint_data` with its files and folders and puts the result in
`Dataset.record["fingerprint"]` and `Dataset.listings`.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHUNK = 1 << 20
LISTINGS_FILE = "data_files.json.gz"  # in the run directory: each folder's names and sizes

Listing = list[tuple[str, int]]


@dataclass
class Fingerprint:
    """`entries`: config key (`data.path`) to its fingerprint; `listings`: each folder's
    (name, size) pairs, by the same key."""

    entries: dict[str, dict[str, Any]] = field(default_factory=dict)
    listings: dict[str, Listing] = field(default_factory=dict)


def fingerprint_data(
    files: dict[str, str | None],
    folders: dict[str, tuple[str, Iterable[str]]] | None = None,
    listed: dict[str, tuple[str, Iterable[str]]] | None = None,
) -> Fingerprint:
    """Fingerprints of `files` (key to path; None is skipped), `folders` (key to the folder
    and the suffixes of the files in it that the source reads) and `listed` files (key to a
    folder and the names, relative to it, of the files in it the source reads: the images a
    table names), the last two by names and sizes."""
    result = Fingerprint()
    for key, (root, names) in (listed or {}).items():
        listing = _sizes(root, names)
        result.listings[key] = listing
        result.entries[key] = {
            "path": str(root),
            "listed": True,
            "files": len(listing),
            "names_and_sizes_sha256": listing_digest(listing),
        }
    for key, path in files.items():
        if path is not None:
            result.entries[key] = file_fingerprint(path)
    for key, (root, suffixes) in (folders or {}).items():
        entry, listing = folder_fingerprint(root, tuple(suffixes))
        result.entries[key], result.listings[key] = entry, listing
    return result


def file_fingerprint(path: str) -> dict[str, Any]:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(CHUNK):
            digest.update(chunk)
    return {"path": str(path), "size": os.path.getsize(path), "sha256": digest.hexdigest()}


def folder_fingerprint(root: str, suffixes: tuple[str, ...]) -> tuple[dict[str, Any], Listing]:
    listing = folder_listing(root, suffixes)
    entry = {
        "path": str(root),
        "suffixes": list(suffixes),
        "files": len(listing),
        "names_and_sizes_sha256": listing_digest(listing),
    }
    return entry, listing


def folder_listing(root: str, suffixes: tuple[str, ...]) -> Listing:
    """(name relative to root, size) of every file under root with one of `suffixes`
    (any case), sorted by name."""
    found: Listing = []
    for top, _, names in os.walk(root):
        for name in names:
            if name.lower().endswith(suffixes):
                path = os.path.join(top, name)
                found.append((Path(path).relative_to(root).as_posix(), os.path.getsize(path)))
    return sorted(found)


def _sizes(root: str, names: Iterable[str]) -> Listing:
    """(name, size) of each of these files under `root` that exists, sorted by name."""
    found = ((name, os.path.join(root, name)) for name in set(names))
    return sorted((name, os.path.getsize(path)) for name, path in found if os.path.isfile(path))


def listing_digest(listing: Listing) -> str:
    digest = hashlib.sha256()
    for name, size in listing:
        digest.update(f"{name}\0{size}\n".encode())
    return digest.hexdigest()


def relative_to(entries: dict[str, dict[str, Any]], folder: Path) -> dict[str, dict[str, Any]]:
    """`entries` with each path relative to `folder` (the config file's), as a config names
    its files."""
    return {
        key: {**entry, "path": os.path.relpath(entry["path"], folder)}
        for key, entry in entries.items()
    }


def data_changes(
    recorded: dict[str, Any], listings: dict[str, Any] | None = None, folder: str = ""
) -> dict[str, str]:
    """How each recorded file or folder differs from what is on disk now, by path:
    "size 1200 → 1350 bytes", "content changed", "missing", "3 files added, 1 removed".
    Empty when nothing changed. `listings`: the folders' names and sizes when recorded;
    `folder`: where relative paths start (the config file's folder)."""
    changes: dict[str, str] = {}
    for key, entry in recorded.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
            continue  # not a fingerprint this version writes
        path = os.path.join(folder, entry["path"])
        if "sha256" in entry:
            change = _file_change(path, entry)
        else:
            change = _folder_change(path, entry, (listings or {}).get(key))
        if change:
            changes[path if "sha256" in entry else os.path.join(path, "")] = change
    return changes


def _file_change(path: str, entry: dict[str, Any]) -> str | None:
    if not os.path.isfile(path):
        return "missing"
    size = os.path.getsize(path)
    if size != entry.get("size"):
        return f"size {entry.get('size')} → {size} bytes"
    return None if file_fingerprint(path)["sha256"] == entry["sha256"] else "content changed"


def _folder_change(path: str, entry: dict[str, Any], before: Any) -> str | None:
    if not os.path.isdir(path):
        return "missing"
    suffixes = entry.get("suffixes") if isinstance(entry.get("suffixes"), list) else []
    if entry.get("listed"):  # only the files the data names: the same names again
        try:
            listing = _sizes(path, [str(name) for name, _ in before])
        except (TypeError, ValueError):  # no listing kept: nothing to compare
            return None
    else:
        listing = folder_listing(path, tuple(str(suffix) for suffix in suffixes))
    if listing_digest(listing) == entry.get("names_and_sizes_sha256"):
        return None
    try:
        was = {str(name): size for name, size in before}
    except (TypeError, ValueError):  # no listing kept (or a damaged one): counts only
        return f"{entry.get('files')} → {len(listing)} files; names or sizes changed"
    now = dict(listing)
    counts = (
        (len(now.keys() - was.keys()), "added"),
        (len(was.keys() - now.keys()), "removed"),
        (sum(1 for name in now.keys() & was.keys() if now[name] != was[name]), "changed size"),
    )
    parts = [f"{count} {what}" for count, what in counts if count]
    if not parts:
        return "names or sizes changed"
    count, what = parts[0].split(" ", 1)
    parts[0] = f"{count} file{'' if count == '1' else 's'} {what}"
    return ", ".join(parts)


def write_listings(run_dir: Path, listings: dict[str, Listing]) -> None:
    """Keep the folders' names and sizes in the run directory (gzipped JSON), if any."""
    if listings:
        (run_dir / LISTINGS_FILE).write_bytes(gzip.compress(json.dumps(listings).encode()))


def read_listings(run_dir: Path) -> dict[str, Any]:
    """The listings `write_listings` kept; empty if there are none or they are unreadable."""
    try:
        listings = json.loads(gzip.decompress((run_dir / LISTINGS_FILE).read_bytes()))
    except (OSError, ValueError, EOFError):
        return {}
    return listings if isinstance(listings, dict) else {}
