"""``nasgen sweep``: the grid, restarts, the summary, and Ray Tune (when installed)."""

import argparse
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nasgen.cli import UsageError

TEACHER = ["--env", "nasgen/TeacherArch-v0", "--env-kwargs", "n_edges=3", "n_ops=3", "--steps", "5"]


def sweep_args(*argv: str) -> argparse.Namespace:
    from nasgen.cli.sweep import add_sweep_parser

    parser = argparse.ArgumentParser(prog="nasgen")
    add_sweep_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["sweep", *argv])


def run_sweep(*argv: str, cwd=None, timeout=300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "RAY_AUTH_MODE": "disabled"}
    return subprocess.run([sys.executable, "-m", "nasgen", "sweep", *argv], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=timeout)


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# --- without Ray ---------------------------------------------------------------------------------
def test_sweep_subcommand_plugs_into_the_nasgen_parser():
    from nasgen.cli import build_parser
    from nasgen.cli.sweep import cmd_sweep

    parser = build_parser()
    args = parser.parse_args(["sweep", "--controllers", "credit,darts", "--seeds", "2", "--gpus-per-trial", "0.5"])
    assert args.func is cmd_sweep and args.controllers == "credit,darts" and args.gpus_per_trial == 0.5


def test_nasgen_imports_and_sweep_exits_2_without_ray(tmp_path):
    code = ("import sys; sys.modules['ray'] = None\n"
            "import nasgen, nasgen.cli, nasgen.search, nasgen.sweep, nasgen.distributed\n"
            "from nasgen.cli import main\n"
            f"sys.exit(main(['sweep', '--controllers', 'random', '--seeds', '1', '--logdir', {str(tmp_path)!r}]))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and 'pip install "nasgen[distributed]"' in lines[0]
    assert not any(tmp_path.iterdir())  # nothing written


def test_seeds_controllers_and_grid_parse():
    from nasgen.sweep import parse_grid, parse_seeds

    assert parse_seeds("3") == [0, 1, 2]
    assert parse_seeds("0,1,5") == [0, 1, 5]
    assert parse_seeds("7,") == [7]
    for bad in ("0", "-1,2", "a,b", "1,1", ","):
        with pytest.raises(UsageError):
            parse_seeds(bad)
    assert parse_grid(["C=4,8", "credit=taylor,exact"]) == {"C": ["4", "8"], "credit": ["taylor", "exact"]}
    for bad in (["C"], ["C="], ["C=4,4"], ["C=4", "C=8"]):
        with pytest.raises(UsageError):
            parse_grid(bad)


def test_plan_crosses_controllers_variants_and_seeds(tmp_path):
    from nasgen.sweep import plan_trials

    args = sweep_args("--controllers", "credit,reinforce", "--seeds", "0,3", *TEACHER,
                      "--grid-env-kwargs", "batch_size=8,16", "--controller-kwargs", "lr=0.1",
                      "credit.baseline_decay=0.9")
    trials = plan_trials(args, tmp_path)
    assert len(trials) == 2 * 2 * 2
    assert trials[0].name == "credit__s0__batch_size-8" and trials[-1].name == "reinforce__s3__batch_size-16"
    first = trials[0].config
    assert first["env"] == "nasgen/TeacherArch-v0" and first["steps"] == 5
    assert first["env_kwargs"] == {"n_edges": 3, "n_ops": 3, "batch_size": 8}
    assert first["controller_kwargs"] == {"lr": 0.1, "baseline_decay": 0.9}
    assert trials[-1].config["controller_kwargs"] == {"lr": 0.1}
    assert all(Path(t.run_dir).parent == (tmp_path / "runs").resolve() for t in trials)


@pytest.mark.parametrize("argv, message", [
    (["--controllers", "credit,nope"], "unknown controller 'nope'; choose from:"),
    (["--controllers", "random,reinforce", "--controller-kwargs", "lr=0.1"], "scope it"),
    (["--controllers", "random", "--controller-kwargs", "darts.order=2"], "not in --controllers"),
    (["--controllers", "random", "--env-kwargs", "n_edges=3", "--grid-env-kwargs", "n_edges=2,4"],
     "both --env-kwargs and --grid-env-kwargs"),
    (["--controllers", "random", "--grid-env-kwargs", "colour=1,2"], "takes no 'colour'"),
    (["--controllers", "random", "--seeds", "x"], "--seeds expects"),
])
def test_bad_sweep_input_is_a_usage_error(tmp_path, argv, message):
    from nasgen.sweep import plan_trials

    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace("[", r"\[")):
        plan_trials(sweep_args("--env", "nasgen/TeacherArch-v0", *argv), tmp_path)


def test_trial_continues_from_its_checkpoint_and_finished_trials_are_recognised(tmp_path):
    """What a restarted sweep relies on, without Ray: result.json marks a finished trial, a
    checkpoint continues an interrupted one, and a finished trial of other settings is refused."""
    from nasgen.sweep import finished_result, plan_trials, run_trial

    trial = plan_trials(sweep_args("--controllers", "reinforce", "--seeds", "1", *TEACHER,
                                   "--checkpoint-every", "2"), tmp_path)[0]
    spec = {"name": trial.name, "run_dir": trial.run_dir, "config": trial.config, "threads": 1}
    assert finished_result(trial) is None
    first = run_trial(spec)
    assert first["steps"] == 5 and first["resumed_from_step"] == 0
    done = finished_result(trial)
    assert done is not None and done["best_reward"] == first["best_reward"]
    # Killed after its last checkpoint, before result.json: it continues, it does not restart.
    (Path(trial.run_dir) / "result.json").unlink()
    again = run_trial(spec)
    assert again["resumed_from_step"] == 5 and again["best_reward"] == first["best_reward"]
    assert again["score"] == first["score"]
    # The same name with other settings is refused, not mixed in.
    other = plan_trials(sweep_args("--controllers", "reinforce", "--seeds", "1", *TEACHER[:-1], "6",
                                   "--checkpoint-every", "2"), tmp_path)[0]
    with pytest.raises(UsageError, match="other settings .*steps.*another --name"):
        finished_result(other)


class _Evil:
    """Unpickling this creates ``path``."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_a_trial_with_a_damaged_or_hostile_checkpoint_is_moved_aside_not_run(tmp_path, capsys):
    import hashlib
    import io

    import torch

    from nasgen.checkpoint import FORMAT
    from nasgen.sweep import plan_trials, run_trial

    trial = plan_trials(sweep_args("--controllers", "random", "--seeds", "1", *TEACHER), tmp_path)[0]
    spec = {"name": trial.name, "run_dir": trial.run_dir, "config": trial.config, "threads": 1}
    run_dir = Path(trial.run_dir)
    run_dir.mkdir(parents=True)
    marker = tmp_path / "code-ran"
    buffer = io.BytesIO()
    torch.save({"config": trial.config, "step": 1, "controller": _Evil(marker)}, buffer)
    payload = buffer.getvalue()
    (run_dir / "checkpoint.pt").write_bytes(f"{FORMAT} {hashlib.sha256(payload).hexdigest()}\n".encode() + payload)
    (run_dir / "notes.txt").write_text("the user's own file")
    result = run_trial(spec)
    assert not marker.exists()
    assert result["resumed_from_step"] == 0 and result["steps"] == 5
    aside = run_dir.with_name(f"{run_dir.name}.damaged-1")
    assert (aside / "notes.txt").read_text() == "the user's own file" and (aside / "checkpoint.pt").is_file()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"moved {run_dir} to {aside}" in err[0] and "refused without running it" in err[0]
    # A second damaged start goes to the next free name.
    (run_dir / "checkpoint.pt").write_bytes(b"garbage")
    (run_dir / "result.json").unlink()
    run_trial(spec)
    assert (run_dir.with_name(f"{run_dir.name}.damaged-2") / "checkpoint.pt").read_bytes() == b"garbage"


# --- with Ray ----------------------------------------------------------------------------------------
def test_sweep_on_a_local_ray_instance(tmp_path):
    """2 controllers x 2 seeds finish (a third controller fails at run time and is reported);
    the summary has both controllers; a restart skips the finished trials without starting Ray.
    A controller misconfigured in a way the checks can see is refused before anything starts."""
    pytest.importorskip("ray.tune")
    # credit=none is fine for random and reinforce; the credit controller finds no credit in
    # its first step's infos, which only running it shows.
    teacher = TEACHER[:5] + ["credit=none"] + TEACHER[5:]
    common = ["--seeds", "2", *teacher, "--num-cpus", "2", "--logdir", str(tmp_path), "--name", "grid",
              "--verbose", "0"]
    refused = run_sweep("--controllers", "random,ga", "--controller-kwargs", "ga.population_size=0", *common)
    assert refused.returncode == 2 and "population_size" in refused.stderr, refused.stderr[-3000:]
    assert not (tmp_path / "grid").exists()
    done = run_sweep("--controllers", "random,reinforce,credit", *common)
    assert done.returncode == 1, done.stderr[-3000:]
    sweep_dir = tmp_path / "grid"
    trials = {row["name"]: row for row in read_csv(sweep_dir / "trials.csv")}
    assert {n for n, r in trials.items() if r["status"] == "finished"} == {
        "random__s0", "random__s1", "reinforce__s0", "reinforce__s1"}
    for name in ("credit__s0", "credit__s1"):
        assert trials[name]["status"] == "failed" and "needs per-decision credit" in trials[name]["error"]
    summary = {row["controller"]: row for row in read_csv(sweep_dir / "summary.csv")}
    assert set(summary) == {"random", "reinforce", "credit"}
    for name in ("random", "reinforce"):
        row = summary[name]
        assert row["finished"] == "2" and row["failed"] == "0"
        assert float(row["best_reward_mean"]) <= 0 and float(row["best_reward_std"]) >= 0
        assert float(row["score_min"]) <= float(row["score_mean"]) <= float(row["score_max"])
    assert summary["credit"]["failed"] == "2"
    markdown = (sweep_dir / "summary.md").read_text()
    assert "| random |" in markdown and "## Failed trials (2)" in markdown and "`credit__s0`" in markdown
    assert "Failed trials (2)" in done.stdout and "2 trial(s) failed" in done.stderr
    # Every trial is a normal search run: result.json and TensorBoard curves.
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir = sweep_dir / "runs" / "reinforce__s1"
    result = json.loads((run_dir / "result.json").read_text())
    assert result["controller"] == "reinforce" and result["seed"] == 1 and result["steps"] == 5
    events = EventAccumulator(str(run_dir))
    events.Reload()
    assert len(events.Scalars("charts/reward")) == 5
    # Started again: the finished trials are skipped (no Ray needed), the table is rebuilt.
    stamps = {p: p.stat().st_mtime_ns for p in (sweep_dir / "runs").glob("*/result.json")}
    again = run_sweep("--controllers", "random,reinforce", *common)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "4 trials (4 finished before and skipped, 0 to run)" in again.stdout
    assert stamps == {p: p.stat().st_mtime_ns for p in (sweep_dir / "runs").glob("*/result.json")}
    assert {row["status"] for row in read_csv(sweep_dir / "trials.csv")} == {"skipped"}


@pytest.mark.slow  # ~30 s: starts Ray; test_a_trial_with_a_damaged_or_hostile_checkpoint... covers the logic
def test_sweep_over_a_trial_holding_a_hostile_checkpoint_runs_no_code(tmp_path):
    pytest.importorskip("ray.tune")
    import hashlib
    import io

    import torch

    from nasgen.checkpoint import FORMAT

    run_dir = tmp_path / "evil" / "runs" / "random__s0"
    run_dir.mkdir(parents=True)
    marker = tmp_path / "code-ran"
    buffer = io.BytesIO()
    torch.save({"config": {}, "step": 1, "controller": _Evil(marker)}, buffer)
    payload = buffer.getvalue()
    (run_dir / "checkpoint.pt").write_bytes(f"{FORMAT} {hashlib.sha256(payload).hexdigest()}\n".encode() + payload)
    done = run_sweep("--controllers", "random", "--seeds", "1", *TEACHER, "--num-cpus", "1", "--logdir",
                     str(tmp_path), "--name", "evil", "--verbose", "0")
    assert done.returncode == 0, done.stderr[-3000:]
    assert not marker.exists()
    assert (run_dir.with_name("random__s0.damaged-1") / "checkpoint.pt").is_file()
    assert json.loads((run_dir / "result.json").read_text())["steps"] == 5


def test_sweep_refuses_impossible_resources(tmp_path):
    pytest.importorskip("ray.tune")
    from nasgen.cli.sweep import cmd_sweep

    base = ["--controllers", "random", "--seeds", "1", *TEACHER, "--logdir", str(tmp_path)]
    for argv, message in ((["--cpus-per-trial", "0"], "must be > 0"),
                          (["--device", "cuda"], "--gpus-per-trial > 0"),
                          (["--address", "auto", "--num-cpus", "2"], "do not apply with --address"),
                          (["--name", "../up"], "plain folder name")):
        with pytest.raises(UsageError, match=message):
            cmd_sweep(sweep_args(*base, *argv))
