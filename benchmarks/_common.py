"""Pieces shared by the benchmark scripts (not a benchmark itself).

- the command-line flags every script has (``--quick``, ``--seeds``, ``--out``, ``--threads``);
- the controller *variants* compared (``credit[hybrid]`` = ``credit`` on a hybrid-credit env);
- ``RecordingSearch``: the project's own search loop (``nasgen.search.Search``) with a
  callback on its ``_after_step`` hook, which runs *outside* the timed region, so curves can
  be recorded without changing what ``Search.wall_time`` measures;
- honest evaluation counts, summary statistics, the machine description, and writing the
  JSON + markdown table + PNG triple under ``benchmarks/results/``.

The scripts import it as ``import _common`` (Python puts the script's folder first on
``sys.path``), so run them as ``python benchmarks/<script>.py``.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Sequence

import numpy as np
import torch

from nasgen import compare, controllers, jsonfile
from nasgen.runtime import isolated_seed, load_average  # noqa: F401  (the scripts call C.isolated_seed, C.load_average)
from nasgen.search import Search, SearchConfig, seed_everything
from nasgen.searchspace import PluginError

RESULTS = Path(__file__).resolve().parent / "results"

#: Extra rows besides the registered names, from ``nasgen compare``'s variants: label ->
#: (controller, env kwargs overriding its defaults), those every env with credit runs ...
VARIANTS: dict[str, tuple[str, dict]] = {
    label: (v.controller, dict(v.env_kwargs)) for label, v in compare.VARIANTS.items()
    if compare.TEACHER_ID in v.envs}
#: ... and label -> (controller, env kwargs, controller kwargs), those only the supernet env
#: (``nasgen/OneShotNAS-v0``) runs.
SUPERNET_VARIANTS: dict[str, tuple[str, dict, dict]] = {
    label: (v.controller, dict(v.env_kwargs), dict(v.controller_kwargs)) for label, v in compare.VARIANTS.items()
    if v.envs == (compare.ONESHOT_ID,)}

#: Row order of the tables: the proposed method, the gradient baselines, the other black boxes.
PREFERRED_ORDER = ("credit", "credit[hybrid]", "credit[exact]", "credit[train]", "darts", "darts[2nd]", "snas",
                   "gdas", "proxyless", "rnn", "reinforce", "asng", "ga", "random")


# --- command line ---------------------------------------------------------------------------------
#: Where ``--quick`` runs write when no ``--out`` is given: never over the shipped results.
QUICK_RESULTS = Path("runs") / "benchmarks-quick"


class BenchmarkParser(argparse.ArgumentParser):
    """The flags every benchmark script shares; ``parse_args`` resolves ``--out``.

    A full run writes to ``benchmarks/results/`` by default. A ``--quick`` run writes to
    ``runs/benchmarks-quick/`` by default and is refused an ``--out`` inside
    ``benchmarks/results/``, so a smoke run never replaces a shipped result.
    """

    def __init__(self, description: str, default_out: str, default_seeds: int, default_threads: int):
        super().__init__(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
        self.default_out = default_out
        self.add_argument("--quick", action="store_true",
                          help=f"a smoke run that finishes in a few minutes (writes under {QUICK_RESULTS}/ unless "
                               "--out is given, and never into benchmarks/results/)")
        self.add_argument("--seeds", type=int, default=None,
                          help=f"number of seeds, run as 0..n-1 (default {default_seeds})")
        self.add_argument("--out", default=None,
                          help="JSON output; the .md table and .png plot are written next to it "
                               f"(default benchmarks/results/{default_out})")
        self.add_argument("--threads", type=int, default=default_threads,
                          help=f"torch CPU threads (default {default_threads})")
        self.add_argument("--controllers", default=None,
                          help="comma-separated row labels (default: every controller of this benchmark)")

    def parse_args(self, args=None, namespace=None):
        parsed = super().parse_args(args, namespace)
        parsed.out = output_path(self, parsed.out, parsed.quick, self.default_out)
        return parsed


def output_path(parser: argparse.ArgumentParser, out: Optional[str], quick: bool, default_out: str) -> str:
    """A script's ``--out``: ``benchmarks/results/DEFAULT`` for a full run, under
    ``QUICK_RESULTS`` for a ``--quick`` one; a ``--quick`` run into ``benchmarks/results/``
    is refused (``parser.error``: one line, exit 2)."""
    if out is None:
        return str((QUICK_RESULTS if quick else RESULTS) / default_out)
    if quick and RESULTS.resolve() in Path(out).resolve().parents:
        parser.error(f"--out {out}: a --quick run never writes into benchmarks/results/ (the shipped "
                     f"results); give another --out or drop --quick")
    return out


def base_parser(description: str, default_out: str, default_seeds: int, default_threads: int) -> BenchmarkParser:
    """The parser every benchmark script starts from (``BenchmarkParser``)."""
    return BenchmarkParser(description, default_out, default_seeds, default_threads)


def start(args: argparse.Namespace, seed: int = 0) -> dict:
    """The one entry-point call of a script: thread count, global seeding, machine snapshot."""
    torch.set_num_threads(args.threads)
    seed_everything(seed)
    return machine_info()


def select(labels: Sequence[str], wanted: Optional[str], plugins: bool = False) -> list[str]:
    """``labels`` filtered by a ``--controllers`` value (unknown labels are an error).

    With ``plugins``, a name outside ``labels`` is also taken when the controller registry
    resolves it: a plug-in's entry-point name or a ``module:Class`` reference.
    """
    if not wanted:
        return list(labels)
    chosen = [w.strip() for w in wanted.split(",") if w.strip()]
    unknown = [w for w in chosen if w not in labels and not (plugins and controller_problem(w) is None)]
    if unknown:
        problems = [controller_problem(w) for w in unknown] if plugins else []
        plugin_lines = [p for p in problems if p and not p.startswith("unknown controller")]
        if plugin_lines:
            raise SystemExit(plugin_lines[0])
        extra = " or a plug-in (entry-point name or module:Class)" if plugins else ""
        raise SystemExit(f"unknown controller label(s) {', '.join(unknown)}; choose from: {', '.join(labels)}"
                         f"{extra}")
    return chosen


def controller_problem(name: str) -> Optional[str]:
    """``None`` when the registry resolves ``name`` (built-in, plug-in or ``module:Class``), else
    the registry's one-line reason."""
    try:
        controllers.get(name)
    except KeyError as error:
        return str(error.args[0]) if error.args else f"unknown controller {name!r}"
    except PluginError as error:
        return str(error)
    return None


# --- controllers ----------------------------------------------------------------------------------
def resolve(label: str) -> tuple[str, dict]:
    """``(controller name, env kwargs of this variant)`` of a row label."""
    if label in VARIANTS:
        return VARIANTS[label]
    if label in SUPERNET_VARIANTS:
        return SUPERNET_VARIANTS[label][:2]
    controllers.get(label)  # KeyError listing the names when unknown
    return label, {}


def variant_controller_kwargs(label: str) -> dict:
    """The controller hyper-parameters a variant sets (``{}`` for a plain controller)."""
    return dict(SUPERNET_VARIANTS[label][2]) if label in SUPERNET_VARIANTS else {}


def ordered(labels: Iterable[str]) -> list[str]:
    """Labels in the tables' order (unknown ones last, alphabetically)."""
    labels = list(dict.fromkeys(labels))
    rank = {name: i for i, name in enumerate(PREFERRED_ORDER)}
    return sorted(labels, key=lambda label: (rank.get(label, len(rank)), label))


def kind(label: str) -> str:
    return controllers.get(resolve(label)[0]).kind


def forward_passes(search: Search) -> int:
    """Supernet forward passes the search spent, counted the same way for every controller.

    Black-box: the reward passes (the sum of ``info["evaluations"]``, credit's ablations
    included, which is what ``Search.evaluations`` counts) plus, on an env that trains the
    shared weights after every reward (``train_weights``), that training pass. Gradient: the
    controller's own count (weight steps and alpha steps; a DARTS or SNAS pass runs every
    candidate op, a GDAS pass one, a ProxylessNAS pass two).
    """
    if search.controller.kind == "gradient":
        return int(search.controller.evaluations)
    weight_passes = 0
    env = search.env.unwrapped
    # credit_batch="train" takes the reward from the training pass: no separate weight pass.
    if getattr(env, "train_weights", False) and getattr(env, "credit_batch", "val") != "train":
        weight_passes = search.step * search.controller.samples_per_step  # one per env.step
    return int(search.evaluations) + weight_passes


class RecordingSearch(Search):
    """``Search`` that calls ``on_step(search)`` after every step.

    It uses ``Search``'s own ``_after_step`` hook, which runs after ``wall_time`` has been
    updated and outside the timed region, so recording (deriving and scoring the
    architecture) costs the controller nothing. The loop is otherwise untouched.
    """

    def __init__(self, *args, on_step: Optional[Callable[["RecordingSearch"], None]] = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.on_step = on_step

    def _after_step(self) -> None:
        super()._after_step()
        if self.on_step is not None:
            self.on_step(self)


def search_config(label: str, env: str, seed: int, env_kwargs: dict, **config) -> SearchConfig:
    """The ``SearchConfig`` of one row: shared env kwargs, then the variant's.

    Checkpoints are written only at the end of the run (``Search`` always writes one there);
    every controller keeps its default hyper-parameters (but those a ``SUPERNET_VARIANTS`` row sets).
    """
    name, variant_kwargs = resolve(label)
    controller_kwargs = {**variant_controller_kwargs(label), **config.pop("controller_kwargs", {})}
    return SearchConfig(controller=name, env=env, seed=seed, env_kwargs={**env_kwargs, **variant_kwargs},
                        controller_kwargs=controller_kwargs, checkpoint_every=10**9, **config)


def log_points(n: int, k: int) -> set[int]:
    """About ``k`` log-spaced step numbers in ``1..n`` (``n`` always included)."""
    if n < 1:
        return set()
    return {int(round(v)) for v in np.geomspace(1, n, num=max(2, k))} | {n}


# --- statistics ------------------------------------------------------------------------------------
def add_time_ratios(rows: list[dict], reference: str) -> None:
    """Give every finished row ``time_ratio``: its ``wall_time_s`` over the ``reference``
    controller's in the same rows (none when the reference failed)."""
    base = next((r for r in rows if r["controller"] == reference and "error" not in r), None)
    for row in rows:
        if base is not None and "error" not in row:
            row["time_ratio"] = row["wall_time_s"] / base["wall_time_s"]


def stats(values: Sequence[float]) -> dict[str, float]:
    """mean, std (sample, ddof=1; 0 for one value), median, quartiles, min, max, n."""
    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], dtype=np.float64)
    if v.size == 0:
        return {"n": 0, "mean": math.nan, "std": math.nan, "median": math.nan, "q1": math.nan,
                "q3": math.nan, "min": math.nan, "max": math.nan}
    return {"n": int(v.size), "mean": float(v.mean()), "std": float(v.std(ddof=1)) if v.size > 1 else 0.0,
            "median": float(np.median(v)), "q1": float(np.percentile(v, 25)), "q3": float(np.percentile(v, 75)),
            "min": float(v.min()), "max": float(v.max())}


def pm(s: dict, spec: str = ".3f", scale: float = 1.0) -> str:
    """``mean ± std`` of a ``stats`` dict ("n/a" when empty)."""
    if not s["n"]:
        return "n/a"
    return f"{s['mean'] * scale:{spec}} ± {s['std'] * scale:{spec}}"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]], align: Optional[str] = None) -> str:
    """A GitHub markdown table; ``align`` is one char per column (``l`` or ``r``)."""
    align = align or "l" + "r" * (len(header) - 1)
    rule = ["---" if a == "l" else "---:" for a in align]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(rule) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


# --- the machine -------------------------------------------------------------------------------------
def cpu_model() -> str:
    """The CPU's model name (Linux), else what ``platform`` knows."""
    with contextlib.suppress(OSError):  # no /proc on macOS and Windows
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def machine_info() -> dict:
    """What the numbers were measured on (recorded at the start of a run)."""
    return {"cpu": cpu_model(), "logical_cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "python": platform.python_version(), "platform": platform.platform(),
            "load_average_start": load_average(), "started_unix": time.time(),
            "started_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
            "command": " ".join([Path(sys.executable).name] + sys.argv)}


def finish_machine_info(machine: dict) -> dict:
    """The machine record completed at the end of a run (load at the end, total runtime)."""
    return {**machine, "load_average_end": load_average(), "runtime_s": round(time.time() - machine["started_unix"], 1)}


def machine_line(machine: dict) -> str:
    return (f"{machine['cpu']}, {machine['logical_cores']} logical cores, {machine['torch_threads']} torch "
            f"thread(s), torch {machine['torch']}; load average (1/5/15 min) at start "
            f"{'/'.join(map(str, machine['load_average_start']))}"
            + (f", at end {'/'.join(map(str, machine['load_average_end']))}" if "load_average_end" in machine else "")
            + (f"; runtime {machine['runtime_s'] / 60:.1f} min" if "runtime_s" in machine else ""))


# --- output ------------------------------------------------------------------------------------------
def write_outputs(out: str | Path, payload: dict, markdown: str, figure=None) -> list[Path]:
    """Write ``out`` (JSON), ``out.md`` and, with a figure, ``out.png``; returns the paths."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    jsonfile.write(out, payload, default=jsonfile.numpy_default)
    paths = [out, out.with_suffix(".md")]
    paths[1].write_text(markdown.rstrip() + "\n")
    if figure is not None:
        import matplotlib.pyplot as plt

        figure.savefig(out.with_suffix(".png"), dpi=120, bbox_inches="tight")
        plt.close(figure)
        paths.append(out.with_suffix(".png"))
    return paths


def figure(ncols: int, nrows: int = 1, width: float = 6.0, height: float = 4.5):
    """A matplotlib figure on the non-interactive backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False)


def colours(labels: Sequence[str]) -> dict[str, Any]:
    """One fixed colour per label, the same in every plot (ten hues, then their light tints)."""
    import matplotlib

    cmap = matplotlib.colormaps["tab20"]
    rank = {name: i for i, name in enumerate(PREFERRED_ORDER)}
    out = {}
    for i, label in enumerate(labels):
        r = rank.get(label, len(rank) + i)
        out[label] = cmap((2 * r) % 20 + (2 * r) // 20 % 2)
    return out
