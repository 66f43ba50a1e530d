"""NAS-Bench-1D recipe pilots: does a recipe rank the good half of the cells?

The shipped table tells a collapsed cell from a good one but cannot order the good ones
(its seeds agree at Spearman about 0.07 above the median). A pilot measures a candidate
recipe where that matters. Per recipe it trains, with ``nasgen.nb1d.build``:

- **the good half**: ``--archs`` cells drawn at random (seed 0) from the cells above the
  median of the ``--base`` table's seed-mean test accuracy, under seeds 0 and 1. The cells
  are chosen by the base table, so the choice is independent of the pilot's seeds. Figures:
  the seeds' Spearman correlation over these cells, its Spearman-Brown reliability for the
  mean of two seeds, the mean absolute seed difference and the good half's own p90 - p10;
- **a random sample** of ``--spread-archs`` cells of the whole space (seed 0 only), for the
  spread p90 - p10 of test accuracy over all cells.

A recipe is the base table's recipe with ``--recipe NAME:KEY=VALUE ...`` changed (values as
``nasgen bench build --recipe`` reads them; ``noise=X`` multiplies both of the mnist1d
generator's noise scales). It also prints the wall seconds per training on this device and
the projected build at that rate (every distinct cell with one seed, plus a second seed on
the good half). The builds live in ``--work`` and resume; a run prints the pilot table from
every build found there, so pilots run one at a time in the background add up.

With K good cells the Spearman correlation has a standard error of about 1/sqrt(K); at the
default 96 cells that is about 0.1 at r = 0, less near r = 0.8.

Usage::

    python benchmarks/recipe_pilots.py --recipe "n16k_noise2:train_size=16000 noise=2"
    python benchmarks/recipe_pilots.py --archs 512 --device cuda --archs-per-task 1024 --recipe ...
    python benchmarks/recipe_pilots.py --report          # the table from the builds in --work
    python benchmarks/recipe_pilots.py --quick           # 6 cells, 1 epoch: a smoke run
"""

from __future__ import annotations

import json
import math
import shlex
import time
from pathlib import Path

import numpy as np

import _common as C
from nasgen import cli as nasgen_cli
from nasgen.nb1d import Recipe, build, load, pack
from nasgen.nb1d.recipe import training_device
from nasgen.nb1d.table import spearman
from nasgen.searchspace import get as get_space

#: The candidate when no ``--recipe`` is given: the probes' best (16,000 signals, both noise
#: scales doubled, 10 epochs), to be confirmed on more cells.
DEFAULT_RECIPES = ("n16k_noise2:train_size=16000 noise=2",)
#: The v2 targets: the good half's two-seed reliability and the spread over all cells.
TARGETS = {"reliability_top_half": 0.8, "spread": 0.05}
#: The mnist1d generator's noise scales at noise=1 (the published dataset's).
NOISE_SCALES = {"iid_noise_scale": 0.02, "corr_noise_scale": 0.25}
FULL = {"archs": 96, "spread_archs": 64}
QUICK = {"archs": 6, "spread_archs": 10,
         "recipes": ("base:epochs=1 train_size=256 val_size=256 test_size=256",
                     "e2:epochs=2 train_size=256 val_size=256 test_size=256 noise=2")}
GOOD, SPREAD = "good-half", "random"


def parse_recipe(text: str, base: dict) -> tuple[str, Recipe]:
    """``NAME:KEY=VALUE ...`` as (name, the base recipe with those fields changed).

    ``noise=X`` scales both generator noise scales of mnist1d by X (into ``data_options``).
    ``record_epochs`` of the base is dropped when ``epochs`` changes and it is not given
    (the half-way and last epochs are recorded then).

    Raises:
        ValueError: no name, a bad name, or a bad field or value (naming it).
    """
    name, sep, changes = text.partition(":")
    if not sep or not name or not name.replace("-", "").replace("_", "").isalnum():
        raise ValueError(f"--recipe {text!r}: expected NAME:KEY=VALUE ... with a NAME of letters, digits, - and _")
    overrides = nasgen_cli.parse_key_values(shlex.split(changes), f"--recipe {name}")
    fields = dict(base)
    if "noise" in overrides:
        noise = overrides.pop("noise")
        if isinstance(noise, bool) or not isinstance(noise, (int, float)) or not 0 < noise <= 100:
            raise ValueError(f"--recipe {name}: noise must be a number in (0, 100], got {noise!r}")
        fields["data_options"] = {**fields.get("data_options", {}),
                                  **{k: v * noise for k, v in NOISE_SCALES.items()}}
    if "epochs" in overrides and "record_epochs" not in overrides:
        fields.pop("record_epochs", None)
    fields.update(overrides)
    try:
        return name, Recipe.from_dict(fields)
    except (TypeError, ValueError) as error:
        raise ValueError(f"--recipe {name}: {error}") from None


def good_half(table, k: int, seed: int = 0) -> np.ndarray:
    """``k`` cells drawn at random from those above the median of ``table``'s seed-mean test
    accuracy (all of them when there are fewer)."""
    mean = table.mean("test_accuracy")
    above = np.flatnonzero(np.isfinite(mean) & (mean > np.nanmedian(mean)))
    rng = np.random.default_rng(seed)
    return table.archs[np.sort(rng.choice(above, size=min(k, len(above)), replace=False))]


def random_cells(table, k: int, seed: int = 1) -> np.ndarray:
    """``k`` cells drawn uniformly from every distinct cell of ``table``."""
    rng = np.random.default_rng(seed)
    return table.archs[np.sort(rng.choice(len(table.archs), size=min(k, len(table.archs)), replace=False))]


def spearman_brown(r: float, n: int = 2) -> float:
    """Reliability of the mean of ``n`` seeds from the correlation ``r`` of two (nan for
    r <= 0, where the seeds share no ranking to add up)."""
    return n * r / (1 + (n - 1) * r) if math.isfinite(r) and r > 0 else math.nan


def pilot_figures(good: dict, spread: dict) -> dict:
    """The figures of one recipe from its packed good-half and random-sample manifests' tables."""
    acc = good["test_accuracy"]  # [K, 2]
    r = spearman(acc[:, 0], acc[:, 1])
    both = np.isfinite(acc).all(axis=1)
    mean = acc[both].mean(axis=1)
    all_acc = spread["test_accuracy"][:, 0]
    all_acc = all_acc[np.isfinite(all_acc)]
    p10, p50, p90 = np.percentile(all_acc, [10, 50, 90]) if all_acc.size else (math.nan,) * 3
    g10, g50, g90 = np.percentile(mean, [10, 50, 90]) if mean.size else (math.nan,) * 3
    return {"n_good": int(both.sum()), "n_random": int(all_acc.size),
            "spearman_top_half": r, "reliability_top_half": spearman_brown(r),
            "seed_gap_top_half": float(np.abs(acc[both, 0] - acc[both, 1]).mean()) if both.any() else math.nan,
            "good_median": float(g50), "good_spread": float(g90 - g10),
            "median": float(p50), "spread": float(p90 - p10), "p10": float(p10), "p90": float(p90)}


def projected_cpu_hours(seconds_per_training: float, distinct: int, second_seed: int) -> float:
    """Hours of the whole build at this rate: every distinct cell once, ``second_seed`` twice."""
    return seconds_per_training * (distinct + second_seed) / 3600.0


def packed(folder: Path, name: str):
    """The folder's table, loaded; packed again only when ``rows.jsonl`` holds rows the packed
    table lacks (rows are only appended), so a ``--report`` leaves committed tables as they are."""
    table = folder / f"{name}.json"
    if table.is_file():
        with open(folder / "rows.jsonl", "rb") as f:
            n_rows = sum(1 for line in f if line.strip())
        if json.loads(table.read_text()).get("n_rows") == n_rows:
            return load(table)
    return load(pack(folder, name))


def pilot(name: str, recipe: Recipe, args, base_table, device: str, per_task: int) -> dict:
    """Train (or resume) one recipe's two builds and pack them; returns its row."""
    space = get_space("nb201")
    start = time.perf_counter()
    parts = {}
    for part, archs, seeds in ((GOOD, good_half(base_table, args.archs), [0, 1]),
                               (SPREAD, random_cells(base_table, args.spread_archs), [0])):
        out = Path(args.work) / name / part
        build(space, "mnist1d", seeds, recipe, out, archs=archs, archs_per_task=per_task, local=not args.ray,
              device=device, threads=args.threads, progress=not args.quick)
        parts[part] = packed(out, f"{name}-{part}")
    return row_of(name, recipe, parts, time.perf_counter() - start)


def row_of(name: str, recipe: Recipe, parts: dict, wall_s: float) -> dict:
    last = lambda t: {"test_accuracy": t.metrics["test_accuracy"][:, :, -1]}
    figures = pilot_figures(last(parts[GOOD]), last(parts[SPREAD]))
    manifests = [t.manifest for t in parts.values()]
    rows = sum(m["n_rows"] for m in manifests)
    seconds = sum(m["build_time_s"] for m in manifests) / max(1, rows)
    cpu = sum(m.get("cpu_time_s", 0.0) for m in manifests) / max(1, rows)
    devices = sorted({b["device"] or "unknown" for m in manifests for b in m.get("builds", []) if b["rows"]})
    return {"recipe": name, "changes": recipe.to_dict(), "figures": figures, "rows": rows,
            "errors": sum(len(m["errors"]) for m in manifests), "s_per_training": seconds,
            "cpu_s_per_training": cpu, "devices": devices, "wall_s": wall_s,
            "targets": {k: ("met" if figures[k] >= v else "not met") if math.isfinite(figures[k]) else "n/a"
                        for k, v in TARGETS.items()}}


def found_pilots(work: Path) -> dict[str, Recipe]:
    """Every recipe with a build in ``work`` (its good-half build's recipe)."""
    out = {}
    for path in sorted(work.glob(f"*/{GOOD}/build.json")):
        out[path.parent.parent.name] = Recipe.from_dict(json.loads(path.read_text())["recipe"])
    return out


def main(argv=None) -> None:
    parser = C.base_parser(__doc__.split("\n\n")[0], "recipe_pilots.json", default_seeds=2, default_threads=1)
    parser.add_argument("--recipe", nargs="+", default=None, metavar="NAME:KEY=VALUE ...",
                        help="recipes to pilot, each the base table's recipe with fields changed; noise=X scales "
                             f"both mnist1d noise scales (default: {' '.join(DEFAULT_RECIPES)})")
    parser.add_argument("--archs", type=int, default=None,
                        help=f"good-half cells each recipe trains under seeds 0 and 1 (default {FULL['archs']})")
    parser.add_argument("--spread-archs", type=int, default=None,
                        help=f"random cells of the whole space each recipe trains under seed 0, for the spread "
                             f"(default {FULL['spread_archs']})")
    parser.add_argument("--base", default="nb201-mnist1d",
                        help="the table whose recipe the changes start from and whose top half is sampled")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda / cuda:N (stacked groups)")
    parser.add_argument("--archs-per-task", type=int, default=None,
                        help="cells trained side by side as one model (default: 1 on a CPU, 512 on a GPU)")
    parser.add_argument("--ray", action="store_true", help="train on all CPU cores as Ray tasks (CPU only)")
    parser.add_argument("--work", default=str(C.RESULTS / "recipe_pilots"),
                        help="folder of the pilot builds (resumable; default benchmarks/results/recipe_pilots, "
                             "committed so that a fresh machine resumes them)")
    parser.add_argument("--report", action="store_true",
                        help="train nothing: print and write the pilot table of the builds in --work")
    args = parser.parse_args(argv)
    if args.seeds not in (None, 2):
        parser.error(f"--seeds: a pilot trains seeds 0 and 1 for the seed-agreement figures, got {args.seeds}")
    if args.controllers is not None:
        parser.error("--controllers: a recipe pilot trains no controller")
    sizes = QUICK if args.quick else FULL
    args.archs = sizes["archs"] if args.archs is None else args.archs
    args.spread_archs = sizes["spread_archs"] if args.spread_archs is None else args.spread_archs
    if args.archs < 4:
        parser.error(f"--archs must be >= 4 (a rank correlation needs a few cells), got {args.archs}")
    if args.spread_archs < 10:
        parser.error(f"--spread-archs must be >= 10 (for the 10th and 90th percentiles), got {args.spread_archs}")
    if args.quick and Path(args.work).resolve() == (C.RESULTS / "recipe_pilots").resolve():
        parser.error("--quick needs its own --work: the shipped pilot builds are not for smoke runs")
    try:
        device = str(training_device(args.device))
        base_table = load(args.base)
        base = base_table.manifest["recipe"]
        texts = [] if args.report else (args.recipe or list(QUICK["recipes"] if args.quick else DEFAULT_RECIPES))
        recipes = [parse_recipe(text, base) for text in texts]
    except (ValueError, nasgen_cli.UsageError) as error:
        parser.error(str(error))
    names = [name for name, _ in recipes]
    if len(set(names)) != len(names):
        parser.error(f"--recipe: names must differ, got {', '.join(names)}")
    if args.ray and device != "cpu":
        parser.error("--ray trains on CPUs; give --device cpu or drop --ray")
    per_task = args.archs_per_task or (1 if device == "cpu" else 512)
    machine = C.start(args)
    distinct = len(base_table.archs)
    print(f"recipe pilots: {len(recipes)} recipe(s) x ({args.archs} good-half cells x seeds 0,1 + "
          f"{args.spread_archs} random cells x seed 0) on {device}{' (Ray)' if args.ray else ''}, {per_task} "
          f"cell(s) per task\n{C.machine_line(machine)}", flush=True)
    rows = []
    for name, recipe in recipes:
        try:
            row = pilot(name, recipe, args, base_table, device, per_task)
        except ValueError as error:  # e.g. --work holds this recipe's build with other settings
            parser.exit(2, f"{parser.prog}: error: recipe {name}: {error}\n")
        rows.append(row)
        print(line(row, distinct), flush=True)
    # Every pilot in --work, the ones run before too, in one table.
    for name, recipe in found_pilots(Path(args.work)).items():
        if name in names:
            continue
        folders = {part: Path(args.work) / name / part for part in (GOOD, SPREAD)}
        if not all((folder / "rows.jsonl").is_file() for folder in folders.values()):
            continue  # a pilot still training its first part
        parts = {part: packed(folder, f"{name}-{part}") for part, folder in folders.items()}
        rows.append(row_of(name, recipe, parts, math.nan))
    machine = C.finish_machine_info(machine)
    text = markdown(rows, base, distinct, args.archs)
    describe = (f"Each recipe: {args.archs} cells drawn from the top half of {args.base} (by its seed-mean test "
                f"accuracy) x seeds 0,1, and {args.spread_archs} random cells x seed 0, on MNIST-1D; recipes over "
                f"{args.base}'s. Reliability = Spearman-Brown of the two seeds' Spearman (the mean of two seeds); "
                f"spread = p90 - p10 of test accuracy over the random cells. Projected build = CPU s per training x "
                f"({distinct} + {distinct // 2}) trainings (every cell once, the good half twice). Targets: "
                f"reliability >= 0.8 above the median, spread >= 5 pp.")
    print(f"\n{describe}\n{C.machine_line(machine)}\n{text}")
    paths = C.write_outputs(args.out, {"benchmark": "recipe_pilots", "config": vars(args), "machine": machine,
                                       "base": base, "rows": rows},
                            f"{describe}  \n{C.machine_line(machine)}\n\n{text}\n")
    print("wrote " + ", ".join(map(str, paths)))


def line(row: dict, distinct: int) -> str:
    f = row["figures"]
    return (f"  {row['recipe']:14s} good half: Spearman {f['spearman_top_half']:+.2f} (reliability "
            f"{f['reliability_top_half']:+.2f}), |seed diff| {100 * f['seed_gap_top_half']:.2f} pp; all cells: "
            f"median {100 * f['median']:.1f}%, spread {100 * f['spread']:.2f} pp; {row['s_per_training']:.2f} s/training"
            f" wall, projected build {projected_cpu_hours(row['cpu_s_per_training'], distinct, distinct // 2):.1f} "
            f"CPU h")


def markdown(rows: list[dict], base: dict, distinct: int, archs: int) -> str:
    return C.markdown_table(
        ["recipe", "changes over the base", "good cells", "Spearman, good half", "reliability (2 seeds)",
         "mean abs seed diff pp", "median % (all)", "spread pp (all)", "wall s per training", "CPU s per training",
         "projected build, CPU h", "trained on", "targets met"],
        [[r["recipe"], changes(r["changes"], base), r["figures"]["n_good"],
          f"{r['figures']['spearman_top_half']:+.2f}", num(r["figures"]["reliability_top_half"]),
          f"{100 * r['figures']['seed_gap_top_half']:.2f}", f"{100 * r['figures']['median']:.1f}",
          f"{100 * r['figures']['spread']:.2f}", f"{r['s_per_training']:.2f}", f"{r['cpu_s_per_training']:.2f}",
          f"{projected_cpu_hours(r['cpu_s_per_training'], distinct, distinct // 2):.1f}",
          ", ".join(r["devices"]) or "-",
          f"{sum(v == 'met' for v in r['targets'].values())}/{len(r['targets'])}"] for r in rows],
        "llrrrrrrrrrll")


def num(value: float) -> str:
    return f"{value:+.2f}" if math.isfinite(value) else "-"


def changes(recipe: dict, base: dict) -> str:
    """The fields of ``recipe`` that differ from ``base``, as ``KEY=VALUE`` (``-`` for none)."""
    diff = [f"{k}={recipe[k]}" for k in recipe if k != "record_epochs" and recipe[k] != base.get(k)]
    return " ".join(diff) or "-"


if __name__ == "__main__":
    main()
