"""Run directories: a fresh folder per run, and atomic writes of the files others read."""

from __future__ import annotations

import json
import math
import os
import platform
import socket
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from cbrun import __version__
from cbrun.core.errors import CbrunError

RUN_RECORD = "run.json"
CONFIG_FILE = "config.yaml"
SPACE_RESERVE = ".space-reserve"
RESERVED_BYTES = 2**20  # run.json (twice while it is replaced) and train.log's last lines


class SpaceReserve:
    """Disk space held in the run directory while it trains, given back just before the final
    record is written: a disk that fills during training still gets a `failed` run.json."""

    def __init__(self, run_dir: Path):
        self.path = run_dir / SPACE_RESERVE

    def hold(self) -> SpaceReserve:
        """Claim the space; a disk without it is a user error before training starts."""
        try:
            with open(self.path, "wb") as handle:
                if hasattr(os, "posix_fallocate"):
                    os.posix_fallocate(handle.fileno(), 0, RESERVED_BYTES)
                else:
                    handle.write(bytes(RESERVED_BYTES))
        except OSError as error:
            self.release()
            raise CbrunError(
                f"{self.path.parent}: cannot hold {RESERVED_BYTES // 2**20} MB for the run's "
                f"record ({error.strerror or error}); free some space and start again"
            ) from None
        return self

    def release(self) -> None:
        self.path.unlink(missing_ok=True)


def create_run_dir(runs_dir: Path, name: str, now: datetime | None = None) -> Path:
    """Make `runs_dir/name/YYYYmmdd-HHMMSS[-N]`; never reuses an existing directory."""
    parent = runs_dir / name
    if parent.resolve().parent != runs_dir.resolve():
        raise CbrunError(f"experiment.name `{name}` would leave the runs directory")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise CbrunError(f"cannot create the runs directory {parent}: {error}") from None
    stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
    for attempt in range(1000):
        candidate = parent / (stamp if attempt == 0 else f"{stamp}-{attempt + 1}")
        try:
            # Atomic: fails if another process got there first. `parents`: a failed run of the
            # same experiment may have just removed its empty experiment folder.
            candidate.mkdir(parents=True)
        except FileExistsError:
            continue
        return candidate
    raise CbrunError(f"could not find a free run directory name under {parent}")


def write_text_atomic(path: Path, text: str) -> None:
    """Write via a temporary file and rename, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


NON_FINITE_NOTE = "non_finite_values"


def write_json_atomic(path: Path, data: Any) -> None:
    """Write `data` as strict JSON (every run-directory JSON file goes through here).

    NaN and infinities are not JSON: each is written as `null`, and a top-level object gets
    a note, `"non_finite_values": [{"path": ["metrics", "loss"], "value": "nan"}, ...]`, so
    that `read_json` gives the numbers back.
    """
    found: list[dict[str, Any]] = []
    strict = _finite_only(json.loads(json.dumps(data, default=_jsonable)), [], found)
    if isinstance(strict, dict):
        strict.pop(NON_FINITE_NOTE, None)
        if found:
            strict[NON_FINITE_NOTE] = found
    write_text_atomic(path, json.dumps(strict, indent=2, allow_nan=False) + "\n")


def restore_non_finite(data: Any) -> Any:
    """`data` read from a file `write_json_atomic` wrote, with its NaN and infinities back."""
    if not isinstance(data, dict) or not isinstance(data.get(NON_FINITE_NOTE), list):
        return data
    for entry in data.pop(NON_FINITE_NOTE):
        try:
            *parents, last = entry["path"]
            node = data
            for key in parents:
                node = node[key]
            if node[last] is None:
                node[last] = float(entry["value"])
        except (KeyError, IndexError, TypeError, ValueError):
            continue  # a hand-edited note: leave that value as it is
    return data


def _finite_only(value: Any, where: list[Any], found: list[dict[str, Any]]) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        found.append({"path": where, "value": str(value)})
        return None
    if isinstance(value, dict):
        return {k: _finite_only(v, [*where, k], found) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite_only(v, [*where, i], found) for i, v in enumerate(value)]
    return value


def create_exclusive(directory: Path, stem: str, suffix: str) -> Path:
    """A new file `stem.suffix`, or `stem-2.suffix`, ...: earlier files are never overwritten."""
    for attempt in range(1, 10_000):
        path = directory / (f"{stem}{suffix}" if attempt == 1 else f"{stem}-{attempt}{suffix}")
        try:
            with open(path, "x"):
                return path
        except FileExistsError:
            continue
    raise CbrunError(f"no free file name for {stem}{suffix} in {directory}")


def refuse_links(run_dir: Path, command: str) -> None:
    """A run directory from elsewhere must not make `command` write outside it: a symbolic
    link anywhere in it (an eval file, a log, a plots folder) is refused, never followed."""
    links = [path for path in run_dir.rglob("*") if path.is_symlink()]
    if links:
        raise CbrunError(
            f"{links[0]}: a symbolic link in the run directory; {command} writes there and "
            "does not follow links out of it"
        )


def read_json(path: Path) -> Any:
    try:
        return restore_non_finite(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise CbrunError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CbrunError(f"{path}: cannot read: {error}") from None


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def environment() -> dict[str, Any]:
    """Versions, host and command recorded in run.json (git: `core.provenance`)."""
    versions = {"python": platform.python_version(), "cbrun": __version__}
    for module in ("tensorflow", "keras", "numpy"):
        if module in sys.modules:
            versions[module] = getattr(sys.modules[module], "__version__", "unknown")
    return {
        "versions": versions,
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "command": sys.argv,
        "cwd": os.getcwd(),
        "pid": os.getpid(),
    }


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    return str(value)


class Stopwatch:
    def __init__(self) -> None:
        self.start = time.perf_counter()

    def seconds(self) -> float:
        return round(time.perf_counter() - self.start, 3)
