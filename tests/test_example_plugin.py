"""The example plug-in ``examples/nasgen-localsearch``: a controller in a package of its own.

The default run imports it from its ``src`` folder as a ``module:Class`` reference (the
conformance kit, the method's own moves, a search through the CLI). The slow tests install
the package for real with pip into a temporary folder and run ``nasgen`` in fresh processes
with that folder on ``PYTHONPATH``, as a researcher who installed it would: ``nasgen list``,
search and resume, a Ray sweep and ``nasgen compare``.
"""

from __future__ import annotations

import importlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from _processes import fresh_process, nasgen

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "nasgen-localsearch"
REFERENCE = "nasgen_localsearch:LocalSearch"
MODULE = "nasgen_localsearch"
TEACHER = ["--env", "nasgen/TeacherArch-v0", "--env-kwargs", "n_edges=4", "n_ops=4", "--no-progress"]


@pytest.fixture()
def example(monkeypatch):
    """The example's module, imported from its ``src`` folder; the controller registry and
    ``sys.modules`` are restored afterwards."""
    from nasgen import controllers

    registry = controllers.CONTROLLERS
    entries, origins = dict(registry._entries), dict(registry._origins)
    monkeypatch.syspath_prepend(str(EXAMPLE / "src"))
    importlib.invalidate_caches()
    try:
        yield importlib.import_module(MODULE)
    finally:
        registry._entries.clear()
        registry._entries.update(entries)
        registry._origins.clear()
        registry._origins.update(origins)
        sys.modules.pop(MODULE, None)


# --- the default run: the module:Class reference ---------------------------------------------------
@pytest.mark.parametrize("kwargs", [{}, {"neighbours_per_step": 3}, {"restarts": False}],
                         ids=["defaults", "batches", "no-restarts"])
def test_the_example_passes_the_conformance_kit(example, kwargs):
    """Interface, ask, tell, determinism, checkpointed state and learning against random."""
    from nasgen.testing import check_controller

    check_controller(REFERENCE, kwargs=kwargs)


def test_bad_hyper_parameters_are_one_line_value_errors(example):
    from nasgen.searchspace import SearchSpace

    space = SearchSpace("s", [3, 3])
    for kwargs, message in (({"neighbours_per_step": 0}, "neighbours_per_step must be an int >= 1, got 0"),
                            ({"neighbours_per_step": 1.5}, "got 1.5"),
                            ({"neighbours_per_step": True}, "got True"),
                            ({"restarts": "yes"}, "restarts must be True or False, got 'yes'")):
        with pytest.raises(ValueError) as error:
            example.LocalSearch(space, **kwargs)
        assert message in str(error.value) and "\n" not in str(error.value)


def _neighbours(a, b) -> bool:
    return int((np.asarray(a) != np.asarray(b)).sum()) == 1


def test_it_moves_to_the_first_improving_neighbour_and_restarts_at_a_local_optimum(example):
    """A space of two binary decisions whose (0, 0) is a local optimum and (1, 1) the global one."""
    from nasgen.searchspace import SearchSpace

    rewards = {(0, 0): 1.0, (0, 1): 0.0, (1, 0): 0.0, (1, 1): 2.0}
    ctrl = example.LocalSearch(SearchSpace("trap", [2, 2]), seed=0)
    ctrl.tell([np.array([0, 0])], [1.0])  # the start: told first, it is where the search stands
    assert ctrl.current.tolist() == [0, 0] and len(ctrl.untried) == 2
    for _ in range(2):  # both neighbours, neither better
        (arch,) = ctrl.ask(1)
        assert _neighbours(arch, [0, 0])
        ctrl.tell([arch], [rewards[tuple(arch)]])
    assert ctrl.stuck and ctrl.current.tolist() == [0, 0]
    (restart,) = ctrl.ask(1)  # a uniform draw, taken whatever its reward
    ctrl.tell([restart], [-5.0])
    assert ctrl.restarts_done == 1 and not ctrl.stuck and ctrl.current.tolist() == restart.tolist()
    assert ctrl.derive().tolist() == [0, 0]  # the best seen, not where the search stands

    # First improvement: in a batch, the first better neighbour is moved to, and the move back is not asked.
    ctrl = example.LocalSearch(SearchSpace("line", [4, 4, 4]), seed=1)
    ctrl.tell([np.array([0, 0, 0])], [0.0])
    batch = ctrl.ask(3)
    assert all(_neighbours(a, [0, 0, 0]) for a in batch)
    ctrl.tell(batch, [-1.0, 1.0, 0.5])
    assert ctrl.current.tolist() == batch[1].tolist() and ctrl.moves == 1
    moves = {(int(d), int(c)) for d, c in ctrl.untried}
    changed = int(np.flatnonzero(batch[1])[0])
    assert (changed, 0) not in moves and len(moves) == 3 * 3 - 1


def test_without_restarts_it_searches_the_same_neighbourhood_again(example):
    from nasgen.searchspace import SearchSpace

    ctrl = example.LocalSearch(SearchSpace("trap", [2, 2]), seed=0, restarts=False)
    ctrl.tell([np.array([0, 0])], [1.0])
    for _ in range(6):
        (arch,) = ctrl.ask(1)
        assert _neighbours(arch, [0, 0])
        ctrl.tell([arch], [0.0])
    assert ctrl.restarts_done == 0 and not ctrl.stuck


def test_a_search_names_it_as_a_module_reference(example, tmp_path, monkeypatch, capsys):
    from nasgen.cli import main

    monkeypatch.chdir(tmp_path)
    status = main(["search", "--controller", REFERENCE, *TEACHER, "--steps", "20", "--logdir", str(tmp_path / "runs")])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    (run_dir,) = (tmp_path / "runs").iterdir()
    result = json.loads((run_dir / "result.json").read_text())
    assert result["controller"] == REFERENCE and result["steps"] == 20 and result["evaluations"] == 20


# --- slow: installed with pip, run in fresh processes -----------------------------------------------
@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The example installed by pip into a temporary folder (built from a copy, so that the
    build leaves nothing in the repository)."""
    root = tmp_path_factory.mktemp("example")
    source, target = root / "source", root / "site"
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation",
                           "--disable-pip-version-check", "--target", str(target), str(source)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return target


@pytest.mark.slow
def test_pip_installs_an_entry_point_nasgen_lists(site, tmp_path):
    assert (site / "nasgen_localsearch-0.1.0.dist-info" / "entry_points.txt").read_text().split() == \
        ["[nasgen.controllers]", "localsearch", "=", REFERENCE]
    done = nasgen(site, "list", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "localsearch  (plug-in: entry point nasgen.controllers of nasgen-localsearch 0.1.0)" in done.stdout
    assert "plug-ins that cannot be used" not in done.stdout


@pytest.mark.slow
def test_the_installed_controller_searches_and_resumes_identically(site, tmp_path):
    """A run stopped at step 30 and resumed in a fresh process ends where an uninterrupted run
    of 60 steps does: the same result and the same controller state in the last checkpoint."""
    from nasgen.checkpoint import load_checkpoint

    task = ["--env", "nasgen/TeacherArch-v0", "--env-kwargs", "n_edges=6", "n_ops=6", "--no-progress"]
    whole = nasgen(site, "search", "--controller", "localsearch", *task, "--steps", "60", "--checkpoint-every", "30",
                   "--logdir", "whole", cwd=tmp_path)
    assert whole.returncode == 0, whole.stderr
    part = nasgen(site, "search", "--controller", "localsearch", *task, "--steps", "30", "--logdir", "part",
                  cwd=tmp_path)
    assert part.returncode == 0, part.stderr
    (run_dir,) = (tmp_path / "part").iterdir()
    assert json.loads((run_dir / "result.json").read_text())["steps"] == 30
    resumed = nasgen(site, "search", "--resume", str(run_dir), "--steps", "60", "--no-progress", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    (whole_dir,) = (tmp_path / "whole").iterdir()
    a, b = (json.loads((d / "result.json").read_text()) for d in (whole_dir, run_dir))
    for key in ("derived_arch", "best_reward", "best_arch", "evaluations", "score", "steps"):
        assert a[key] == b[key], key
    assert a["controller"] == "localsearch" and a["steps"] == 60 and a["evaluations"] == 60
    whole_state, resumed_state = (load_checkpoint(d / "checkpoint.pt")["controller"] for d in (whole_dir, run_dir))
    assert whole_state.keys() == resumed_state.keys()
    for key, value in whole_state.items():
        other = resumed_state[key]
        assert np.array_equal(value, other) if isinstance(value, np.ndarray) else value == other, key


@pytest.mark.slow
def test_the_installed_controller_runs_in_a_ray_sweep(site, tmp_path):
    pytest.importorskip("ray.tune")
    done = nasgen(site, "sweep", "--controllers", "localsearch,random", "--seeds", "1", *TEACHER[:5], "--steps", "20",
                  "--num-cpus", "2", "--logdir", "sweeps", "--name", "s", "--verbose", "0", cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "2/2 trials finished" in done.stdout
    assert "| localsearch | 1/1 | 0 |" in done.stdout


@pytest.mark.slow
def test_nasgen_compare_ranks_the_installed_controller(site, tmp_path):
    out = tmp_path / "cmp"
    done = nasgen(site, "compare", "--quick", "--controllers", "localsearch,random", "--suite", "teacher", "--local",
                  "--out", str(out), cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "| localsearch | black-box | 2 | 1000 evaluations |" in (out / "report.md").read_text()
    tasks = json.loads((out / "report.json").read_text())["tasks"]
    assert sorted(t["seed"] for t in tasks if t["method"] == "localsearch") == [0, 1]


def script(site: Path, name: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    """A benchmark script in a fresh process with the installed example on ``PYTHONPATH``."""
    return fresh_process(site, str(EXAMPLE.parents[1] / "benchmarks" / name), *args, cwd=cwd)


@pytest.mark.slow
def test_the_teacher_benchmark_takes_the_installed_controller(site, tmp_path):
    done = script(site, "teacher_recovery.py", "--controllers", "random,localsearch", "--seeds", "1", "--cap", "100",
                  "--edges", "4", "--ops", "4", cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "| localsearch | 1/1 |" in done.stdout or "| localsearch | 0/1 |" in done.stdout
    refused = script(site, "teacher_recovery.py", "--controllers", "pbil", "--seeds", "1", cwd=tmp_path)
    assert refused.returncode == 1 and "unknown controller 'pbil'" in refused.stderr
    assert "localsearch" in refused.stderr and "Traceback" not in refused.stderr


@pytest.mark.slow
def test_the_ground_truth_harness_takes_the_installed_controller(site, tmp_path):
    """On the supernet and on the table (a synthetic complete table: a real one takes hours)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _synthetic_table import write_synthetic_nb201_table

    table = write_synthetic_nb201_table(tmp_path / "table")
    out = tmp_path / "gt.json"
    done = script(site, "ground_truth.py", "--quick", "--table", str(table), "--controllers", "darts,localsearch",
                  "--tabular-controllers", "random,localsearch", "--out", str(out), cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    runs = json.loads(out.read_text())["runs"]
    assert {(r["controller"], r["family"]) for r in runs if "error" not in r} >= {
        ("localsearch", "supernet"), ("localsearch (table)", "table")}
    refused = script(site, "ground_truth.py", "--quick", "--table", str(table), "--controllers", "pbil",
                     "--out", str(tmp_path / "x.json"), cwd=tmp_path)
    assert refused.returncode == 1 and "unknown controller label(s) pbil" in refused.stderr
    assert not (tmp_path / "x.json").exists()
