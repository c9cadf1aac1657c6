"""`cbrun init`: write a commented starter experiment file from a bundled template."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

from cbrun.core.errors import CbrunError, did_you_mean

DEFAULT_TEMPLATE = "classification"
TEMPLATES = resources.files("cbrun.experiment") / "templates"


def template_names() -> list[str]:
    return sorted(
        p.name.removesuffix(".yaml") for p in TEMPLATES.iterdir() if p.name.endswith(".yaml")
    )


def experiment_name(path: Path) -> str:
    """The file's stem as a valid experiment name (`my run.yaml` -> `my-run`)."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", path.stem).strip("-.") or "experiment"
    return name if name[0].isalnum() else f"x{name}"


def write_starter(path: Path, template: str = DEFAULT_TEMPLATE) -> Path:
    """Write `template` to `path` (never over an existing file); returns the path."""
    names = template_names()
    if template not in names:
        raise CbrunError(
            f"--template: unknown template `{template}`.{did_you_mean(template, names)} "
            f"Available: {', '.join(names)}"
        )
    if path.suffix not in (".yaml", ".yml"):
        raise CbrunError(f"{path}: give the new file a .yaml name")
    text = (resources.files("cbrun.experiment") / "templates" / f"{template}.yaml").read_text(
        "utf-8"
    )
    text = text.replace("__NAME__", experiment_name(path)).replace("THIS_FILE", str(path))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "x", encoding="utf-8") as handle:
            handle.write(text)
    except FileExistsError:
        raise CbrunError(f"{path}: already exists (cbrun init never overwrites a file)") from None
    except OSError as error:
        raise CbrunError(f"{path}: cannot write: {error}") from None
    return path
