"""Terminal output: progress and tables on stderr, also copied as plain text to a run's log."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from rich.console import Console

UNWRAPPED = 1000  # columns for output that is not a terminal: logs and pipes get whole lines


def make_console(*, stderr: bool = False) -> Console:
    """A rich console on stdout or stderr: a terminal's own width; elsewhere `COLUMNS` when set
    (rich reads it), else lines as long as their content, never wrapped at 80 columns."""
    stream = sys.stderr if stderr else sys.stdout
    wide = None if stream.isatty() or os.environ.get("COLUMNS") else UNWRAPPED
    return Console(stderr=stderr, highlight=False, width=wide)


class Reporter:
    """Prints to stderr (unless quiet) and appends the same text to the run's log file."""

    def __init__(self, quiet: bool = False):
        self.quiet = quiet
        self.screen = make_console(stderr=True)
        self._log: Any = None

    @property
    def live(self) -> bool:
        """Whether live progress (a bar inside each epoch) has a terminal to go to."""
        return not self.quiet and self.screen.is_terminal

    def attach_log(self, path: Path) -> None:
        self._log = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self._plain = Console(file=self._log, width=120, no_color=True, highlight=False)

    def print(self, *renderables: Any) -> None:
        if not self.quiet:
            self.screen.print(*renderables)
        if self._log is not None:
            self._to_log(lambda: self._plain.print(*renderables))

    def log_only(self, text: str) -> None:
        """Text for the log file alone, e.g. a traceback."""
        if self._log is not None:
            self._to_log(lambda: self._log.write(text if text.endswith("\n") else text + "\n"))

    def _to_log(self, write: Any) -> None:
        """A log that cannot be written (a full disk) is given up, said once, never fatal."""
        try:
            write()
            self._log.flush()
        except OSError as error:
            self._log = None
            self.screen.print(f"[yellow]warning:[/] train.log no longer written: {error}")

    def close(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """`1 sample`, `3 samples` (`plural` for nouns that do not just add an s)."""
    return f"{count} {noun if count == 1 else plural or noun + 's'}"


def format_metrics(logs: dict[str, Any]) -> str:
    return "  ".join(f"{key} {format_number(value)}" for key, value in logs.items())


def format_number(value: Any) -> str:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    if number != 0 and (abs(number) < 1e-3 or abs(number) >= 1e5):
        return f"{number:.3e}"
    return f"{number:.4f}"
