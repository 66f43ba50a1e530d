"""A benchmark's ``--quick`` run never writes over the shipped results in ``benchmarks/results``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "benchmarks"


@pytest.fixture()
def common(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import _common

    return _common


def test_quick_runs_write_elsewhere_and_full_runs_to_the_results(common):
    parser = common.base_parser("t", "thing.json", default_seeds=1, default_threads=1)
    assert Path(parser.parse_args([]).out) == common.RESULTS / "thing.json"
    assert Path(parser.parse_args(["--quick"]).out) == common.QUICK_RESULTS / "thing.json"
    assert parser.parse_args(["--quick", "--out", "/tmp/x.json"]).out == "/tmp/x.json"


@pytest.mark.parametrize("script,extra", [("search_cost.py", []), ("cost_scaling.py", []),
                                          ("recipe_pilots.py", ["--work", "w"])])
def test_quick_into_the_results_is_refused_in_one_line(script, extra, tmp_path):
    shipped = BENCHMARKS / "results" / f"{Path(script).stem}.json"
    proc = subprocess.run([sys.executable, str(BENCHMARKS / script), "--quick", "--out", str(shipped), *extra],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "never writes into benchmarks/results/" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "w").exists()
