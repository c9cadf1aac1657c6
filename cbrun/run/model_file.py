"""Load a saved `.keras` model safely: Keras' safe mode unless the user passes `--unsafe`."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

from cbrun.core.errors import CbrunError
from cbrun.run.build import import_keras


def load_model_file(path: Path, *, unsafe: bool = False) -> Any:
    """The model saved at `path`; a model holding Python code needs `unsafe=True` to load.

    Raises:
        CbrunError: the file is missing or unreadable, holds code and `unsafe` is false, or
            uses a class that is not registered.
    """
    if not path.is_file():
        raise CbrunError(f"{path}: no such model file")
    if path.suffix == ".keras" and not zipfile.is_zipfile(path):
        raise CbrunError(
            f"{path}: the model file is damaged ({path.stat().st_size} bytes that are not a "
            "complete .keras zip archive: truncated, or overwritten)"
        )
    keras = import_keras()
    try:
        return keras.saving.load_model(path, safe_mode=not unsafe)
    except ValueError as error:
        if "safe_mode" in str(error):
            raise CbrunError(
                f"{path}: the model holds Python code (such as a Lambda layer's function), and "
                "loading it would run that code, so Keras' safe mode refuses it",
                hint="if you trust this file, pass --unsafe",
            ) from None
        raise CbrunError(f"{path}: cannot load the model: {error}") from None
    except TypeError as error:
        raise CbrunError(
            f"{path}: cannot load the model: it uses a class Keras does not know "
            f"({str(error).splitlines()[0]})",
            hint="a custom layer must be registered with keras.saving.register_keras_serializable "
            "in a module that is imported (--allow-imports imports the run's model code)",
        ) from None
    except OSError as error:
        raise CbrunError(f"{path}: cannot read the model: {error}") from None
