"""Running nasgen in a fresh process with a folder on ``PYTHONPATH``, for the plug-in tests:
entry points and ``module:Class`` references must resolve in a new interpreter, not only in
the test's own."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def fresh_process(path: Path, *command: str, cwd: Path) -> subprocess.CompletedProcess:
    """``python COMMAND...`` in ``cwd`` with ``path`` on ``PYTHONPATH`` and one thread."""
    env = {**os.environ, "PYTHONPATH": str(path), "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    return subprocess.run([sys.executable, *command], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def nasgen(path: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    """``nasgen ARGS...`` in a fresh process (``python -m nasgen``) with ``path`` on ``PYTHONPATH``."""
    return fresh_process(path, "-m", "nasgen", *args, cwd=cwd)
