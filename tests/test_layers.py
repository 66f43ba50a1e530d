"""The layering of ``pyproject.toml``'s import-linter contract holds, and it is a real check:
an upward import added to a copy of the package breaks it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINT = [sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command; "
                              "sys.exit(lint_imports_command())"]


def lint(cwd: Path, package_parent: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(package_parent)}
    return subprocess.run(LINT + ["--config", str(cwd / "pyproject.toml")], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def test_the_import_contract_is_kept():
    done = lint(ROOT, ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 kept, 0 broken" in done.stdout


def test_an_upward_import_breaks_the_contract(tmp_path):
    shutil.copytree(ROOT / "nasgen", tmp_path / "nasgen", ignore=shutil.ignore_patterns("*.npz", "__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    searchspace = tmp_path / "nasgen" / "searchspace" / "space.py"
    searchspace.write_text(searchspace.read_text() + "\n\ndef _upward():\n    from nasgen.search import Search  # noqa\n")
    done = lint(tmp_path, tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "nasgen.searchspace.space -> nasgen.search" in done.stdout and "BROKEN" in done.stdout
