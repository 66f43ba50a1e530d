"""Every bad value exits 2 with one line, and nothing is created: the table runs the CLI
in-process, and each case must fail before a supernet is built or data is loaded."""

import json
import math
from pathlib import Path

import numpy as np
import pytest

from nasgen import controllers, searchspace
from nasgen.cli import main
from nasgen.searchspace import DARTS_V2

GENOTYPE = {k: [list(p) for p in v] if k in ("normal", "reduce") else list(v) for k, v in DARTS_V2._asdict().items()}
SMALL = searchspace.get("small").to_dict()

#: genotype files the table refers to as {json:NAME}
GENOTYPE_FILES = {
    "null": {"genotype": None},
    "normal5": {"genotype": {**GENOTYPE, "normal": 5}},
    "pair3": {"genotype": {**GENOTYPE, "normal": [["sep_conv_3x3", 0, 1]] * 8}},
    "badop": {"genotype": {**GENOTYPE, "normal": [["warp_drive", 0]] * 8}},
    "badinput": {"genotype": {**GENOTYPE, "normal": [["sep_conv_3x3", 99]] * 8}},
    "concat": {"genotype": {**GENOTYPE, "normal_concat": "all"}},
    "list": [1, 2, 3],
    "space_missing": {"genotype": GENOTYPE, "space": {"name": "x"}},
    "space_huge": {"genotype": GENOTYPE, "space": {**searchspace.get("darts").to_dict(), "n_nodes": 100000}},
    "space_type": {"genotype": GENOTYPE, "space": 5},
    "space_ops": {"genotype": GENOTYPE, "space": {"name": "x", "op_names": "none", "n_nodes": 4}},
    "result_huge": {"derived_arch": [0] * 18, "space": {"name": "x", "choices": [10**9] * 10**3}},
    "result_nospace": {"derived_arch": [0] * 18},
    "result_arch": {"derived_arch": [99] * 18, "space": SMALL},
    "result_config": {"derived_arch": [1] * 18, "space": SMALL, "config": 5, "extra": None},
    "deep": {"genotype": "DEEP"},
}

S = ["search", "--logdir", "{logdir}", "--no-progress"]
R = ["retrain", "{json:good}", "--out", "{tmp}/out", "--no-progress"]

BAD = [
    # environment keyword values, checked by the env's own argument checks without building it
    (S + ["--controller", "reinforce", "--env-kwargs", "credit=bogus"], "credit=bogus"),
    (S + ["--env-kwargs", "credit=bogus"], "credit"),
    (S + ["--env-kwargs", "batch_size=0"], "batch_size: expected an integer >= 1"),
    (S + ["--env-kwargs", "C=0"], "even C >= 2"),
    (S + ["--env-kwargs", "C=3"], "even C >= 2"),
    (S + ["--env-kwargs", "n_cells=0"], "n_cells >= 1"),
    (S + ["--env-kwargs", "C=abc"], "C='abc' is not an integer"),
    (S + ["--env-kwargs", "C=4.5"], "C=4.5 is not an integer"),
    (S + ["--env-kwargs", "limit=0"], "limit: expected an integer >= 1"),
    (S + ["--env-kwargs", "weight_lr=-1"], "weight_lr: expected a finite number > 0"),
    (S + ["--env-kwargs", "weight_lr=nan"], "weight_lr=nan is not a finite number"),
    (S + ["--env-kwargs", "nonfinite_reward=inf"], "nonfinite_reward=inf is not a finite number"),
    (S + ["--env-kwargs", "train_weights=3"], "train_weights=3 is not true/false"),
    (S + ["--env-kwargs", "credit_subset=0"], "credit_subset must be >= 1"),
    (S + ["--env-kwargs", "seed=-5"], "seed must be None or in 0..4294967295"),
    (S + ["--env", "nasgen/TeacherArch-v0", "--env-kwargs", "n_ops=0"], "n_ops and batch_size must be >= 1"),
    (S + ["--env", "nasgen/OneShotNASSeq-v0", "--controller", "rnn", "--env-kwargs", "C=3"], "even C >= 2"),
    (S + ["--space", "nb201", "--env-kwargs", "C=0"], "even C >= 2"),
    (S + ["--env-kwargs", "weight_lr_schedule=cosine"], "needs schedule_epochs > 0"),
    (S + ["--env-kwargs", "credit_batch=x"], "credit_batch='x'"),
    (S + ["--env", "nasgen/TeacherArch-v0", "--env-kwargs", "input_size=3"], "input_size must be >= 7"),
    # controller hyper-parameters: types from the signature, then the controller's own checks
    (S + ["--controller-kwargs", "lr=abc"], "lr='abc' is not a finite number"),
    (S + ["--controller-kwargs", "lr=nan"], "lr=nan is not a finite number"),
    (S + ["--controller-kwargs", "betas=5"], "betas=5 is not a list of 2 numbers"),
    (S + ["--controller-kwargs", "betas=[5,0.9]"], "betas must be two values in [0, 1)"),
    (S + ["--controller", "rnn", "--controller-kwargs", "lr=-1"], "need lr > 0"),
    (S + ["--controller", "rnn", "--controller-kwargs", "lr=inf"], "lr=inf is not a finite number"),
    (S + ["--controller", "rnn", "--controller-kwargs", "hidden_size=0"], "hidden_size must be >= 1"),
    (S + ["--controller", "ga", "--controller-kwargs", "population_size=2", "sample_size=5"], "exceeds"),
    (S + ["--controller", "asng", "--controller-kwargs", "lam=1"], "lam must be an int >= 2"),
    (S + ["--controller", "asng", "--controller-kwargs", "delta_max=nan"], "delta_max=nan is not a number"),
    (S + ["--controller", "darts", "--controller-kwargs", "order=3"], "order must be 1 or 2"),
    (S + ["--controller", "darts", "--controller-kwargs", "arch_betas=[2,2]"], "beta"),
    (S + ["--controller", "snas", "--controller-kwargs", "temperature=0"], "need finite temperature >= temperature_min > 0"),
    (S + ["--controller", "gdas", "--controller-kwargs", "tau_min=20"], "need finite tau_max >= tau_min > 0"),
    # flags
    (S + ["--warmup-epochs", "-1"], "argument --warmup-epochs: expected a finite number >= 0"),
    (S + ["--warmup-epochs", "nan"], "argument --warmup-epochs: expected a finite number"),
    (S + ["--warmup-epochs", "inf"], "argument --warmup-epochs: expected a finite number"),
    (S + ["--epochs", "nan"], "argument --epochs: expected a finite number"),
    (S + ["--epochs", "inf"], "argument --epochs: expected a finite number"),
    (S + ["--epochs", "0"], "argument --epochs: expected a finite number > 0"),
    (S + ["--steps", "0"], "argument --steps: expected an integer >= 1"),
    (S + ["--steps", "1.5"], "argument --steps: expected an integer"),
    (S + ["--checkpoint-every", "0"], "argument --checkpoint-every: expected an integer >= 1"),
    (S + ["--seed", "-1"], "argument --seed: expected a seed in 0..4294967295"),
    (S + ["--seed", "1e23"], "argument --seed: expected an integer"),
    (S + ["--seed", str(10**23)], "argument --seed: expected a seed in 0..4294967295"),
    (S + ["--device", "tpu"], "unknown device 'tpu'"),
    (S + ["--device", "cuda"], "CUDA is not available here"),
    (S + ["--controller", ""], "argument --controller: expected a non-empty value"),
    (S + ["--env", ""], "argument --env: expected a non-empty value"),
    (S + ["--dataset", ""], "argument --dataset: expected a non-empty value"),
    (S + ["--space", " "], "argument --space: expected a non-empty value"),
    (S + ["--resume", ""], "argument --resume: expected a non-empty value"),
    (["search", "--logdir", "", "--no-progress"], "argument --logdir: expected a non-empty value"),
    (["search", "--logdir", "{file}", "--no-progress"], "is a file, not a folder"),
    (["search", "--logdir", "{file}/runs", "--no-progress"], "cannot be created"),
    (S + ["--threads", "0"], "argument --threads: expected an integer >= 1"),
    (S + ["--env", "nasgen/TeacherArch-v0", "--epochs", "1"], "--epochs needs an env with a validation split"),
    (S + ["--env", "nasgen/TeacherArch-v0", "--env-kwargs", "device=cuda:x"], "device"),
    # retrain
    (R + ["--lr", "-1"], "argument --lr: expected a finite number > 0"),
    (R + ["--lr", "nan"], "argument --lr: expected a finite number"),
    (R + ["--limit", "0"], "argument --limit: expected an integer >= 1"),
    (R + ["--epochs", "0"], "argument --epochs: expected an integer >= 1"),
    (R + ["--seed", "-3"], "argument --seed"),
    (R + ["--dataset", ""], "argument --dataset: expected a non-empty value"),
    (R + ["--device", "cpux"], "unknown device 'cpux'"),
    (["retrain", "{json:good}", "--out", "{file}"], "--out '{file}' is a file, not a folder"),
    (["retrain", "{json:good}", "--out", "{file}/sub"], "cannot be created"),
    (["retrain", "{json:null}"], "'genotype' must be an object"),
    (["retrain", "{json:normal5}"], "genotype 'normal' must be a list of [op name, input index] pairs"),
    (["retrain", "{json:pair3}"], "genotype 'normal' must be a list of [op name, input index] pairs"),
    (["retrain", "{json:badop}"], "warp_drive"),
    (["retrain", "{json:badinput}"], "99"),
    (["retrain", "{json:concat}"], "genotype 'normal_concat' must be a list of node indices"),
    (["retrain", "{json:list}"], "must hold a JSON object"),
    (["retrain", "{json:space_missing}"], "misses 'choices'"),
    (["retrain", "{json:space_huge}"], "n_nodes must be in 1..32, got 100000"),
    (["retrain", "{json:space_type}"], "'space' must be a preset name or a space object"),
    (["retrain", "{json:space_ops}"], "field 'op_names' must be a list of str"),
    (["retrain", "{json:result_huge}"], "exceed the bound"),
    (["retrain", "{json:result_nospace}"], "a search space must be an object, got None"),
    (["retrain", "{json:result_arch}"], "99"),
    (["retrain", "{file}"], "is not valid JSON"),
    # toy
    (["toy", "--lr", "nan"], "argument --lr: expected a finite number"),
    (["toy", "--steps", "0"], "argument --steps: expected an integer >= 1"),
    (["toy", "--seed", "-1"], "argument --seed"),
    (["toy", "--teacher-fraction", "2"], "teacher_fraction"),
    (["toy", "--threads", "-2"], "argument --threads"),
    (["toy", "--lr", "1e308"], "lr=1e+308 is beyond"),
    (["toy", "--n-tokens", "1000000000"], "n_tokens=1000000000 is more than"),
    (["toy", "--input", "1,0,1,0", "--target", "1"], "input must be non-negative tokens as long as the target"),
    # huge values: refused in one line that does not echo them whole
    (S + ["--logdir", "{tmp}/" + "x" * 300], "is longer than 255 bytes"),
    (S + ["--env", "nasgen/TeacherArch-v0", "--env-kwargs", "n_edges=" + "-" * 100_000 + "1"], "is not an integer"),
    (S + ["--env", "nasgen/TeacherArch-v0", "--env-kwargs", "n_edges=1000000", "n_ops=1000"], "GiB, more than"),
    (S + ["--env-kwargs", "C=4", "C=8"], "--env-kwargs gives 'C' twice"),
    (S + ["--env", "nasgen/TeacherArch-v0", "--env-kwargs", "batch_size=1000000000"], "GiB, more than"),
    (["retrain", "{json:deep}"], "nests its JSON too deeply"),
    # sweep (validated before Ray starts)
    (["sweep", "--logdir", "{logdir}", "--controller-kwargs", "rnn.lr=abc", "--controllers", "rnn"],
     "lr='abc' is not a finite number"),
    (["sweep", "--logdir", "{logdir}", "--env-kwargs", "C=0"], "even C >= 2"),
    (["sweep", "--logdir", "{logdir}", "--warmup-epochs", "inf"], "argument --warmup-epochs"),
    (["sweep", "--logdir", "{logdir}", "--steps", "0"], "argument --steps"),
    (["sweep", "--logdir", "{file}"], "is a file, not a folder"),
    (["sweep", "--logdir", "{logdir}", "--env", ""], "argument --env: expected a non-empty value"),
    (["sweep", "--logdir", "{logdir}", "--threads", "0"], "argument --threads"),
    (["sweep", "--logdir", "{logdir}", "--seeds", "1000000"], "a count must be in 1..100000"),
    (["sweep", "--logdir", "{logdir}", "--controllers", "random", "--grid-env-kwargs",
      "C=" + ",".join(str(2 * k + 2) for k in range(400)), "batch_size=" + ",".join(str(k + 1) for k in range(400))],
     "x 160,000 env-kwargs variants x 3 seeds), more than the 100,000"),
]


def _tree(root: Path) -> set:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    """A cwd with a plain file and genotype files; returns the substitution table."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "plain.txt").write_text("not json\n")
    subs = {"{tmp}": str(tmp_path), "{file}": str(tmp_path / "plain.txt"), "{logdir}": str(tmp_path / "runs")}
    for name, content in {**GENOTYPE_FILES, "good": {"genotype": GENOTYPE, "space": "darts"}}.items():
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(content).replace('"DEEP"', "[" * 200_000 + "]" * 200_000))
        subs[f"{{json:{name}}}"] = str(path)
    return subs


def _fill(text: str, subs: dict) -> str:
    for key, value in subs.items():
        text = text.replace(key, value)
    return text


@pytest.mark.parametrize("argv,message", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_value_exits_2_with_one_line_and_creates_nothing(argv, message, workspace, capsys, monkeypatch):
    import nasgen.envs.oneshot as oneshot
    import nasgen.searchspace.cells as cells

    def forbidden(*args, **kwargs):
        raise AssertionError("validation must fail before data is loaded or a network is built")

    monkeypatch.setattr(oneshot, "load_dataset", forbidden)
    monkeypatch.setattr(cells.CellStack, "__init__", forbidden)
    root = Path(workspace["{tmp}"])
    before = _tree(root)
    try:
        status = main([_fill(a, workspace) for a in argv])
    except SystemExit as exit_:  # argparse's usage error
        status = exit_.code
    err = capsys.readouterr().err
    assert status == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert lines[0].startswith(f"nasgen {argv[0]}: error: "), err
    assert _fill(message, workspace) in lines[0], err
    assert len(lines[0]) < 1000, "an error line echoes a value whole"
    assert _tree(root) == before  # no run directory, no events file, no output folder


def test_the_table_covers_every_command():
    assert {argv[0] for argv, _ in BAD} == {"search", "retrain", "toy", "sweep"}


# --- --resume: conflicts refused, more --steps extend -----------------------------------------------------
TINY = ["--env-kwargs", "C=4", "n_cells=3", "limit=128", "batch_size=32", "--warmup-epochs", "0",
        "--controller", "reinforce", "--no-progress", "--checkpoint-every", "2"]


def _search(logdir: Path, *extra: str) -> Path:
    assert main(["search", "--logdir", str(logdir), *TINY, *extra]) == 0
    (run_dir,) = [p for p in logdir.iterdir() if p.is_dir()]
    return run_dir


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A finished 4-step run of a tiny supernet (copied per test that changes it)."""
    return _search(tmp_path_factory.mktemp("resume"), "--steps", "4")


def _snapshot(run_dir: Path) -> dict:
    return {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()}


RESUME_CONFLICTS = [
    (["--space", "darts"], "is for space 'nb201', not 'darts'"),
    (["--dataset", "cifar10"], "is for dataset 'mnist1d', not 'cifar10'"),
    (["--warmup-epochs", "2"], "is for warmup_epochs 0.0, not 2.0"),
    (["--env-kwargs", "C=8"], "is for C 4, not 8"),
    (["--env-kwargs", "credit=taylor"], "is for credit None, not 'taylor'"),
    (["--controller-kwargs", "lr=0.5"], "is for controller lr 0.05, not 0.5"),
    (["--controller-kwargs", "warp=1"], "controller 'reinforce' takes no 'warp'"),
    (["--env-kwargs", "warp=1"], "takes no 'warp'"),
    (["--controller", "ga"], "is for controller 'reinforce', not 'ga'"),
    (["--seed", "3"], "is for seed 0, not 3"),
    (["--epochs", "1"], "is for epochs None, not 1.0"),
    (["--steps", "3"], "--steps can only extend it, not shorten it to 3"),
    (["--logdir", "elsewhere"], "--logdir does not apply"),
    (["--image-every", "1"], "is for image_every 0, not 1"),
]


@pytest.mark.parametrize("flags,message", RESUME_CONFLICTS, ids=[" ".join(f) for f, _ in RESUME_CONFLICTS])
def test_resume_refuses_a_conflicting_flag_and_changes_nothing(finished_run, flags, message, capsys):
    before = _snapshot(finished_run)
    capsys.readouterr()
    assert main(["search", "--resume", str(finished_run), "--no-progress", *flags]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and message in err, err
    assert _snapshot(finished_run) == before


def test_resume_with_more_steps_extends_the_run_exactly(finished_run, tmp_path, capsys):
    import shutil

    run_dir = tmp_path / "extended"
    shutil.copytree(finished_run, run_dir)
    capsys.readouterr()
    repeated = ["--warmup-epochs", "0", "--controller", "reinforce", "--env-kwargs", "C=4", "limit=128",
                "--controller-kwargs", "lr=0.05"]
    assert main(["search", "--resume", str(run_dir), "--steps", "6", "--no-progress", *repeated]) == 0
    out = capsys.readouterr().out
    assert f"resuming {run_dir} at step 4: controller reinforce" in out and "extended to 6 steps" in out
    extended = json.loads((run_dir / "result.json").read_text())
    straight = json.loads((_search(tmp_path / "straight", "--steps", "6") / "result.json").read_text())
    assert extended["steps"] == 6 and extended["config"]["steps"] == 6
    for key in ("derived_arch", "best_reward", "best_arch", "evaluations", "score"):
        assert extended[key] == straight[key], key


def test_resume_refuses_to_extend_a_controller_that_anneals_over_the_run(tmp_path, capsys):
    run_dir = _search(tmp_path, "--steps", "2", "--controller", "darts")
    assert main(["search", "--resume", str(run_dir), "--steps", "4", "--no-progress"]) == 2
    assert "anneals its schedule over them" in capsys.readouterr().err


# --- huge finite rewards never poison a black-box controller ------------------------------------------
BLACK_BOX = [n for n in controllers.names() if controllers.get(n).kind == "black-box"]


@pytest.mark.filterwarnings("error::RuntimeWarning")  # an overflow anywhere is a failure
@pytest.mark.parametrize("name", BLACK_BOX)
@pytest.mark.parametrize("reward", [1e308, -1e308, 1e300])
def test_huge_finite_rewards_and_credit_leave_a_working_controller(name, reward):
    space = searchspace.get("small")
    controller = controllers.make(name, space, seed=0)
    rng = np.random.default_rng(0)
    for step in range(6):
        archs = controller.ask(controller.samples_per_step)
        rewards = [reward * (1 if i % 2 == 0 else -0.5) if step % 2 == 0 else float(rng.normal())
                   for i in range(len(archs))]
        infos = [{"credit": np.full(space.n_decisions, reward)} for _ in archs]
        metrics = controller.tell(archs, rewards, infos)
        assert all(isinstance(v, float) for v in metrics.values())
    for arch in controller.ask(controller.samples_per_step):
        space.validate(arch)
    space.validate(controller.derive())
    probs = controller.op_probabilities()
    if probs is not None:
        assert np.all(np.isfinite(probs)) and np.allclose(probs.sum(axis=1), 1.0)
    assert math.isfinite(float(np.asarray(controller.state_dict().get("evaluations", 0))))


# --- --threads ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("command", ["search", "retrain", "toy", "sweep", "bench"])
def test_every_command_takes_threads(command):
    from nasgen.cli import build_parser
    from nasgen.runtime import DEFAULT_THREADS

    extra = {"retrain": ["x.json"], "bench": ["build"]}.get(command, [])
    assert build_parser().parse_args([command, *extra, "--threads", "3"]).threads == 3
    default = build_parser().parse_args([command, *extra]).threads
    assert default == (None if command == "sweep" else DEFAULT_THREADS)  # sweep: --cpus-per-trial


def test_threads_are_set_before_the_command_runs(capsys):
    import torch

    try:
        assert main(["search", "--threads", "2", "--controller", "nope"]) == 2
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(1)


# --- the library checks the CLI relies on ------------------------------------------------------------------
def test_env_argument_checks_build_nothing_and_match_init():
    from nasgen.envs import OneShotNASEnv, TeacherArchEnv

    assert OneShotNASEnv.check_arguments(space="darts") == searchspace.get("darts")
    assert TeacherArchEnv.check_arguments(n_edges=4, n_ops=3).choices == (3, 3, 3, 3)
    for cls, kwargs, message in ((OneShotNASEnv, {"C": 3}, "even C"), (OneShotNASEnv, {"warmup_epochs": -1}, "warmup"),
                                 (OneShotNASEnv, {"weight_momentum": 1.0}, "weight_momentum"),
                                 (TeacherArchEnv, {"input_size": 5}, "input_size")):
        with pytest.raises(ValueError, match=message):
            cls.check_arguments(**kwargs)
        with pytest.raises(ValueError, match=message):  # the constructor runs the same checks
            cls(**kwargs)
    with pytest.raises(TypeError, match="takes no 'colour'"):
        OneShotNASEnv.check_arguments(colour="red")


@pytest.mark.parametrize("spec,message", [
    ({"name": "x", "op_names": ["none", "skip_connect"], "n_nodes": 100000}, "n_nodes must be in 1..32"),
    ({"name": "x", "op_names": ["none", "skip_connect"]}, "misses 'n_nodes'"),
    ({"name": "x", "op_names": ["none", "skip_connect"], "n_nodes": True}, "'n_nodes' must be int"),
    ({"name": "x", "choices": [2, "3"]}, "'choices' must be a list of int"),
    ({"name": "x", "choices": [10**9] * 1000}, "exceed the bound"),
    ([1, 2], "must be an object"),
])
def test_space_from_a_file_is_checked_and_bounded(spec, message):
    with pytest.raises(ValueError, match=message):
        searchspace.from_dict(spec)
    space = searchspace.get("darts")
    assert searchspace.from_dict(space.to_dict()) == space


def test_resume_refuses_to_extend_a_protocol_run(tmp_path, capsys):
    run_dir = _search(tmp_path, "--steps", "4", "--protocol", "shared")
    before = _snapshot(run_dir)
    capsys.readouterr()
    assert main(["search", "--resume", str(run_dir), "--steps", "6", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "under protocol 'shared'" in err, err
    assert _snapshot(run_dir) == before


@pytest.mark.parametrize("kwargs,message", [
    (["reward=max"], "reward='max'"),
    (["budget=3"], "budget=3 queries is less than the 5"),
    (["table=no-such-table"], "no table 'no-such-table'"),  # one line that lists the shipped ones
], ids=["bad reward", "budget below the run", "unknown table"])
def test_tabular_arguments_only_the_env_can_check_are_one_line(tmp_path, tiny_table, kwargs, message, capsys):
    table = [] if any(k.startswith("table=") for k in kwargs) else [f"table={tiny_table}"]
    argv = ["search", "--env", "nasgen/Tabular-v0", "--controller", "random", "--steps", "5",
            "--logdir", str(tmp_path / "runs"), "--no-progress", "--env-kwargs", *table, *kwargs]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert message is None or message in err, err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_a_run_made_under_the_earlier_defaults_still_resumes(tmp_path, capsys):
    """Runs made when the defaults were digits and the small space recorded neither; their
    checkpoint tells both, so they resume on them and not on today's nb201 and MNIST-1D."""
    from nasgen.checkpoint import load_checkpoint, save_checkpoint

    assert main(["search", "--logdir", str(tmp_path), "--no-progress", "--steps", "3", "--controller", "random",
                 "--space", "small", "--dataset", "digits", "--env-kwargs", "C=4", "n_cells=3", "limit=64",
                 "--warmup-epochs", "0"]) == 0
    (run_dir,) = tmp_path.iterdir()
    state = load_checkpoint(run_dir / "checkpoint.pt")
    for key in ("space", "dataset", "warmup_epochs"):
        state["config"]["env_kwargs"].pop(key)
    state["config"]["env_kwargs"]["warmup_epochs"] = 0.0
    save_checkpoint(state, run_dir / "checkpoint.pt")
    capsys.readouterr()
    assert main(["search", "--resume", str(run_dir), "--steps", "5", "--no-progress"]) == 0, capsys.readouterr().err
    result = json.loads((run_dir / "result.json").read_text())
    assert result["space"]["name"] == "small" and result["config"]["env_kwargs"]["dataset"] == "digits"
    assert result["steps"] == 5
