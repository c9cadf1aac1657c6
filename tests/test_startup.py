"""Light commands never import TensorFlow or Keras (checked in a fresh interpreter)."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import ROOT

# Runs each light command through `cbrun.cli.main` in one new interpreter, then reports which
# heavy modules got imported and each command's exit code.
PROBE = """
import json, sys
from cbrun.cli import main

codes = {}
for args in COMMANDS:
    sys.argv = ["cbrun", *args]
    try:
        main()
        codes[" ".join(args)] = 0
    except SystemExit as exit_:
        codes[" ".join(args)] = exit_.code or 0
heavy = sorted(m for m in ("tensorflow", "keras") if m in sys.modules)
print("PROBE" + json.dumps({"codes": codes, "heavy": heavy}))
"""

LIGHT_COMMANDS = [
    ["--help"],
    ["list-callbacks"],
    ["list-callbacks", "early_stopping"],
    ["list-models", "--json"],
    ["list-datasets"],
    ["schema"],
    ["validate", str(ROOT / "configs" / "quickstart.yaml")],
]


def test_light_commands_do_not_import_tensorflow_or_keras():
    code = f"COMMANDS = {LIGHT_COMMANDS!r}\n{PROBE}"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr
    line = next(x for x in result.stdout.splitlines() if x.startswith("PROBE"))
    report = json.loads(line.removeprefix("PROBE"))
    assert report["codes"] == {" ".join(args): 0 for args in LIGHT_COMMANDS}, result.stderr
    assert report["heavy"] == []
