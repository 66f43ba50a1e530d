"""Train, ahead of a build's order, the planned seeds of every cell a comparison judged.

A comparison judged by a sampled table (``nasgen compare --table SAMPLED.json``) reads some
cells with fewer seeds than the finished table will give them (a good cell's good seeds come
late in the build's order). This trains each judged cell (``table_arch`` and ``policy_arch``
of every task or run) with the seeds the build's plan gives it, good seeds included, into a
folder of its own that starts from the build's rows for those cells, so only what is
missing trains; ``--merge`` then folds the new rows into the build (refused while the build
runs). A snapshot packed afterwards judges those cells as the finished table will, and
``benchmarks/rejudge.py RESULTS --table SNAPSHOT.json`` rejudges the rows with it.

Usage::

    python benchmarks/train_judged_cells.py benchmarks/results/compare-nb1d-v2/report.json \\
        --build benchmarks/results/nb1d-v2-build --work /tmp/judged --num-cpus 2 --merge
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from nasgen.nb1d import Recipe, build, canonicalizer, merge, read_rows
from nasgen.nb1d.build import read_settings
from nasgen.searchspace import from_dict


def judged_cells(results: dict, space) -> list[list[int]]:
    """The distinct canonical cells of a compare report (``tasks``) or a ground-truth run
    (``runs``), sorted."""
    rows = results.get("tasks", results.get("runs"))
    if not isinstance(rows, list):
        raise ValueError("expected the JSON of nasgen compare (tasks) or benchmarks/ground_truth.py (runs)")
    canonical = canonicalizer(space)
    cells = {canonical(space.validate(r[k])) for r in rows for k in ("table_arch", "policy_arch")
             if r.get(k) is not None}
    return [list(c) for c in sorted(cells)]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", help="nasgen compare's report.json or benchmarks/ground_truth.py's JSON")
    parser.add_argument("--build", required=True, help="the build folder whose plan and recipe the cells train with")
    parser.add_argument("--work", required=True, help="the folder the judged cells train into (resumable)")
    parser.add_argument("--num-cpus", type=int, default=None, help="CPUs of a local Ray instance (default: all)")
    parser.add_argument("--local", action="store_true", help="train in this process without Ray")
    parser.add_argument("--merge", action="store_true", help="then merge the new rows into --build")
    args = parser.parse_args(argv)
    build_dir, work = Path(args.build), Path(args.work)
    try:
        settings = read_settings(build_dir)
        space = from_dict(settings["space"])
        cells = judged_cells(json.loads(Path(args.results).read_text()), space)
        if not cells:
            raise ValueError(f"{args.results} judged no cell")
        if not (work / "rows.jsonl").exists():  # start from the build's rows of these cells: train only the rest
            wanted = set(map(tuple, cells))
            have = [r for r in read_rows(build_dir / "rows.jsonl")
                    if r.get("error") is None and tuple(r["arch"]) in wanted]
            work.mkdir(parents=True, exist_ok=True)
            (work / "rows.jsonl").write_text("".join(json.dumps({**r, "session": None}) + "\n" for r in have))
        print(f"{len(cells)} judged cells; training the seeds the plan of {build_dir} gives them", flush=True)
        # The first seed on every cell (a good one then gets its good seeds), not the build's
        # other planned seeds: a cell outside its reliability subset gets only the first.
        build(space, settings["dataset"], settings["seeds"][:1], Recipe.from_dict(settings["recipe"]), work,
              archs=cells, local=args.local, num_cpus=args.num_cpus, good_seeds=settings.get("good_seeds"),
              good_above=settings.get("good_above"))
        if args.merge:
            print(f"merged {merge(work, build_dir)} row(s) of {work} into {build_dir}")
    except (OSError, ValueError, KeyError) as error:
        parser.exit(2, f"{parser.prog}: error: {error}\n")


if __name__ == "__main__":
    main()
