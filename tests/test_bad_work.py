"""Bad or absurd input that only the built env, a loaded dataset or a second process can tell:
refused in one line with exit status 2, and nothing left behind."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from nasgen import controllers, searchspace
from nasgen.cli import main
from nasgen.runtime import folder_lock

ROOT = Path(__file__).resolve().parent.parent
QUICK = ["--steps", "2", "--warmup-epochs", "0", "--no-progress", "--env-kwargs", "C=4", "n_cells=3", "limit=64",
         "batch_size=16"]


def one_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    return err[0]


def test_a_network_too_large_to_retrain_is_refused_before_it_is_built(tmp_path, capsys):
    (tmp_path / "cell.txt").write_text("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|none~1|none~2|\n")
    assert main(["retrain", str(tmp_path / "cell.txt"), "--channels", "1000000", "--dataset", "mnist1d",
                 "--no-progress"]) == 2
    assert "GiB to train, more than this machine's" in one_line(capsys)
    assert not (tmp_path / "cell-retrain").exists()


@pytest.mark.parametrize("argv,message", [
    (["--seeds", "99999999999999999999"], "--seeds: a count must be in 1..1000"),
    (["--seeds", "0,99999999999999999999"], "--seeds expects seeds in 0..4294967295"),
    (["--seeds", "1000000"], "--seeds: a count must be in 1..1000"),
    (["--limit-archs", "99999"], "--limit-archs 99999 is more than the 6466 distinct architectures"),
])
def test_a_table_build_refuses_absurd_sizes(argv, message, tmp_path, capsys):
    assert main(["bench", "build", "--local", "--out", str(tmp_path / "b"), *argv]) == 2
    assert message in one_line(capsys) and not (tmp_path / "b").exists()


def test_tell_refuses_infos_that_are_not_an_envs(capsys):
    space = searchspace.get("small")
    ctrl = controllers.make("reinforce", space, seed=0)
    archs = ctrl.ask(1)
    for infos, message in (([5], "infos must be dicts"), ([{"evaluations": -3}], "evaluations must be an integer >= 0"),
                           ([{"evaluations": 1.5}], "evaluations must be an integer >= 0")):
        with pytest.raises(ValueError, match=message):
            ctrl.tell(archs, [0.0], infos)
    assert ctrl.evaluations == 0  # nothing counted from a refused tell
    ctrl.tell(archs, [0.0], [{"evaluations": 2}])
    assert ctrl.evaluations == 2


def test_a_second_resume_of_a_running_search_is_refused(tmp_path, capsys):
    """Two processes: the test holds the run's lock as a running search does; a real
    ``nasgen search --resume`` of that run exits 2 in one line and changes nothing."""
    assert main(["search", "--controller", "random", "--logdir", str(tmp_path), *QUICK]) == 0
    (run_dir,) = tmp_path.iterdir()
    before = {p.name: p.stat().st_mtime_ns for p in run_dir.iterdir()}
    with folder_lock(run_dir, "run.lock", "run directory", "search"):
        done = subprocess.run([sys.executable, "-m", "nasgen", "search", "--resume", str(run_dir), "--steps", "4",
                               "--no-progress"], capture_output=True, text=True, timeout=300,
                              env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and f"run directory {run_dir} is in use by another search (pid {os.getpid()})" in lines[0]
    assert {p.name: p.stat().st_mtime_ns for p in run_dir.iterdir() if p.name != "run.lock"} == \
        {k: v for k, v in before.items() if k != "run.lock"}


def test_a_search_that_dies_before_its_first_checkpoint_leaves_no_directory(tmp_path, capsys, monkeypatch):
    from nasgen.envs.oneshot import OneShotNASEnv

    def interrupted(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(OneShotNASEnv, "_warm_up", interrupted)
    assert main(["search", "--logdir", str(tmp_path), *QUICK[:2], "--no-progress", "--warmup-epochs", "1"]) == 130
    err = capsys.readouterr().err
    assert "the run ended before its first checkpoint; removed its directory" in err
    assert not list(tmp_path.iterdir())
