"""Refuse to evaluate or resume a run on data that changed since it trained.

`train` records a fingerprint of every file and folder the data source read
(cbrun/data/fingerprint.py); `cbrun eval` and `cbrun train --resume` compare it with the disk
before building the data.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from cbrun.core.errors import CbrunError
from cbrun.data.fingerprint import data_changes, read_listings

ALLOW_OPTION = "--allow-changed-data"


def check_data(run_dir: Path, record: dict[str, Any], allow_changed: bool) -> list[str]:
    """What changed in the run's data, as "path: how" lines (empty: nothing). Changed data is
    refused (exit 2) unless `allow_changed`; runs that recorded no fingerprint pass."""
    data = record.get("data") if isinstance(record, dict) else None
    recorded = data.get("fingerprint") if isinstance(data, dict) else None
    if not isinstance(recorded, dict):
        return []
    folder = os.path.dirname(str(record.get("config_file") or ""))  # paths start there
    changes = [
        f"{shown_path(path)}: {how}"
        for path, how in data_changes(recorded, read_listings(run_dir), folder).items()
    ]
    if changes and not allow_changed:
        raise CbrunError(
            f"{run_dir}: the data changed since the run trained: {'; '.join(changes)}",
            hint=f"put the data back as it was, or pass {ALLOW_OPTION} to go on with it as it is "
            "now (the change is recorded)",
        )
    return changes


def shown_path(path: str) -> str:
    """`path` relative to the current directory when it lies under it (a folder keeps its
    trailing slash)."""
    try:
        relative = os.path.relpath(path)
    except ValueError:  # another drive on Windows
        return path
    if relative.startswith(".."):
        return path
    return os.path.join(relative, "") if path.endswith(os.sep) else relative
