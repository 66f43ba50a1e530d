"""Smoke runs of the benchmark scripts (``--quick``), kept out of the default run.

Run with ``pytest -m slow tests/test_benchmarks.py`` (several minutes on 2 CPU cores). Each
script runs in its own process, exactly as documented, and writes to a temporary folder;
the checks are on the structure and sanity of its JSON output, never on absolute timings.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "benchmarks"
pytestmark = pytest.mark.slow


def run_script(name: str, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "MPLBACKEND": "Agg"}
    proc = subprocess.run([sys.executable, str(BENCHMARKS / name), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{name} exited {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def outputs(out: Path) -> dict:
    for path in (out, out.with_suffix(".md"), out.with_suffix(".png")):
        assert path.is_file() and path.stat().st_size > 0, f"missing {path}"
    data = json.loads(out.read_text())
    machine = data["machine"]
    assert machine["logical_cores"] >= 1 and len(machine["load_average_start"]) == 3
    assert machine["runtime_s"] > 0
    assert out.with_suffix(".md").read_text().count("|") > 10
    return data


def test_search_cost_quick(tmp_path):
    out = tmp_path / "search_cost.json"
    proc = run_script("search_cost.py", "--quick", "--out", str(out))
    assert "search time / darts" in proc.stdout and "protocol paper" in proc.stdout
    assert "Digits cannot rank controllers" in proc.stdout and "95% CI of the mean %" in proc.stdout
    data = outputs(out)
    labels = [s["controller"] for s in data["summary"]]
    assert labels == ["credit", "credit[hybrid]", "darts", "snas", "gdas", "proxyless", "rnn", "reinforce",
                      "asng", "ga", "random"]
    assert len(data["warmup_s"]) == data["config"]["seeds"] == 1
    ok = [r for r in data["runs"] if "error" not in r]
    assert {r["controller"] for r in ok} >= {"credit", "credit[hybrid]", "darts", "snas", "gdas", "proxyless", "random"}
    for run in ok:
        assert run["wall_time_s"] > 0 and run["evaluations"] >= run["steps"] >= 1
        assert 0.0 <= run["test_accuracy"] <= 1.0 and run["parameters"] > 0
        assert math.isfinite(run["supernet_val_loss"]) and run["time_ratio"] > 0
        # Each derived cell retrained under two seeds (--quick), its mean and interval reported.
        assert len(run["test_accuracies"]) == 2 and run["test_accuracy"] == pytest.approx(np.mean(run["test_accuracies"]))
        assert math.isfinite(run["test_ci95"]) and run["test_ci95"] >= 0
    darts = next(r for r in ok if r["controller"] == "darts")
    assert darts["time_ratio"] == pytest.approx(1.0)
    # The same supernet training for every controller (--protocol paper, the default), split
    # per method: DARTS none of it in warm-up, credit and the black boxes 50/90 of it.
    budget = {r["weight_steps"] for r in ok if r["controller"] != "asng"}
    assert len(budget) == 1 and 0 <= next(r for r in ok if r["controller"] == "asng")["weight_steps"] - min(budget) < 2
    plans = {r["controller"]: r["protocol_plan"] for r in ok}
    assert plans["darts"]["warmup_steps"] == 0 and plans["darts"]["search_weight_steps"] == min(budget)
    assert plans["credit"]["warmup_steps"] == plans["random"]["warmup_steps"] == round(50 / 90 * min(budget))
    steps = {r["controller"]: r["steps"] for r in ok}
    assert steps["darts"] == min(budget) > steps["credit"] == steps["random"]
    hybrid = next(r for r in ok if r["controller"] == "credit[hybrid]")
    assert hybrid["evaluations"] > steps["credit"]  # its exact ablations are counted
    # Forward passes count alike: a reward pass and the env's weight-training pass per credit
    # step, a weight pass and an alpha pass per first-order DARTS step.
    passes = {r["controller"]: r["forward_passes"] for r in ok}
    assert passes["credit"] == 2 * steps["credit"] and passes["darts"] == 2 * steps["darts"]
    assert passes["credit[hybrid]"] == hybrid["evaluations"] + steps["credit"]


def test_credit_batch_quick(tmp_path):
    out = tmp_path / "credit_batch.json"
    run_script("credit_batch.py", "--quick", "--out", str(out))
    assert out.is_file() and out.with_suffix(".md").is_file()
    data = json.loads(out.read_text())
    runs = {r["credit_batch"]: r for r in data["runs"]}
    assert runs["val"]["forward_passes"] == 2 * runs["train"]["forward_passes"] == 2 * runs["train"]["steps"]
    assert data["median_ratio"] > 0 and all(r["steps_per_s"] > 0 for r in data["runs"])


def test_teacher_toy_quick(tmp_path):
    out = tmp_path / "teacher_toy.json"
    run_script("teacher_toy.py", "--quick", "--out", str(out))
    data = outputs(out)
    summary = {s["controller"]: s for s in data["summary"]}
    assert {"credit", "darts", "snas", "gdas", "proxyless", "reinforce", "asng", "ga", "random"} <= set(summary)
    steps = data["config"]["steps"]
    for label, s in summary.items():
        if not s["trials"]:
            continue
        assert s["trials"] == data["config"]["seeds"]
        curve = s["curve_by_step"]
        assert curve["step"][-1] == steps and len(curve["median"]) == len(curve["step"])
        assert all(v >= 0 for v in curve["median"])  # MSE to the teacher
        assert all(q1 <= m <= q3 for q1, m, q3 in zip(curve["q1"], curve["median"], curve["q3"]))
        assert len(s["curve_by_time"]["median"]) >= 1
    # Honest counting: exact credit pays 1 + edges forward passes per iteration.
    if summary.get("credit[exact]", {}).get("trials"):
        assert summary["credit[exact]"]["evaluations"]["median"] == steps * (1 + data["config"]["edges"])
    assert summary["asng"]["evaluations"]["median"] == 2 * steps


def test_nas_bench_graph_quick(tmp_path):
    pytest.importorskip("nas_bench_graph")
    out = tmp_path / "nas_bench_graph.json"
    run_script("nas_bench_graph_truth.py", "--quick", "--out", str(out))
    data = outputs(out)
    assert len(data["budgets"]) == 9
    assert "credit" not in {r["controller"] for r in data["runs"]}
    ok = [r for r in data["runs"] if "error" not in r]
    assert ok
    for run in ok:
        assert run["test_regret"] >= 0 and run["valid_regret"] >= 0
        assert data["budgets"][run["dataset"]] <= run["queries"] <= data["budgets"][run["dataset"]] + 1
    for label, by_dataset in data["summary"]["cells"].items():
        for dataset, cell in by_dataset.items():
            assert cell["test_regret"]["n"] + cell["failed"] == data["config"]["seeds"]


def test_cost_scaling_quick(tmp_path):
    out = tmp_path / "cost_scaling.json"
    run_script("cost_scaling.py", "--quick", "--out", str(out))
    rows = json.loads(out.read_text())["rows"]
    assert [r["ops"] for r in rows] == [4, 8, 16]
    assert all(r["fixed_path_s"] > 0 and r["mixed_s"] > 0 for r in rows)
    rows_1d = json.loads(out.with_name("cost_scaling_1d.json").read_text())["rows"]
    assert [r["case"] for r in rows_1d] == ["nb201 supernet", "nb201 cell", "small cell"]
    assert all(value > 0 for r in rows_1d for key, value in r.items() if key.endswith("_s"))


def test_env_overhead_quick():
    proc = run_script("env_overhead.py", "--quick")
    assert "reward only" in proc.stdout and "full step" in proc.stdout


def test_teacher_recovery_quick(tmp_path):
    out = tmp_path / "teacher_recovery.json"
    proc = run_script("teacher_recovery.py", "--quick", "--out", str(out))
    assert "median evaluations" in proc.stdout and out.with_suffix(".md").is_file()
    rows = {r["controller"]: r for r in json.loads(out.read_text())["rows"]}
    assert {"credit", "credit[exact]", "credit[hybrid]", "random"} <= set(rows)
    assert rows["credit"]["recovered"] == rows["credit"]["seeds"] == 3
    assert rows["random"]["recovered"] == 0  # 10^10 architectures: chance cannot hit it in 3,000
    # Exact credit pays 1 + 10 forward passes per sample, so its counts are multiples of 11.
    assert all(r["evaluations"] % 11 == 0 for r in rows["credit[exact]"]["runs"] if r["evaluations"] is not None)


def test_teacher_recovery_takes_hyper_parameters_in_the_label(tmp_path):
    out = tmp_path / "rnn.json"
    proc = run_script("teacher_recovery.py", "--controllers", "rnn,rnn{entropy_weight=0.0;baseline_decay=0.99}",
                      "--seeds", "1", "--cap", "40", "--edges", "3", "--ops", "3", "--out", str(out))
    rows = json.loads(out.read_text())["rows"]
    assert [r["controller"] for r in rows] == ["rnn", "rnn{entropy_weight=0.0;baseline_decay=0.99}"]
    assert "rnn{entropy_weight=0.0;baseline_decay=0.99}" in proc.stdout
    for bad, named in [("rnn{baseline_decay=1.5}", "baseline_decay"), ("rnn{lr=fast}", "'fast'"),
                       ("rnn{no_such=1}", "no_such"), ("rnn{lr=0.1", "bad label"), ("nosuch", "unknown controller")]:
        proc = subprocess.run([sys.executable, str(BENCHMARKS / "teacher_recovery.py"), "--controllers", bad,
                               "--seeds", "1", "--cap", "10"], cwd=ROOT, capture_output=True, text=True)
        assert proc.returncode == 1 and named in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1


def test_ground_truth_quick(tmp_path):
    """The harness against a complete nb201 table with synthetic rows (a real one takes hours)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _synthetic_table import write_synthetic_nb201_table

    from nasgen.nb1d import load

    table = write_synthetic_nb201_table(tmp_path / "table")
    out = tmp_path / "ground_truth.json"
    proc = run_script("ground_truth.py", "--quick", "--table", str(table), "--out", str(out))
    assert "every method gets the same" in proc.stdout and "target [credit] regret <= darts: " in proc.stdout
    data = outputs(out)
    labels = [s["controller"] for s in data["summary"]]
    assert labels[:4] == ["credit", "credit[hybrid]", "credit[exact]", "credit[train]"] and "darts[2nd]" in labels
    assert labels[-1] == "random search" and "reinforce (table)" in labels
    judge = load(table)
    ok = [r for r in data["runs"] if "error" not in r]
    assert {r["controller"] for r in ok} >= {"credit", "darts", "random search", "random (table)"}
    for run in ok:
        answer = judge.query(run["derived_arch"])["mean"]["test_accuracy"]
        assert run["test_accuracy"] == pytest.approx(answer)
        assert run["test_regret"] == pytest.approx(judge.best()["value"] - answer) and run["test_regret"] >= 0
        assert 0 < run["percentile"] <= 100
    supernet = [r for r in ok if r["family"] == "supernet"]
    assert len({round(r["total_epochs"], 6) for r in supernet}) == 1  # one budget for every method
    assert next(r for r in ok if r["controller"] == "darts")["time_ratio"] == pytest.approx(1.0)
    assert all(r["queries"] == data["config"]["queries"] for r in ok if r["controller"] == "random (table)")
    assert {c["target"] for c in data["targets"] if c["method"] == "credit"} == {
        "regret <= darts", "regret <= 0.5 x random search", "time <= 0.3 x darts"}
    assert all(c["status"] in ("met", "not met") for c in data["targets"])
    assert {t["versus"] for t in data["significance"] if t["method"] == "credit"} >= {"darts", "random search"}


def test_ground_truth_quick_on_nb201_nozero_judges_the_table_rows_in_the_table_space(tmp_path):
    """On nb201-nozero the black boxes and random search still draw from the table's own space
    (with the zero op): their cells are judged as encodings of that space, not of nozero's."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _synthetic_table import write_synthetic_nb201_table

    table = write_synthetic_nb201_table(tmp_path / "table")
    out = tmp_path / "ground_truth.json"
    run_script("ground_truth.py", "--quick", "--table", str(table), "--out", str(out), "--space", "nb201-nozero",
               "--controllers", "credit", "--tabular-controllers", "random")
    runs = json.loads(out.read_text())["runs"]
    assert {r["controller"] for r in runs} == {"credit", "random (table)", "random search"}
    assert not [r["error"] for r in runs if "error" in r]
    assert all(0 not in r["table_arch"] for r in runs if r["controller"] == "credit")


def test_ground_truth_quick_on_a_sampled_table(tmp_path):
    """A real partial table (6 cells trained here): --fill trains the cells it lacks, for the
    supernet methods' verdicts and for the black boxes' queries of Tabular-v0."""
    from nasgen.nb1d import Recipe, build, pack
    from nasgen.searchspace import get

    recipe = Recipe(train_size=64, val_size=64, test_size=64, epochs=1, batch_size=32, C=2)
    build(get("nb201"), "mnist1d", [0, 1], recipe, tmp_path / "b", local=True, progress=False, limit_archs=6)
    table = pack(tmp_path / "b", "sample")
    out, fill = tmp_path / "ground_truth.json", tmp_path / "fill"
    proc = run_script("ground_truth.py", "--quick", "--table", str(table), "--fill", str(fill),
                      "--controllers", "credit,darts", "--tabular-controllers", "random", "--out", str(out))
    assert "a sampled table: 6 of the space's distinct cells" in proc.stdout
    data = outputs(out)
    assert [s["controller"] for s in data["summary"]] == ["credit", "darts", "random (table)", "random search"]
    ok = [r for r in data["runs"] if "error" not in r]
    assert {r["controller"] for r in ok} == {"credit", "darts", "random (table)", "random search"}
    filled = [json.loads(line) for line in (fill / "rows.jsonl").read_text().splitlines()]
    on_demand = [r for r in ok if r["trained_on_demand"]]
    assert on_demand and len(filled) >= 2 * len({tuple(r["table_arch"]) for r in on_demand})
    for run in ok:
        assert 0 <= run["percentile"] <= 100 and math.isfinite(run["test_regret"])
    # The same runs judged again by a larger sample (10 cells): no search, the fill file reused.
    build(get("nb201"), "mnist1d", [0, 1], recipe, tmp_path / "c", local=True, progress=False, limit_archs=10)
    bigger = pack(tmp_path / "c", "bigger")
    again = tmp_path / "again.json"
    proc = run_script("ground_truth.py", "--rejudge", str(out), "--table", str(bigger), "--fill", str(fill),
                      "--out", str(again))
    assert "judged again by table bigger" in proc.stdout
    redone = outputs(again)
    assert redone["table"]["n_archs"] == 10 and len(redone["runs"]) == len(data["runs"])
    for old, new in zip(data["runs"], redone["runs"]):
        assert new.get("derived_arch") == old.get("derived_arch") and new.get("wall_time_s") == old.get("wall_time_s")
    # Two invocations' JSONs merge into one report: credit from one file, the rest from the other
    # (which also holds a credit run of seed 0 that must lose to the first file's).
    first, second = tmp_path / "first.json", tmp_path / "second.json"
    first.write_text(json.dumps({**data, "runs": [r for r in data["runs"] if r["controller"] == "credit"],
                                 "labels": ["credit"]}))
    impostor = {**next(r for r in data["runs"] if r["controller"] == "credit"), "derived_arch": [0] * 6}
    second.write_text(json.dumps({**data, "runs": [r for r in data["runs"] if r["controller"] != "credit"] + [impostor],
                                  "labels": ["darts", "random (table)", "random search"]}))
    merged = tmp_path / "merged.json"
    run_script("ground_truth.py", "--rejudge", str(first), str(second), "--table", str(bigger), "--fill", str(fill),
               "--out", str(merged))
    joined = outputs(merged)
    assert [s["controller"] for s in joined["summary"]] == ["credit", "darts", "random (table)", "random search"]
    key = lambda r: (r["controller"], r["seed"])
    assert sorted(map(key, joined["runs"])) == sorted(map(key, redone["runs"]))
    for a, b in zip(sorted(joined["runs"], key=key), sorted(redone["runs"], key=key)):
        assert a.get("derived_arch") == b.get("derived_arch") and a.get("test_regret") == b.get("test_regret")
    other = tmp_path / "other.json"
    other.write_text(json.dumps({**data, "config": {**data["config"], "epochs": data["config"]["epochs"] + 1}}))
    env = {**os.environ, "MPLBACKEND": "Agg"}
    proc = subprocess.run([sys.executable, str(BENCHMARKS / "ground_truth.py"), "--rejudge", str(first), str(other),
                           "--table", str(bigger), "--out", str(tmp_path / "x.json")],
                          capture_output=True, text=True, env=env, cwd=BENCHMARKS.parent)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "epochs is" in proc.stderr and "only runs of the same settings merge" in proc.stderr


def test_ground_truth_without_a_table_fails_in_one_line(tmp_path):
    env = {**os.environ, "MPLBACKEND": "Agg"}
    proc = subprocess.run([sys.executable, str(BENCHMARKS / "ground_truth.py"), "--quick", "--table",
                           str(tmp_path / "missing.json"), "--out", str(tmp_path / "x.json")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0
    assert "no table" in proc.stderr and not (tmp_path / "x.json").exists()


def test_credit_theta_and_credit_runs_quick(tmp_path):
    """credit_theta.py prints one row per setting; credit_runs.py summarises a real run."""
    proc = run_script("credit_theta.py", "--seeds", "1", "--steps", "30", "--edges", "4", "--ops", "3",
                      "--settings", "0,3")
    rows = [line for line in proc.stdout.splitlines() if line.startswith("| lr") or line.startswith("| authors")]
    assert len(rows) == 2 and all(line.count("|") == 6 for line in rows)
    logdir = tmp_path / "runs"
    search = subprocess.run([sys.executable, "-m", "nasgen", "search", "--space", "small", "--dataset",
                             "digits", "--steps", "4", "--no-progress", "--logdir", str(logdir),
                             "--env-kwargs", "C=4", "n_cells=3", "limit=64",
                             "batch_size=16", "credit_check_every=2", "--warmup-epochs", "0"],
                            cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert search.returncode == 0, search.stderr[-2000:]
    proc = run_script("credit_runs.py", *map(str, logdir.iterdir()))
    row = proc.stdout.strip().splitlines()[-1]
    assert row.startswith("| defaults | 0 | 4 |") and row.count("|") == 15


def test_stacked_training_quick(tmp_path):
    out = tmp_path / "stacked_training.json"
    proc = run_script("stacked_training.py", "--quick", "--out", str(out))
    assert "ms per architecture-step" in proc.stdout
    rows = json.loads(out.read_text())["rows"]
    assert [r["k"] for r in rows] == [0, 1, 2] and rows[1]["vs_k1"] == 1.0
    assert all(r["per_arch_s"] > 0 for r in rows)


def test_recipe_pilots_quick(tmp_path):
    """Two tiny recipes, each on good-half cells x 2 seeds and random cells x 1 seed: the
    figures, rate, projection and verdicts per recipe; a second run resumes the builds, and
    --report tables every pilot in --work without training."""
    out, work = tmp_path / "recipe_pilots.json", tmp_path / "work"
    proc = run_script("recipe_pilots.py", "--quick", "--out", str(out), "--work", str(work))
    assert "projected build" in proc.stdout
    rows = json.loads(out.read_text())["rows"]
    assert [r["recipe"] for r in rows] == ["base", "e2"]
    assert [r["changes"]["epochs"] for r in rows] == [1, 2] and all(r["rows"] == 22 and not r["errors"] for r in rows)
    assert rows[1]["changes"]["data_options"] == {"iid_noise_scale": 0.04, "corr_noise_scale": 0.5}
    from nasgen.nb1d import load

    table = load("nb201-mnist1d")
    median = np.median(table.mean("test_accuracy"))
    good = load(work / "base" / "good-half" / "base-good-half.json")
    assert all(table.query(a)["mean"]["test_accuracy"] > median for a in good.archs)
    for r in rows:
        f = r["figures"]
        assert f["n_good"] == 6 and f["n_random"] == 10 and 0 < f["p10"] <= f["median"] <= f["p90"] <= 1
        assert -1 <= f["spearman_top_half"] <= 1 and r["s_per_training"] > 0 and r["devices"] == ["cpu"]
        assert set(r["targets"]) == {"reliability_top_half", "spread"}
    rows_file = work / "base" / "good-half" / "rows.jsonl"
    before = rows_file.read_text()
    run_script("recipe_pilots.py", "--quick", "--out", str(out), "--work", str(work))
    assert rows_file.read_text() == before
    tables = {p: p.read_bytes() for p in work.glob("*/*/*-*.*") if p.suffix in (".json", ".npz")}
    assert len(tables) == 8  # 2 recipes x 2 parts x (manifest, arrays)
    run_script("recipe_pilots.py", "--quick", "--report", "--out", str(tmp_path / "report.json"), "--work", str(work))
    assert [r["recipe"] for r in json.loads((tmp_path / "report.json").read_text())["rows"]] == ["base", "e2"]
    assert all(p.read_bytes() == data for p, data in tables.items())  # a report repacks nothing unchanged


@pytest.mark.parametrize("args,message", [
    (["--recipe", "noname"], "expected NAME:KEY=VALUE"),
    (["--recipe", "a:epochs=0"], "Recipe.epochs must be an int >= 1, got 0"),
    (["--recipe", "a:colour=red"], "unknown recipe field 'colour'"),
    (["--recipe", "a:", "a:epochs=2"], "names must differ"),
    (["--archs", "2"], "--archs must be >= 4"),
    (["--recipe", "a:noise=-1"], "noise must be a number in (0, 100]"),
    (["--device", "tpu"], "tpu"),
])
def test_recipe_pilots_refuses_bad_input_in_one_line(tmp_path, args, message):
    proc = subprocess.run([sys.executable, str(BENCHMARKS / "recipe_pilots.py"), *args, "--work", str(tmp_path / "w"),
                           "--out", str(tmp_path / "o.json")], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "w").exists()
