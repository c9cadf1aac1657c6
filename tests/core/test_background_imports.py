"""BackgroundImports: modules imported on a thread, started once, waited for before use."""

from __future__ import annotations

import sys

from cbrun.core.background_imports import BackgroundImports


def _modules(tmp_path, monkeypatch, **sources):
    for name, text in sources.items():
        (tmp_path / f"{name}.py").write_text(text)
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in sources:
        monkeypatch.delitem(sys.modules, name, raising=False)


def test_wait_returns_once_every_module_is_imported_on_another_thread(tmp_path, monkeypatch):
    _modules(
        tmp_path,
        monkeypatch,
        bg_first="import threading\nTHREAD = threading.current_thread().name\n",
        bg_second="VALUE = 2\n",
    )
    imports = BackgroundImports(("bg_first", "bg_second"))
    imports.start()
    imports.start()  # a second start does nothing
    imports.wait()
    assert sys.modules["bg_first"].THREAD == "cbrun-imports"
    assert sys.modules["bg_second"].VALUE == 2


def test_a_module_that_fails_to_import_is_left_to_its_real_import_and_the_rest_load(
    tmp_path, monkeypatch
):
    _modules(tmp_path, monkeypatch, bg_broken="raise RuntimeError('no')\n", bg_after="X = 1\n")
    imports = BackgroundImports(("bg_broken", "bg_missing_module", "bg_after"))
    imports.wait()  # never started: wait starts it; the errors are left to the real imports
    assert "bg_broken" not in sys.modules and "bg_missing_module" not in sys.modules
    assert sys.modules["bg_after"].X == 1  # another group of modules (HParams after plotting)
