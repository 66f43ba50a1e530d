"""The ``nasgen`` command, driven through subprocesses like a user would."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from nasgen import controllers
from nasgen import envs as nasgen_envs
from nasgen.cli import main

TINY_ONESHOT = ["--env-kwargs", "C=4", "n_cells=3", "limit=128", "batch_size=32", "space=small", "dataset=digits",
                "--warmup-epochs", "0"]
#: The same, with a credit-quality check every 4 steps.
TINY_CHECKED = [*TINY_ONESHOT[:-2], "credit_check_every=4", *TINY_ONESHOT[-2:]]


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


def events(run_dir: Path):
    """Everything the run directory's own event files hold (nothing sampled away)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    accumulator.Reload()
    return accumulator


def scalar_tags(run_dir: Path) -> dict:
    accumulator = events(run_dir)
    return {tag: [e.value for e in accumulator.Scalars(tag)] for tag in accumulator.Tags()["scalars"]}


def text(accumulator, tag: str) -> str:
    return accumulator.Tensors(f"{tag}/text_summary")[-1].tensor_proto.string_val[0].decode()


def hparams_of(accumulator) -> dict:
    """The HParams tab's values for the run (its session start info)."""
    from tensorboard.plugins.hparams import plugin_data_pb2

    content = accumulator.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    values = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info.hparams
    return {k: v.number_value if v.HasField("number_value") else v.string_value for k, v in values.items()}


def test_list_names_everything():
    out = nasgen("list").stdout
    for name in controllers.names():
        assert f"  {name}\n" in out
    assert "nasgen/OneShotNAS-v0" in out and "digits" in out and "darts" in out


def test_search_on_the_supernet_writes_curves_results_and_diagrams(tmp_path):
    out = nasgen("search", "--steps", "12", "--logdir", str(tmp_path), "--no-progress", *TINY_CHECKED).stdout
    run_dir = only_run(tmp_path)
    assert run_dir.name.startswith("OneShotNAS-v0__small-digits__credit__s0__")
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
    # Credit quality: checks at steps 4, 8, 12, then one on the derived architecture.
    assert len(tags["credit/taylor_corr"]) == 3 and len(tags["credit/final_taylor_bias"]) == 1
    quality = result["credit_quality"]
    assert quality["checks"] == 3 and quality["every"] == 4
    assert quality["final"]["active_edges"] == 12  # the derived cells: 2 inputs x 3 nodes x 2 cells
    assert -1.0 <= quality["pooled"]["taylor_corr"] <= 1.0
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
              *TINY_CHECKED]
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
    got, want = resumed["credit_quality"], expected["credit_quality"]
    assert got["checks"] == want["checks"] == 10  # the check history is part of the checkpoint
    for group in ("pooled", "final"):
        assert got[group].keys() == want[group].keys()
        for key, value in want[group].items():
            assert (got[group][key] is None) if value is None else got[group][key] == pytest.approx(value, abs=1e-6)


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
    retrain_events = events(run_dir / "retrain")
    tags = retrain_events.Tags()["scalars"]
    assert "retrain/test_accuracy" in tags and "retrain/val_loss" in tags
    assert all(tag.startswith(("retrain/", "hparams/")) for tag in tags), tags  # apart from the search's
    assert hparams_of(retrain_events)["epochs"] == 1
    assert retrain_events.Scalars("hparams/test_accuracy")[-1].value == pytest.approx(record["test_accuracy"])
    assert "|epochs|1|" in text(retrain_events, "retrain/hyperparameters")

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
    (["retrain", "/nonexistent/run", "--cutout", "-1"], "argument --cutout: expected an integer >= 0, got -1"),
    (["search", "--protocol", "fair"], "unknown protocol 'fair'; choose from: paper, shared"),
    (["search", "--env", "nasgen/TeacherArch-v0", "--protocol", "paper"], "--protocol needs an env that trains"),
]


@pytest.mark.parametrize("argv,message", BAD_INPUTS, ids=[" ".join(a) for a, _ in BAD_INPUTS])
def test_bad_input_exits_2_with_one_line(argv, message, capsys, tmp_path):
    try:
        status = main([*argv, "--no-progress"] if argv[0] == "search" else argv)
    except SystemExit as exit_:  # argparse's own one-line usage error
        status = exit_.code
    assert status == 2
    err = capsys.readouterr().err
    assert message in err, err
    assert len(err.strip().splitlines()) == 1


def test_bad_protocol_exits_2_before_making_the_run_directory(tmp_path):
    result = nasgen("search", "--protocol", "fair", "--logdir", str(tmp_path / "runs"), check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip() == "nasgen search: error: unknown protocol 'fair'; choose from: paper, shared"
    assert not (tmp_path / "runs").exists()


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
    assert "diagnostics/entropy_step/0" in tags and not [t for t in tags if t.startswith("entropy_step")]


# --- every listed env can be searched, or the command says why not ----------------------------
#: Small flags per env id for a quick search with a black-box controller.
SEARCH_ENV_FLAGS = {
    "nasgen/OneShotNAS-v0": TINY_ONESHOT,
    "nasgen/OneShotNASSeq-v0": TINY_ONESHOT,
    "nasgen/TeacherArch-v0": ["--env-kwargs", "n_edges=4", "n_ops=3", "batch_size=16"],
    "nasgen/SeqTarget-v0": ["--env-kwargs", "mode=generate"],
    "nasgen/NASBenchGraph-v0": ["--dataset", "citeseer"],
    "nasgen/Tabular-v0": None,  # the tiny_table fixture's table (conftest.py)
}


@pytest.mark.parametrize("env_id", nasgen_envs.env_ids())
def test_every_listed_env_is_searchable(env_id, tmp_path, capsys, request):
    if env_id == "nasgen/NASBenchGraph-v0":
        pytest.importorskip("nas_bench_graph")
    flags = SEARCH_ENV_FLAGS[env_id] or ["--env-kwargs", f"table={request.getfixturevalue('tiny_table')}"]
    assert main(["search", "--env", env_id, "--controller", "reinforce", "--steps", "4", "--logdir", str(tmp_path),
                 "--no-progress", *flags]) == 0
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


# --- what a new user sees: progress, times, files, TensorBoard -----------------------------------
def test_search_shows_the_warm_up_and_its_tensorboard_is_complete(tmp_path):
    flags = ["--epochs", "2", "--image-every", "2", *TINY_ONESHOT[:-2], "--warmup-epochs", "1"]
    shown = nasgen("search", "--controller", "reinforce", "--logdir", str(tmp_path / "a"), *flags)
    assert "warm-up" in shown.stderr and "reinforce" in shown.stderr  # both bars
    quiet = nasgen("search", "--controller", "reinforce", "--logdir", str(tmp_path / "b"), "--no-progress", *flags)
    assert "warm-up" not in quiet.stderr and "step/s" not in quiet.stderr
    run_dir = only_run(tmp_path / "b")
    result = json.loads((run_dir / "result.json").read_text())
    assert result["steps"] == 8  # 2 epochs of the 4-batch validation split
    # the printed time is the loop's own, and says what it covers
    assert f"search time: {result['loop_time_s']:.1f} s (the loop" in quiet.stdout
    assert result["loop_time_s"] >= result["wall_time_s"] > 0 and result["setup_time_s"] > 0

    accumulator = events(run_dir)
    assert [d for d in run_dir.iterdir() if d.is_dir()] == []  # hparams in the run's own event file
    scalars = accumulator.Tags()["scalars"]
    for tag in ("losses/val", "losses/train", "charts/reward", "hparams/derived_score"):
        assert tag in scalars, sorted(scalars)
    assert [e.step for e in accumulator.Images("search/op_probabilities")] == [2, 4, 6, 8]
    table = text(accumulator, "hyperparameters")
    assert "|steps|8 (from epochs)|" in table and "|steps|None|" not in table
    hparams = hparams_of(accumulator)
    assert hparams["steps"] == 8 and hparams["controller"] == "reinforce" and hparams["env_kwargs.C"] == 4
    assert accumulator.Scalars("hparams/derived_score")[-1].value == pytest.approx(result["score"])


def test_teacher_runs_print_op_names_and_only_the_files_they_write(tmp_path):
    out = nasgen("search", "--controller", "reinforce", "--env", "nasgen/TeacherArch-v0", "--steps", "3",
                 "--env-kwargs", "n_edges=3", "n_ops=4", "--logdir", str(tmp_path), "--no-progress").stdout
    run_dir = only_run(tmp_path)
    assert not list(run_dir.glob("*.png"))
    assert "png" not in out.lower() and "(result.json, genotype.txt, checkpoint.pt;" in out
    derived = json.loads((run_dir / "result.json").read_text())["derived_arch"]
    assert ", ".join(f"edge {k}: conv{a}" for k, a in enumerate(derived)) in out


def test_a_parameter_free_derived_cell_is_warned_about_once(tmp_path, capsys):
    from nasgen.search import Search, SearchConfig

    def search_deriving(op: str, reduce_op: str) -> type:
        class Fixed(Search):
            """A search whose controller derives a DARTS-form cell of one op per cell."""

            def _start(self, resume_state, env_state):
                super()._start(resume_state, env_state)
                probs = np.zeros((self.space.n_decisions, len(self.space.op_names)))
                half = self.space.n_edges
                probs[:half, self.space.op_names.index(op)] = 1.0
                probs[half:, self.space.op_names.index(reduce_op)] = 1.0
                probs[:, 1:] += np.linspace(0.1, 0.0, self.space.n_decisions)[:, None]  # an order of edges
                self.controller.derive = lambda: self.space.derive(probs)
        return Fixed

    config = SearchConfig(controller="reinforce", steps=4, env_kwargs=dict(C=4, n_cells=3, limit=64, batch_size=32,
                                                                           warmup_epochs=0, space="small",
                                                                           dataset="digits"))
    search_deriving("skip_connect", "max_pool_3x3")(config, tmp_path / "both").run()
    warnings = [line for line in capsys.readouterr().err.splitlines() if "parameter-free" in line]
    assert len(warnings) == 1 and "parameter-free normal and reduce cells at step 4" in warnings[0]

    search_deriving("sep_conv_3x3", "skip_connect")(config, tmp_path / "reduce").run()
    warnings = [line for line in capsys.readouterr().err.splitlines() if "parameter-free" in line]
    assert len(warnings) == 1 and "parameter-free reduce cell at step 4" in warnings[0]

    search_deriving("sep_conv_3x3", "dil_conv_3x3")(config, tmp_path / "healthy").run()
    assert "parameter-free" not in capsys.readouterr().err
