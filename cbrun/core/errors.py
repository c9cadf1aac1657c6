"""User-facing errors: one clear message, exit code 2, no traceback."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class CbrunError(Exception):
    """An error the user can fix; the CLI prints its message and exits with `exit_code`."""

    exit_code = 2

    def __init__(self, message: str, *, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def render(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"


class ConfigError(CbrunError):
    """One or more problems in an experiment file, each located by file, line and key path."""

    def __init__(self, problems: list[str], *, source: str = "config"):
        self.problems = problems
        header = problems[0] if len(problems) == 1 else f"{source}: {len(problems)} problems"
        body = "" if len(problems) == 1 else "\n" + "\n".join(f"  - {p}" for p in problems)
        super().__init__(header + body)


def close_matches(name: str, choices: Iterable[str]) -> list[str]:
    """Names in `choices` that look like a misspelling of `name`, best first."""
    return difflib.get_close_matches(name, list(choices), n=3, cutoff=0.6)


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """' Did you mean `x`?' when a close match exists, else ''."""
    matches = close_matches(name, choices)
    return f" Did you mean `{matches[0]}`?" if matches else ""
