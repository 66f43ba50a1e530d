"""Ground truth: every controller searches ``nb201`` on MNIST-1D, and a table judges the cell.

Issue 14 item 6 and issue 15 item 4. Per seed:

1. **Supernet searches under one budget.** ``nasgen/OneShotNAS-v0`` (``--space nb201`` or
   ``nb201-nozero``, MNIST-1D, supernet ``--supernet-channels`` x ``--supernet-cells`` cells
   per stage). Every method gets the same epochs of supernet training: ``--warmup-epochs``
   over the training split plus ``--epochs`` over the validation split of search, split per
   method by the preset ``--protocol`` (default ``paper``; ``nasgen.protocols``). The
   warm-ups and the searches are those of ``search_cost.py`` (each distinct warm-up run once
   per seed and shared; the architecture phase timed by ``Search.wall_time``).
2. **The table judges the derived cell** (``--table``, default the shipped ``nb201-mnist1d``):
   test accuracy (mean over the table's training seeds), test regret against the table's
   best, percentile among all its distinct architectures; architecture-phase wall time as a
   ratio to DARTS's (first order) in the same seed.
3. **Beside it, on the table alone**: the black-box controllers on ``nasgen/Tabular-v0``
   with the same ``--queries`` table queries each, on the table's own space whatever
   ``--space`` (the answer: the best queried cell by validation accuracy of one drawn
   training seed, as NAS-Bench-201 does), and **random
   search at equal epochs**: ``N = budget epochs / the table recipe's epochs`` random
   cells, the best by validation accuracy, judged by test accuracy.
4. **Statistics** (``_stats``): per method mean ± std over seeds; for credit (and each credit
   variant) against every other method, the exact paired Wilcoxon signed-rank test of the
   per-seed test regrets and a paired bootstrap 95% CI of their mean difference.
5. **Targets** (issue 15, item 4), printed as checks with the measured values: credit's mean
   test regret <= DARTS's, and <= 0.5 x random search's at equal epochs; its architecture
   phase <= 0.3 x DARTS's wall time.

Usage::

    python benchmarks/ground_truth.py                       # the full run (5 seeds)
    python benchmarks/ground_truth.py --space nb201-nozero
    python benchmarks/ground_truth.py --quick --table PATH  # a smoke run (1 seed, tiny budget)
    python benchmarks/ground_truth.py --estimate            # time each method briefly, project the full run
"""

from __future__ import annotations

import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

import gymnasium as gym
import numpy as np

import _common as C
import _stats
import nasgen.envs  # noqa: F401  (registers the env ids)
import search_cost
from nasgen import controllers, protocols
from nasgen.nb1d import judge as ground_truth
from nasgen.search import Search, SearchConfig

ENV_ID = search_cost.ENV_ID
TABULAR_ID = "nasgen/Tabular-v0"
REFERENCE = "darts"
CREDIT = "credit"
LABELS = ("credit", "credit[hybrid]", "credit[exact]", "credit[train]", "darts", "darts[2nd]", "snas", "gdas",
          "proxyless", "rnn", "reinforce", "asng", "ga", "random")
TABULAR = ("reinforce", "asng", "ga", "rnn", "random")
RANDOM_SEARCH = "random search"

#: The full run's budget: 90 epochs of supernet training as the AdvantageNAS NAS-Bench-201
#: script (50 warm-up + 40 of search over the training split = 40 x 50/12 validation epochs
#: at the default MNIST-1D split and batch 64; ``protocols`` re-splits it per method).
FULL = {"seeds": 5, "warmup_epochs": 50.0, "epochs": 40 * 50 / 12, "queries": 100}
QUICK = {"seeds": 1, "warmup_epochs": 0.2, "epochs": 0.25, "queries": 10,
         "supernet_channels": 4, "batch_size": 64}

#: Issue 15 item 4's targets: credit's regret over random search's, its time over DARTS's.
TARGET_REGRET_VS_RANDOM = 0.5
TARGET_TIME_VS_DARTS = 0.3


def parse_args(argv=None):
    parser = C.base_parser(__doc__.split("\n\n")[0] + "\n\n" + __doc__.split("\n\n", 1)[1],
                           "ground_truth.json", default_seeds=FULL["seeds"], default_threads=1)
    parser.add_argument("--table", default="nb201-mnist1d",
                        help="the table that judges (shipped name or .json/.npz path; default nb201-mnist1d)")
    parser.add_argument("--space", default="nb201", help="nb201 (default) or nb201-nozero")
    parser.add_argument("--protocol", default="paper", choices=protocols.names(),
                        help="how each method splits the shared budget of supernet training (default paper)")
    parser.add_argument("--warmup-epochs", type=float, default=None,
                        help=f"budget: warm-up epochs over the training split (default {FULL['warmup_epochs']:g})")
    parser.add_argument("--epochs", type=float, default=None,
                        help=f"budget: search epochs over the validation split (default {FULL['epochs']:.4g})")
    parser.add_argument("--queries", type=int, default=None,
                        help=f"table queries of each black-box controller on Tabular-v0 (default {FULL['queries']})")
    parser.add_argument("--tabular-controllers", default=None,
                        help=f"black-box controllers on the table (default {','.join(TABULAR)})")
    parser.add_argument("--supernet-channels", type=int, default=None, help="supernet C (default 8)")
    parser.add_argument("--supernet-cells", type=int, default=1, help="supernet cells per stage, N (default 1)")
    parser.add_argument("--batch-size", type=int, default=None, help="supernet batch size (default 64)")
    parser.add_argument("--runs-dir", default=None, help="keep each search's run folder here (default: a temp dir)")
    parser.add_argument("--fill", default=None,
                        help="judge with a partial (sampled) table: cells it lacks are trained on demand with the "
                             "table's recipe and the seeds its build plans for them, kept in this build folder "
                             "(nasgen bench merge folds it into the table's build); percentiles are among the "
                             "sampled cells, regrets against the best of them; the black boxes and random search "
                             "query Tabular-v0 with it")
    parser.add_argument("--rejudge", default=None, nargs="+", metavar="JSON",
                        help="do not search: judge the runs of earlier --out JSONs again with --table (and --fill); "
                             "several JSONs of the same settings are merged (methods in order; a (method, seed) "
                             "run that two files hold is taken from the first)")
    parser.add_argument("--estimate", action="store_true",
                        help="time every method on a 2-epoch slice of search (seed 0) and print the "
                             "projected cost of the full run, instead of running it")
    args = parser.parse_args(argv)
    defaults = {**FULL, "supernet_channels": 8, "batch_size": 64, **(QUICK if args.quick else {})}
    for key, value in defaults.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    args.dataset = "mnist1d"
    return args


def fail(message: str) -> None:
    """Bad input: one line, exit status 2."""
    print(f"ground_truth.py: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def load_judge(args):
    """The table and the judge of ``args.space``; one line and exit 2 when it cannot judge."""
    from nasgen.searchspace import get as get_space

    try:
        space = get_space(args.space)
        judge = ground_truth.for_search(args.table, space, args.dataset)
    except (KeyError, ValueError) as error:
        fail(str(error).strip("'\""))
    if args.fill:
        return ground_truth.Judge(judge.table, space, fill=args.fill)
    if not judge.table.covers_space():
        fail(f"table {judge.table.name!r} holds {len(judge.table.archs)} distinct architectures, not every one "
             f"of space {judge.table.space.name!r}; the harness needs a complete table or --fill FOLDER")
    return judge


def table_file(args) -> str:
    """The table's manifest path (Tabular-v0 and the report name it)."""
    from nasgen.nb1d.table import resolve

    return str(resolve(args.table))


# --- the supernet searches ----------------------------------------------------------------------------
def supernet_seed(seed: int, labels: list[str], args, judge, runs_dir: Path) -> list[dict]:
    """Every label's search from its protocol's shared warm-up, judged by the table."""
    probe = gym.make(ENV_ID, **search_cost.env_kwargs(args)).unwrapped
    plans = {label: search_cost.plan(label, args, probe) for label in labels}
    probe.close()
    warmups = {}
    for p in {p.warmup_epochs: p for p in plans.values()}.values():
        warmups[p.warmup_epochs] = search_cost.warm_up(args, seed, p)
        print(f"seed {seed}: warm-up {p.warmup_epochs:g} of {p.total_epochs:g} epochs in "
              f"{warmups[p.warmup_epochs][1]:.1f} s", flush=True)
    shift = seed % len(labels)
    rows = []
    for label in labels[shift:] + labels[:shift]:  # rotated: load from other processes moves around
        state, warmup_s = warmups[plans[label].warmup_epochs]
        row = {**search_cost.search_one(label, args, seed, state, runs_dir), "kind": C.kind(label),
               "family": "supernet", "warmup_epochs": plans[label].warmup_epochs, "warmup_s": warmup_s,
               "total_epochs": plans[label].total_epochs}
        if "error" not in row:
            row.update(verdict(judge, row["derived_arch"]))
            print(f"  {label:<15} search {row['wall_time_s']:7.1f} s  {row['steps']:5d} steps  "
                  f"test {100 * row['test_accuracy']:.2f}%  regret {100 * row['test_regret']:.2f} pp  "
                  f"percentile {row['percentile']:.1f}", flush=True)
        else:
            print(f"  {label:<15} FAILED: {row['error']}", flush=True)
        rows.append(row)
    C.add_time_ratios(rows, REFERENCE)
    return rows


def verdict(judge, arch, space=None) -> dict:
    """The table's figures of one derived cell, an encoding of ``space`` (default the search's);
    a cell outside a partial table is an error row."""
    try:
        v = judge.judge(arch, space)
    except ValueError as error:
        return {"error": str(error)}
    return {"test_accuracy": v["test_accuracy"], "val_accuracy": v["val_accuracy"],
            "test_regret": v["test_regret"], "test_regret_se": v["test_regret_se"], "percentile": v["percentile"],
            "table_arch": v["arch"], "trained_on_demand": v.get("trained_on_demand", False)}


# --- on the table alone -----------------------------------------------------------------------------------
def tabular_one(name: str, queries: int, seed: int, args, judge, runs_dir: Path, label: str) -> dict:
    """``name`` on ``Tabular-v0`` with ``queries`` queries; the answer is its best queried cell by
    (one drawn seed's) validation accuracy."""
    space = judge.table.space
    per_step = controllers.make(name, space, seed=seed).samples_per_step
    steps = max(1, queries // per_step)
    config = SearchConfig(controller=name, env=TABULAR_ID, seed=seed, steps=steps, checkpoint_every=10**9,
                          env_kwargs={"table": table_file(args), "budget": steps * per_step,
                                      **({"fill": str(Path(args.fill).resolve())} if args.fill else {})},
                          table="none")
    row = {"controller": label, "seed": seed, "kind": "black-box", "family": "table", "queries": steps * per_step}
    try:
        search = Search(config, runs_dir / f"tabular-{label}__s{seed}")
        with C.isolated_seed(seed):
            result = search.run()
    except Exception as error:  # one controller must not sink the run
        return {**row, "error": f"{type(error).__name__}: {error}"}
    answer = result["best_arch"]
    return {**row, "wall_time_s": search.wall_time, "derived_arch": answer, **verdict(judge, answer, space),
            "policy_arch": result["derived_arch"],
            "policy_test_regret": verdict(judge, result["derived_arch"], space).get("test_regret")}


def random_search_n(args, judge, total_epochs: float) -> int:
    """Random-search architectures affordable at equal epochs: the budget's epochs over the
    table recipe's epochs per architecture (at least one)."""
    return max(1, int(total_epochs // judge.table.manifest["recipe"]["epochs"]))


# --- summary ------------------------------------------------------------------------------------------------
def summarise(labels: list[str], rows: list[dict]) -> list[dict]:
    summary = []
    for label in labels:
        mine = [r for r in rows if r["controller"] == label]
        ok = [r for r in mine if "error" not in r]
        first = mine[0] if mine else {}
        summary.append({
            "controller": label, "family": first.get("family"), "kind": first.get("kind"), "seeds": len(ok),
            "failed": len(mine) - len(ok), "errors": sorted({r["error"] for r in mine if "error" in r}),
            **{key: C.stats([r.get(key, math.nan) for r in ok])
               for key in ("test_accuracy", "test_regret", "test_regret_se", "percentile", "wall_time_s", "time_ratio",
                           "queries",
                           "steps", "warmup_epochs", "total_epochs")},
            "distinct_archs": len({tuple(r["table_arch"]) for r in ok}),
        })
    return summary


def by_seed(rows: list[dict], label: str, key: str) -> dict[int, float]:
    return {r["seed"]: r[key] for r in rows if r["controller"] == label and "error" not in r}


def significance(rows: list[dict], labels: list[str], seed: int) -> list[dict]:
    """Each credit row against every other row: paired Wilcoxon and bootstrap on test regret."""
    rng = np.random.default_rng(seed)
    tests = []
    for mine in (l for l in labels if l.startswith(CREDIT)):
        a = by_seed(rows, mine, "test_regret")
        for other in labels:
            if other == mine:
                continue
            b = by_seed(rows, other, "test_regret")
            common = sorted(set(a) & set(b))
            if not common:
                continue
            x, y = [a[s] for s in common], [b[s] for s in common]
            tests.append({"method": mine, "versus": other, "seeds": common,
                          "wilcoxon": _stats.wilcoxon_signed_rank(x, y),
                          "bootstrap": _stats.paired_bootstrap_ci(x, y, rng)})
    return tests


def targets(summary: list[dict]) -> list[dict]:
    """Issue 15 item 4's checks for credit and each credit variant (met / not met / n/a)."""
    s = {x["controller"]: x for x in summary}
    mean = lambda label, key: s[label][key]["mean"] if label in s and s[label]["seeds"] else math.nan
    checks = []
    for label in (l for l in s if l.startswith(CREDIT)):
        regret, darts, rs = mean(label, "test_regret"), mean(REFERENCE, "test_regret"), mean(RANDOM_SEARCH, "test_regret")
        ratio = mean(label, "time_ratio")
        for name, value, bound, text in (
                ("regret <= darts", regret, darts,
                 f"mean test regret {pp(regret)} vs DARTS's {pp(darts)}"),
                (f"regret <= {TARGET_REGRET_VS_RANDOM} x random search", regret, TARGET_REGRET_VS_RANDOM * rs,
                 f"mean test regret {pp(regret)} vs {TARGET_REGRET_VS_RANDOM} x random search's {pp(rs)}"),
                (f"time <= {TARGET_TIME_VS_DARTS} x darts", ratio, TARGET_TIME_VS_DARTS,
                 f"architecture phase {ratio:.3f} x DARTS's wall time")):
            status = "n/a" if not (math.isfinite(value) and math.isfinite(bound)) else (
                "met" if value <= bound + 1e-12 else "not met")
            checks.append({"method": label, "target": name, "status": status, "value": value, "bound": bound,
                           "text": text})
    return checks


def pp(value: float) -> str:
    return "n/a" if not math.isfinite(value) else f"{100 * value:.2f} pp"


def table(summary: list[dict]) -> str:
    rows = []
    for s in summary:
        if not s["seeds"]:
            rows.append([s["controller"], s["family"] or "", "failed: " + "; ".join(s["errors"])[:80]] + [""] * 7)
            continue
        budget = (f"{s['total_epochs']['mean']:.3g} ep" if s["family"] == "supernet"
                  else f"{s['queries']['mean']:.0f} queries")
        ratio = C.pm(s["time_ratio"], ".3f") if s["time_ratio"]["n"] else "-"
        rows.append([s["controller"], s["family"], budget, C.pm(s["test_accuracy"], ".2f", 100),
                     C.pm(s["test_regret"], ".2f", 100), noise_floor(s), C.pm(s["percentile"], ".1f"),
                     C.pm(s["wall_time_s"], ".1f"), ratio, f"{s['distinct_archs']}/{s['seeds']}"])
    return C.markdown_table(["method", "on", "budget", "table test acc %", "test regret pp", "table SE of one regret pp",
                             "percentile", "arch-phase s", f"time / {REFERENCE}", "distinct cells / seeds"], rows,
                            "lll" + "r" * 7)


def noise_floor(s: dict) -> str:
    """The mean over seeds of each regret's standard error from the table's own seed noise."""
    se = s.get("test_regret_se") or {}
    return f"{100 * se['mean']:.2f}" if se.get("n") and math.isfinite(se["mean"]) else "-"


def tests_table(tests: list[dict]) -> str:
    rows = [[t["method"], t["versus"], len(t["seeds"]), f"{100 * t['bootstrap']['mean']:+.2f}",
             "-" if not math.isfinite(t["bootstrap"]["low"]) else
             f"[{100 * t['bootstrap']['low']:+.2f}, {100 * t['bootstrap']['high']:+.2f}]",
             t["wilcoxon"]["n"], f"{t['wilcoxon']['p']:.3f}", f"{t['wilcoxon']['min_p']:.3f}"] for t in tests]
    return C.markdown_table(["method", "versus", "seeds", "mean regret diff pp", "bootstrap 95% CI pp",
                             "non-zero diffs", "Wilcoxon p", "smallest p possible"], rows, "ll" + "r" * 6)


def plot(summary: list[dict], title: str):
    fig, axes = C.figure(2, width=6.5)
    ok = [s for s in summary if s["seeds"]]
    colour = C.colours([s["controller"] for s in ok])
    ax = axes[0][0]
    for s in (x for x in ok if x["family"] == "supernet" and x["time_ratio"]["n"]):
        ax.errorbar(s["time_ratio"]["mean"], 100 * s["test_regret"]["mean"], xerr=s["time_ratio"]["std"],
                    yerr=100 * s["test_regret"]["std"], fmt="o", color=colour[s["controller"]], capsize=3)
        ax.annotate(s["controller"], (s["time_ratio"]["mean"], 100 * s["test_regret"]["mean"]),
                    textcoords="offset points", xytext=(4, 4), fontsize=8)
    rs = next((s for s in ok if s["controller"] == RANDOM_SEARCH), None)
    if rs is not None:
        ax.axhline(100 * rs["test_regret"]["mean"], color="grey", ls="--", lw=1, label="random search (equal epochs)")
        ax.legend(fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel(f"architecture-phase wall time / {REFERENCE} (same seed)")
    ax.set_ylabel("table test regret, pp (mean ± std over seeds)")
    ax.set_title("supernet searches: regret vs search time")
    ax.grid(alpha=0.3, which="both")
    ax = axes[0][1]
    names = [s["controller"] + (" (supernet)" if s["family"] == "supernet" else "") for s in ok]
    ax.barh(names, [100 * s["test_regret"]["mean"] for s in ok], xerr=[100 * s["test_regret"]["std"] for s in ok],
            color=[colour[s["controller"]] for s in ok])
    ax.invert_yaxis()
    ax.set_xlabel("table test regret, pp (mean ± std)")
    ax.set_title("every method, judged by the table")
    ax.grid(alpha=0.3, axis="x")
    import textwrap

    fig.suptitle("\n".join(textwrap.wrap(title, 160)), fontsize=8)
    return fig


def describe(args, judge, rows: list[dict], n_random: int) -> str:
    total = next((r["total_epochs"] for r in rows if r.get("family") == "supernet" and "error" not in r), math.nan)
    recipe = judge.table.manifest["recipe"]
    return (f"{args.space} on {args.dataset}, supernet C={args.supernet_channels} x N={args.supernet_cells}, batch "
            f"{args.batch_size}; protocol {args.protocol}: every method gets the same {total:.3g} epochs of supernet "
            f"training ({args.warmup_epochs:g} warm-up epochs + {args.epochs:.3g} search epochs over the validation "
            f"split, split per method, one cosine weight lr); judged by table {judge.table.name} "
            f"({len(judge.table.archs)} cells, {len(judge.table.seeds)} training seeds, {recipe['epochs']} epochs "
            f"each); black boxes on the table: {args.queries} queries each; random search at equal epochs: "
            f"{n_random} cells x {recipe['epochs']} epochs; {args.seeds} seed(s)" + (
              f"; a sampled table: {len(judge.table.archs)} of the space's distinct cells, the others trained on "
              f"demand with its recipe; percentiles among the sampled cells, regrets against the best of them"
              if args.fill else ""))


# --- the cost of the full run -----------------------------------------------------------------------------
def estimate(args, labels: list[str]) -> dict:
    """Time each method on a short slice of search (seed 0, no warm-up) and a short warm-up,
    then project the full run: per seed, each distinct warm-up once (shared, as the run does)
    plus every method's search steps of its protocol plan, times the seeds.

    Returns:
        The per-method timings and the projection (wall clock on this machine, and CPU time,
        which is what the run would take on one idle core).
    """
    slice_epochs = min(args.epochs, 2.0)
    probe = gym.make(ENV_ID, **search_cost.env_kwargs(args)).unwrapped
    plans = {label: search_cost.plan(label, args, probe) for label in labels}
    probe.close()
    timed = {}
    with tempfile.TemporaryDirectory(prefix="ground_truth_estimate_") as tmp:
        warm = gym.make(ENV_ID, seed=0, **{**search_cost.env_kwargs(args), "warmup_epochs": 1.0})
        wall, cpu = time.perf_counter(), time.process_time()
        warm.reset(seed=0)
        n = warm.unwrapped.train_batches_per_epoch
        warm_step = ((time.perf_counter() - wall) / n, (time.process_time() - cpu) / n)
        warm.close()
        for label in labels:
            config = C.search_config(label, ENV_ID, 0, {**search_cost.env_kwargs(args), "warmup_epochs": 0.0},
                                     epochs=slice_epochs, table="none")
            search = Search(config, Path(tmp) / label)
            cpu = time.process_time()
            with C.isolated_seed(0):
                search.run()
            cpu = time.process_time() - cpu
            steps = plans[label].steps(search.controller.samples_per_step)
            timed[label] = {"slice_steps": search.step, "step_s": search.wall_time / search.step,
                            "step_cpu_s": cpu / search.step, "full_steps": steps}
            print(f"  {label:<15} {search.step:4d} steps: {1000 * timed[label]['step_s']:7.1f} ms/step wall, "
                  f"{1000 * timed[label]['step_cpu_s']:7.1f} ms/step CPU; full run {steps} steps/seed", flush=True)
    warmups = {p.warmup_steps for p in plans.values()}
    per_seed = [sum(t[key] * t["full_steps"] for t in timed.values()) + sum(warmups) * warm_step[k]
                for k, key in enumerate(("step_s", "step_cpu_s"))]
    total_wall, total_cpu = (args.seeds * x for x in per_seed)
    budget = next(iter(plans.values())).total_epochs
    print(f"projected full run: {len(labels)} supernet methods x {args.seeds} seeds, {budget:.3g} epochs of supernet "
          f"training each (warm-up {1000 * warm_step[0]:.1f} ms/step wall): {total_wall / 3600:.2f} h wall on this "
          f"machine now (load {C.load_average()[0]}), {total_cpu / 3600:.2f} h of CPU time (about the wall time "
          f"on one idle core); the table-only rows add seconds", flush=True)
    return {"methods": timed, "warmup_step_s": warm_step[0], "warmup_step_cpu_s": warm_step[1],
            "projected_wall_h": total_wall / 3600, "projected_cpu_h": total_cpu / 3600, "budget_epochs": budget}


# --- main -----------------------------------------------------------------------------------------------------
def main(argv=None) -> None:
    args = parse_args(argv)
    if args.rejudge:
        rejudge(args)
        return
    if args.estimate:
        C.start(args)
        estimate(args, C.select(list(LABELS), args.controllers, plugins=True))
        return
    judge = load_judge(args)
    labels = C.select(list(LABELS), args.controllers, plugins=True)
    tab_names = args.tabular_controllers.split(",") if args.tabular_controllers else list(TABULAR)
    for name in tab_names:
        problem = C.controller_problem(name)
        if problem is not None:
            fail(f"--tabular-controllers: {problem}")
        if controllers.get(name).kind != "black-box" or controllers.get(name).env_requirements:
            fail(f"--tabular-controllers: {name!r} is not a black-box controller without credit; "
                 f"choose from: {', '.join(TABULAR)} or a black-box plug-in")
    if args.queries < 1:
        fail(f"--queries must be >= 1, got {args.queries}")
    machine = C.start(args)
    print(f"ground_truth: {len(labels)} supernet methods + {len(tab_names)} on the table + random search, "
          f"{args.seeds} seed(s); protocol {args.protocol}, table {judge.table.name}\n{C.machine_line(machine)}",
          flush=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="ground_truth_") as tmp:
        runs_dir = Path(args.runs_dir) if args.runs_dir else Path(tmp)
        n_random = 1
        for seed in range(args.seeds):
            seed_rows = supernet_seed(seed, labels, args, judge, runs_dir)
            rows += seed_rows
            total = next((r["total_epochs"] for r in seed_rows if "error" not in r), args.warmup_epochs)
            n_random = random_search_n(args, judge, total)
            for name in tab_names:
                row = tabular_one(name, args.queries, seed, args, judge, runs_dir, f"{name} (table)")
                rows.append(row)
            row = tabular_one("random", n_random, seed, args, judge, runs_dir, RANDOM_SEARCH)
            rows.append({**row, "family": "table, equal epochs"})
            print(f"seed {seed}: on the table: " + "  ".join(
                f"{r['controller']} {pp(r.get('test_regret', math.nan))}" for r in rows[-len(tab_names) - 1:]),
                flush=True)
    machine = C.finish_machine_info(machine)
    all_labels = labels + [f"{n} (table)" for n in tab_names] + [RANDOM_SEARCH]
    report(args, judge, rows, all_labels, n_random, machine)


def report(args, judge, rows: list[dict], all_labels: list[str], n_random: int, machine: dict) -> None:
    """Summary, paired tests and targets of ``rows``; printed and written (JSON, markdown, PNG)."""
    summary = summarise(all_labels, rows)
    tests = significance(rows, all_labels, seed=0)
    checks = targets(summary)
    budget = describe(args, judge, rows, n_random)
    text = table(summary)
    check_lines = [f"target [{c['method']}] {c['target']}: {c['status'].upper()} ({c['text']})" for c in checks]
    print(f"\n{budget}\n{C.machine_line(machine)}\n{text}\n\n{tests_table(tests)}\n\n" + "\n".join(check_lines))
    markdown = (f"{budget}  \n{C.machine_line(machine)}\n\n{text}\n\nPaired tests of test regret over seeds "
                f"(difference = credit row minus the other; negative favours credit):\n\n{tests_table(tests)}\n\n"
                "Targets (issue 15, item 4):\n\n" + "\n".join(f"- {line}" for line in check_lines) + "\n")
    payload = {"benchmark": "ground_truth", "config": vars(args), "reference": REFERENCE, "machine": machine,
               "table": {"name": judge.table.name, "sha256": judge.table.manifest.get("sha256"),
                         "figures": judge.table.manifest.get("figures"), "recipe": judge.table.manifest.get("recipe"),
                         "best_test_accuracy": judge.best_test, "n_archs": int(len(judge.table.archs))},
               "random_search_n": n_random, "labels": all_labels, "summary": summary, "significance": tests,
               "targets": checks, "runs": rows}
    paths = C.write_outputs(args.out, payload, markdown, plot(summary, budget))
    print("wrote " + ", ".join(map(str, paths)))


SAME_SETTINGS = ("space", "protocol", "warmup_epochs", "epochs", "seeds", "supernet_channels", "supernet_cells",
                 "batch_size", "queries")


def merged_results(paths: list[str]) -> dict:
    """The ``--out`` JSONs at ``paths`` as one: the first file's settings and machine, the
    methods of all in order, each (method, seed) run from the first file that holds it.

    Exits 2 (one line) on a file that is not a ground_truth.py result or whose settings
    (``SAME_SETTINGS``, ``random_search_n``) differ from the first's."""
    import json

    merged: Optional[dict] = None
    for path in paths:
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, ValueError) as error:
            fail(f"--rejudge {path}: {error}")
        if not isinstance(data, dict) or data.get("benchmark") != "ground_truth" or "runs" not in data:
            fail(f"--rejudge {path}: not a ground_truth.py result JSON")
        data.setdefault("labels", [s["controller"] for s in data.get("summary", [])])
        if merged is None:
            merged = {**data, "runs": list(data["runs"]), "labels": list(data["labels"])}
            continue
        for key in SAME_SETTINGS:
            if data["config"].get(key) != merged["config"].get(key):
                fail(f"--rejudge {path}: {key} is {data['config'].get(key)!r}, but {paths[0]} has "
                     f"{merged['config'].get(key)!r}; only runs of the same settings merge")
        if data.get("random_search_n") != merged.get("random_search_n"):
            fail(f"--rejudge {path}: random search trained {data.get('random_search_n')} cells, "
                 f"{paths[0]} {merged.get('random_search_n')}; only runs of the same settings merge")
        held = {(r["controller"], r["seed"]) for r in merged["runs"]}
        merged["runs"] += [r for r in data["runs"] if (r["controller"], r["seed"]) not in held]
        merged["labels"] += [label for label in data["labels"] if label not in merged["labels"]]
    return merged


def rejudge(args) -> None:
    """Judge the runs of earlier ``--out`` JSONs again with ``--table`` (and ``--fill``): the
    searches are not repeated, only the verdicts, summary, tests and targets (for example once a
    larger or complete table exists). Random search keeps the cells it picked. Several JSONs
    of the same settings are merged (``merged_results``)."""
    before = merged_results(args.rejudge)
    for key in SAME_SETTINGS:
        setattr(args, key, before["config"][key])
    judge = load_judge(args)
    machine = C.start(args)
    rows = []
    for row in before["runs"]:
        row = dict(row)
        if "error" not in row:
            for key in ("test_accuracy", "val_accuracy", "test_regret", "percentile", "table_arch",
                        "trained_on_demand", "error"):
                row.pop(key, None)
            row.update(verdict(judge, row["derived_arch"]))
        rows.append(row)
    labels = before["labels"]
    print(f"ground_truth: {len(rows)} runs of {', '.join(args.rejudge)} judged again by table {judge.table.name}",
          flush=True)
    machine = C.finish_machine_info(machine)
    # The searches' machine and times are the earlier run's; only the verdicts are new.
    report(args, judge, rows, labels, before.get("random_search_n", 1), before.get("machine") or machine)


if __name__ == "__main__":
    main()
