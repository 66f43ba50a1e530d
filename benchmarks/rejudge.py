"""Rejudge published rows with a table's noise floor: each method's mean test regret and the
standard error the table's own seed noise puts on it.

Reads the raw JSON of ``benchmarks/ground_truth.py`` (its ``runs``) or of ``nasgen compare``
(``report.json``'s ``tasks``), looks every row's ``table_arch`` up again in the table, and
prints per method: seeds, mean test regret, the mean standard error of one judged regret
(``Judge.judge``'s ``test_regret_se``), the table's standard error of the mean regret, and
of its difference to one method (``--versus``).
The latter counts a cell found on several seeds once (its noise is one draw, shared) and the
table's best once: ``sqrt(se_best**2 + sum_c (n_c / n)**2 * se_c**2)`` over the distinct cells
``c`` found ``n_c`` times in ``n`` seeds; in a difference the best cancels and a cell both
methods found counts by the difference of its weights. Nothing is trained. Rows judged by
another table (by its checksum, where the file records one) are refused, unless ``--table``
is a table of the same build as that one (same space, dataset and recipe: a later, larger
snapshot of a sampled table, or the finished table), which judges the same cells with more
cells and seeds around them. A cell a sampled table lacks (trained on
demand when the row was judged) keeps the row's recorded test accuracy, with the table's
noise floor at that accuracy.

Usage::

    python benchmarks/rejudge.py benchmarks/results/ground_truth_tablefix.json
    python benchmarks/rejudge.py runs/compare/report.json --table PATH/NAME.json
    python benchmarks/rejudge.py runs/compare/report.json --table LATER_SNAPSHOT.json   # same build, more rows
    python benchmarks/rejudge.py A/report.json B/report.json --table T.json   # B's suites rerun replace A's
"""

from __future__ import annotations

import argparse
import json
import math
from collections import Counter
from pathlib import Path
from typing import Optional

import numpy as np

import _common as C
from nasgen.nb1d import load
from nasgen import stats
from nasgen.compare import BOOTSTRAP_SEED
from nasgen.nb1d.judge import Judge


def rows_of(results: dict) -> list[tuple[str, list[int], Optional[float], Optional[int]]]:
    """``(method, table_arch, test accuracy it recorded, seed)`` of every judged row of a
    ground-truth or compare result."""
    if "runs" in results:
        return [(r["controller"], r["table_arch"], r.get("test_accuracy"), r.get("seed")) for r in results["runs"]
                if r.get("table_arch") is not None]
    if "tasks" in results:
        return [(f"{r['method']} ({r['suite']})", r["table_arch"], r.get("test_accuracy"), r.get("seed"))
                for r in results["tasks"] if r.get("table_arch") is not None]
    raise ValueError("expected the JSON of benchmarks/ground_truth.py (runs) or nasgen compare (tasks)")


def verdict(judge: Judge, arch: list[int], recorded: Optional[float]) -> dict:
    """The table's verdict on ``arch``; for a cell a sampled table lacks (trained on demand
    when the row was judged), the row's recorded test accuracy with the table's noise floor at
    that accuracy for a mean of the table's seeds."""
    table = judge.table
    try:
        return judge.judge(arch)
    except ValueError:
        if table.covers_space() or recorded is None or not math.isfinite(recorded):
            raise
    se = table.noise_sd(recorded, "test_accuracy") / math.sqrt(len(table.seeds))
    return {"arch": list(arch), "test_regret": judge.best_test - recorded, "test_accuracy_se": se,
            "test_regret_se": math.hypot(se, judge.best_test_se)}


def rejudge(judge: Judge, rows: list[tuple[str, list[int], Optional[float], Optional[int]]], versus: str) -> list[dict]:
    """Per method, in first-seen order: seeds, mean regret, mean SE of one regret, the table's
    SE of the mean regret, and of its difference to method ``versus`` (the best cancels there),
    and that difference over their common seeds with a bootstrap 95 % CI over seeds."""
    cell_ses: dict[tuple, float] = {}
    weights, out, by_seed = {}, [], {}
    for method in dict.fromkeys(r[0] for r in rows):
        mine = [(arch, acc, seed) for m, arch, acc, seed in rows if m == method]
        verdicts = [verdict(judge, arch, acc) for arch, acc, _ in mine]
        by_seed[method] = {seed: v["test_regret"] for (_, _, seed), v in zip(mine, verdicts) if seed is not None}
        n = len(verdicts)
        cell_ses.update({tuple(v["arch"]): float(v["test_accuracy_se"]) for v in verdicts})
        weights[method] = {c: k / n for c, k in Counter(tuple(v["arch"]) for v in verdicts).items()}
        out.append({"method": method, "seeds": n, "distinct_cells": len(weights[method]),
                    "test_regret": float(np.mean([v["test_regret"] for v in verdicts])),
                    "regret_se": float(np.mean([v["test_regret_se"] for v in verdicts]))})

    def cell_se(cell: tuple) -> float:
        return cell_ses[cell]

    for entry in out:
        mine, theirs = weights[entry["method"]], weights.get(versus, {})
        entry["mean_se"] = math.sqrt(judge.best_test_se ** 2 + sum((w * cell_se(c)) ** 2 for c, w in mine.items()))
        entry["difference_se"] = math.sqrt(sum(((mine.get(c, 0.0) - theirs.get(c, 0.0)) * cell_se(c)) ** 2
                                               for c in set(mine) | set(theirs))) if versus in weights else math.nan
        common = sorted(set(by_seed[entry["method"]]) & set(by_seed.get(versus, {})))
        entry["difference"] = stats.paired_bootstrap_ci([by_seed[entry["method"]][k] for k in common],
                                                        [by_seed[versus][k] for k in common],
                                                        np.random.default_rng(BOOTSTRAP_SEED))
    return out


def difference(ci: dict) -> str:
    """``mean [low, high]`` in pp of a ``stats.paired_bootstrap_ci`` (``-`` without two common seeds)."""
    if not math.isfinite(ci["low"]):
        return "-"
    return f"{100 * ci['mean']:+.2f} [{100 * ci['low']:+.2f}, {100 * ci['high']:+.2f}]"


def same_build(judged_by: str, recorded: str, table, results: str) -> None:
    """Refuse (one line) to rejudge rows judged by table ``judged_by`` (a name or path; SHA-256
    ``recorded``) with ``table`` unless both are tables of one build: the same space, dataset
    and recipe (the judging table must still load, with that checksum, to tell)."""
    try:
        judged_by = load(judged_by)
    except ValueError:
        judged_by = None
    if judged_by is None or judged_by.manifest["sha256"] != recorded:
        raise ValueError(f"{results} was judged by a table of SHA-256 {recorded}, not {table.name}'s")
    differing = [k for k in ("space", "dataset", "recipe") if judged_by.manifest[k] != table.manifest[k]]
    if differing:
        raise ValueError(f"{results} was judged by table {judged_by.name!r}; {table.name!r} is a table of another "
                         f"{', '.join(differing)}, not a later snapshot of the same build")


def judged_by(results: dict) -> tuple[str, Optional[str]]:
    """``(name or path, SHA-256 or None)`` of the table that judged a result file's rows."""
    named = results.get("table") if isinstance(results.get("table"), dict) else {}
    name = named.get("name") or (results.get("settings") or {}).get("table") or "nb201-mnist1d"
    return name, named.get("sha256") or results.get("table_sha256")


def merged_rows(files: list[tuple[str, list]]) -> list:
    """The rows of several result files, a later file's rows replacing an earlier one's of
    the same method (a suite rerun in another comparison replaces that suite's rows)."""
    rows: dict[str, list] = {}
    for _, file_rows in files:
        for method in dict.fromkeys(r[0] for r in file_rows):
            rows[method] = [r for r in file_rows if r[0] == method]
    return [r for method_rows in rows.values() for r in method_rows]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", nargs="+", help="the raw JSON of benchmarks/ground_truth.py or nasgen compare's "
                                                   "report.json; with several, a later file's rows replace an "
                                                   "earlier one's of the same method (and suite)")
    parser.add_argument("--table", default=None, help="the table that judged them (default: the one the first file "
                                                      "names, else nb201-mnist1d)")
    parser.add_argument("--versus", default=None, help="the method differences are taken to (default: the first)")
    args = parser.parse_args(argv)
    try:
        files, notes, table = [], [], None
        for path in args.results:
            results = json.loads(Path(path).read_text())
            name, recorded = judged_by(results)
            table = table or load(args.table or name)
            if recorded and recorded != table.manifest["sha256"]:
                same_build(name, recorded, table, path)
                notes.append(f"{path}: a later table of the build that judged it ({recorded[:12]}...)")
            files.append((path, rows_of(results)))
        rows = merged_rows(files)
        versus = args.versus or rows[0][0]
        if versus not in {r[0] for r in rows}:
            raise ValueError(f"--versus {versus!r} is not a method of {', '.join(args.results)}")
        summary = rejudge(Judge(table, table.space), rows, versus)
    except (OSError, ValueError, KeyError, IndexError) as error:
        parser.exit(2, f"{parser.prog}: error: {error}\n")
    newer = "".join(f"\n- {note}" for note in notes)
    print(f"{', '.join(args.results)}, rejudged by table {table.name} (SHA-256 {table.manifest['sha256'][:12]}...):"
          f"{newer}\n")
    print(C.markdown_table(
        ["method", "seeds", "distinct cells", "test regret pp", "mean table SE of one regret pp",
         "table SE of the mean regret pp", f"table SE of the difference to {versus} pp",
         f"difference to {versus} pp [95 % CI over seeds]"],
        [[s["method"], s["seeds"], s["distinct_cells"], f"{100 * s['test_regret']:.2f}", f"{100 * s['regret_se']:.2f}",
          f"{100 * s['mean_se']:.2f}", "-" if s["method"] == versus else f"{100 * s['difference_se']:.2f}",
          "-" if s["method"] == versus else difference(s["difference"])]
         for s in summary], "l" + "r" * 7))


if __name__ == "__main__":
    main()
