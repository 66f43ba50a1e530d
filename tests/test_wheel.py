"""The wheel is complete: ``pip wheel .`` holds every module and the shipped tables, and
installed alone (no source tree on the path) it runs the README's commands."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
                    str(ROOT)], check=True, timeout=600)
    (found,) = out.glob("nasgen-*.whl")
    return found


def test_the_wheel_holds_every_module_and_table(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    source = {str(p.relative_to(ROOT)) for p in (ROOT / "nasgen").rglob("*")
              if p.is_file() and p.suffix in (".py", ".npz", ".json") and "__pycache__" not in p.parts}
    assert source and source <= names, sorted(source - names)


def test_the_installed_wheel_runs_the_readme_commands(wheel, tmp_path):
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    site = Path(sysconfig.get_paths(vars={"base": str(env_dir), "platbase": str(env_dir)})["purelib"])
    # The test environment's packages (torch, gymnasium, ...) without its editable nasgen: a
    # directory named in a .pth file is added to the path, but its own .pth files are not run.
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    zipfile.ZipFile(wheel).extractall(site)  # what pip install does with a pure-Python wheel
    python = env_dir / "bin" / "python"
    run = lambda *args: subprocess.run([str(python), "-m", "nasgen", *args], cwd=tmp_path, capture_output=True,  # noqa: E731
                                       text=True, timeout=600, env={**os.environ, "PYTHONPATH": ""})
    where = subprocess.run([str(python), "-c", "import nasgen; print(nasgen.__file__)"], cwd=tmp_path,
                           capture_output=True, text=True, env={**os.environ, "PYTHONPATH": ""})
    assert str(site) in where.stdout and str(ROOT) not in where.stdout, where.stdout + where.stderr
    listed = run("list")
    assert listed.returncode == 0 and "nasgen/Tabular-v0" in listed.stdout, listed.stderr
    info = run("bench", "info")
    assert info.returncode == 0 and "table nb201-mnist1d" in info.stdout, info.stderr
    search = run("search", "--space", "nb201", "--dataset", "mnist1d", "--steps", "5", "--warmup-epochs", "0",
                 "--no-progress", "--logdir", str(tmp_path / "runs"))
    assert search.returncode == 0, search.stderr
    assert "ground truth (nb201-mnist1d, 6466 architectures)" in search.stdout
