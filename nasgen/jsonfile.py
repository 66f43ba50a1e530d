"""Strict JSON for the files nasgen writes (``result.json``, ``retrain.json``, ``sweep.json``),
written atomically.

``json.dumps`` writes ``NaN`` and ``Infinity`` by default, which are not JSON: other readers
(``jq``, JavaScript, most languages' parsers) refuse the whole file. Here a non-finite number
becomes ``null`` and its place is named in a ``"nonfinite"`` list at the top level, so a
reader can tell "diverged" from "not computed".
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

NONFINITE = "nonfinite"


def _replace(value: Any, where: str, found: list[str]) -> Any:
    if isinstance(value, float) and not math.isfinite(value):  # numpy floats are float subclasses
        found.append(where)
        return None
    if isinstance(value, dict):
        return {k: _replace(v, f"{where}.{k}" if where else str(k), found) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_replace(v, f"{where}[{i}]", found) for i, v in enumerate(value)]
    return value


def finite(record: dict) -> dict:
    """A copy of ``record`` with every NaN/inf replaced by None and listed under ``"nonfinite"``.

    Args:
        record: the JSON object to write.

    Returns:
        The copy; ``"nonfinite"`` (e.g. ``["score", "config.env_kwargs.lr"]``) is present only
        when something was replaced.
    """
    found: list[str] = []
    clean = _replace(record, "", found)
    if found:
        clean[NONFINITE] = sorted(set(clean.get(NONFINITE) or []) | set(found))
    return clean


def dumps(record: dict, default: Optional[Callable[[Any], Any]] = None) -> str:
    """``record`` as strict JSON text (indented, trailing newline); see ``finite``."""
    if default is not None:  # let ``default`` turn objects into numbers first, then clean them
        record = json.loads(json.dumps(record, default=default))
    return json.dumps(finite(record), indent=2, allow_nan=False) + "\n"


def numpy_default(value: Any) -> Any:
    """A ``default`` for ``dumps``/``write``: numpy arrays and scalars, and paths, as JSON values."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.integer, np.bool_)):
        return value.item()
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def replace_file(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a synced temporary file in the same folder and a
    rename: a reader, or a rerun after a kill, sees the old file or the new one, never half.
    The temporary file (``.NAME.XXXXXXXX.tmp``, what a kill mid-write leaves) is removed if
    anything fails; the error is raised."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write(path: str | Path, record: dict, default: Optional[Callable[[Any], Any]] = None) -> Path:
    """Write ``dumps(record, default)`` to ``path`` atomically (``replace_file``); returns ``path``."""
    return replace_file(path, dumps(record, default).encode())
