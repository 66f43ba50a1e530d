"""The ``nasgen`` command, driven through subprocesses like a user would."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nasgen import controllers
from nasgen import envs as nasgen_envs
from nasgen.cli import main

TINY_ONESHOT = ["--env-kwargs", "C=4", "n_cells=3", "limit=128", "batch_size=32", "--warmup-epochs", "0"]


# One torch thread, as in conftest: the same arithmetic in every process of a test.
SUBPROCESS_ENV = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}


def nasgen(*args, cwd=None, check=True, timeout=240):
    result = subprocess.run([sys.executable, "-m", "nasgen", *args], capture_output=True, text=True,
                            cwd=cwd, env=SUBPROCESS_ENV, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"nasgen {' '.join(args)} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return result


def only_run(logdir: Path) -> Path:
    runs = [p for p in logdir.iterdir() if p.is_dir()]
    assert len(runs) == 1, runs
    return runs[0]


def scalar_tags(run_dir: Path) -> dict:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(run_dir))
    accumulator.Reload()
    return {tag: [e.value for e in accumulator.Scalars(tag)] for tag in accumulator.Tags()["scalars"]}


def test_list_names_everything():
    out = nasgen("list").stdout
    for name in controllers.names():
        assert f"  {name}\n" in out
    assert "nasgen/OneShotNAS-v0" in out and "digits" in out and "darts" in out


def test_search_on_the_supernet_writes_curves_results_and_diagrams(tmp_path):
    out = nasgen("search", "--steps", "12", "--logdir", str(tmp_path), "--no-progress", *TINY_ONESHOT).stdout
    run_dir = only_run(tmp_path)
    assert run_dir.name.startswith("OneShotNAS-v0__credit__s0__")
    assert "derived architecture" in out and str(run_dir) in out
    result = json.loads((run_dir / "result.json").read_text())
    assert result["controller"] == "credit" and result["steps"] == 12 and len(result["derived_arch"]) == 18
    assert result["genotype"] is not None  # credit derives in DARTS form
    assert result["score"] < 0 and result["wall_time_s"] > 0
    for png in ("normal.png", "reduce.png"):
        assert (run_dir / png).read_bytes()[:4] == b"\x89PNG"
    tags = scalar_tags(run_dir)
    assert len(tags["charts/reward"]) == 12
    for tag in ("charts/best_reward", "charts/SPS", "search/entropy", "search/zero_op_share", "losses/train"):
        assert tag in tags, sorted(tags)
    assert (run_dir / "checkpoint.pt").is_file()


@pytest.mark.parametrize("name", controllers.names())
def test_every_controller_runs_from_the_command_line(name, tmp_path):
    nasgen("search", "--controller", name, "--env", "nasgen/TeacherArch-v0", "--steps", "6",
           "--env-kwargs", "n_edges=4", "n_ops=3", "batch_size=16", "--logdir", str(tmp_path), "--no-progress")
    run_dir = only_run(tmp_path)
    result = json.loads((run_dir / "result.json").read_text())
    assert result["controller"] == name and len(result["derived_arch"]) == 4
    assert "charts/reward" in scalar_tags(run_dir)


def test_kill_and_resume_equals_an_uninterrupted_run(tmp_path):
    common = ["search", "--controller", "credit", "--steps", "40", "--checkpoint-every", "4", "--no-progress",
              *TINY_ONESHOT]
    nasgen(*common, "--logdir", str(tmp_path / "whole"))
    expected = json.loads((only_run(tmp_path / "whole") / "result.json").read_text())

    logdir = tmp_path / "killed"
    process = subprocess.Popen([sys.executable, "-m", "nasgen", *common, "--logdir", str(logdir)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=SUBPROCESS_ENV)
    deadline = time.time() + 180
    while time.time() < deadline:  # wait until a mid-run checkpoint exists, then SIGKILL
        runs = list(logdir.glob("*/checkpoint.pt")) if logdir.exists() else []
        if runs and runs[0].stat().st_size and not (runs[0].parent / "result.json").exists():
            time.sleep(0.3)
            break
        if process.poll() is not None:
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    run_dir = only_run(logdir)
    assert not (run_dir / "result.json").exists(), "the run finished before it could be killed"
    nasgen("search", "--resume", str(run_dir), "--no-progress")
    resumed = json.loads((run_dir / "result.json").read_text())
    assert resumed["derived_arch"] == expected["derived_arch"]
    assert resumed["score"] == pytest.approx(expected["score"], abs=1e-6)
    assert resumed["best_reward"] == pytest.approx(expected["best_reward"], abs=1e-6)
    assert resumed["evaluations"] == expected["evaluations"] and resumed["steps"] == 40


def test_corrupt_or_mismatched_checkpoint_is_refused_and_kept(tmp_path):
    nasgen("search", "--controller", "random", "--env", "nasgen/TeacherArch-v0", "--steps", "4",
           "--env-kwargs", "n_edges=3", "n_ops=3", "--logdir", str(tmp_path), "--no-progress")
    run_dir = only_run(tmp_path)
    checkpoint = run_dir / "checkpoint.pt"

    mismatch = nasgen("search", "--resume", str(run_dir), "--controller", "ga", check=False)
    assert mismatch.returncode == 2
    assert "is for controller 'random', not 'ga'" in mismatch.stderr and "Traceback" not in mismatch.stderr

    damaged = bytearray(checkpoint.read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF
    checkpoint.write_bytes(bytes(damaged))
    before = checkpoint.read_bytes()
    corrupt = nasgen("search", "--resume", str(run_dir), check=False)
    assert corrupt.returncode == 2 and "corrupt" in corrupt.stderr and "Traceback" not in corrupt.stderr
    assert len(corrupt.stderr.strip().splitlines()) == 1
    assert checkpoint.read_bytes() == before


def test_retrain_from_a_run_and_from_a_genotype_file(tmp_path):
    nasgen("search", "--controller", "reinforce", "--steps", "3", "--logdir", str(tmp_path / "runs"),
           "--no-progress", *TINY_ONESHOT)
    run_dir = only_run(tmp_path / "runs")
    out = nasgen("retrain", str(run_dir), "--epochs", "1", "--channels", "4", "--cells", "3", "--limit", "100",
                 "--cutout", "4", "--crop-padding", "1", "--no-progress").stdout
    assert "test accuracy" in out
    record = json.loads((run_dir / "retrain" / "retrain.json").read_text())
    assert 0.0 <= record["test_accuracy"] <= 1.0 and record["dataset"] == "digits"
    assert record["cutout"] == 4 and record["crop_padding"] == 1 and record["flip"] is False
    assert "charts/test_accuracy" in scalar_tags(run_dir / "retrain")

    from nasgen.searchspace import DARTS_V2

    genotype_file = tmp_path / "darts_v2.json"
    genotype_file.write_text(json.dumps({"genotype": DARTS_V2._asdict(), "space": "darts"}))
    nasgen("retrain", str(genotype_file), "--epochs", "1", "--channels", "4", "--cells", "3", "--limit", "100",
           "--no-progress")
    assert json.loads((tmp_path / "darts_v2-retrain" / "retrain.json").read_text())["epochs"] == 1


BAD_INPUTS = [
    (["search", "--controller", "nope"], "unknown controller 'nope'; choose from: random"),
    (["search", "--env", "nasgen/Nope-v0"], "unknown env 'nasgen/Nope-v0'; choose from: nasgen/OneShotNAS-v0"),
    (["search", "--dataset", "imagenet"], "unknown dataset 'imagenet'; choose from: digits, cifar10"),
    (["search", "--space", "huge"], "unknown search space 'huge'; choose from: darts, small"),
    (["search", "--env-kwargs", "C"], "--env-kwargs expects key=value pairs, got 'C'"),
    (["search", "--env-kwargs", "colour=red"], "takes no 'colour'; it accepts: dataset"),
    (["search", "--controller-kwargs", "=3"], "--controller-kwargs expects key=value pairs"),
    (["search", "--controller", "random", "--controller-kwargs", "lr=3"], "controller 'random' takes no 'lr'"),
    (["search", "--dataset", "cifar10", "--data-dir", "/nonexistent/folder"], "put cifar-10-batches-py/"),
    (["search", "--env", "nasgen/TeacherArch-v0", "--dataset", "digits"], "--dataset does not apply to env"),
    (["search", "--resume", "/nonexistent/run"], "no run directory"),
    (["retrain", "/nonexistent/run"], "no run directory or genotype file"),
    (["retrain", "/nonexistent/run", "--cutout", "-1"], "--cutout must be >= 0 (0 = off), got -1"),
]


@pytest.mark.parametrize("argv,message", BAD_INPUTS, ids=[" ".join(a) for a, _ in BAD_INPUTS])
def test_bad_input_exits_2_with_one_line(argv, message, capsys, tmp_path):
    assert main([*argv, "--no-progress"] if argv[0] == "search" else argv) == 2
    err = capsys.readouterr().err
    assert message in err, err
    assert len(err.strip().splitlines()) == 1


def test_bad_input_through_a_real_process_has_no_traceback():
    result = nasgen("search", "--controller", "nope", check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip() == ("nasgen search: error: unknown controller 'nope'; choose from: "
                                     + ", ".join(controllers.names()))


def test_toy_map_learns_and_report_setup_is_diagnosed():
    out = nasgen("toy", "--task", "map", "--no-progress").stdout
    assert "per-step outputs" in out and "verdict: healthy" in out
    out = nasgen("toy", "--task", "generate", "--feedback", "argmax", "--no-carry-state", "--no-progress").stdout
    assert "verdict: collapsed" in out and "no carried state" in out and "--carry-state" in out


def test_toy_bad_tokens_exit_2():
    result = nasgen("toy", "--target", "1,x,0", check=False)
    assert result.returncode == 2 and "expected tokens like 1,1,0,0, got '1,x,0'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_rnn_search_logs_diagnostics_and_warns_once_on_a_forced_collapse(tmp_path):
    result = nasgen("search", "--controller", "rnn", "--steps", "20", "--controller-kwargs", "zero_op_bias=20",
                    "--logdir", str(tmp_path), "--no-progress", *TINY_ONESHOT)
    warnings = [line for line in result.stderr.splitlines() if line.startswith("WARNING: rnn controller collapsed")]
    assert len(warnings) == 1 and "likely cause" in warnings[0] and "--controller-kwargs" in warnings[0]
    tags = scalar_tags(only_run(tmp_path))
    assert any(tag.startswith("diagnostics/") for tag in tags), sorted(tags)


# --- every listed env can be searched, or the command says why not ----------------------------
#: Small flags per env id for a quick search with a black-box controller.
SEARCH_ENV_FLAGS = {
    "nasgen/OneShotNAS-v0": TINY_ONESHOT,
    "nasgen/OneShotNASSeq-v0": TINY_ONESHOT,
    "nasgen/TeacherArch-v0": ["--env-kwargs", "n_edges=4", "n_ops=3", "batch_size=16"],
    "nasgen/SeqTarget-v0": ["--env-kwargs", "mode=generate"],
    "nasgen/NASBenchGraph-v0": ["--dataset", "citeseer"],
}


@pytest.mark.parametrize("env_id", nasgen_envs.env_ids())
def test_every_listed_env_is_searchable(env_id, tmp_path, capsys):
    if env_id == "nasgen/NASBenchGraph-v0":
        pytest.importorskip("nas_bench_graph")
    assert main(["search", "--env", env_id, "--controller", "reinforce", "--steps", "4", "--logdir", str(tmp_path),
                 "--no-progress", *SEARCH_ENV_FLAGS[env_id]]) == 0
    result = json.loads((only_run(tmp_path) / "result.json").read_text())
    assert result["env"] == env_id and result["steps"] == 4 and result["score"] is not None


SEARCH_REFUSALS = [
    (["--env", "nasgen/SeqTarget-v0", "--controller", "darts"],
     "gradient controller 'darts' needs an env with a differentiable model; nasgen/SeqTarget-v0 has none"),
    (["--env", "nasgen/OneShotNASSeq-v0", "--controller", "gdas"], "Use it with nasgen/OneShotNAS-v0"),
    (["--env", "nasgen/SeqTarget-v0"], "controller 'credit' needs per-edge credit, which nasgen/SeqTarget-v0"),
    (["--env", "nasgen/NASBenchGraph-v0"], "controller 'credit' needs per-edge credit, which nasgen/NASBenchGraph"),
    (["--env", "nasgen/NASBenchGraph-v0", "--controller", "ga", "--dataset", "digits"],
     "unknown dataset 'digits'; choose from: cora, citeseer, pubmed"),
    (["--env", "nasgen/NASBenchGraph-v0", "--controller", "ga", "--env-kwargs", "credit=taylor"],
     "--env-kwargs credit=taylor: nasgen/NASBenchGraph-v0 takes no credit"),
]


@pytest.mark.parametrize("argv,message", SEARCH_REFUSALS, ids=[" ".join(a) for a, _ in SEARCH_REFUSALS])
def test_a_controller_that_cannot_search_an_env_is_refused(argv, message, tmp_path, capsys):
    assert main(["search", *argv, "--logdir", str(tmp_path / "runs"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "runs").exists()


def test_list_marks_what_each_env_offers():
    lines = {line.split()[0]: line for line in nasgen("list").stdout.splitlines() if line.startswith("  nasgen/")}
    assert "(" not in lines["nasgen/OneShotNAS-v0"]
    assert "black-box controllers only" in lines["nasgen/SeqTarget-v0"]
    assert "datasets: cora, citeseer" in lines["nasgen/NASBenchGraph-v0"]
