"""A benchmark's ``--quick`` run never writes over the shipped results in ``benchmarks/results``."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
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


def test_rejudge_puts_the_table_noise_on_published_rows(tmp_path, capsys):
    """A method that found one cell five times keeps that cell's noise whole; five cells average
    it; a difference between methods that found the same cell has none of the table's."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.path.insert(0, str(BENCHMARKS))
    from _synthetic_table import write_synthetic_nb201_table

    import rejudge
    from nasgen.nb1d import load

    path = write_synthetic_nb201_table(tmp_path / "table")
    table = load(path)
    cells = [a.tolist() for a in table.archs[:5]]
    runs = ([{"controller": "same", "seed": s, "table_arch": cells[0]} for s in range(5)]
            + [{"controller": "spread", "seed": s, "table_arch": cells[s]} for s in range(5)]
            + [{"controller": "twin", "seed": s, "table_arch": cells[0]} for s in range(5)])
    results = tmp_path / "gt.json"
    results.write_text(json.dumps({"runs": runs, "table": {"name": table.name, "sha256": table.manifest["sha256"]}}))
    rejudge.main([str(results), "--table", str(path)])
    out = capsys.readouterr().out
    se = table.standard_error("test_accuracy")
    best = float(se[table.row_of(table.best()["arch"])])
    same = math.hypot(best, se[0])
    spread = math.sqrt(best ** 2 + sum((se[k] / 5) ** 2 for k in range(5)))
    assert "| same | 5 | 1 |" in out and f"{100 * same:.2f} | - |" in out
    versus_same = math.sqrt(sum((se[k] / 5) ** 2 for k in range(1, 5)) + (0.8 * se[0]) ** 2)  # cell 0: 1 - 1/5
    assert f"{100 * spread:.2f} | {100 * versus_same:.2f} |" in out
    assert "| twin | 5 | 1 |" in out and out.rstrip().endswith("| 0.00 | +0.00 [+0.00, +0.00] |")
    differences = [table.best()["value"] - table.query(cells[k])["mean"]["test_accuracy"] for k in range(5)]
    mean = np.mean(differences) - differences[0]  # spread against same, paired by seed
    assert f"| {100 * mean:+.2f} [" in out.splitlines()[[i for i, line in enumerate(out.splitlines())
                                                         if line.startswith("| spread |")][0]]
    results.write_text(json.dumps({"runs": runs, "table": {"name": table.name, "sha256": "0" * 64}}))
    with pytest.raises(SystemExit) as exit_:
        rejudge.main([str(results), "--table", str(path)])
    assert exit_.value.code == 2 and "was judged by a table of SHA-256 000" in capsys.readouterr().err


def test_rejudge_keeps_the_recorded_accuracy_of_a_cell_a_sampled_table_lacks(tmp_path, capsys):
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.path.insert(0, str(BENCHMARKS))
    from _synthetic_table import write_synthetic_nb201_table

    import rejudge
    from nasgen.nb1d import all_distinct, load
    from nasgen.searchspace import get

    table = load(write_synthetic_nb201_table(tmp_path / "table", sample=200))
    inside = table.archs[0].tolist()
    outside = next(a for a in all_distinct(get("nb201")).tolist() if a not in table.archs.tolist())
    tasks = [{"suite": "nb1d", "method": "m", "seed": s, "table_arch": arch, "test_accuracy": 0.55}
             for s, arch in enumerate([inside, outside])]
    results = tmp_path / "report.json"
    results.write_text(json.dumps({"tasks": tasks, "table_sha256": table.manifest["sha256"]}))
    rejudge.main([str(results), "--table", str(tmp_path / "table" / "synthetic.json")])
    out = capsys.readouterr().out
    best, best_se = table.best()["value"], table.standard_error("test_accuracy")[table.row_of(table.best()["arch"])]
    regret = (best - table.query(inside)["mean"]["test_accuracy"] + best - 0.55) / 2
    outside_se = table.noise_sd(0.55) / math.sqrt(2)
    one = (math.hypot(table.standard_error("test_accuracy")[0], best_se) + math.hypot(outside_se, best_se)) / 2
    assert f"| m (nb1d) | 2 | 2 | {100 * regret:.2f} | {100 * one:.2f} |" in out
    tasks[1]["test_accuracy"] = None  # nothing to judge the lacking cell by: refused in one line
    results.write_text(json.dumps({"tasks": tasks, "table_sha256": table.manifest["sha256"]}))
    with pytest.raises(SystemExit) as exit_:
        rejudge.main([str(results), "--table", str(tmp_path / "table" / "synthetic.json")])
    assert exit_.value.code == 2 and "error:" in capsys.readouterr().err


def test_rejudge_with_a_later_table_of_the_same_build(tmp_path, capsys):
    """Rows judged by a sampled table rejudge with a later table of its build (the finished
    one here); a table of another recipe is refused in one line."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.path.insert(0, str(BENCHMARKS))
    from _synthetic_table import write_synthetic_nb201_table

    import rejudge
    from nasgen.nb1d import load

    sample_path = write_synthetic_nb201_table(tmp_path / "sample", sample=200)
    sample = load(sample_path)
    tasks = [{"suite": "nb1d", "method": "m", "seed": s, "table_arch": sample.archs[s].tolist(),
              "test_accuracy": 0.6} for s in range(3)]
    results = tmp_path / "report.json"
    results.write_text(json.dumps({"tasks": tasks, "table_sha256": sample.manifest["sha256"],
                                   "settings": {"table": str(sample_path)}}))
    full_path = write_synthetic_nb201_table(tmp_path / "full")
    full = load(full_path)
    rejudge.main([str(results), "--table", str(full_path)])
    out = capsys.readouterr().out
    assert f"{results}: a later table of the build that judged it ({sample.manifest['sha256'][:12]}...)" in out

    def regret(archs):
        return np.mean([full.best()["value"] - full.query(a)["mean"]["test_accuracy"] for a in archs])

    assert f"| m (nb1d) | 3 | 3 | {100 * regret(sample.archs[:3]):.2f} |" in out
    rerun = tmp_path / "rerun.json"  # m's suite rerun in another comparison, judged by the full table
    rerun.write_text(json.dumps({"tasks": [{**t, "table_arch": sample.archs[3 + t["seed"]].tolist()} for t in tasks],
                                 "table_sha256": full.manifest["sha256"], "settings": {"table": str(full_path)}}))
    results.write_text(json.dumps({"tasks": tasks + [{**t, "method": "n"} for t in tasks],
                                   "table_sha256": sample.manifest["sha256"], "settings": {"table": str(sample_path)}}))
    rejudge.main([str(results), str(rerun), "--table", str(full_path), "--versus", "n (nb1d)"])
    out = capsys.readouterr().out
    assert f"| m (nb1d) | 3 | 3 | {100 * regret(sample.archs[3:6]):.2f} |" in out  # the rerun's rows replace m's
    assert f"| n (nb1d) | 3 | 3 | {100 * regret(sample.archs[:3]):.2f} |" in out and f"{rerun}:" not in out
    manifest = json.loads(full_path.read_text())
    manifest["recipe"]["lr"] = 0.05  # the same cells trained another way: not the same build
    other = tmp_path / "full" / "other.json"
    other.write_text(json.dumps(manifest))
    shutil.copy(full_path.with_suffix(".npz"), other.with_suffix(".npz"))
    with pytest.raises(SystemExit) as exit_:
        rejudge.main([str(results), "--table", str(other)])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "is a table of another recipe, not a later snapshot of the same build" in err


def test_nb1d_v2_status_reads_a_build_folder_as_it_stands(tmp_path, capsys):
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.path.insert(0, str(BENCHMARKS))
    from _synthetic_table import write_synthetic_nb201_table

    import nb1d_v2_status

    write_synthetic_nb201_table(tmp_path / "build", sample=200)
    rows = (tmp_path / "build" / "rows.jsonl").read_text().splitlines(keepends=True)
    del rows[2 * 150 + 1]  # cell 150 (in the build's order) lacks seed 1: the later cells are no random sample
    (tmp_path / "build" / "rows.jsonl").write_text("".join(rows) + '{"arch": [0, 1')  # a build writing its next row
    nb1d_v2_status.main(["--build", str(tmp_path / "build"), "--out", str(tmp_path / "s.json")])
    out = capsys.readouterr().out
    saved = json.loads((tmp_path / "s.json").read_text())
    assert saved["rows"] == 399 and saved["paired_cells"] == 150 and "150 in the random sample with both seeds" in out
    for key in ("by_seed_0", "by_seed_1", "by_v1"):
        g = saved["good_half"][key]
        assert 65 <= g["cells"] <= 85 and -1 <= g["spearman"] <= 1
        assert g["spearman_ci"][0] <= g["spearman"] <= g["spearman_ci"][1]
    # the synthetic cells differ by far more than their 0.01 seed noise: the seeds agree
    assert saved["good_half"]["by_seed_0"]["reliability"] > 0.8 and saved["spread"] > 0.05
    assert saved["noise_sd_highest_decile"] == pytest.approx(0.01, rel=0.5)
    assert (tmp_path / "s.md").read_text().startswith("399 rows of")
    assert saved["good_seeds"] is None and "Good cells" not in out


def test_nb1d_v2_status_measures_the_good_half_on_the_good_cells_seeds(tmp_path, capsys):
    """A build with good seeds: the sample stops at the first cell that lacks one of its
    planned seeds, good or not, and the good cells' seeds give the target's reliability."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.path.insert(0, str(BENCHMARKS))
    from _synthetic_table import write_synthetic_nb201_table

    import nb1d_v2_status

    write_synthetic_nb201_table(tmp_path / "build", sample=200, good_seeds=[0, 1, 2, 3], good_above=0.62)
    rows = [json.loads(line) for line in (tmp_path / "build" / "rows.jsonl").read_text().splitlines()]
    cells = list(dict.fromkeys(tuple(r["arch"]) for r in rows))
    good = [c for c in cells if any(tuple(r["arch"]) == c and r["seed"] == 3 for r in rows)]
    assert 40 <= len(good) <= 160
    cut = good[len(good) // 2]  # a good cell lacks its seed 3: the random sample ends before it
    kept = [r for r in rows if not (tuple(r["arch"]) == cut and r["seed"] == 3)]
    (tmp_path / "build" / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in kept))
    nb1d_v2_status.main(["--build", str(tmp_path / "build"), "--out", str(tmp_path / "s.json")])
    out = capsys.readouterr().out
    saved = json.loads((tmp_path / "s.json").read_text())
    settings = json.loads((tmp_path / "build" / "build.json").read_text())
    order = nb1d_v2_status.subset_cells(settings)
    sample = order[:order.index(cut)]
    g = saved["good_seeds"]
    assert saved["paired_cells"] == len(sample) and g["cells"] == len(set(sample) & set(good)) > 10
    assert g["unselected_seeds"] == [1, 2, 3] and g["halves"] == [[0, 1], [2, 3]]
    assert g["share"] == pytest.approx(g["cells"] / len(sample))
    # the synthetic cells differ by far more than their 0.01 seed noise: the seeds agree
    assert g["reliability"] > 0.8 and g["reliability"] == pytest.approx(g["by_seeds"]["4"])
    assert g["by_seeds"]["1"] == pytest.approx(g["spearman"]) and "Good cells (seed 0 above 62.00 %" in out
    assert saved["planned_trainings"] == pytest.approx(200 * 2 + 200 * g["share"] * 2)
    assert saved["subset_cells"] == 200 and saved["subset_left"] == 1  # the cut cell's seed 3


def test_train_judged_cells_gives_each_judged_cell_its_planned_seeds(tmp_path, capsys):
    from nasgen.nb1d import Recipe, build, plan_archs, read_rows
    from nasgen.searchspace import get

    space = get("nb201")
    recipe = Recipe(train_size=64, val_size=64, test_size=64, epochs=1, batch_size=32, C=2)
    probe = build(space, "mnist1d", [0], recipe, tmp_path / "probe", limit_archs=6, local=True, progress=False)
    first = {tuple(r["arch"]): r["test_accuracy"][-1] for r in probe}
    above = (min(first.values()) + max(first.values())) / 2
    main_dir = tmp_path / "build"
    build(space, "mnist1d", [0, 1], recipe, main_dir, limit_archs=6, reliability_archs=2, good_seeds=[0, 1, 2],
          good_above=above, local=True, progress=False, stop_after=2)  # the first cell's seeds 0 and 1 only
    before: dict[tuple, set] = {}
    for r in read_rows(main_dir / "rows.jsonl"):
        before.setdefault(tuple(r["arch"]), set()).add(r["seed"])
    judged = [a.tolist() for a in plan_archs(space, 6)[3:6]]
    tasks = [{"suite": "nb1d", "method": "m", "seed": s, "table_arch": a, "policy_arch": None}
             for s, a in enumerate(judged)]
    report = tmp_path / "report.json"
    report.write_text(json.dumps({"tasks": tasks}))
    sys.path.insert(0, str(BENCHMARKS))
    import train_judged_cells

    train_judged_cells.main([str(report), "--build", str(main_dir), "--work", str(tmp_path / "work"), "--local",
                             "--merge"])
    assert "3 judged cells" in capsys.readouterr().out
    seeds: dict[tuple, set] = {}
    for r in read_rows(main_dir / "rows.jsonl"):
        seeds.setdefault(tuple(r["arch"]), set()).add(r["seed"])
    for cell in map(tuple, judged):  # seed 0, and the good seeds on a good cell: the build's plan for it
        assert seeds[cell] == before.get(cell, set()) | ({0, 1, 2} if first[cell] > above else {0}), cell
    assert any(first[c] > above for c in map(tuple, judged)) and any(first[c] <= above for c in map(tuple, judged))
