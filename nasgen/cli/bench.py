"""``nasgen bench build``, ``pack``, ``merge``, ``info`` and ``query``."""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

from nasgen import searchspace
from nasgen.config import parse_key_values
from nasgen.nb1d.archs import all_distinct, plan_archs
from nasgen.nb1d.judge import Judge
from nasgen.nb1d.build import build, merge, pack
from nasgen.nb1d.recipe import Recipe, training_device
from nasgen.nb1d.manifest import plain_name
from nasgen.nb1d.table import SHIPPED_DIR, format_summary, load
from nasgen.sweep import parse_seeds

from . import args as a
from .args import UsageError


def _fail(message: str):
    raise UsageError(message)


def cmd_build(args: argparse.Namespace) -> int:
    """Validate everything, then build, pack and print the figures."""
    try:
        space_name, dataset = args.space, searchspace.check_dataset_name(args.dataset)
        searchspace.check_space_name(space_name)
    except ValueError as error:
        _fail(str(error))
    seeds = parse_seeds(args.seeds)
    try:
        recipe = Recipe.from_dict(parse_key_values(args.recipe, "--recipe"))
    except (TypeError, ValueError) as error:
        _fail(f"--recipe: {error}")
    if args.address and args.num_cpus is not None:
        _fail("--num-cpus sizes a local Ray instance; it does not apply with --address")
    if args.local and (args.address or args.num_cpus is not None):
        _fail("--local trains in this process without Ray; --address and --num-cpus do not apply")
    try:
        device = str(training_device(args.device))
    except ValueError as error:
        _fail(f"--device: {error}")
    for flag, value in (("--num-cpus", args.num_cpus), ("--limit-archs", args.limit_archs),
                        ("--archs-per-task", args.archs_per_task),
                        ("--reliability-archs", args.reliability_archs)):
        if value is not None and value < 1:
            _fail(f"{flag} must be >= 1, got {value}")
    name = args.name or f"{space_name}-{dataset}"
    try:
        plain_name(name, "--name")
    except ValueError as error:
        _fail(str(error))
    try:
        if not args.local:
            import ray  # noqa: F401
    except ImportError:
        _fail('nasgen bench build needs Ray, which is not installed; pip install "nasgen[distributed]"')
    space = searchspace.get(space_name)
    distinct = all_distinct(space)
    if args.limit_archs is not None and distinct is not None and args.limit_archs > len(distinct):
        _fail(f"--limit-archs {args.limit_archs} is more than the {len(distinct)} distinct architectures of "
              f"space {space_name}")
    try:
        archs = len(plan_archs(space, args.limit_archs))
    except ValueError as error:
        _fail(str(error))
    good_seeds = None
    if args.good_seeds is not None or args.good_above is not None:
        if args.good_seeds is None or args.good_above is None:
            _fail("--good-seeds and --good-above go together: the seeds of a good cell, and the first seed's "
                  "final test accuracy a good cell is above")
        good_seeds = parse_seeds(args.good_seeds, flag="--good-seeds")
        if not 0 <= args.good_above < 1:
            _fail(f"--good-above must be a test accuracy in [0, 1), got {args.good_above}")
    subset = archs if args.reliability_archs is None else min(args.reliability_archs, archs)
    good = (f", plus the seeds of {','.join(map(str, good_seeds))} a cell lacks when its seed {seeds[0]} ends above "
            f"{100 * args.good_above:g} % test accuracy (as many as seed {seeds[0]} finds good cells)"
            if good_seeds else "")
    print(f"bench build: {archs + subset * (len(seeds) - 1):,} trainings ({archs:,} distinct architectures with "
          f"seed {seeds[0]}" + (f", {subset:,} of them with the other {len(seeds) - 1} seed(s)" if len(seeds) > 1 else "")
          + f"){good}, {recipe.epochs} epochs each; the bar shows the rate and the time left", flush=True)
    out = Path(args.out or f"bench-{name}")
    started = time.perf_counter()
    try:
        build(space, dataset, seeds, recipe, out, address=args.address, num_cpus=args.num_cpus,
              limit_archs=args.limit_archs, archs_per_task=args.archs_per_task, progress=not args.no_progress,
              local=args.local, threads=getattr(args, "threads", 1), reliability_archs=args.reliability_archs,
              device=device, move_bad_rows=args.move_bad_rows, good_seeds=good_seeds, good_above=args.good_above)
        manifest_path = pack(out, name, SHIPPED_DIR if args.ship else out)
    except ValueError as error:
        _fail(str(error))
    manifest = json.loads(manifest_path.read_text())
    print(format_summary(manifest))
    f = manifest["figures"]
    spread = f["spread"]
    print(f"figures: spread p90-p10 {100 * spread:.2f} pp; Spearman seeds all {f['spearman_all']:.3f}, "
          f"above median {f['spearman_top_half']:.3f}; build time {manifest['build_time_s'] / 60:.1f} min "
          f"(this start {(time.perf_counter() - started) / 60:.1f} min)" if math.isfinite(spread)
          else "figures: no finished row")
    print(f"table: {manifest_path} and {manifest_path.with_suffix('.npz')}")
    if manifest["errors"]:
        print(f"nasgen bench build: {len(manifest['errors'])} (architecture, seed) rows failed; "
              f"start the same command again to retry them", file=sys.stderr)
        return 1
    return 0


def cmd_pack(args: argparse.Namespace) -> int:
    """Pack the rows a build folder holds now: a sampled table when the build is cut short."""
    if not (Path(args.out) / "build.json").is_file():
        _fail(f"{args.out} is not a build folder (no build.json)")
    try:
        manifest_path = pack(args.out, args.name, SHIPPED_DIR if args.ship else args.out)
        table = load(manifest_path)
    except ValueError as error:
        _fail(str(error))
    print(table.summary())
    print(f"table: {manifest_path} and {manifest_path.with_suffix('.npz')}")
    return 0


def cmd_merge(args: argparse.Namespace) -> int:
    """Append the rows a copy of a build folder trained elsewhere."""
    for folder in (args.src, args.out):
        if not (Path(folder) / "build.json").is_file():
            _fail(f"{folder} is not a build folder (no build.json)")
    try:
        added = merge(args.src, args.out)
    except ValueError as error:
        _fail(str(error))
    print(f"merged {added} row(s) of {args.src} into {args.out}; `nasgen bench build` with the same settings and "
          f"--out {args.out} packs them (or resumes the rest)")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    """Print a table's summary."""
    try:
        table = load(args.table)
        best = table.best("test_accuracy")
    except ValueError as error:
        _fail(str(error))
    print(table.summary())
    print(f"best architecture by test accuracy: {table.space.describe(best['arch'])} ({100 * best['value']:.2f}%; "
          f"encoding {best['arch']})")
    return 0


def parse_arch(table, text: str):
    """``text`` as an architecture of ``table``'s space: a NAS-Bench-201 string (``|op~0|+|...|``)
    or its encoding, integers separated by commas or spaces."""
    text = text.strip()
    if text.startswith("|"):
        return table.space.from_genotype(text)
    try:
        values = [int(v) for v in text.replace(",", " ").split()]
    except ValueError:
        raise ValueError(f"architecture {text[:80]!r}: expected a NAS-Bench-201 string or integers "
                         f"separated by commas, e.g. {','.join(map(str, table.archs[0].tolist()))}") from None
    return table.space.validate(values)


def cmd_query(args: argparse.Namespace) -> int:
    """Print what the table knows of one architecture, with its noise floor."""
    try:
        table = load(args.table)
        arch = parse_arch(table, args.arch)
        answer = table.query(arch)
        verdict = Judge(table, table.space).judge(arch)
    except ValueError as error:
        _fail(str(error))
    if args.json:
        print(json.dumps({**answer, "verdict": verdict}, default=str))
        return 0
    mean, se = answer["mean"], answer["standard_error"]

    def pm(metric: str) -> str:
        noise = f" ± {100 * se[metric]:.2f} (SE)" if math.isfinite(se[metric]) else ""
        return f"{100 * mean[metric]:.2f}%{noise}"

    print(f"table {table.name}: {table.space.describe(answer['arch'])} (encoding {answer['arch']}), "
          f"{answer['params']} parameters")
    for seed, row in answer["per_seed"].items():
        failed = " (failed)" if not math.isfinite(row["test_accuracy"]) else ""
        print(f"  seed {seed}: test {100 * row['test_accuracy']:.2f}%, validation {100 * row['val_accuracy']:.2f}%"
              f"{failed}")
    print(f"mean over {answer['n_seeds']} seed(s) at epoch {answer['epoch']}: test {pm('test_accuracy')}, "
          f"validation {pm('val_accuracy')}")
    regret_se = verdict["test_regret_se"]
    noise = f" ± {100 * regret_se:.2f} (SE)" if math.isfinite(regret_se) else ""
    print(f"regret {100 * verdict['test_regret']:.2f} pp{noise} against the best "
          f"{100 * verdict['best_test_accuracy']:.2f}%; percentile {verdict['percentile']:.1f} of "
          f"{verdict['n_archs']} architectures")
    return 0


def add_bench_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``bench`` with its ``build``, ``pack``, ``merge``, ``info`` and ``query`` subcommands.

    Args:
        subparsers: what ``ArgumentParser.add_subparsers()`` returned.

    Returns:
        The ``bench`` parser.
    """
    bench = subparsers.add_parser("bench", help="NAS-Bench-1D: build or inspect a ground-truth table",
                                  description="Build a table of stand-alone training results of every distinct "
                                              "architecture on Ray, or print a table's summary.")
    sub = bench.add_subparsers(dest="bench_command", required=True)
    b = sub.add_parser("build", help="train every distinct architecture (resumable) and pack the table",
                       description="Train every distinct architecture of --space on --dataset with one recipe per "
                                   "seed as Ray tasks. Rows stream to OUT/rows.jsonl; the same command again "
                                   "resumes. At the end the rows are packed into OUT/NAME.npz + NAME.json "
                                   "and the figures printed.")
    b.add_argument("--space", default="nb201", help="search-space preset (default: nb201)")
    b.add_argument("--dataset", default="mnist1d", help="dataset (default: mnist1d)")
    b.add_argument("--seeds", default="0,1", help="a count or a list 0,1 (default: 0,1)")
    b.add_argument("--recipe", nargs="*", metavar="KEY=VALUE", help="recipe fields over the defaults "
                   "(epochs, train_size, C, cells_per_stage, lr, batch_size, record_epochs, data_options, ...)")
    b.add_argument("--address", help="join this Ray cluster (auto or HOST:PORT); default: a local instance")
    b.add_argument("--num-cpus", type=int, help="CPUs of the local Ray instance (default: all)")
    b.add_argument("--out", help="build directory (default: bench-NAME)")
    b.add_argument("--name", help="table name (default: SPACE-DATASET)")
    b.add_argument("--limit-archs", type=int, help="train only this many distinct architectures, drawn at random")
    b.add_argument("--archs-per-task", type=int, default=1,
                   help="(architecture, seed) trainings per Ray task; those of one seed train side by side "
                        "as one stacked model (nb201 spaces). On a CPU 1 is fastest (see the README)")
    b.add_argument("--reliability-archs", type=int,
                   help="train the seeds after the first only on this many distinct architectures drawn at "
                        "random (trained first, so a cut build has the seed-agreement figures), then the first seed on the "
                        "rest in a random order; default: all")
    b.add_argument("--good-seeds", metavar="SEEDS",
                   help="with --good-above: a cell whose first seed ends above that test accuracy also trains "
                        "these seeds (e.g. 0,1,2,3), right after its first; a build folder started without them may "
                        "gain them")
    b.add_argument("--good-above", type=float, metavar="ACC",
                   help="with --good-seeds: the first seed's final test accuracy (0-1) a good cell is above, fixed "
                        "for the whole build (e.g. the median of the first seed over a random sample)")
    b.add_argument("--local", action="store_true", help="train in this process, one after the other, without Ray")
    b.add_argument("--device", default="cpu",
                   help="cpu (default), or cuda / cuda:N with --local: each task's items train as one stacked "
                        "model on the GPU, so give a large --archs-per-task (e.g. 512). Float32 without TF32; "
                        "build.json records each start's device")
    b.add_argument("--move-bad-rows", action="store_true",
                   help="move lines of OUT/rows.jsonl that are not rows of this build (a corrupt line, another "
                        "space's architecture, another seed) into OUT/rows.rejected.jsonl instead of stopping")
    b.add_argument("--ship", action="store_true", help="write the packed table into the package's tables folder")
    b.add_argument("--no-progress", action="store_true", help="no progress bar")
    a.add_threads_argument(b)
    b.set_defaults(func=cmd_build)
    k = sub.add_parser("pack", help="pack the rows a build folder holds now (a sampled table if cut short)",
                       description="Pack OUT/rows.jsonl into OUT/NAME.npz + NAME.json without training: a build "
                                   "cut short gives a sampled table, which judges searches with fill and shows "
                                   "its figures. Refused while a build runs in OUT.")
    k.add_argument("out", help="the build folder")
    k.add_argument("--name", required=True, help="the table's name")
    k.add_argument("--ship", action="store_true", help="write the packed table into the package's tables folder")
    k.set_defaults(func=cmd_pack)
    m = sub.add_parser("merge", help="append the rows a copy of a build folder trained elsewhere (a GPU), or the "
                                     "cells a sampled table's judge trained on demand",
                       description="Append to build folder OUT the finished rows of SRC that OUT lacks: SRC is a "
                                   "copy of OUT trained further on another machine (a lent GPU, a cluster) while "
                                   "OUT may have grown, or the fill folder where a judge or Tabular-v0 trained the "
                                   "cells a table packed from OUT lacked (nasgen compare's OUT/fill, a run's "
                                   "ground_truth_trained), or a build of chosen cells (nasgen.nb1d.build(archs=...)). Both must share space, dataset and "
                                   "recipe, and SRC may train no seed OUT does not; its plan may differ. Each row "
                                   "keeps the session (device, versions) that trained it.")
    m.add_argument("src", help="the build folder trained elsewhere, or a fill folder")
    m.add_argument("out", help="the build folder to append to")
    m.set_defaults(func=cmd_merge)
    i = sub.add_parser("info", help="print a table's summary")
    i.add_argument("table", nargs="?", default="nb201-mnist1d", help="shipped table name or path (default: nb201-mnist1d)")
    i.set_defaults(func=cmd_info)
    q = sub.add_parser("query", help="print one architecture's row: per seed, mean ± standard error, regret",
                       description="Look one architecture up in a table: its accuracy per training seed, the "
                                   "mean with its standard error (the table's noise floor), its regret against "
                                   "the table's best and its percentile.")
    q.add_argument("arch", help="a NAS-Bench-201 string (|nor_conv_3x3~0|+|...|) or the encoding, e.g. 3,1,0,0,4,4")
    q.add_argument("--table", default="nb201-mnist1d", help="shipped table name or path (default: nb201-mnist1d)")
    q.add_argument("--json", action="store_true", help="print the row and the verdict as one JSON object")
    q.set_defaults(func=cmd_query)
    return bench
