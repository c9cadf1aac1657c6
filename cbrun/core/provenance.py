"""Where an experiment's code came from: the git repository holding its config file, the
commit, whether the work tree was dirty, and the uncommitted diff (saved with the run)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

GIT_DIFF_FILE = "git.diff"
MAX_DIFF_BYTES = 5_000_000  # a larger diff is cut, and the record says so


def git_provenance(config_path: Path) -> tuple[dict[str, Any] | None, str]:
    """The `git` record of the repository holding `config_path` (None outside one) and the
    uncommitted diff against HEAD (`git diff HEAD`: staged and unstaged, text)."""
    folder = config_path.resolve().parent

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", "-C", str(folder), *args], capture_output=True, text=True, timeout=20
            )
        except (OSError, subprocess.SubprocessError, ValueError):
            return None
        return done.stdout if done.returncode == 0 else None

    top = git("rev-parse", "--show-toplevel")
    if top is None:
        return None, ""
    commit = (git("rev-parse", "HEAD") or "").strip() or None  # None: no commit yet
    status = (git("status", "--porcelain", "--untracked-files=normal") or "").splitlines()
    diff = (git("diff", "HEAD", "--no-color") or "") if commit else ""
    cut = len(diff.encode("utf-8")) > MAX_DIFF_BYTES
    if cut:
        diff = diff.encode("utf-8")[:MAX_DIFF_BYTES].decode("utf-8", "ignore")
    record = {
        "repository": top.strip(),
        "commit": commit,
        "dirty": bool(status),
        "changed_files": sum(1 for line in status if not line.startswith("??")),
        "untracked_files": sum(1 for line in status if line.startswith("??")),
        "diff_file": GIT_DIFF_FILE if diff else None,
        "diff_truncated": cut,
    }
    return record, diff
