"""Keep stdout for cbrun's own answer: while a run trains, anything else printed goes to stderr.

`cbrun train` prints one thing on stdout, the run directory (or one JSON line with `--json`),
so that `run=$(cbrun train cfg.yaml -q)` works. What user code prints meanwhile (a callback's
`print`, a model function's output) and Keras' own verbose lines (`keras.utils.io_utils`
writes them to `sys.stdout`) are sent to stderr instead and, once the run directory exists,
copied into its `train.log`. Output written straight to file descriptor 1 by native code
(such as `tf.print(..., output_stream=sys.stdout)`) goes to stderr too.
"""

from __future__ import annotations

import functools
import io
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, TypeVar

F = TypeVar("F")


class _ToStderr(io.TextIOBase):
    """A text stream that writes to `stderr` and, if given, appends the same text to `log`."""

    def __init__(self, stderr: Any, log: Any = None):
        self._stderr, self._log = stderr, log

    @property
    def encoding(self) -> str:
        return getattr(self._stderr, "encoding", None) or "utf-8"

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self._stderr.write(text)
        if self._log is not None:
            self._log.write(text)
            self._log.flush()  # in order with the lines cbrun itself appends to the log
        return len(text)

    def flush(self) -> None:
        self._stderr.flush()
        if self._log is not None:
            self._log.flush()

    def isatty(self) -> bool:
        return bool(getattr(self._stderr, "isatty", lambda: False)())

    def fileno(self) -> int:
        return self._stderr.fileno()


@contextmanager
def stdout_to_stderr(log_path: Path | None = None) -> Iterator[None]:
    """Inside, `sys.stdout` and file descriptor 1 lead to stderr (and `log_path`, if given)."""
    log = open(log_path, "a", encoding="utf-8") if log_path else None  # noqa: SIM115
    previous = sys.stdout
    with suppress(ValueError, OSError):
        previous.flush()
    saved_fd = _redirect_fd_1()
    sys.stdout = _ToStderr(sys.stderr, log)
    try:
        yield
    finally:
        with suppress(ValueError, OSError):
            sys.stdout.flush()
        sys.stdout = previous
        if saved_fd is not None:
            os.dup2(saved_fd, 1)
            os.close(saved_fd)
        if log is not None:
            log.close()


def _redirect_fd_1() -> int | None:
    """Point file descriptor 1 at descriptor 2; return a copy of the old 1 (None if unable)."""
    try:
        saved = os.dup(1)
    except OSError:
        return None
    try:
        os.dup2(2, 1)
    except OSError:
        os.close(saved)
        return None
    return saved


def stdout_kept_clean(function: F) -> F:
    """Decorator: `function` runs inside `stdout_to_stderr()` (no log file yet)."""

    @functools.wraps(function)  # type: ignore[arg-type]
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with stdout_to_stderr():
            return function(*args, **kwargs)  # type: ignore[operator]

    return wrapper  # type: ignore[return-value]
