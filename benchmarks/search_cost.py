"""The report's headline: architecture-phase time and retrained accuracy of every controller.

docs/design.md section 8.1. Per seed:

1. **The budget and each method's protocol.** ``nasgen/OneShotNAS-v0`` (digits, CPU preset
   ``small``: 3 nodes, 9 edges per cell, 5 ops, 18 decisions; supernet C=8, 5 cells, batch
   64). Every controller gets the same budget of supernet training: ``--warmup-epochs``
   epochs over the training split plus ``--epochs`` passes over the validation split of
   search (one weight step per validation batch), and the preset ``--protocol`` (default
   ``paper``, see ``nasgen.protocols``) splits it per method: under ``paper`` DARTS, SNAS and
   GDAS train on their relaxation from the first step, ProxylessNAS warms up a quarter,
   credit and the black-box controllers 50/90 (AdvantageNAS's NAS-Bench-201 script); one
   cosine weight lr spans warm-up and search for every method.
2. **Warm-ups, shared where equal.** Each distinct warm-up length of the seed is run once
   (uniform single-path training under the same cosine); its ``env.unwrapped.state_dict()``
   is the starting point of every controller with that warm-up.
3. **The architecture phase** of each controller through the project's own loop,
   ``nasgen.search.Search(SearchConfig(controller, epochs=--epochs, protocol=--protocol))
   .run(env_state=...)``, every controller with its default hyper-parameters. Time =
   ``Search.wall_time`` (the steps only: no set-up, logging, checkpoints or plots); the
   table also gives the seconds of the method's warm-up, and their sum, since under
   ``paper`` methods put different shares of the same budget into the untimed warm-up.
4. **Retraining** of each derived architecture from scratch with one fixed recipe
   (``TrainConfig(epochs=--retrain-epochs)``, C=``--retrain-channels``,
   ``--retrain-cells`` cells) under ``--retrain-seeds`` seeds (initialisation and batch
   order; default 3), then test accuracy on the held-out digits test split: per cell the mean
   and a 95% t-interval over its retrainings, per method the mean over search seeds and a
   95% t-interval of that mean. Identical derived architectures of one seed are retrained
   once. On digits every cell retrains to 98-99 %, inside each other's intervals: this
   benchmark measures cost, it cannot rank controllers by the cells they find (that is
   ``ground_truth.py``'s job, on MNIST-1D with a table).

Every controller's time is printed as a ratio to DARTS's (first order) in the same seed; the
table reports mean ± std over seeds. "Forward passes" counts every supernet forward pass of
the search, the same way for all (``_common.forward_passes``): for a black-box controller
its reward passes (hybrid credit's exact ablations included) plus the env's weight-training
pass after each reward; for a gradient controller its weight-step and alpha-step passes (a
DARTS or SNAS pass runs every candidate op, so passes are not equal cost).

The controller order is rotated from seed to seed, so load from other processes does not
always hit the same controller. Usage::

    python benchmarks/search_cost.py                 # the full run (3 seeds, ~30-45 min on 2 cores)
    python benchmarks/search_cost.py --quick         # 1 seed, tiny budgets: a smoke run
    python benchmarks/search_cost.py --controllers credit,darts --seeds 5
"""

from __future__ import annotations

import math
import tempfile
import time
import traceback
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

import _common as C
import nasgen.envs  # noqa: F401  (registers the env ids)
from nasgen import protocols
from nasgen.searchspace import CellSearchSpace, Network, TrainConfig, load_dataset, train_network
from nasgen.searchspace import get as get_space

ENV_ID = "nasgen/OneShotNAS-v0"
LABELS = ("credit", "credit[hybrid]", "darts", "snas", "gdas", "proxyless", "rnn", "reinforce", "asng", "ga",
          "random")
REFERENCE = "darts"

# The budget of the full run (3 seeds took about 30-45 minutes on 2 CPU cores before the
# protocol presets; under --protocol paper DARTS and SNAS now spend the whole budget on the
# mixture, so expect longer -- not re-measured).
FULL = {"warmup_epochs": 30.0, "epochs": 50.0, "retrain_epochs": 15, "retrain_seeds": 3}
QUICK = {"seeds": 1, "warmup_epochs": 1.0, "epochs": 1.0, "retrain_epochs": 1, "retrain_seeds": 2}


def parse_args(argv=None):
    parser = C.base_parser(__doc__.split("\n\n")[0] + "\n\n" + __doc__.split("\n\n", 1)[1],
                           "search_cost.json", default_seeds=3, default_threads=1)
    parser.add_argument("--warmup-epochs", type=float, default=None,
                        help=f"shared-weight warm-up epochs over the training split (default {FULL['warmup_epochs']:g})")
    parser.add_argument("--epochs", type=float, default=None,
                        help=f"architecture-phase epochs over the validation split (default {FULL['epochs']:g})")
    parser.add_argument("--retrain-epochs", type=int, default=None,
                        help=f"epochs of the retraining recipe (default {FULL['retrain_epochs']})")
    parser.add_argument("--retrain-seeds", type=int, default=None,
                        help=f"retrainings of each derived cell, for its interval (default {FULL['retrain_seeds']})")
    parser.add_argument("--retrain-channels", type=int, default=16, help="C of the retrained network (default 16)")
    parser.add_argument("--retrain-cells", type=int, default=5, help="cells of the retrained network (default 5)")
    parser.add_argument("--protocol", default="paper", choices=protocols.names(),
                        help="how each method splits the shared budget of supernet training (default paper)")
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--space", default="small", help="search-space preset (default small, the CPU preset)")
    parser.add_argument("--supernet-channels", type=int, default=8)
    parser.add_argument("--supernet-cells", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--runs-dir", default=None,
                        help="keep each search's run folder (result.json, cell PNGs) here (default: a temp dir)")
    args = parser.parse_args(argv)
    budget = {**FULL, **(QUICK if args.quick else {})}
    for key, value in budget.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    if args.seeds is None:
        args.seeds = 3
    if args.retrain_seeds < 1:
        parser.error(f"--retrain-seeds must be >= 1, got {args.retrain_seeds}")
    return args


def env_kwargs(args) -> dict:
    return {"dataset": args.dataset, "space": args.space, "C": args.supernet_channels,
            "n_cells": args.supernet_cells, "batch_size": args.batch_size, "warmup_epochs": args.warmup_epochs}


def plan(label: str, args, env) -> protocols.Plan:
    """The protocol's split of the budget for ``label`` (the same one ``Search`` makes)."""
    return protocols.plan_search(C.search_config(label, ENV_ID, 0, {}, epochs=args.epochs, protocol=args.protocol),
                                 env)


def warm_up(args, seed: int, plan: protocols.Plan) -> tuple[dict, float]:
    """The seed's supernet state warmed up as ``plan`` says, and the seconds the warm-up took."""
    env = gym.make(ENV_ID, seed=seed, **env_kwargs(args))
    protocols.apply_plan(env.unwrapped, plan)
    start = time.perf_counter()
    env.reset(seed=seed)
    seconds = time.perf_counter() - start
    state = env.unwrapped.state_dict()
    env.close()
    return state, seconds


def search_one(label: str, args, seed: int, state: dict, runs_dir: Path) -> dict:
    """One architecture phase from its warmed-up state; errors are recorded, not raised."""
    config = C.search_config(label, ENV_ID, seed, env_kwargs(args), epochs=args.epochs, protocol=args.protocol)
    row = {"controller": label, "seed": seed, "load_before": C.load_average()[0]}
    try:
        search = C.RecordingSearch(config, runs_dir / f"{label}__s{seed}")
        with C.isolated_seed(seed):
            result = search.run(env_state=state)
    except Exception as error:  # a controller being finished elsewhere must not sink the whole run
        traceback.print_exc()
        return {**row, "error": f"{type(error).__name__}: {error}"}
    space = search.space
    arch = np.asarray(result["derived_arch"])
    shares = space.parameter_free_share(arch) if isinstance(space, CellSearchSpace) else {}
    env = search.env.unwrapped
    return {**row, "wall_time_s": search.wall_time, "steps": result["steps"], "evaluations": result["evaluations"],
            "protocol_plan": result["protocol_plan"], "weight_steps": env.train_stream.batches_drawn,
            "forward_passes": C.forward_passes(search), "derived_arch": [int(a) for a in arch],
            "architecture": result["architecture"], "genotype": result["genotype"],
            "supernet_val_loss": -result["score"], "param_free_share": shares, "load_after": C.load_average()[0]}


def t_interval(values) -> float:
    """Half-width of the 95% t-interval of the mean of ``values`` (nan below two values)."""
    from scipy.stats import t

    v = np.asarray(values, dtype=np.float64)
    if v.size < 2:
        return math.nan
    return float(t.ppf(0.975, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size))


def retrain(space, arch, data, args, seed: int) -> dict:
    """The fixed recipe under ``--retrain-seeds`` seeds (``1000 * seed + r``: fresh weights and
    batch order each): test accuracy's mean and 95% interval over the retrainings."""
    start = time.perf_counter()
    results = []
    for r in range(args.retrain_seeds):
        retrain_seed = 1000 * seed + r
        with C.isolated_seed(retrain_seed):
            model = Network(space, arch, C=args.retrain_channels, n_cells=args.retrain_cells,
                            in_channels=data.in_channels, n_classes=data.n_classes)
            results.append(train_network(model, data, TrainConfig(epochs=args.retrain_epochs),
                                         torch.Generator().manual_seed(retrain_seed)))
    tests = [r.test_accuracy for r in results]
    return {"test_accuracy": float(np.mean(tests)), "test_accuracies": tests, "test_ci95": t_interval(tests),
            "val_accuracy": float(np.mean([r.val_accuracy for r in results])),
            "parameters": results[0].parameters, "retrain_s": time.perf_counter() - start}


def run_seed(seed: int, labels: list[str], args, data, runs_dir: Path) -> tuple[list[dict], dict[float, float]]:
    probe = gym.make(ENV_ID, **env_kwargs(args)).unwrapped  # batches per epoch, before any reset
    plans = {label: plan(label, args, probe) for label in labels}
    warmups: dict[float, tuple[dict, float]] = {}
    for p in {p.warmup_epochs: p for p in plans.values()}.values():  # one per distinct warm-up
        warmups[p.warmup_epochs] = warm_up(args, seed, p)
        print(f"seed {seed}: warm-up {p.warmup_epochs:g} of {p.total_epochs:g} epochs in "
              f"{warmups[p.warmup_epochs][1]:.1f} s", flush=True)
    shift = seed % len(labels)
    order = labels[shift:] + labels[:shift]
    rows, cache = [], {}
    space = get_space(args.space)
    for label in order:
        state, warmup_s = warmups[plans[label].warmup_epochs]
        row = {**search_one(label, args, seed, state, runs_dir), "warmup_epochs": plans[label].warmup_epochs,
               "warmup_s": warmup_s}
        if "error" not in row:
            row["total_s"] = warmup_s + row["wall_time_s"]
            key = tuple(row["derived_arch"])
            if key not in cache:
                cache[key] = retrain(space, np.array(key), data, args, seed)
            row.update(cache[key])
            print(f"  {label:<15} warm-up {row['warmup_epochs']:5.3g} ep  search {row['wall_time_s']:7.1f} s  "
                  f"{row['steps']:5d} steps  {row['forward_passes']:6d} passes  "
                  f"test acc {row['test_accuracy']:.4f}", flush=True)
        else:
            print(f"  {label:<15} FAILED: {row['error']}", flush=True)
        rows.append(row)
    C.add_time_ratios(rows, REFERENCE)
    ratios = "  ".join(f"{r['controller']} {r['time_ratio']:.2f}x" for r in rows if "time_ratio" in r)
    print(f"seed {seed}: search time / {REFERENCE}: {ratios}", flush=True)
    return rows, {epochs: seconds for epochs, (_, seconds) in warmups.items()}


def summarise(labels: list[str], rows: list[dict]) -> list[dict]:
    summary = []
    for label in labels:
        mine = [r for r in rows if r["controller"] == label]
        ok = [r for r in mine if "error" not in r]
        summary.append({
            "controller": label, "kind": C.kind(label), "seeds": len(ok), "failed": len(mine) - len(ok),
            "errors": sorted({r["error"] for r in mine if "error" in r}),
            "wall_time_s": C.stats([r["wall_time_s"] for r in ok]),
            "warmup_epochs": C.stats([r["warmup_epochs"] for r in ok]),
            "warmup_s": C.stats([r["warmup_s"] for r in ok]),
            "total_s": C.stats([r["total_s"] for r in ok]),
            "weight_steps": C.stats([r["weight_steps"] for r in ok]),
            "time_ratio": C.stats([r.get("time_ratio", math.nan) for r in ok]),
            "evaluations": C.stats([r["evaluations"] for r in ok]),
            "forward_passes": C.stats([r["forward_passes"] for r in ok]),
            "steps": C.stats([r["steps"] for r in ok]),
            "supernet_val_loss": C.stats([r["supernet_val_loss"] for r in ok]),
            "test_accuracy": C.stats([r["test_accuracy"] for r in ok]),
            "test_accuracy_ci95": t_interval([r["test_accuracy"] for r in ok]),
            "retrain_ci95": C.stats([r["test_ci95"] for r in ok]),
            "parameters": C.stats([r["parameters"] for r in ok]),
            "param_free_share_normal": C.stats([r["param_free_share"].get("normal", math.nan) for r in ok]),
            "distinct_archs": len({tuple(r["derived_arch"]) for r in ok}),
        })
    return summary


def table(summary: list[dict]) -> str:
    rows = []
    for s in summary:
        if not s["seeds"]:
            rows.append([s["controller"], s["kind"], "failed: " + "; ".join(s["errors"])[:80]] + [""] * 12)
            continue
        rows.append([s["controller"], s["kind"], f"{s['warmup_epochs']['mean']:.3g}", C.pm(s["warmup_s"], ".1f"),
                     C.pm(s["wall_time_s"], ".1f"), C.pm(s["total_s"], ".1f"), C.pm(s["time_ratio"], ".2f"),
                     f"{s['forward_passes']['mean']:.0f}", f"{s['steps']['mean']:.0f}", C.pm(s["supernet_val_loss"], ".3f"),
                     C.pm(s["test_accuracy"], ".2f", scale=100), ci(s["test_accuracy"]["mean"], s["test_accuracy_ci95"]),
                     ci(None, s["retrain_ci95"]["mean"]), f"{s['parameters']['mean'] / 1e3:.1f}",
                     f"{s['param_free_share_normal']['mean']:.2f}"])
    return C.markdown_table(["controller", "kind", "warm-up epochs", "warm-up s", "search s", "total s",
                             f"search time / {REFERENCE}", "forward passes", "steps",
                             "supernet val CE of derived", "retrained test acc %", "95% CI of the mean %",
                             "retrain noise ± % (per cell)", "params k", "param-free share (normal)"], rows,
                            "ll" + "r" * 13)


def ci(mean, half: float) -> str:
    """``[low, high]`` in % around ``mean``, or ``± half`` without a mean; "n/a" when unknown."""
    if half is None or not math.isfinite(half):
        return "n/a"
    return f"± {100 * half:.2f}" if mean is None else f"[{100 * (mean - half):.2f}, {100 * (mean + half):.2f}]"


def plot(summary: list[dict], title: str):
    fig, axes = C.figure(2, width=6.5)
    ok = [s for s in summary if s["seeds"]]
    colour = C.colours([s["controller"] for s in ok])
    ax = axes[0][0]
    for s in ok:
        ax.errorbar(s["time_ratio"]["mean"], s["test_accuracy"]["mean"] * 100, xerr=s["time_ratio"]["std"],
                    yerr=s["test_accuracy"]["std"] * 100, fmt="o", color=colour[s["controller"]], capsize=3,
                    label=s["controller"])
        ax.annotate(s["controller"], (s["time_ratio"]["mean"], s["test_accuracy"]["mean"] * 100),
                    textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xscale("log")
    from matplotlib.ticker import FormatStrFormatter, LogLocator

    ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 3.0, 5.0)))
    ax.xaxis.set_major_formatter(FormatStrFormatter("%.1f"))
    ax.xaxis.set_minor_formatter(FormatStrFormatter(""))
    ax.set_xlabel(f"architecture-phase wall time / {REFERENCE} (same seed)")
    ax.set_ylabel("retrained test accuracy % (mean ± std over seeds)")
    ax.set_title("accuracy vs search time")
    ax.grid(alpha=0.3, which="both")
    ax = axes[0][1]
    names = [s["controller"] for s in ok]
    ax.barh(names, [s["wall_time_s"]["mean"] for s in ok], xerr=[s["wall_time_s"]["std"] for s in ok],
            color=[colour[n] for n in names])
    for i, s in enumerate(ok):
        ax.annotate(f"{s['forward_passes']['mean']:.0f} passes", (s["wall_time_s"]["mean"], i),
                    textcoords="offset points", xytext=(4, -3), fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("architecture-phase wall time, s (mean ± std)")
    ax.set_title("search time and forward passes")
    ax.grid(alpha=0.3, axis="x")
    fig.suptitle(title, fontsize=10)
    return fig


def describe(args, rows: list[dict]) -> str:
    """One line: the data, supernet and budgets of the run."""
    total = next((r["protocol_plan"]["total_epochs"] for r in rows if r.get("protocol_plan")), math.nan)
    return (f"{args.dataset}, space {args.space}, supernet C={args.supernet_channels} x {args.supernet_cells} cells, "
            f"batch {args.batch_size}; protocol {args.protocol}: every method {total:.3g} epochs of supernet "
            f"training (budget: {args.warmup_epochs:g} warm-up epochs + {args.epochs:g} search epochs over the "
            f"validation split), split per method, cosine weight lr over all of it; retrain {args.retrain_epochs} epochs, "
            f"C={args.retrain_channels}, {args.retrain_cells} cells, {args.retrain_seeds} retraining seeds per cell; "
            f"{args.seeds} seed(s). Digits cannot rank controllers: every cell retrains to 98-99 %, within "
            f"each other's intervals; see ground_truth.py for ranking on MNIST-1D")


def main(argv=None) -> None:
    args = parse_args(argv)
    labels = C.select(list(LABELS), args.controllers)
    machine = C.start(args)
    print(f"search_cost: {len(labels)} controllers x {args.seeds} seeds; protocol {args.protocol}, budget "
          f"{args.warmup_epochs:g} warm-up + {args.epochs:g} search epochs, retrain {args.retrain_epochs} epochs (C={args.retrain_channels}, "
          f"{args.retrain_cells} cells)\n{C.machine_line(machine)}", flush=True)
    data = load_dataset(args.dataset)
    rows, warmups = [], []
    with tempfile.TemporaryDirectory(prefix="search_cost_") as tmp:
        runs_dir = Path(args.runs_dir) if args.runs_dir else Path(tmp)
        for seed in range(args.seeds):
            seed_rows, warmup_s = run_seed(seed, labels, args, data, runs_dir)
            rows += seed_rows
            warmups.append(warmup_s)
    machine = C.finish_machine_info(machine)
    summary = summarise(labels, rows)
    text = table(summary)
    budget = describe(args, rows)
    print(f"\n{budget}\n{C.machine_line(machine)}\n{text}")
    markdown = f"{budget}  \n{C.machine_line(machine)}\n\n{text}\n"
    payload = {"benchmark": "search_cost", "config": vars(args), "reference": REFERENCE, "machine": machine,
               "warmup_s": warmups, "summary": summary, "runs": rows}
    paths = C.write_outputs(args.out, payload, markdown, plot(summary, budget))
    print("wrote " + ", ".join(map(str, paths)))


if __name__ == "__main__":
    main()
