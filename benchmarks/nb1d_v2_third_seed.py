"""NAS-Bench-1D v2: a third seed on the good half, to measure its reliability target unbiased.

The target is worded on the cells above the median *by one seed*. With two seeds, the seed
that selects the half is also one of the two that are correlated: a cell selected because
seed 0 was lucky tends to fall back under seed 1, which lowers their correlation over the
half (``nb1d_v2_status.py``: 0.60 to 0.67 chosen by one v2 seed, 0.78 chosen by v1). A
third seed removes that: select by seed 0, correlate seeds 1 and 2, which took no part in
the selection. The Spearman-Brown of that correlation is the reliability of the mean of two
seeds on the good half, as the target means it.

The cells: the first ``--cells`` cells of the v2 build's reliability subset in the order the
build trains them (``nasgen.nb1d.build.plan_items``: a random sample of the space), which
must all have seeds 0 and 1 by now. Those above the median of seed 0 among them train seed 2
with the v2 build's own recipe (read from its ``build.json``), in their own build folder:
resumable, its rows committed like the build's.

Usage::

    python benchmarks/nb1d_v2_third_seed.py --cells 500 --num-cpus 2   # train (Ray) and report
    python benchmarks/nb1d_v2_third_seed.py --cells 500 --local        # one core, no Ray
    python benchmarks/nb1d_v2_third_seed.py --cells 500 --report       # report the rows there are
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np

import _common as C
from nasgen.nb1d import Recipe, build, read_rows
from nasgen.nb1d.build import read_settings
from nasgen.nb1d.table import spearman
from nasgen.searchspace import from_dict
from nb1d_v2_status import BUILD, TARGETS, final_accuracies, first_cells, interval
from recipe_pilots import spearman_brown

OUT = C.RESULTS / "nb1d-v2-seed2"
THIRD_SEED = 2


def accuracies(folder: Path) -> dict[tuple, dict[int, float]]:
    """``{cell: {seed: final test accuracy}}`` of a build folder as it stands (no lock)."""
    return final_accuracies(read_rows(folder / "rows.jsonl"))


def chosen_cells(build_dir: Path, n: int, acc: dict[tuple, dict[int, float]]) -> list[tuple]:
    """The cells above the median of seed 0 among the first ``n`` paired cells of the build
    (``acc``: its ``accuracies``).

    Raises:
        ValueError: some of the first ``n`` cells lack seed 0 or 1 (the build is not that far).
    """
    cells = first_cells(read_settings(build_dir), n)
    missing = [c for c in cells if not {0, 1} <= set(acc.get(c, {}))]
    if missing:
        raise ValueError(f"{len(missing)} of the first {n} cells of {build_dir} lack seed 0 or 1 so far; "
                         f"give a smaller --cells or wait for the build")
    seed0 = np.array([acc[c][0] for c in cells])
    return [c for c, a in zip(cells, seed0) if a > np.median(seed0)]


def figures(acc: dict[tuple, dict[int, float]], out: Path, chosen: list[tuple], rng: np.random.Generator) -> dict:
    """Seed correlations over the chosen cells that have all three seeds (``acc``: the v2
    build's ``accuracies``; ``out``: the third seed's build folder)."""
    third = accuracies(out)
    done = [c for c in chosen if THIRD_SEED in third.get(c, {})]
    seeds = np.array([[acc[c][0], acc[c][1], third[c][THIRD_SEED]] for c in done]).reshape(-1, 3)

    def pair(i: int, j: int) -> dict:
        rho = lambda s: spearman(s[:, i], s[:, j]) if len(s) >= 3 else math.nan  # noqa: E731
        r, (low, high) = rho(seeds), interval(seeds, rho, rng)
        return {"spearman": r, "spearman_ci": [low, high], "reliability": spearman_brown(r),
                "reliability_ci": [spearman_brown(low), spearman_brown(high)]}

    unbiased = pair(1, 2)
    by_seeds = {n: {"reliability": spearman_brown(unbiased["spearman"], n),
                    "reliability_ci": [spearman_brown(v, n) for v in unbiased["spearman_ci"]]} for n in range(1, 7)}
    needed = next((n for n, f in by_seeds.items() if f["reliability"] >= TARGETS["reliability"]), None)
    return {"cells": len(chosen), "trained": len(done), "unbiased": unbiased, "by_seeds": by_seeds,
            "seeds_for_target": needed,
            "with_selecting_seed": {"0-1": pair(0, 1), "0-2": pair(0, 2)},
            "mean_abs_diff_1_2": float(np.abs(seeds[:, 1] - seeds[:, 2]).mean()) if len(done) else math.nan}


def markdown(s: dict) -> str:
    def row(label: str, f: dict) -> list:
        ci = lambda p: "-" if not all(map(math.isfinite, p)) else f"[{p[0]:.2f}, {p[1]:.2f}]"  # noqa: E731
        return [label, f"{f['spearman']:.2f} {ci(f['spearman_ci'])}", f"{f['reliability']:.2f} {ci(f['reliability_ci'])}"]

    u = s["unbiased"]
    met = "met" if math.isfinite(u["reliability"]) and u["reliability"] >= TARGETS["reliability"] else "not met"
    body = [row("seeds 1 and 2 (took no part in the selection)", u),
            row("seeds 0 and 1 (seed 0 selected)", s["with_selecting_seed"]["0-1"]),
            row("seeds 0 and 2 (seed 0 selected)", s["with_selecting_seed"]["0-2"])]
    return "\n".join([
        f"The good half of v2 by one seed: the {s['cells']} cells above the median of seed 0 among the first "
        f"{s['first_cells']} paired cells of the build (a random sample of the space); {s['trained']} of them have "
        f"seed {THIRD_SEED} so far. Bootstrap 95 % intervals over cells.", "",
        C.markdown_table(["seeds correlated", "Spearman [95 % CI]", "reliability of 2 seeds [95 % CI]"], body, "lrr"),
        "", f"Target (reliability of the mean of two seeds >= 0.8 on the good half by one seed), measured without the "
            f"selecting seed: {u['reliability']:.2f}, {met}. Mean |seed 1 - seed 2| on these cells: "
            f"{100 * s['mean_abs_diff_1_2']:.2f} pp.", "",
        "Spearman-Brown from that correlation, the reliability of a good cell's mean of n seeds: "
        + "; ".join(f"{n}: {f['reliability']:.2f}" for n, f in s["by_seeds"].items() if n <= 4)
        + (f". The target needs {s['seeds_for_target']} seeds per good cell "
           f"({s['by_seeds'][s['seeds_for_target']]['reliability']:.2f} "
           f"[{s['by_seeds'][s['seeds_for_target']]['reliability_ci'][0]:.2f}, "
           f"{s['by_seeds'][s['seeds_for_target']]['reliability_ci'][1]:.2f}])."
           if s["seeds_for_target"] else ".")])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cells", type=int, required=True,
                        help="the first this many cells of the build's reliability subset (they must be paired)")
    parser.add_argument("--build", default=str(BUILD), help=f"the v2 build folder (default {BUILD})")
    parser.add_argument("--work", default=str(OUT), help=f"the third seed's build folder (default {OUT})")
    parser.add_argument("--out", default=str(C.RESULTS / "nb1d_v2_third_seed.json"),
                        help="where to write the JSON (and .md beside it)")
    parser.add_argument("--num-cpus", type=int, default=None, help="CPUs of a local Ray instance (default: all)")
    parser.add_argument("--local", action="store_true", help="train in this process without Ray")
    parser.add_argument("--report", action="store_true", help="train nothing; report the rows there are")
    args = parser.parse_args(argv)
    if args.cells < 4:
        parser.error(f"--cells {args.cells}: give at least 4 cells")
    build_dir, work = Path(args.build), Path(args.work)
    try:
        acc = accuracies(build_dir)
        chosen = chosen_cells(build_dir, args.cells, acc)
        if not args.report:
            settings = read_settings(build_dir)
            build(from_dict(settings["space"]), settings["dataset"], [THIRD_SEED], Recipe.from_dict(settings["recipe"]),
                  work, archs=[list(c) for c in chosen], local=args.local, num_cpus=args.num_cpus)
        result = {"first_cells": args.cells, **figures(acc, work, chosen, np.random.default_rng(0))}
    except (OSError, ValueError) as error:
        parser.exit(2, f"{parser.prog}: error: {error}\n")
    text = markdown(result)
    print(text)
    paths = C.write_outputs(args.out, {"benchmark": "nb1d_v2_third_seed", "build": args.build, "work": args.work,
                                       **result}, text)
    print("wrote " + ", ".join(map(str, paths)))


if __name__ == "__main__":
    main()
