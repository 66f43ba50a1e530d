"""NAS-Bench-1D v2 against its targets, from the build's rows as they stand.

Reads ``rows.jsonl`` of the v2 build folder (``benchmarks/nb1d_v2.sh``; no lock needed, nothing
trained), so it runs beside the build. The build trains 2,000 random cells with seeds 0 and 1
first, each cell's seeds in a row, so at any point its paired cells are a random sample of the
space. Figures, each with a bootstrap 95 % interval over cells:

- **good half**: Spearman of the two seeds over the paired cells above the median, selected
  by seed 0, by seed 1, and by the shipped v1 table's seed mean (a selection independent of
  both v2 seeds, as the recipe pilots made it), and its Spearman-Brown reliability for the
  mean of two seeds. Target: >= 0.8.
- **good seeds** (the build's ``good_seeds``: a cell whose seed 0 ends above ``good_above``,
  fixed near the median, gets seeds 0-3): over the sample's good cells, the mean Spearman of
  the seeds that took no part in the selection (1, 2, 3), and its Spearman-Brown reliability
  for the mean of a good cell's seeds, the table's value: the target measured without the
  selection's bias. Also the Spearman of the two halves of the seeds, {0, 1} against {2, 3},
  the target's own wording (seed 0 selected, so biased low).
- **spread**: p90 - p10 of the seed-mean test accuracy over the paired cells (a random
  sample). Target: >= 5 pp.
- **noise floor**: the table's per-cell standard error (``nasgen.nb1d.table.noise_model``).
- **cost**: CPU seconds per training, the rows per device, and the whole build's projection.

Usage::

    python benchmarks/nb1d_v2_status.py            # writes benchmarks/results/nb1d_v2_status.{json,md}
    python benchmarks/nb1d_v2_status.py --build DIR --out /tmp/status.json
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Optional

import numpy as np

import _common as C
from nasgen.nb1d import load, read_rows
from nasgen.nb1d.archs import plan_archs
from nasgen.nb1d.build import all_seeds, good_extra, plan_items, read_settings
from nasgen.nb1d.table import noise_model, spearman
from nasgen.searchspace import from_dict
from recipe_pilots import spearman_brown

BUILD = C.RESULTS / "nb1d-v2-build"
TARGETS = {"reliability": 0.8, "spread": 0.05}
BOOTSTRAP = 1000


def interval(values: np.ndarray, statistic, rng: np.random.Generator) -> tuple[float, float]:
    """Percentile bootstrap 95 % interval of ``statistic`` over the rows of ``values``."""
    n = len(values)
    if n < 4:
        return math.nan, math.nan
    draws = [statistic(values[rng.integers(n, size=n)]) for _ in range(BOOTSTRAP)]
    draws = np.asarray([d for d in draws if math.isfinite(d)])
    return (float(np.percentile(draws, 2.5)), float(np.percentile(draws, 97.5))) if draws.size else (math.nan,) * 2


def good_half(pairs: np.ndarray, select: np.ndarray, rng: np.random.Generator) -> dict:
    """Seed Spearman over the pairs whose ``select`` is above its median, and its reliability."""
    top = pairs[select > np.median(select)]
    rho = lambda p: spearman(p[:, 0], p[:, 1])  # noqa: E731
    low, high = interval(top, rho, rng)
    r = rho(top) if len(top) >= 3 else math.nan
    return {"cells": int(len(top)), "spearman": r, "spearman_ci": [low, high], "reliability": spearman_brown(r),
            "reliability_ci": [spearman_brown(low), spearman_brown(high)]}


def final_accuracies(rows: list[dict]) -> dict[tuple, dict[int, float]]:
    """``{cell: {seed: final test accuracy}}`` of a build's finished rows."""
    out: dict[tuple, dict[int, float]] = {}
    for r in rows:
        if r.get("error") is None:
            out.setdefault(tuple(r["arch"]), {})[int(r["seed"])] = r["test_accuracy"][-1]
    return out


def subset_cells(settings: dict) -> list[tuple]:
    """The distinct cells of a build's reliability subset (those its plan trains with every
    seed), in its training order."""
    space = from_dict(settings["space"])
    items = plan_items(plan_archs(space, settings.get("limit_archs")), settings["seeds"],
                       settings.get("reliability_archs"))
    subset = {tuple(a) for a, s in items if s == settings["seeds"][-1]}
    return [c for c in dict.fromkeys(tuple(a) for a, _ in items) if c in subset]


def random_sample(settings: dict, seeds: dict[tuple, dict[int, float]], subset: list[tuple]) -> list[tuple]:
    """The cells of the build's reliability subset that have every seed their plan gives them
    (the build's seeds, and a good cell's ``good_seeds``), in its training order up to the
    first that lacks one: a random sample of the space, however the other rows came (cells
    trained on demand and merged, ``nasgen bench merge``, were chosen by searches, and are
    left out). ``subset``: ``subset_cells(settings)``."""
    cells, planned, first = [], [int(s) for s in settings["seeds"]], int(settings["seeds"][0])
    for c in subset:
        have = seeds.get(c, {})
        if first not in have or not set(planned + good_extra(settings, planned, have[first])) <= set(have):
            break
        cells.append(c)
    return cells


def mean_spearman(values: np.ndarray) -> float:
    """Mean Spearman over the pairs of columns of ``values`` ``[cells, seeds]``."""
    k = values.shape[1]
    return float(np.mean([spearman(values[:, i], values[:, j]) for i in range(k) for j in range(i + 1, k)]))


def good_seeds(settings: dict, cells: list[tuple], seeds: dict[tuple, dict[int, float]],
               rng: np.random.Generator) -> Optional[dict]:
    """The good half's reliability from the good cells' seeds (None: the build has no good seeds)."""
    good = settings.get("good_seeds")
    first = int(settings["seeds"][0])
    if not good or len([s for s in good if s != first]) < 2:
        return None
    chosen = [c for c in cells if seeds[c][first] > settings["good_above"]]
    others = [s for s in all_seeds(settings) if s in good and s != first]
    values = np.array([[seeds[c][s] for s in others] for c in chosen]).reshape(-1, len(others))
    r = mean_spearman(values) if len(values) >= 3 else math.nan
    low, high = interval(values, mean_spearman, rng)
    halves = np.array([[np.mean([seeds[c][s] for s in good[:len(good) // 2]]),
                        np.mean([seeds[c][s] for s in good[len(good) // 2:]])] for c in chosen]).reshape(-1, 2)
    rho = lambda p: spearman(p[:, 0], p[:, 1])  # noqa: E731
    h = rho(halves) if len(halves) >= 3 else math.nan
    h_ci = interval(halves, rho, rng)
    return {"seeds": [int(s) for s in good], "above": settings["good_above"], "cells": len(chosen),
            "share": len(chosen) / len(cells) if cells else math.nan, "unselected_seeds": others,
            "spearman": r, "spearman_ci": [low, high],
            "reliability": spearman_brown(r, len(good)), "reliability_ci": [spearman_brown(v, len(good)) for v in
                                                                            (low, high)],
            "by_seeds": {n: spearman_brown(r, n) for n in range(1, 7)},
            "halves": [[int(s) for s in good[:len(good) // 2]], [int(s) for s in good[len(good) // 2:]]],
            "halves_spearman": h, "halves_spearman_ci": list(h_ci),
            "halves_reliability": spearman_brown(h, 2)}


def subset_left(settings: dict, seeds: dict[tuple, dict[int, float]], subset: list[tuple], good_share: float) -> float:
    """Trainings the build's reliability subset still needs for each cell's whole plan (a
    cell whose first seed has not trained yet counts its good seeds at ``good_share``): what
    stands between the build and a random sample of its full size."""
    planned, first = [int(s) for s in settings["seeds"]], int(settings["seeds"][0])
    extra = len(good_extra(settings, planned, 1.0))
    left = 0.0
    for c in subset:
        have = seeds.get(c, {})
        if first in have:
            left += len(set(planned + good_extra(settings, planned, have[first])) - set(have))
        else:
            left += len(set(planned) - set(have)) + (good_share * extra if math.isfinite(good_share) else 0.0)
    return left


def planned_trainings(settings: dict, n_distinct: int, good_share: float) -> float:
    """The build's trainings on its ``n_distinct`` cells: its plan's, and a good cell's extra
    seeds at ``good_share`` of the cells."""
    seeds = [int(s) for s in settings["seeds"]]
    subset = min(settings.get("reliability_archs") or n_distinct, n_distinct)
    planned = n_distinct + subset * (len(seeds) - 1)
    if settings.get("good_seeds") and math.isfinite(good_share):
        planned += good_share * (subset * len(good_extra(settings, seeds, 1.0))
                                 + (n_distinct - subset) * len(good_extra(settings, seeds[:1], 1.0)))
    return planned


def status(build: Path) -> dict:
    settings = read_settings(build)
    rows = [r for r in read_rows(build / "rows.jsonl") if r.get("error") is None]
    seeds = final_accuracies(rows)
    cells = list(seeds)
    subset = subset_cells(settings)  # planned once: the sample and the subset's remaining work read it
    paired = random_sample(settings, seeds, subset)
    pairs = np.array([[seeds[c][0], seeds[c][1]] for c in paired]).reshape(-1, 2)
    rng = np.random.default_rng(0)
    v1 = load("nb201-mnist1d")
    v1_mean = np.array([v1.mean("test_accuracy")[v1.row_of(list(c))] for c in paired])
    mean = pairs.mean(axis=1)
    p10, p90 = np.percentile(mean, [10, 90]) if len(mean) else (math.nan, math.nan)
    spread_ci = interval(mean[:, None], lambda m: float(np.subtract(*np.percentile(m[:, 0], [90, 10]))), rng)
    sd = noise_model(pairs)[1]
    sessions = settings.get("sessions", [])
    devices = {}
    for r in rows:
        k = r.get("session")
        device = (sessions[k].get("device") if isinstance(k, int) and k < len(sessions) else None) or "unknown"
        entry = devices.setdefault(device, {"rows": 0, "train_s": 0.0, "cpu_s": 0.0})
        entry["rows"] += 1
        entry["train_s"] += r.get("train_time_s") or 0.0
        entry["cpu_s"] += r.get("cpu_time_s") or 0.0
    good = good_seeds(settings, paired, seeds, rng)
    n_cells = len(plan_archs(from_dict(settings["space"]), settings.get("limit_archs")))
    planned = planned_trainings(settings, n_cells, good["share"] if good else math.nan)
    cpu = devices.get("cpu", {"rows": 0, "cpu_s": 0.0})
    per_training = cpu["cpu_s"] / cpu["rows"] if cpu["rows"] else math.nan
    return {
        "recipe": settings["recipe"], "rows": len(rows), "cells": len(cells), "paired_cells": len(paired),
        "planned_trainings": planned,
        "good_half": {"by_seed_0": good_half(pairs, pairs[:, 0], rng), "by_seed_1": good_half(pairs, pairs[:, 1], rng),
                      "by_v1": good_half(pairs, v1_mean, rng)}, "good_seeds": good,
        "spread": float(p90 - p10), "spread_ci": list(spread_ci),
        "median": float(np.median(mean)) if len(mean) else math.nan,
        "noise_sd_lowest_decile": float(sd[0]), "noise_sd_highest_decile": float(sd[-1]),
        "devices": devices, "cpu_s_per_training": per_training,
        "projected_cpu_h": per_training * planned / 3600, "remaining_cpu_h": per_training * (planned - len(rows)) / 3600,
        "subset_cells": len(subset),
        "subset_left": subset_left(settings, seeds, subset, good["share"] if good else math.nan),
    }


def markdown(s: dict) -> str:
    def pct(x):
        return "-" if not math.isfinite(x) else f"{100 * x:.2f}"

    def ci(pair, scale=1.0, spec=".2f"):
        return "-" if not all(math.isfinite(v) for v in pair) else \
            f"[{format(pair[0] * scale, spec)}, {format(pair[1] * scale, spec)}]"

    lines = [f"{s['rows']} rows of {s['planned_trainings']:.0f} planned: {s['cells']} cells, {s['paired_cells']} "
             f"in the random sample with both seeds (the build's random subset up to its first cell that lacks a "
             f"seed of its plan). Median seed-mean test accuracy {pct(s['median'])} %.", ""]
    body = []
    for key, label in (("by_seed_0", "above the median of seed 0"), ("by_seed_1", "above the median of seed 1"),
                       ("by_v1", "above the median of v1 (independent of both seeds)")):
        g = s["good_half"][key]
        body.append([f"good half, {label}", g["cells"], f"{g['spearman']:.2f} {ci(g['spearman_ci'])}",
                     f"{g['reliability']:.2f} {ci(g['reliability_ci'])}",
                     "met" if g["reliability"] >= TARGETS["reliability"] else "not met"])
    lines += [C.markdown_table(["figure", "cells", "seed Spearman [95 % CI]", "reliability of 2 seeds [95 % CI]",
                                "target >= 0.8"], body, "lrrrl"), ""]
    g = s.get("good_seeds")
    if g:
        n = len(g["seeds"])
        met = "met" if g["reliability"] >= TARGETS["reliability"] else "not met"
        lines += [f"Good cells (seed 0 above {pct(g['above'])} %, so seeds {', '.join(map(str, g['seeds']))}): "
                  f"{g['cells']} of the sample ({100 * g['share']:.0f} %). Mean Spearman of seeds "
                  f"{', '.join(map(str, g['unselected_seeds']))}, which took no part in the selection: "
                  f"{g['spearman']:.2f} {ci(g['spearman_ci'])}; the reliability of a good cell's mean of {n} seeds "
                  f"(the table's value): **{g['reliability']:.2f}** {ci(g['reliability_ci'])} (target >= 0.8: {met}). "
                  f"Spearman of the halves {g['halves'][0]} and {g['halves'][1]} (seed 0 selected): "
                  f"{g['halves_spearman']:.2f} {ci(g['halves_spearman_ci'])}, reliability of {n} seeds "
                  f"{g['halves_reliability']:.2f}. By the number of seeds: "
                  + "; ".join(f"{k}: {v:.2f}" for k, v in g["by_seeds"].items() if int(k) <= 4) + ".", ""]
    lines += [f"Spread p90 - p10 of the seed mean over the {s['paired_cells']} paired cells: {pct(s['spread'])} pp "
              f"{ci(s['spread_ci'], 100)} (target >= 5 pp: {'met' if s['spread'] >= TARGETS['spread'] else 'not met'}). "
              f"One training scatters by {pct(s['noise_sd_lowest_decile'])} pp in the lowest accuracy decile and "
              f"{pct(s['noise_sd_highest_decile'])} pp in the highest.", ""]
    devices = "; ".join(f"{d}: {e['rows']} rows, {e['train_s'] / 3600:.2f} h of training" for d, e in s["devices"].items())
    lines += [f"Cost: {s['cpu_s_per_training']:.1f} CPU s per training on the CPU; {devices}. The whole build "
              f"at this rate: {s['projected_cpu_h']:.1f} CPU h, {s['remaining_cpu_h']:.1f} still to go; the random subset "
              f"({s['subset_cells']} cells, each with its whole plan) needs about {s['subset_left']:.0f} more trainings, "
              f"{s['subset_left'] * s['cpu_s_per_training'] / 3600:.1f} CPU h."]
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--build", default=str(BUILD), help=f"the v2 build folder (default {BUILD})")
    parser.add_argument("--out", default=str(C.RESULTS / "nb1d_v2_status.json"),
                        help="where to write the JSON (and .md beside it)")
    args = parser.parse_args(argv)
    try:
        result = status(Path(args.build))
    except (OSError, ValueError) as error:
        parser.exit(2, f"{parser.prog}: error: {error}\n")
    text = markdown(result)
    print(text)
    paths = C.write_outputs(args.out, {"benchmark": "nb1d_v2_status", "build": args.build, **result}, text)
    print("wrote " + ", ".join(map(str, paths)))


if __name__ == "__main__":
    main()
