"""Plug-ins: a user's controller, space and dataset go wherever the built-ins go.

The tests write a small distribution the way pip installs one (a module plus a
``*.dist-info`` folder with ``METADATA`` and ``entry_points.txt``) into a temporary folder and
put that folder on the import path: the entry points are found by ``importlib.metadata``
exactly as for an installed package. Most tests run ``nasgen`` in this process (the registries
are restored afterwards); the resume runs in fresh processes, as a user's would.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from _processes import nasgen

MODULE = '''
import numpy as np

from nasgen.controllers import Controller
from nasgen.searchspace import CellSearchSpace, SearchSpace


class PBIL(Controller):
    """Population-based incremental learning: a factorised categorical, moved toward the best
    architecture of each round of ``samples_per_step`` samples."""

    samples_per_step = 4

    def __init__(self, space, seed=0, lr=0.1):
        super().__init__(space, seed)
        if not lr > 0:
            raise ValueError(f"lr must be > 0, got {lr}")
        self.lr = lr
        self.probs = space.choice_mask().astype(float)
        self.probs /= self.probs.sum(axis=1, keepdims=True)

    def ask(self, n=1):
        n = self._check_ask(n)
        return [np.array([self.rng.choice(len(p), p=p) for p in self.probs]) for _ in range(n)]

    def tell(self, archs, rewards, infos=None):
        archs, rewards, infos, finite = self._check_tell(archs, rewards, infos)
        if finite.any():
            best = archs[np.flatnonzero(finite)[np.argmax(rewards[finite])]]
            target = np.zeros_like(self.probs)
            target[np.arange(len(best)), best] = 1.0
            self.probs = (1 - self.lr) * self.probs + self.lr * target * self.space.choice_mask()
        return self._metrics(archs, rewards, finite)

    def derive(self):
        return self.probs.argmax(axis=1)

    def op_probabilities(self):
        return self.probs

    def state_dict(self):
        return {**super().state_dict(), "probs": self.probs.copy()}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.probs = np.array(state["probs"])


class NoTell(Controller):
    def ask(self, n=1):
        return [self.space.sample(self.rng) for _ in range(n)]

    def derive(self):
        return self.space.sample(self.rng)


class LambdaState(PBIL):
    def state_dict(self):
        return {**super().state_dict(), "schedule": lambda t: t}


def tiny_space():
    return CellSearchSpace("tiny-plugin", ("none", "skip_connect", "sep_conv_3x3"), n_nodes=2)


def narrow_space():
    return SearchSpace("narrow", [3, 1, 2])


def blobs():
    rng = np.random.default_rng(0)
    def split(n):
        y = rng.integers(0, 3, n)
        x = rng.normal(size=(n, 1, 8, 8)).astype("float32") + y[:, None, None, None]
        return x, y
    return split(120), split(60), split(60)


def bad_blobs():
    (x, y), val, test = blobs()
    return (x, y), (val[0][:, :, :4], val[1]), test
'''

#: ``(distribution, entry_points.txt)``: the plug-in package and a second one sharing a name.
DISTRIBUTIONS = {
    "mygen": """
        [nasgen.controllers]
        pbil = mygen:PBIL
        crashy = broken_module:Thing
        tellless = mygen:NoTell
        credit = mygen:PBIL
        twin = mygen:PBIL

        [nasgen.spaces]
        tiny = mygen:tiny_space

        [nasgen.datasets]
        blobs = mygen:blobs
        """,
    "othergen": """
        [nasgen.controllers]
        twin = mygen:PBIL
        """,
}
TEACHER = ["--env", "nasgen/TeacherArch-v0", "--env-kwargs", "n_edges=4", "n_ops=4", "--no-progress"]


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("site")
    (root / "mygen.py").write_text(MODULE)
    (root / "broken_module.py").write_text("raise RuntimeError('this plug-in is broken')\n")
    for name, points in DISTRIBUTIONS.items():
        info = root / f"{name}-0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
        (info / "entry_points.txt").write_text(textwrap.dedent(points).lstrip())
    return root


@pytest.fixture()
def plugged(plugin_path, monkeypatch, tmp_path):
    """The plug-ins on this process's path, with the registries restored afterwards."""
    from nasgen import controllers, searchspace

    registries = (controllers.CONTROLLERS, searchspace.PRESETS, searchspace.DATASETS)
    saved = [dict(vars(r)) for r in registries]
    for registry in registries:
        registry._entries, registry._origins = dict(registry._entries), dict(registry._origins)
        registry._pending, registry._problems, registry._discovered = {}, {}, False
    monkeypatch.syspath_prepend(str(plugin_path))
    monkeypatch.chdir(tmp_path)
    importlib.invalidate_caches()
    yield
    for registry, state in zip(registries, saved):
        vars(registry).clear()
        vars(registry).update(state)
    for module in ("mygen", "broken_module"):
        sys.modules.pop(module, None)


def run_main(capsys, *args: str) -> tuple[int, str, str]:
    from nasgen.cli import main

    status = main(list(args))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def one_line(done: subprocess.CompletedProcess) -> str:
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    return lines[0]


def test_list_shows_each_plug_in_and_where_it_comes_from(plugged, capsys):
    status, out, err = run_main(capsys, "list")
    assert status == 0, err
    assert "pbil  (plug-in: entry point nasgen.controllers of mygen 0.1)" in out
    assert "tiny  (plug-in: entry point nasgen.spaces of mygen 0.1)" in out
    assert "blobs  (plug-in: entry point nasgen.datasets of mygen 0.1)" in out
    problems = out.split("plug-ins that cannot be used:")[1]
    assert "'crashy' (entry point nasgen.controllers of mygen 0.1) fails to import: RuntimeError: this plug-in" in problems
    assert "'tellless'" in problems and "lacks tell" in problems
    assert "shadows the built-in controller 'credit', which is used" in problems
    assert "two plug-ins claim the controller name 'twin'" in problems
    assert "\n  credit\n" in out  # the built-in is untouched


def test_a_plug_in_searches_checkpoints_and_resumes_bit_identically(plugin_path, tmp_path):
    """``--controller pbil`` (an entry point) and ``mygen:PBIL`` (a reference) run like a
    built-in, and a run stopped at step 20 and resumed in a fresh process ends where an
    uninterrupted one does."""
    whole = nasgen(plugin_path, "search", "--controller", "pbil", *TEACHER, "--steps", "40", "--checkpoint-every", "20",
                   "--logdir", "whole", cwd=tmp_path)
    assert whole.returncode == 0, whole.stderr
    part = nasgen(plugin_path, "search", "--controller", "pbil", *TEACHER, "--steps", "20", "--logdir", "part",
                  cwd=tmp_path)
    assert part.returncode == 0, part.stderr
    (run_dir,) = (tmp_path / "part").iterdir()
    resumed = nasgen(plugin_path, "search", "--resume", str(run_dir), "--steps", "40", "--no-progress", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    (whole_dir,) = (tmp_path / "whole").iterdir()
    a, b = (json.loads((d / "result.json").read_text()) for d in (whole_dir, run_dir))
    for key in ("derived_arch", "best_reward", "best_arch", "evaluations", "score", "steps"):
        assert a[key] == b[key], key
    assert a["controller"] == "pbil" and a["steps"] == 40


def test_a_module_reference_is_a_controller_too(plugged, capsys):
    status, out, err = run_main(capsys, "search", "--controller", "mygen:PBIL", *TEACHER, "--steps", "5",
                                "--logdir", "runs")
    assert status == 0 and "derived architecture (mygen:PBIL on nasgen/TeacherArch-v0, 5 steps)" in out, err
    (run_dir,) = Path("runs").iterdir()
    assert run_dir.name.startswith("TeacherArch-v0__mygen-PBIL__s0__")  # a file-system safe name


@pytest.mark.parametrize("args,message", [
    (["--controller", "crashy"], "fails to import: RuntimeError: this plug-in is broken"),
    (["--controller", "tellless"], "a black-box controller defines ask, tell, derive; NoTell lacks tell"),
    (["--controller", "twin"], "two plug-ins claim the controller name 'twin'"),
    (["--controller", "nowhere:Thing"], "module 'nowhere' fails to import"),
    (["--controller", "mygen:Missing"], "module 'mygen' has no 'Missing'"),
    (["--controller", "pbil", "--controller-kwargs", "lr=fast"], "lr='fast' is not a finite number"),
    (["--controller", "pbil", "--controller-kwargs", "lr=-1"], "lr must be > 0"),
    (["--controller", "mygen:LambdaState"], "cannot checkpoint state['controller']['schedule']: function is not plain data"),
    (["--space", "mygen:narrow_space", "--env", "nasgen/OneShotNAS-v0"], "decision 1 (decision 1) has 1 choice(s)"),
    (["--dataset", "mygen:bad_blobs", "--env", "nasgen/OneShotNAS-v0", "--warmup-epochs", "0"],
     "the splits' examples differ in shape"),
])
def test_a_broken_plug_in_is_one_line_and_leaves_nothing(plugged, capsys, args, message):
    env = [] if "--env" in args else TEACHER
    status, _, err = run_main(capsys, "search", *env, *args, "--steps", "3", "--checkpoint-every", "1",
                              "--no-progress", "--logdir", "runs")
    lines = err.strip().splitlines()
    assert status == 2 and len(lines) == 1 and message in lines[0], err
    assert not Path("runs").exists() or not list(Path("runs").iterdir())


def test_a_plug_in_space_and_dataset_reach_the_supernet(plugged, capsys):
    status, _, err = run_main(capsys, "search", "--space", "tiny", "--dataset", "blobs", "--steps", "3",
                              "--warmup-epochs", "0", "--no-progress", "--logdir", "runs")
    assert status == 0, err
    (run_dir,) = Path("runs").iterdir()
    result = json.loads((run_dir / "result.json").read_text())
    assert result["space"]["name"] == "tiny-plugin"
    assert result["config"]["env_kwargs"] == {"space": "tiny", "dataset": "blobs", "warmup_epochs": 0.0}
    status, _, err = run_main(capsys, "search", "--resume", str(run_dir), "--no-progress")
    assert status == 0, err


@pytest.mark.slow
def test_a_plug_in_controller_runs_in_ray_workers(plugin_path, tmp_path):
    pytest.importorskip("ray.tune")
    done = nasgen(plugin_path, "sweep", "--controllers", "pbil,mygen:PBIL", "--seeds", "1", *TEACHER[:5],
                  "--steps", "5", "--num-cpus", "2", "--logdir", "sweeps", "--name", "s", "--verbose", "0",
                  cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "2/2 trials finished" in done.stdout
