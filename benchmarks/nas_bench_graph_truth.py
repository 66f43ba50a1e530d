"""Black-box controllers on NAS-Bench-Graph: regret of the best architecture found at a fixed budget.

docs/design.md section 8.3. ``nasgen/NASBenchGraph-v0`` looks each architecture up in the
NAS-Bench-Graph table (Qin et al. 2022; 26,206 GNN architectures per dataset, 2,021 for
``proteins``). On each of the 9 datasets every black-box controller that needs no per-edge
credit runs with its default hyper-parameters for a query budget of ``--budget-frac`` of that
dataset's table (default 2%: 524 queries, 40 on proteins), through the project's own loop
(``nasgen.search.Search``). Every query counts, repeats included; ASNG's 2-sample rounds are
rounded up to the budget.

The architecture *found* is the one with the best validation performance among those queried
(``Search.best_arch``, the reward being the table's ``valid_perf``); its **test regret** is
``best_test - test_perf``, where ``best_test`` is the best test performance in the whole table,
in percentage points (accuracy, ROC-AUC for proteins). The ``oracle`` row is the regret of the
table's best-by-validation architecture: the floor any validation-driven search can reach.

``credit`` is not run: a table has no gates to ablate, so the env gives no per-edge credit
(``NASBenchGraph-v0`` refuses ``credit=...``). The all-``skip`` architectures (no graph layer,
not in the table) get reward 0 (``invalid_reward=0.0``) and count as queries.

Usage::

    python benchmarks/nas_bench_graph_truth.py             # 9 datasets x 10 seeds, 2% budget
    python benchmarks/nas_bench_graph_truth.py --quick     # 9 datasets x 2 seeds, 0.5% budget
    python benchmarks/nas_bench_graph_truth.py --datasets cora,proteins --budget-frac 0.05
"""

from __future__ import annotations

import math
import tempfile
import traceback
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np

import _common as C
import nasgen.envs  # noqa: F401  (registers the env ids)
from nasgen import controllers

ENV_ID = "nasgen/NASBenchGraph-v0"
ORACLE = "oracle"


def labels_default() -> list[str]:
    """The black-box controllers that can run on a table (no per-edge credit needed)."""
    return C.ordered(n for n in controllers.names()
                     if controllers.get(n).kind == "black-box" and "credit" not in controllers.get(n).env_requirements)


def parse_args(argv=None):
    from nasgen.envs.nas_bench_graph import DATASETS

    parser = C.base_parser(__doc__.split("\n\n")[0] + "\n\n" + __doc__.split("\n\n", 1)[1],
                           "nas_bench_graph.json", default_seeds=10, default_threads=1)
    parser.add_argument("--budget-frac", type=float, default=None,
                        help="queries as a fraction of each dataset's table (default 0.02; quick 0.005)")
    parser.add_argument("--datasets", default=",".join(DATASETS), help="comma-separated (default: all 9)")
    args = parser.parse_args(argv)
    if args.seeds is None:
        args.seeds = 2 if args.quick else 10
    if args.budget_frac is None:
        args.budget_frac = 0.005 if args.quick else 0.02
    args.datasets = [d.strip() for d in args.datasets.split(",") if d.strip()]
    unknown = [d for d in args.datasets if d not in DATASETS]
    if unknown:
        raise SystemExit(f"unknown dataset(s) {', '.join(unknown)}; choose from: {', '.join(DATASETS)}")
    return args


def table_facts(dataset: str) -> dict:
    env = gym.make(ENV_ID, dataset=dataset)
    u = env.unwrapped
    return {"size": len(u.table), "best_test": u.best_test, "best_valid": u.best_valid,
            "oracle_test_regret": u.best_test - u.best_arch_test}


def run_one(label: str, dataset: str, budget: int, seed: int, runs_dir: Path) -> dict:
    """One search at ``budget`` queries; the best-so-far trace (errors recorded, not raised)."""
    trace: list[dict] = []

    def record(search: C.RecordingSearch) -> None:
        if search.best_arch is None or (trace and trace[-1]["valid"] == search.best_reward):
            return
        if search.env.unwrapped.space.is_all_skip(search.best_arch):  # only if the first query was one
            return
        found = search.env.unwrapped.lookup(search.best_arch)
        trace.append({"queries": search.evaluations, "valid": search.best_reward, "test": found["test_perf"]})

    env_kwargs = {"dataset": dataset, "invalid_reward": 0.0}
    row = {"controller": label, "dataset": dataset, "seed": seed, "budget": budget}
    try:
        space = gym.make(ENV_ID, dataset=dataset).unwrapped.space
        per_step = controllers.make(label, space, seed=seed).samples_per_step
        config = C.search_config(label, ENV_ID, seed, env_kwargs, steps=math.ceil(budget / per_step))
        search = C.RecordingSearch(config, runs_dir / f"{label}__{dataset}__s{seed}", on_step=record)
        with C.isolated_seed(seed):
            search.run()
    except Exception as error:
        traceback.print_exc()
        return {**row, "error": f"{type(error).__name__}: {error}"}
    u = search.env.unwrapped
    found = u.lookup(search.best_arch)
    return {**row, "queries": search.evaluations, "wall_time_s": search.wall_time,
            "best_arch": [int(a) for a in search.best_arch], "architecture": u.space.describe(search.best_arch),
            "valid_perf": found["valid_perf"], "test_perf": found["test_perf"],
            "test_regret": u.best_test - found["test_perf"], "valid_regret": u.best_valid - found["valid_perf"],
            "trace": trace}


def regret_curve(runs: list[dict], best_test: float, budget: int, n: int = 40) -> dict:
    """Mean and std over seeds of the test regret of the best-so-far architecture vs queries."""
    grid = sorted(C.log_points(budget, n))
    values = []
    for r in runs:
        queries = np.array([p["queries"] for p in r["trace"]])
        tests = [p["test"] for p in r["trace"]]
        row = []
        for q in grid:
            i = int(np.searchsorted(queries, q, side="right")) - 1
            row.append(best_test - tests[i] if i >= 0 else math.nan)
        values.append(row)
    values = np.array(values, dtype=np.float64)
    with warnings.catch_warnings():  # a grid point before any seed's first record is nan, as it should
        warnings.simplefilter("ignore", RuntimeWarning)
        return {"queries": grid, "mean": np.nanmean(values, 0), "std": np.nanstd(values, 0)}


def summarise(labels: list[str], datasets: list[str], runs: list[dict], facts: dict) -> dict:
    cells: dict[str, dict[str, dict]] = {}
    curves: dict[str, dict[str, dict]] = {}
    for label in labels:
        cells[label], curves[label] = {}, {}
        for d in datasets:
            mine = [r for r in runs if r["controller"] == label and r["dataset"] == d]
            ok = [r for r in mine if "error" not in r]
            cells[label][d] = {"test_regret": C.stats([r["test_regret"] for r in ok]),
                               "valid_regret": C.stats([r["valid_regret"] for r in ok]),
                               "queries": C.stats([r["queries"] for r in ok]),
                               "wall_time_s": C.stats([r["wall_time_s"] for r in ok]),
                               "failed": len(mine) - len(ok),
                               "errors": sorted({r["error"] for r in mine if "error" in r})}
            if ok:
                curves[label][d] = regret_curve(ok, facts[d]["best_test"], ok[0]["budget"])
    # Per metric: the mean over datasets, and the rank of each dataset's mean (1 = best) averaged.
    overall: dict[str, dict] = {label: {} for label in labels}
    for key in ("test_regret", "valid_regret"):
        ranks: dict[str, list[int]] = {label: [] for label in labels}
        for d in datasets:
            means = {label: cells[label][d][key]["mean"] for label in labels}
            finite = sorted((m, label) for label, m in means.items() if math.isfinite(m))
            for position, (_, label) in enumerate(finite, 1):
                ranks[label].append(position)
        for label in labels:
            overall[label][key] = {"mean": float(np.mean([cells[label][d][key]["mean"] for d in datasets])),
                                   "rank": float(np.mean(ranks[label])) if ranks[label] else math.nan}
    return {"cells": cells, "curves": curves, "overall": overall}


def table(labels: list[str], datasets: list[str], summary: dict, facts: dict, key: str = "test_regret") -> str:
    """Mean ± std over seeds of ``key`` (``test_regret`` or ``valid_regret``), percentage points."""
    rows = []
    for label in labels:
        row = [label]
        for d in datasets:
            cell = summary["cells"][label][d]
            row.append(C.pm(cell[key], ".2f", scale=100) + (f" ({cell['failed']} failed)" if cell["failed"] else ""))
        o = summary["overall"][label][key]
        rows.append(row + [f"{o['mean'] * 100:.2f}", f"{o['rank']:.2f}"])
    if key == "test_regret":
        rows.append([ORACLE] + [f"{facts[d]['oracle_test_regret'] * 100:.2f}" for d in datasets]
                    + [f"{np.mean([facts[d]['oracle_test_regret'] for d in datasets]) * 100:.2f}", ""])
    rows.append(["budget (queries)"] + [str(summary["budgets"][d]) for d in datasets] + ["", ""])
    return C.markdown_table(["controller"] + datasets + ["mean", "mean rank"], rows)


def plot(labels: list[str], datasets: list[str], summary: dict, facts: dict, title: str):
    ncols = min(3, len(datasets))
    nrows = math.ceil(len(datasets) / ncols)
    fig, axes = C.figure(ncols, nrows, width=4.5, height=3.4)
    colour = C.colours(labels)
    for k, d in enumerate(datasets):
        ax = axes[k // ncols][k % ncols]
        for label in labels:
            curve = summary["curves"][label].get(d)
            if curve is None:
                continue
            ax.plot(curve["queries"], np.asarray(curve["mean"]) * 100, color=colour[label], label=label)
        ax.axhline(facts[d]["oracle_test_regret"] * 100, color="k", ls=":", lw=1, label=ORACLE)
        ax.set_xscale("log")
        ax.set_title(d, fontsize=9)
        ax.set_xlabel("queries")
        ax.set_ylabel("test regret, pp (mean)")
        ax.grid(alpha=0.3, which="both")
    for k in range(len(datasets), nrows * ncols):
        axes[k // ncols][k % ncols].axis("off")
    axes[0][0].legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def main(argv=None) -> None:
    args = parse_args(argv)
    labels = C.select(labels_default(), args.controllers)
    machine = C.start(args)
    facts = {d: table_facts(d) for d in args.datasets}
    budgets = {d: max(1, round(args.budget_frac * facts[d]["size"])) for d in args.datasets}
    print(f"nas_bench_graph: {len(labels)} controllers x {len(args.datasets)} datasets x {args.seeds} seeds, "
          f"budget {args.budget_frac:.1%} of each table\n{C.machine_line(machine)}", flush=True)
    runs: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="nas_bench_graph_") as tmp:
        for d in args.datasets:
            for label in labels:
                mine = [run_one(label, d, budgets[d], seed, Path(tmp)) for seed in range(args.seeds)]
                runs += mine
                ok = [r for r in mine if "error" not in r]
                print(f"  {d:<10} {label:<10} " + (f"test regret {np.mean([r['test_regret'] for r in ok]) * 100:.2f} pp "
                                                   f"({np.mean([r['wall_time_s'] for r in ok]):.2f} s/search)"
                                                   if ok else "FAILED: " + mine[0]["error"]), flush=True)
    machine = C.finish_machine_info(machine)
    summary = summarise(labels, args.datasets, runs, facts)
    summary["budgets"] = budgets
    title = (f"NAS-Bench-Graph, test regret (percentage points, mean ± std over {args.seeds} seeds) of the best-by-"
             f"validation architecture after {args.budget_frac:.1%} of each table")
    valid_title = "Validation regret (best valid_perf in the table - valid_perf of the architecture found), same runs"
    text = (f"{table(labels, args.datasets, summary, facts)}\n\n{valid_title}\n\n"
            f"{table(labels, args.datasets, summary, facts, 'valid_regret')}")
    print(f"\n{title}\n{C.machine_line(machine)}\n{text}")
    markdown = f"{title}  \n{C.machine_line(machine)}\n\n{text}\n"
    payload = {"benchmark": "nas_bench_graph", "config": vars(args), "machine": machine, "tables": facts,
               "budgets": budgets, "summary": summary, "runs": runs}
    paths = C.write_outputs(args.out, payload, markdown, plot(labels, args.datasets, summary, facts, title))
    print("wrote " + ", ".join(map(str, paths)))


if __name__ == "__main__":
    main()
