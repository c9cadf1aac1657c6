"""`cbrun rm`: move run directories to the trash inside their runs directory, or delete them."""

from __future__ import annotations

import shutil
from pathlib import Path

from cbrun.core.errors import CbrunError
from cbrun.inspect.runs import TRASH, is_run_dir, read_run


def remove_runs(run_dirs: list[Path], purge: bool = False) -> list[str]:
    """Move each run to `<runs dir>/.trash/<experiment>/<stamp>` (or delete it with `purge`);
    every path is checked before anything moves. Returns one line per run for the user."""
    for run_dir in run_dirs:
        if not is_run_dir(run_dir) or run_dir.is_symlink():
            raise CbrunError(f"{run_dir}: not a run directory (expected one made by `cbrun train`)")
        info = read_run(run_dir)
        if info.record.get("status") == "running" and info.status == "running":
            raise CbrunError(
                f"{run_dir}: the run is still training (process {info.record.get('pid')}); "
                "stop it first"
            )
    done = []
    for run_dir in run_dirs:
        if purge:
            shutil.rmtree(run_dir)
            done.append(f"deleted {run_dir}")
            continue
        trash = run_dir.parent.parent / TRASH / run_dir.parent.name
        trash.mkdir(parents=True, exist_ok=True)
        target = trash / run_dir.name
        suffix = 2
        while target.exists():  # the same run name removed before: keep both
            target = trash / f"{run_dir.name}-{suffix}"
            suffix += 1
        run_dir.rename(target)
        done.append(f"moved {run_dir} to {target}")
    return done
