"""``nasgen compare``: the plan, fresh tasks, resuming, the report, and bad input in one line.

The default tests run ``--local`` with tiny budgets (the teacher toy, and nb1d on a synthetic
table); a real Ray run and a kill-and-resume of the command are marked slow.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from nasgen import compare
from nasgen.checks import InputError
from nasgen.cli import main
from nasgen.compare import CompareConfig

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _synthetic_table import write_synthetic_nb201_table  # noqa: E402

#: The teacher toy at a size where every task takes a fraction of a second.
TINY_TEACHER = {"suites": ("teacher",), "seeds": 2, "teacher_edges": 3, "teacher_ops": 3, "teacher_evaluations": 20,
                "local": True}
TINY_TEACHER_ARGS = ["--suite", "teacher", "--seeds", "2", "--teacher-edges", "3", "--teacher-ops", "3",
                     "--teacher-evaluations", "20"]


def quiet_run(**fields) -> dict:
    return compare.run(CompareConfig(**fields), progress=False, echo=None)


@pytest.fixture(scope="module")
def nb201_table(tmp_path_factory):
    return write_synthetic_nb201_table(tmp_path_factory.mktemp("nb201-table"))


def test_teacher_comparison_runs_every_task_and_reports_it(tmp_path):
    out = tmp_path / "cmp"
    report = quiet_run(controllers=("credit", "darts", "random"), out=str(out), **TINY_TEACHER)
    assert report["failed"] == 0
    names = sorted(p.name for p in (out / "tasks").iterdir())
    assert names == [f"teacher__{m}__s{s}.json" for m in ("credit", "darts", "random") for s in (0, 1)]
    for suffix in ("md", "json", "png"):
        assert (out / f"report.{suffix}").stat().st_size > 0
    saved = json.loads((out / "report.json").read_text())
    assert len(saved["tasks"]) == 6 and all("error" not in r for r in saved["tasks"])
    for row in saved["tasks"]:  # every method spent the same budget of evaluations
        assert row["evaluations"] == 20 and row["loss"] >= 0 and len(row["teacher"]) == 3
        assert row["recovered"] == (row["evaluations_to_recover"] is not None)
    summary = {e["method"]: e for e in saved["suites"]["teacher"]["summary"]}
    assert summary["darts"]["time_ratio"]["mean"] == pytest.approx(1.0)
    assert {e["kind"] for e in summary.values()} == {"black-box", "gradient"}
    pairs = {(t["method"], t["versus"]) for t in saved["suites"]["teacher"]["tests"]}
    assert pairs == {("credit", "random"), ("credit", "darts"), ("darts", "random")}
    for test in saved["suites"]["teacher"]["tests"]:
        assert test["seeds"] == [0, 1] and 0.5 <= test["wilcoxon"]["min_p"] <= test["wilcoxon"]["p"] <= 1
        assert test["bootstrap"]["n"] == 2  # both seeds paired
    text = (out / "report.md").read_text()
    assert "| credit | black-box | 2 |" in text and "Wilcoxon p" in text and "time / darts" in text
    assert report["markdown"] == text


def test_a_sampled_table_judges_every_suite_training_the_cells_it_lacks(tmp_path, capsys):
    from nasgen.nb1d import load, read_rows

    sampled = write_synthetic_nb201_table(tmp_path / "sampled", sample=40)
    table = load(sampled)
    assert not table.covers_space() and len(table.archs) == 40
    fields = dict(controllers=("random",), seeds=1, local=True, table=str(sampled), warmup_epochs=0.0, epochs=0.05,
                  supernet_channels=2, queries=3)
    alone = compare.check(CompareConfig(suites=("nb1d-table",), out=str(tmp_path / "alone"), **fields))
    assert alone.rows == {"nb1d-table": ["random", "random@epochs"]} and not alone.skipped  # none left out
    plan = compare.check(CompareConfig(suites=None, out=str(tmp_path / "plan"), **fields))
    assert plan.rows["nb1d-table"] == ["random", "random@epochs"] and plan.rows["nb1d"] == ["random"]
    assert any("trained on demand go into" in note and "nasgen bench merge" in note for note in plan.notes)
    out = tmp_path / "cmp"
    report = quiet_run(suites=("nb1d", "nb1d-table"), out=str(out), **fields)
    assert report["failed"] == 0
    rows = {(r["suite"], r["method"]): r for r in report["tasks"]}
    sample = {tuple(a) for a in table.archs.tolist()}
    row = rows[("nb1d", "random")]
    assert tuple(row["table_arch"]) not in sample and row["trained_on_demand"]
    assert math.isfinite(row["test_regret"]) and row["test_regret_se"] > 0
    for method in ("random", "random@epochs"):  # Tabular-v0 queried cells in and out of the sample
        searched = rows[("nb1d-table", method)]
        assert math.isfinite(searched["test_regret"])
        assert searched["trained_on_demand"] == (tuple(searched["table_arch"]) not in sample)
    assert rows[("nb1d-table", "random")]["queries"] == 3
    trained = {tuple(r["arch"]) for r in read_rows(out / "fill" / "rows.jsonl")}  # shared by every task
    assert tuple(row["table_arch"]) in trained and not trained & sample
    assert {tuple(rows[("nb1d-table", m)]["table_arch"]) for m in ("random", "random@epochs")} - sample <= trained
    assert "is sampled: 40 of the space's 6466" in report["markdown"]
    versus = {t["versus"] for t in report["suites"]["nb1d"]["tests"]}
    assert "random@epochs (nb1d-table)" in versus
    again = quiet_run(suites=("nb1d", "nb1d-table"), out=str(tmp_path / "cmp2"), **fields)  # the same draws
    assert {(r["suite"], r["method"]): r["table_arch"] for r in again["tasks"]} == {
        k: r["table_arch"] for k, r in rows.items()}

def test_variants_run_with_their_settings_where_they_mean_something(tmp_path, nb201_table):
    methods = ("credit", "credit[hybrid]", "credit[exact]", "credit[train]", "darts[2nd]")
    plan = compare.check(CompareConfig(controllers=methods, suites=("nb1d", "teacher"), seeds=1, local=True,
                                       table=str(nb201_table), out=str(tmp_path / "plan")))
    assert plan.rows["nb1d"] == list(methods)
    assert plan.rows["teacher"] == ["credit", "credit[hybrid]", "credit[exact]"]
    assert {(s["method"], s["suite"]) for s in plan.skipped} == {("credit[train]", "teacher"),
                                                                  ("darts[2nd]", "teacher")}
    spec = {(t.suite, t.method): t.spec["config"] for t in plan.tasks}
    assert spec[("nb1d", "credit[hybrid]")]["env_kwargs"]["credit"] == "hybrid"
    assert spec[("nb1d", "credit[train]")]["env_kwargs"]["credit_batch"] == "train"
    assert spec[("nb1d", "darts[2nd]")]["controller"] == "darts"
    assert spec[("nb1d", "darts[2nd]")]["controller_kwargs"] == {"order": 2}
    assert spec[("teacher", "credit[exact]")]["env_kwargs"] == {"n_edges": 10, "n_ops": 10, "credit": "exact"}
    assert "credit" not in spec[("nb1d", "credit")]["env_kwargs"]  # the plain method keeps the env's default
    default = compare.check(CompareConfig(suites=("teacher",), seeds=1, local=True, out=str(tmp_path / "d")))
    assert {"credit[hybrid]", "credit[exact]"} <= set(default.methods)
    report = quiet_run(controllers=("credit", "credit[exact]"), out=str(tmp_path / "cmp"), **TINY_TEACHER)
    assert report["failed"] == 0 and (tmp_path / "cmp" / "tasks").is_dir()
    assert any(n.startswith("teacher__credit-exact-") for n in os.listdir(tmp_path / "cmp" / "tasks"))
    assert "| credit[exact] | black-box | 2 |" in report["markdown"]


def test_a_stopped_comparison_reports_the_finished_tasks_and_the_rerun_runs_the_rest(tmp_path, monkeypatch):
    out = tmp_path / "cmp"
    real, calls = compare.run_task, []

    def stop_at_the_third(spec):  # Ctrl+C (or kill, through the command's handler) in the third task
        calls.append(spec["method"])
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(spec)

    monkeypatch.setattr(compare, "run_task", stop_at_the_third)
    with pytest.raises(KeyboardInterrupt):
        quiet_run(controllers=("random", "reinforce"), out=str(out), **TINY_TEACHER)
    saved = json.loads((out / "report.json").read_text())
    assert [(r["method"], r["seed"], bool(r.get("not_run"))) for r in saved["tasks"]] == [
        ("random", 0, False), ("random", 1, False), ("reinforce", 0, True), ("reinforce", 1, True)]
    summary = {e["method"]: e for e in saved["suites"]["teacher"]["summary"]}
    assert (summary["random"]["seeds"], summary["reinforce"]["seeds"], summary["reinforce"]["not_run"]) == (2, 0, 2)
    assert summary["reinforce"]["failed"] == 0 and not saved["suites"]["teacher"]["tests"]  # nothing to pair
    text = (out / "report.md").read_text()
    assert "| reinforce | black-box | 0/2 | not run yet |" in text
    assert "Not run yet (2 tasks; the comparison was stopped before them" in text and "Failed tasks" not in text
    monkeypatch.setattr(compare, "run_task", real)
    rest = quiet_run(controllers=("random", "reinforce"), out=str(out), **TINY_TEACHER)
    assert rest["failed"] == 0 and not [r for r in rest["tasks"] if r.get("not_run")]
    assert "Not run yet" not in (out / "report.md").read_text()


def test_a_rerun_skips_finished_tasks_and_a_grown_plan_runs_only_the_new_ones(tmp_path, monkeypatch):
    out = tmp_path / "cmp"
    quiet_run(controllers=("random",), out=str(out), **TINY_TEACHER)
    before = {p.name: p.stat().st_mtime_ns for p in (out / "tasks").iterdir()}
    ran = []
    real = compare.run_task
    monkeypatch.setattr(compare, "run_task", lambda spec: ran.append(spec["method"]) or real(spec))
    again = quiet_run(controllers=("random",), out=str(out), **TINY_TEACHER)
    assert ran == [] and len(again["tasks"]) == 2
    assert {p.name: p.stat().st_mtime_ns for p in (out / "tasks").iterdir()} == before
    grown = quiet_run(controllers=("random", "reinforce"), out=str(out), **TINY_TEACHER)
    assert ran == ["reinforce", "reinforce"] and len(grown["tasks"]) == 4


def test_each_task_is_fresh_and_seeded_by_its_own_seed(tmp_path):
    """The same task gives the same row alone or after others (no state carried over), and
    leaves the process's global generators as they were."""
    np.random.seed(123)
    state = np.random.get_state()[1].copy()
    both = quiet_run(controllers=("reinforce", "random"), out=str(tmp_path / "a"), **TINY_TEACHER)
    assert np.array_equal(np.random.get_state()[1], state)
    alone = quiet_run(controllers=("random",), out=str(tmp_path / "b"), **TINY_TEACHER)
    def pick(report):
        return [(r["seed"], r["derived_arch"], r["loss"]) for r in report["tasks"] if r["method"] == "random"]

    assert pick(both) == pick(alone)


def test_nb1d_and_the_table_on_a_synthetic_table(tmp_path, nb201_table):
    from nasgen.nb1d import load

    report = quiet_run(controllers=("credit", "darts", "random"), suites=("nb1d", "nb1d-table"), seeds=2, local=True,
                       out=str(tmp_path / "cmp"), table=str(nb201_table), warmup_epochs=0.0, epochs=0.05,
                       supernet_channels=2, queries=5)
    assert report["failed"] == 0
    table = load(nb201_table)
    best = table.best("test_accuracy")["value"]
    rows = report["tasks"]
    assert {(r["suite"], r["method"]) for r in rows} == {
        ("nb1d", "credit"), ("nb1d", "darts"), ("nb1d", "random"), ("nb1d-table", "random"),
        ("nb1d-table", "random@epochs")}
    se = table.standard_error("test_accuracy")
    best_row = table.row_of(table.best("test_accuracy")["arch"])
    for row in rows:
        answer = table.query(row["table_arch"])["mean"]["test_accuracy"]
        assert row["test_regret"] == pytest.approx(best - answer) and 0 < row["percentile"] <= 100
        here = table.row_of(row["table_arch"])  # the table's noise floor on this regret
        assert row["test_regret_se"] == pytest.approx(0.0 if here == best_row else np.hypot(se[here], se[best_row]))
    floor = report["suites"]["nb1d"]["summary"][0]["noise_floor"]["mean"]
    assert floor > 0 and "table SE of one regret" in report["markdown"] and f"{100 * floor:.2f}" in report["markdown"]
    supernet = [r for r in rows if r["suite"] == "nb1d"]
    assert len({round(r["total_epochs"], 9) for r in supernet}) == 1  # one budget, split per method
    assert all(r["warmup_s"] >= 0 and r["wall_time_s"] > 0 for r in supernet)
    assert all(r["queries"] == 5 for r in rows if r["suite"] == "nb1d-table" and r["method"] == "random")
    recipe_epochs = table.manifest["recipe"]["epochs"]
    for row in (r for r in rows if r["method"] == "random@epochs"):  # random search at nb1d's epochs
        assert row["total_epochs"] == pytest.approx(supernet[0]["total_epochs"])
        assert row["cells"] == row["queries"] == max(1, int(row["total_epochs"] // recipe_epochs))
    skipped = {(s["method"], s["suite"]) for s in report["skipped"]}
    assert skipped == {("credit", "nb1d-table"), ("darts", "nb1d-table")}
    versus = {t["versus"] for t in report["suites"]["nb1d"]["tests"]}
    assert versus == {"random", "darts", "random@epochs (nb1d-table)"}
    assert "Skipped (method, suite) pairs" in report["markdown"]


def test_a_failed_task_is_reported_not_kept_and_the_command_exits_1(tmp_path, monkeypatch, capsys):
    def broken(spec):
        if spec["method"] == "reinforce":
            raise RuntimeError("controller exploded\nsecond line")
        return real(spec)

    real = compare.RUNNERS["teacher"]
    monkeypatch.setitem(compare.RUNNERS, "teacher", broken)
    out = tmp_path / "cmp"
    code = main(["compare", "--local", "--controllers", "random,reinforce", "--out", str(out), *TINY_TEACHER_ARGS])
    assert code == 1
    assert sorted(p.name for p in (out / "tasks").iterdir()) == ["teacher__random__s0.json", "teacher__random__s1.json"]
    saved = json.loads((out / "report.json").read_text())
    failed = [r for r in saved["tasks"] if "error" in r]
    assert len(failed) == 2 and failed[0]["error"] == "RuntimeError: controller exploded"
    assert "Failed tasks (2" in capsys.readouterr().out


def test_the_command_line_builds_the_config(tmp_path, capsys):
    from nasgen.cli import build_parser
    from nasgen.cli.compare import cmd_compare

    args = build_parser().parse_args(["compare", "--controllers", "credit, darts", "--suite", "teacher,nb1d",
                                      "--quick", "--teacher-evaluations", "7"])
    assert args.func is cmd_compare and args.controllers == ("credit", "darts") and args.suites == ("teacher", "nb1d")
    assert args.quick is True and args.teacher_evaluations == 7 and args.seeds is None
    config = compare.resolved(CompareConfig(quick=True, seeds=3))
    assert config.seeds == 3 and config.warmup_epochs == compare.QUICK["warmup_epochs"]
    assert config.out == compare.QUICK["out"] and "benchmarks" not in config.out
    assert compare.resolved(CompareConfig()).seeds == compare.FULL["seeds"] >= 5
    out = str(tmp_path / "c")
    assert main(["compare", "--local", "--controllers", "random", "--out", out, *TINY_TEACHER_ARGS]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("compare: 2 tasks = 1 (method, suite) pairs x 2 seeds")
    assert "| random | black-box | 2 |" in printed


@pytest.mark.parametrize("argv, message", [
    (["--controllers", "credit,nosuch"], "unknown controller 'nosuch'"),
    (["--controllers", "credit,credit"], "expected distinct names"),
    (["--controllers", "credit[nosuch]"], "unknown variant 'credit[nosuch]'; choose from: credit[hybrid]"),
    (["--suite", "nosuch"], "unknown suite 'nosuch'"),
    (["--seeds", "0"], "expected an integer >= 1"),
    (["--address", "not an address"], "expected auto, HOST:PORT"),
    (["--address", "127.0.0.1:1"], "could not join the Ray cluster at 127.0.0.1:1"),
    (["--local", "--num-cpus", "2"], "do not apply with --local"),
    (["--baselines", "asng"], "--baselines: 'asng' is not a compared method"),
    (["--suite", "nb1d", "--table", "nosuch.json"], "no table file"),
    (["--suite", "nbg", "--nbg-datasets", "nosuch"], "unknown NAS-Bench-Graph dataset"),
    (["--suite", "nb1d-table", "--controllers", "darts"], "nothing to run"),
    (["--teacher-edges", "0"], "expected an integer >= 1"),
])
def test_bad_input_is_one_line_exit_2_and_creates_nothing(tmp_path, capsys, argv, message):
    if "nbg" in argv and compare.nbg_unavailable():
        message = "nas_bench_graph"
    out = tmp_path / "cmp"
    try:  # a flag's own check exits in argparse, the rest returns from main
        code = main(["compare", "--controllers", "random", "--out", str(out), *TINY_TEACHER_ARGS[:2], *argv])
    except SystemExit as exit:
        code = exit.code
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()


def test_an_out_that_is_a_file_or_of_other_settings_is_refused(tmp_path, capsys):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    assert main(["compare", "--local", "--controllers", "random", "--out", str(a_file), *TINY_TEACHER_ARGS]) == 2
    assert "is a file" in capsys.readouterr().err and a_file.read_text() == "x"
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    assert main(["compare", "--local", "--controllers", "random", "--out", str(other), *TINY_TEACHER_ARGS]) == 2
    assert "a folder of something else" in capsys.readouterr().err
    out = tmp_path / "cmp"
    quiet_run(controllers=("random",), out=str(out), **TINY_TEACHER)
    listing = sorted(p.name for p in out.rglob("*"))
    with pytest.raises(InputError, match=r"suite teacher run with other settings \(teacher_evaluations: 20 there, "
                                         r"21 here\)"):
        quiet_run(controllers=("random",), out=str(out), **{**TINY_TEACHER, "teacher_evaluations": 21})
    assert sorted(p.name for p in out.rglob("*")) == listing
    quiet_run(controllers=("random",), out=str(out), queries=7, **TINY_TEACHER)  # a setting of a suite not run


def test_names_become_safe_distinct_file_names():
    assert compare.file_safe("credit") == "credit" and compare.file_safe("random@epochs") == "random@epochs"
    plug = compare.file_safe("my_pkg.ctrl:Mine")
    assert ":" not in plug and plug.startswith("my_pkg.ctrl-Mine-")
    assert compare.file_safe("a:b") != compare.file_safe("a/b")


def test_the_interval_and_summary_statistics():
    from nasgen import stats

    low, high = stats.t_interval([1.0, 2.0, 3.0])
    assert low == pytest.approx(2 - 4.302653 / np.sqrt(3)) and high == pytest.approx(2 + 4.302653 / np.sqrt(3))
    assert all(np.isnan(stats.t_interval([1.0])))
    s = stats.summary([1.0, None, float("nan"), 3.0])
    assert s["n"] == 2 and s["mean"] == 2.0 and s["low"] < 2.0 < s["high"]
    assert stats.summary([])["n"] == 0


# --- slow: Ray, and the command killed mid-way ------------------------------------------------------------
def _command(*argv: str) -> list[str]:
    return [sys.executable, "-m", "nasgen", "compare", *argv]


def _env() -> dict:
    return {**os.environ, "PYTHONWARNINGS": "ignore", "RAY_AUTH_MODE": "disabled", "MPLBACKEND": "Agg",
            "OMP_NUM_THREADS": "1"}


@pytest.mark.slow
def test_a_tiny_comparison_on_a_local_ray_instance(tmp_path):
    pytest.importorskip("ray")
    out = tmp_path / "cmp"
    done = subprocess.run(_command("--controllers", "credit,darts,random", "--num-cpus", "2", "--out", str(out),
                                   *TINY_TEACHER_ARGS), capture_output=True, text=True, env=_env(), timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "6 to run on Ray (a local instance), one CPU each" in done.stdout
    saved = json.loads((out / "report.json").read_text())
    assert len(saved["tasks"]) == 6 and not [r for r in saved["tasks"] if "error" in r]
    assert saved["machine"]["executor"] == "ray (local)"
    assert len(list((out / "tasks").iterdir())) == 6
    # The same rows as one after the other in one process: each task is its own fresh state.
    local = quiet_run(controllers=("credit", "darts", "random"), out=str(tmp_path / "local"), **TINY_TEACHER)
    def key(row):
        return row["method"], row["seed"]

    for a, b in zip(sorted(saved["tasks"], key=key), sorted(local["tasks"], key=key)):
        assert key(a) == key(b) and a["derived_arch"] == b["derived_arch"] and a["loss"] == pytest.approx(b["loss"])


@pytest.mark.slow
def test_kill_stops_the_command_with_the_report_of_the_finished_tasks(tmp_path):
    out = tmp_path / "cmp"  # on Ray, whose start replaces the process's SIGTERM handler
    argv = ["--num-cpus", "1", "--controllers", "random,reinforce,rnn", "--suite", "teacher", "--seeds", "3",
            "--teacher-evaluations", "400", "--out", str(out)]
    proc = subprocess.Popen(_command(*argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    tasks = out / "tasks"
    deadline = time.time() + 300
    while time.time() < deadline and not (tasks.is_dir() and any(tasks.glob("*.json"))):
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "nasgen compare: interrupted" in stderr
    finished = len(list(tasks.glob("*.json")))
    assert 1 <= finished < 9, "stop the run while it still has tasks to do"
    assert f"stopped with {9 - finished} task(s) not run; the report of the {finished} finished" in stdout
    saved = json.loads((out / "report.json").read_text())
    assert sum(not r.get("not_run") for r in saved["tasks"]) == finished


@pytest.mark.slow
def test_killed_mid_way_the_rerun_redoes_only_the_unfinished_tasks(tmp_path):
    out = tmp_path / "cmp"
    argv = ["--local", "--controllers", "random,reinforce,rnn", "--suite", "teacher", "--seeds", "3",
            "--teacher-evaluations", "400", "--out", str(out)]
    proc = subprocess.Popen(_command(*argv), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env())
    tasks = out / "tasks"
    deadline = time.time() + 300
    while time.time() < deadline and not (tasks.is_dir() and any(tasks.glob("*.json"))):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    finished = {p.name: (p.stat().st_mtime_ns, p.read_text()) for p in tasks.glob("*.json")}
    assert 1 <= len(finished) < 9, "kill the run while it still has tasks to do"
    (tasks / ".random__teacher__s9.json.abc123.tmp").write_text("{")  # what a kill mid-write leaves
    done = subprocess.run(_command(*argv), capture_output=True, text=True, env=_env(), timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"{len(finished)} finished before, {9 - len(finished)} to run" in done.stdout
    for name, (mtime, text) in finished.items():  # not redone
        assert (tasks / name).stat().st_mtime_ns == mtime and (tasks / name).read_text() == text
    saved = json.loads((out / "report.json").read_text())
    assert len(saved["tasks"]) == 9 and not [r for r in saved["tasks"] if "error" in r]
    assert not list(tasks.glob(".*.tmp"))
