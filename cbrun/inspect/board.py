"""`cbrun board`: TensorBoard over every run's event files."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from cbrun.core.errors import CbrunError


def tensorboard_command(runs_dir: Path, port: int, host: str) -> list[str]:
    """The TensorBoard command line for `runs_dir`; a clear error when it is not installed."""
    try:
        import tensorboard  # noqa: F401 - only checks that it is installed
    except ImportError:
        raise CbrunError(
            "TensorBoard is not installed in this Python environment",
            hint=f"install it: {sys.executable} -m pip install tensorboard",
        ) from None
    if not runs_dir.is_dir():
        raise CbrunError(f"{runs_dir}: no such directory (give the folder your runs are in)")
    if not any(runs_dir.rglob("events.out.tfevents.*")):
        print(
            f"note: no TensorBoard event files under {runs_dir} yet; add a `tensorboard` "
            "callback to a config to log them",
            file=sys.stderr,
        )
    return [
        sys.executable,
        "-m",
        "tensorboard.main",
        "--logdir",
        str(runs_dir),
        "--port",
        str(port),
        "--host",
        host,
    ]


def run_board(runs_dir: Path, port: int = 6006, host: str = "localhost") -> None:
    """Replace this process with TensorBoard, so Ctrl-C and signals reach it directly."""
    command = tensorboard_command(runs_dir, port, host)
    print(f"TensorBoard on http://{host}:{port}/ for {runs_dir} (Ctrl-C stops it)", file=sys.stderr)
    sys.stderr.flush()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorBoard imports TensorFlow
    os.execv(sys.executable, command)
