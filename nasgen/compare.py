"""``nasgen compare``: controllers side by side against ground truth, suite by suite.

A comparison crosses methods (registered controller names, plug-ins included, and the
``VARIANTS`` of the harness) with suites
and seeds. The suites (``SUITES``):

- ``nb1d``: NAS-Bench-1D. Each controller searches ``nb201`` on MNIST-1D through the
  supernet (``nasgen/OneShotNAS-v0``) under a protocol (default ``paper``: every method the
  same epochs of supernet training, split between warm-up and search as its paper did, see
  ``nasgen.protocols``) on the task the table was trained on (its MNIST-1D generator
  options); the table (default the shipped ``nb201-mnist1d``) judges the derived cell: test
  regret against the table's best with its standard error, and percentile. A sampled table
  trains a derived cell it lacks with its own recipe and seeds.
- ``nb1d-table``: the black-box controllers on the table itself (``nasgen/Tabular-v0``) at
  an equal number of queries; the answer is the best queried cell by validation accuracy
  (one drawn training seed per query, as NAS-Bench-201 does). Beside them ``random@epochs``:
  random search at equal epochs, as many random cells as the table's recipe can train in the
  supernet suite's budget of epochs, the best by validation accuracy. On a sampled table
  ``Tabular-v0`` trains a queried cell it lacks with the seeds its build plans for it, into
  the build folder ``OUT/fill`` that every task shares (``FILL_DIR``): the searches run as
  they will on the finished table, and ``nasgen bench merge OUT/fill BUILD`` folds those
  trainings into its build.
- ``teacher``: ``nasgen/TeacherArch-v0``, whose optimum is a known architecture. Every method
  gets an equal budget of reward evaluations (a gradient step counts as one); the main
  figure is the held-out MSE of the derived architecture against the teacher (0 exactly at
  the teacher, so it is also the regret), beside it the evaluations spent until ``derive()``
  first equalled the teacher.
- ``nbg``: NAS-Bench-Graph's tables (``nasgen/NASBenchGraph-v0``, the optional
  ``nas_bench_graph`` package): the black-box controllers at a query budget of a share of
  each dataset's table; test regret of the best-by-validation architecture, mean over the
  datasets.

Which methods run where is the registries' answer (``nasgen.config.incompatibility``):
gradient controllers need a differentiable model (supernet, teacher), ``credit`` needs
per-edge credit; the pairs that cannot run are listed in the report with the reason.

Every (method, suite, seed) is one task in a fresh state: its own environment and warm-up,
seeded from its seed, nothing shared with another task, so the tasks can run anywhere in
any order. By default they run on Ray (a local instance, or ``address`` to join a cluster),
one CPU each; ``local`` runs them one after the other in this process.

Layout of a comparison folder ``out``::

    compare.json                          the settings and the plan, written at every start
    tasks/<suite>__<method>__s<seed>.json one finished task each (written atomically)
    report.md, report.json, report.png    the report of the last run (report.json holds
                                          every task's row, to rejudge or replot)

Starting the same comparison again skips the finished tasks: a killed run loses only the
tasks that were running. The plan may grow (more methods, suites or seeds) in the same
folder, but a suite that ran there before is refused other settings that change its tasks'
results (``SUITE_FIELDS``: budgets, table, supernet, threads): finished tasks of other settings
must never be mixed in.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import platform
import re
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import gymnasium as gym
import numpy as np
import torch
from tqdm.auto import tqdm

from nasgen import checks, config as search_config, controllers, jsonfile, protocols, runtime, stats
from nasgen.checks import InputError, short
from nasgen.envs.nas_bench_graph import DATASETS as NBG_DATASETS
from nasgen.envs.teacher import TeacherSpace
from nasgen.nb1d import judge as ground_truth
from nasgen.nb1d.table import load as load_table, resolve as resolve_table
from nasgen.search import Search, SearchConfig
from nasgen.searchspace import get as get_space

NB1D, NB1D_TABLE, TEACHER, NBG = "nb1d", "nb1d-table", "teacher", "nbg"
ONESHOT_ID, TABULAR_ID, TEACHER_ID, NBG_ID = ("nasgen/OneShotNAS-v0", "nasgen/Tabular-v0", "nasgen/TeacherArch-v0",
                                              "nasgen/NASBenchGraph-v0")
#: The extra method of ``nb1d-table``: random search at the supernet suite's epochs.
RANDOM_EPOCHS = "random@epochs"
#: Build folder of the comparison's folder for cells a sampled table lacks (``nasgen bench merge`` folds it).
FILL_DIR = "fill"
#: The method whose architecture-phase time every other one's is divided by (where it ran).
REFERENCE = "darts"
#: The baselines of the paired tests when none are given (those of them that ran).
DEFAULT_BASELINES = ("random", RANDOM_EPOCHS, REFERENCE)
#: The seeds of a full run (fewer get a note). Even these are few for the exact Wilcoxon test: its
#: smallest two-sided p is 2 / 2**n, so p < 0.05 needs 6 seeds on which two methods differ.
FULL_RUN_SEEDS = 5
MAX_SEEDS = 1000
INSTALL_HINT = 'pip install "nasgen[distributed]"'
TASKS = "tasks"
SETTINGS_FILE = "compare.json"
LOCK = "compare.lock"
REPORT = "report"
#: Seeds the paired bootstrap resamples with (the report is the same on every run).
BOOTSTRAP_SEED = 0


# --- variants -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Variant:
    """A compared method that is a registered controller with settings changed: its name is
    ``CONTROLLER[what]`` and it runs only where those settings mean something."""

    controller: str
    """the registered controller it runs"""
    env_kwargs: dict = field(default_factory=dict)
    """environment keywords over the suite's"""
    controller_kwargs: dict = field(default_factory=dict)
    """controller keywords"""
    envs: tuple[str, ...] = ()
    """the environment ids whose suites run it"""


#: The harness's variants: credit with exact or hybrid credit estimates, credit from the
#: weight-training batch, DARTS with its second-order alpha gradient.
VARIANTS: dict[str, Variant] = {
    "credit[hybrid]": Variant("credit", {"credit": "hybrid"}, envs=(ONESHOT_ID, TEACHER_ID)),
    "credit[exact]": Variant("credit", {"credit": "exact"}, envs=(ONESHOT_ID, TEACHER_ID)),
    "credit[train]": Variant("credit", {"credit_batch": "train"}, envs=(ONESHOT_ID,)),
    "darts[2nd]": Variant("darts", controller_kwargs={"order": 2}, envs=(ONESHOT_ID,)),
}


def variant_of(method: str) -> Variant:
    """The ``Variant`` a compared method runs (a plain controller: itself, nothing changed);
    ``InputError`` (one line) for an unknown name."""
    if method in VARIANTS:
        return VARIANTS[method]
    if "[" in method and method.endswith("]"):
        raise InputError(f"unknown variant {short(method)}; choose from: {', '.join(VARIANTS)}")
    _controller(method)
    return Variant(method)


# --- the suites -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Suite:
    """One suite: where its tasks run and how the report reads their rows."""

    name: str
    """the ``--suite`` name"""
    env: str
    """the environment id its searches run on (which controllers can run there is its answer)"""
    title: str
    """one line for the report"""
    figure: str
    """the row key of the main figure (lower is better)"""
    figure_label: str
    """the main figure in words, with its unit"""
    scale: float = 1.0
    """the main figure's display factor (100: a fraction shown in percentage points)"""
    spec: str = ".2f"
    """the main figure's display format"""
    percentile: bool = False
    """whether a NAS-Bench-1D table judges its rows: a percentile among the table's
    architectures, and the table's standard error on each regret"""


SUITES: dict[str, Suite] = {s.name: s for s in (
    Suite(NB1D, ONESHOT_ID, "NAS-Bench-1D: nb201 on MNIST-1D through the supernet, judged by the table",
          "test_regret", "test regret, pp", 100.0, ".2f", True),
    Suite(NB1D_TABLE, TABULAR_ID, "NAS-Bench-1D table alone: black boxes at equal queries, random search at "
          "equal epochs", "test_regret", "test regret, pp", 100.0, ".2f", True),
    Suite(TEACHER, TEACHER_ID, "TeacherArch-v0: the derived architecture against the hidden teacher at equal "
          "evaluations", "loss", "held-out MSE vs the teacher (= regret)", 1.0, ".4g"),
    Suite(NBG, NBG_ID, "NAS-Bench-Graph: best-by-validation architecture at a share of each table",
          "test_regret", "test regret, pp (mean over datasets)", 100.0, ".2f"),
)}


def nbg_unavailable() -> Optional[str]:
    """Why the ``nbg`` suite cannot run here (the package does not import), or None."""
    try:
        import nas_bench_graph  # noqa: F401  (the optional extra)
    except Exception as error:  # any failure to import the extra: the suite is unavailable
        return f"the nas_bench_graph package does not import ({type(error).__name__}); pip install \"nasgen[bench]\""
    return None


# --- the config -------------------------------------------------------------------------------------
def split_names(text: str) -> tuple[str, ...]:
    """``"credit, darts"`` -> ``("credit", "darts")`` (the command line's comma lists)."""
    return tuple(part.strip() for part in str(text).split(",") if part.strip())


def _name_list(value: Any) -> tuple[str, ...]:
    """A check: a non-empty list of distinct non-empty names."""
    if isinstance(value, str) or not isinstance(value, (tuple, list)) or not value \
            or not all(isinstance(v, str) and v.strip() for v in value):
        raise ValueError(f"expected a comma-separated list of names, got {short(value)}")
    if len(set(value)) != len(value):
        raise ValueError(f"expected distinct names, got {short(value)}")
    return tuple(value)


def _address(value: Any) -> str:
    """A check: a Ray address, ``auto``, ``HOST:PORT`` or ``ray://HOST:PORT``."""
    if not isinstance(value, str) or not re.fullmatch(r"auto|(ray://)?[A-Za-z0-9_.\-\[\]:]*[A-Za-z0-9\]]:\d{1,5}",
                                                      value):
        raise ValueError(f"expected auto, HOST:PORT or ray://HOST:PORT, got {short(value)}")
    return value


def _fraction(value: Any) -> float:
    """A check: a number in (0, 1]."""
    value = checks.positive_float(value)
    if value > 1:
        raise ValueError(f"expected a fraction in (0, 1], got {short(value)}")
    return value


@dataclass
class CompareConfig:
    """What a comparison runs. Fields left None take the preset's value (``FULL``, or
    ``QUICK`` with ``quick``); ``resolved`` fills them in."""

    controllers: Optional[tuple[str, ...]] = field(default=None, metadata=checks.field(_name_list))
    """methods to compare: controller names (built-ins, plug-ins, module:Class) and VARIANTS (credit[hybrid],
    credit[exact], credit[train], darts[2nd]); default: every registered controller and every variant"""
    suites: Optional[tuple[str, ...]] = field(default=None, metadata=checks.field(_name_list))
    """suites: nb1d, nb1d-table, teacher, nbg; default: every suite available here (nbg needs nas_bench_graph)"""
    seeds: Optional[int] = field(default=None, metadata=checks.field(checks.integer_at_least(1)))
    """seeds 0..N-1 of every (method, suite); the exact Wilcoxon test needs 6 on which two methods differ to
    reach p < 0.05"""
    baselines: Optional[tuple[str, ...]] = field(default=None, metadata=checks.field(_name_list))
    """methods every other method is tested against, suite by suite; default: random, random@epochs and
    darts where they ran"""
    out: Optional[str] = field(default=None, metadata=checks.field(checks.non_empty))
    """the comparison's folder (tasks/, compare.json, report.*); rerun into it to continue"""
    quick: bool = False
    """a look in minutes: the QUICK preset (2 seeds, tiny budgets, small supernet, few queries)"""
    local: bool = False
    """run the tasks one after the other in this process, without Ray"""
    address: Optional[str] = field(default=None, metadata=checks.field(_address))
    """join this Ray cluster (auto or HOST:PORT; the nodes need nasgen installed); default: a local instance"""
    num_cpus: Optional[int] = field(default=None, metadata=checks.field(checks.positive_int))
    """CPUs of the local Ray instance, one task each (default: all)"""
    threads: int = field(default=1, metadata=checks.field(checks.positive_int))
    """torch CPU threads of each task"""
    table: str = field(default="nb201-mnist1d", metadata=checks.field(checks.non_empty))
    """the NAS-Bench-1D table judging nb1d and nb1d-table (shipped name or path); a sampled table trains the
    cells it lacks on demand"""
    space: str = field(default="nb201", metadata=checks.field(checks.non_empty))
    """the nb1d search space: nb201 or nb201-nozero (the table judges it through the cell string)"""
    protocol: str = field(default="paper", metadata=checks.field(checks.non_empty))
    """how each method splits the supernet budget of nb1d (nasgen.protocols)"""
    warmup_epochs: Optional[float] = field(default=None, metadata=checks.field(checks.non_negative_float))
    """nb1d budget: warm-up epochs over the training split"""
    epochs: Optional[float] = field(default=None, metadata=checks.field(checks.positive_float))
    """nb1d budget: search epochs over the validation split"""
    supernet_channels: Optional[int] = field(default=None, metadata=checks.field(checks.positive_int))
    """nb1d supernet width C"""
    supernet_cells: int = field(default=1, metadata=checks.field(checks.positive_int))
    """nb1d supernet cells per stage (1: the table's networks)"""
    batch_size: int = field(default=64, metadata=checks.field(checks.positive_int))
    """nb1d supernet batch size"""
    queries: Optional[int] = field(default=None, metadata=checks.field(checks.positive_int))
    """nb1d-table: table queries of each black-box controller"""
    teacher_edges: int = field(default=10, metadata=checks.field(checks.positive_int))
    """teacher: decisions of the toy"""
    teacher_ops: int = field(default=10, metadata=checks.field(checks.positive_int))
    """teacher: candidate ops per decision"""
    teacher_evaluations: Optional[int] = field(default=None, metadata=checks.field(checks.positive_int))
    """teacher: reward evaluations of each method (a gradient step counts as one)"""
    nbg_datasets: Optional[tuple[str, ...]] = field(default=None, metadata=checks.field(_name_list))
    """nbg: NAS-Bench-Graph datasets"""
    nbg_budget_frac: Optional[float] = field(default=None, metadata=checks.field(_fraction))
    """nbg: queries as a share of each dataset's table"""


#: The full run's values of the preset fields. The nb1d budget is the AdvantageNAS
#: NAS-Bench-201 script's 90 epochs of supernet training: 50 of warm-up and 40 of search over
#: the training split, which is 40 x 50/12 epochs over the validation split at MNIST-1D's
#: default split and batch 64.
FULL: dict[str, Any] = {"seeds": FULL_RUN_SEEDS, "out": "runs/compare", "warmup_epochs": 50.0,
                        "epochs": 40 * 50 / 12, "supernet_channels": 8, "queries": 100,
                        "teacher_evaluations": 3000, "nbg_datasets": tuple(NBG_DATASETS), "nbg_budget_frac": 0.02}
#: ``quick``'s values: a look in minutes on a laptop, not a result.
QUICK: dict[str, Any] = {"seeds": 2, "out": "runs/compare-quick", "warmup_epochs": 1.0, "epochs": 1.0,
                         "supernet_channels": 4, "queries": 20, "teacher_evaluations": 1000,
                         "nbg_datasets": ("cora",), "nbg_budget_frac": 0.005}

#: Per suite, the fields that decide what its tasks run (the table's checksum too, where one
#: judges): a rerun into a folder must keep them for every suite that ran there before.
_NB1D_BUDGET = ("protocol", "warmup_epochs", "epochs", "batch_size")
SUITE_FIELDS: dict[str, tuple[str, ...]] = {
    NB1D: ("threads", "table", "space", "supernet_channels", "supernet_cells") + _NB1D_BUDGET,
    NB1D_TABLE: ("threads", "table", "queries") + _NB1D_BUDGET,  # random@epochs spends nb1d's budget
    TEACHER: ("threads", "teacher_edges", "teacher_ops", "teacher_evaluations"),
    NBG: ("threads", "nbg_datasets", "nbg_budget_frac"),
}


def resolved(config: CompareConfig) -> CompareConfig:
    """``config`` with its None preset fields set from ``FULL`` or ``QUICK``, lists as tuples."""
    preset = QUICK if config.quick else FULL
    values = {k: v for k, v in preset.items() if getattr(config, k) is None}
    for name in ("controllers", "suites", "baselines", "nbg_datasets"):
        value = values.get(name, getattr(config, name))
        if isinstance(value, list):
            values[name] = tuple(value)
    return dataclasses.replace(config, **values)


# --- the plan ---------------------------------------------------------------------------------------
def file_safe(name: str) -> str:
    """``name`` as a file-name part: other characters than letters, digits and ``._@+-``
    become ``-``, with a short hash of the name then, so two names never share a file."""
    safe = re.sub(r"[^A-Za-z0-9._@+-]+", "-", name)[:80]
    if safe == name:
        return name
    return f"{safe}-{hashlib.sha1(name.encode()).hexdigest()[:8]}"


@dataclass
class Task:
    """One (method, suite, seed): ``spec`` is everything ``run_task`` needs (plain data)."""

    suite: str
    method: str
    seed: int
    spec: dict = field(repr=False)

    @property
    def name(self) -> str:
        return f"{self.suite}__{file_safe(self.method)}__s{self.seed}"


@dataclass
class Plan:
    """The checked plan of a comparison."""

    config: CompareConfig
    """the resolved config"""
    methods: list[str]
    """the controllers, in the given order"""
    suites: list[str]
    """the suites that run"""
    seeds: list[int]
    """the seeds of every pair"""
    baselines: list[str]
    """the paired tests' baselines"""
    tasks: list[Task]
    """every task, suite by suite"""
    rows: dict[str, list[str]]
    """per suite, the methods that run there (in report order)"""
    skipped: list[dict]
    """the (method, suite) pairs that cannot run: ``method``, ``suite``, ``reason``"""
    notes: list[str]
    """lines for the report (a suite left out, too few seeds)"""
    table_sha256: Optional[str] = None
    """the judging table's checksum, where an nb1d suite runs"""


def _controller(name: str) -> type:
    """The controller class ``name``; ``InputError`` (one line) for an unknown one."""
    try:
        return controllers.get(name)
    except KeyError:
        raise InputError(f"unknown controller {short(name)}; choose from: {', '.join(controllers.names())}") from None


def _reason(env_id: str, method: str) -> Optional[str]:
    """Why ``method`` cannot run on ``env_id`` (its first clause), or None."""
    variant = variant_of(method)
    if variant.envs and env_id not in variant.envs:
        return f"variant {method} runs on {', '.join(variant.envs)} only"
    reason = search_config.incompatibility(env_id, variant.controller, variant.env_kwargs)
    return None if reason is None else reason.split(". ")[0].split("; ")[0]


def _gate(suite: str, method: str, env_kwargs: Optional[dict] = None, **options: Any) -> SearchConfig:
    """The search config of one (method, suite), through the gate every search goes through
    (a variant's settings over the suite's)."""
    variant = variant_of(method)
    try:
        return search_config.make_config(**options, controller=variant.controller,
                                         env_kwargs={**(env_kwargs or {}), **variant.env_kwargs},
                                         controller_kwargs=dict(variant.controller_kwargs), checkpoint_every=10**9)
    except (InputError, TypeError, ValueError) as error:
        raise InputError(f"{suite}: {method}: {error}") from None


def _samples_per_step(method: str, space: Any) -> int:
    """Architectures ``method`` asks for per step (an instance knows: ASNG's depends on its lambda)."""
    variant = variant_of(method)
    return controllers.make(variant.controller, space, seed=0, **variant.controller_kwargs).samples_per_step


def _nb1d_env_kwargs(config: CompareConfig, table: Any) -> dict:
    """The nb1d supernet's keywords: the task the judging table was trained on (its MNIST-1D
    generator options), at the comparison's supernet size and budget."""
    kwargs = {"dataset": "mnist1d", "space": config.space, "C": config.supernet_channels,
              "n_cells": config.supernet_cells, "batch_size": config.batch_size, "warmup_epochs": config.warmup_epochs}
    options = ground_truth.task_options(table)
    return {**kwargs, "dataset_options": options} if options else kwargs


def _judge(config: CompareConfig) -> ground_truth.Judge:
    """The judge of the nb1d suites; ``InputError`` for a table that cannot judge them."""
    try:
        space = get_space(config.space)
    except (KeyError, ValueError) as error:
        raise InputError(str(error).strip("'\"")) from None
    try:
        table = load_table(config.table)
        ground_truth.check_task(table, space, "mnist1d", ground_truth.task_options(table))  # the table's own task
    except (KeyError, ValueError) as error:
        raise InputError(f"--table {config.table}: {str(error).strip(chr(39))}") from None
    return ground_truth.Judge(table, space)


def _sampled_notes(judge: ground_truth.Judge, config: CompareConfig, suites: list[str], notes: list[str]) -> None:
    """For a sampled (partial) table, the notes saying so: a cell it lacks, derived (nb1d) or
    queried (nb1d-table's ``Tabular-v0``), is trained on demand into ``OUT/fill``."""
    table = judge.table
    if table.covers_space():
        return
    sample = (f"table {table.name} is sampled: {len(table.archs)} of the space's "
              f"{table.manifest.get('space_distinct', '?')} distinct architectures")
    notes.append(f"{sample}: a cell outside it is trained on demand with the table's recipe and the seeds its build "
                 f"plans for it (so are the planned seeds a cell it holds in part lacks), and its regret is against "
                 f"the best sampled cell (negative when it beats them all)")
    notes.append(f"the cells trained on demand go into {Path(config.out) / FILL_DIR}, a build folder that "
                 f"`nasgen bench merge` folds into the table's build")


def _fill(config: CompareConfig, table: Any) -> dict:
    """``{"fill": the comparison's fill folder}`` for a sampled table, else ``{}``."""
    return {} if table.covers_space() else {"fill": str(Path(config.out).resolve() / FILL_DIR)}


def _tabular_kwargs(config: CompareConfig, table: Any, table_path: str) -> dict:
    """``Tabular-v0``'s table, and on a sampled table the comparison's fill folder."""
    return {"table": table_path, **_fill(config, table)}


def _specs(suite: str, method: str, config: CompareConfig, table_path: Optional[str], table: Any) -> dict:
    """The seed-free part of a task's spec: which runner, and its checked search config."""
    if suite == NB1D:
        checked = _gate(suite, method, env=ONESHOT_ID, env_kwargs=_nb1d_env_kwargs(config, table), epochs=config.epochs,
                        protocol=config.protocol, table=table_path)
        return {"runner": "supernet", "config": asdict(checked), **_fill(config, table)}
    if suite == NB1D_TABLE:
        if method == RANDOM_EPOCHS:
            budget = _gate(NB1D, "random", env=ONESHOT_ID, env_kwargs=_nb1d_env_kwargs(config, table),
                           epochs=config.epochs,
                           protocol=config.protocol, table=ground_truth.OFF)
            common = {"budget_config": asdict(budget), "recipe_epochs": table.manifest["recipe"]["epochs"]}
            checked = _gate(suite, "random", env=TABULAR_ID, env_kwargs={**_tabular_kwargs(config, table, table_path),
                                                                         "budget": 1},
                            steps=1, table=ground_truth.OFF)
            return {"runner": "random-epochs", "config": asdict(checked), **common}
        per_step = _samples_per_step(method, table.space)
        steps = max(1, config.queries // per_step)
        checked = _gate(suite, method, env=TABULAR_ID, steps=steps, table=ground_truth.OFF,
                        env_kwargs={**_tabular_kwargs(config, table, table_path), "budget": steps * per_step})
        return {"runner": "table", "config": asdict(checked)}
    if suite == TEACHER:
        kind = _controller(variant_of(method).controller).kind
        per_step = 1 if kind == "gradient" else _samples_per_step(method, TeacherSpace(config.teacher_edges,
                                                                                       config.teacher_ops))
        checked = _gate(suite, method, env=TEACHER_ID, steps=max(1, math.ceil(config.teacher_evaluations / per_step)),
                        env_kwargs={"n_edges": config.teacher_edges, "n_ops": config.teacher_ops},
                        table=ground_truth.OFF)
        return {"runner": "teacher", "config": asdict(checked)}
    if suite == NBG:
        checked = _gate(suite, method, env=NBG_ID, env_kwargs={"dataset": config.nbg_datasets[0],
                                                               "invalid_reward": 0.0},
                        steps=1, table=ground_truth.OFF)
        return {"runner": "nbg", "config": asdict(checked), "datasets": list(config.nbg_datasets),
                "budget_frac": config.nbg_budget_frac}
    raise ValueError(f"no suite {suite!r}")


def check(config: CompareConfig) -> Plan:
    """The gate of a comparison: every value and name checked, every (method, suite) through
    the search gate, nothing built beyond controllers thrown away and the table loaded.

    Returns:
        The plan.

    Raises:
        InputError: the first bad value, in one line.
    """
    try:
        checks.check_fields(config)
    except ValueError as error:
        raise InputError(str(error)) from None
    config = resolved(config)
    if config.local and (config.address or config.num_cpus is not None):
        raise InputError("--address and --num-cpus are for Ray; they do not apply with --local")
    if config.address and config.num_cpus is not None:
        raise InputError("--num-cpus sizes a local Ray instance; it does not apply with --address")
    if config.seeds > MAX_SEEDS:
        raise InputError(f"--seeds: expected at most {MAX_SEEDS}, got {config.seeds}")
    methods = list(config.controllers or [*controllers.names(), *VARIANTS])
    kinds = {m: _controller(variant_of(m).controller).kind for m in methods}
    notes = []
    missing = nbg_unavailable()
    for suite in config.suites or ():
        if suite not in SUITES:
            raise InputError(f"unknown suite {short(suite)}; choose from: {', '.join(SUITES)}")
    if config.suites is None:
        suites = [s for s in SUITES if s != NBG or missing is None]
        if missing:
            notes.append(f"suite {NBG} left out: {missing}")
    else:
        suites = [s for s in SUITES if s in config.suites]  # the report's order
        if NBG in suites and missing:
            raise InputError(f"suite {NBG}: {missing}")
    unknown = [d for d in config.nbg_datasets if d not in NBG_DATASETS]
    if NBG in suites and unknown:
        raise InputError(f"unknown NAS-Bench-Graph dataset {short(unknown[0])}; choose from: {', '.join(NBG_DATASETS)}")
    if config.protocol not in protocols.names():
        raise InputError(f"unknown protocol {short(config.protocol)}; choose from: {', '.join(protocols.names())}")
    if config.baselines is not None:
        for name in config.baselines:
            if name not in methods and name != RANDOM_EPOCHS:
                raise InputError(f"--baselines: {short(name)} is not a compared method; choose from: "
                                 f"{', '.join(methods + [RANDOM_EPOCHS])}")
    baselines = list(config.baselines if config.baselines is not None else DEFAULT_BASELINES)
    judge = _judge(config) if {NB1D, NB1D_TABLE} & set(suites) else None
    if judge is not None:
        _sampled_notes(judge, config, suites, notes)
    table_path = str(resolve_table(config.table).resolve()) if judge is not None else None
    seeds = list(range(config.seeds))
    tasks, skipped, rows = [], [], {}
    for suite in suites:
        rows[suite] = []
        candidates = methods + ([RANDOM_EPOCHS] if suite == NB1D_TABLE else [])
        for method in candidates:
            reason = None if method == RANDOM_EPOCHS else _reason(SUITES[suite].env, method)
            if reason:
                skipped.append({"method": method, "suite": suite, "reason": reason})
                continue
            spec = _specs(suite, method, config, table_path, judge.table if judge is not None else None)
            spec.update(suite=suite, method=method, threads=config.threads,
                        kind=kinds.get(method, "black-box"))
            rows[suite].append(method)
            tasks += [Task(suite, method, seed, {**spec, "seed": seed}) for seed in seeds]
    if rows.get(NB1D_TABLE) == [RANDOM_EPOCHS] and NB1D not in suites:  # a baseline of nothing
        rows[NB1D_TABLE] = []
        tasks = [t for t in tasks if t.suite != NB1D_TABLE]
    suites = [s for s in suites if rows[s]]  # a suite where nothing runs has no report: its pairs are skipped
    rows = {s: rows[s] for s in suites}
    if not tasks:
        raise InputError("nothing to run: no compared method can run on the chosen suites ("
                         + "; ".join(f"{s['method']} on {s['suite']}: {s['reason']}" for s in skipped[:3]) + ")")
    if not config.quick and config.seeds < FULL_RUN_SEEDS:
        notes.append(f"{config.seeds} seed(s), fewer than a full run's {FULL_RUN_SEEDS}: the bootstrap intervals are "
                     f"wide, and the exact Wilcoxon test needs 6 seeds on which two methods differ to reach p < 0.05")
    return Plan(config, methods, suites, seeds, baselines, tasks, rows, skipped, notes,
                judge.table.manifest.get("sha256") if judge is not None else None)


# --- one task -----------------------------------------------------------------------------------------
class _TaskSearch(Search):
    """``Search`` for one task: no checkpoints (a task reruns whole), no final credit check,
    and, on the teacher, the first step at which ``derive()`` equals the teacher (noted in
    ``_after_step``, outside the timed region)."""

    final_credit_check = False
    track_teacher = False

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.recovered: Optional[dict] = None

    def checkpoint(self) -> None:
        return None

    def _after_step(self) -> None:
        super()._after_step()
        if self.track_teacher and self.recovered is None and \
                np.array_equal(self.controller.derive(), self.env.unwrapped.teacher):
            self.recovered = {"evaluations": int(self.evaluations), "seconds": float(self.wall_time),
                              "steps": int(self.step)}


def _search(config: SearchConfig, track_teacher: bool = False, fill: Optional[str] = None) -> tuple[_TaskSearch, dict]:
    """Run one search in a throw-away run directory; returns the search and its result. A
    sampled table's judge trains the derived cell it lacks into ``fill`` (the comparison's)."""
    with tempfile.TemporaryDirectory(prefix="nasgen-compare-") as tmp:
        search = _TaskSearch(config, Path(tmp) / "run")
        search.track_teacher = track_teacher
        search.fill = Path(fill) if fill is not None else None
        result = search.run()
    return search, result


def _config(spec: dict, key: str = "config", **changes: Any) -> SearchConfig:
    return dataclasses.replace(SearchConfig(**spec[key]), seed=spec["seed"], **changes)


def _figures(verdict: dict) -> dict:
    """The row's figures of a table's verdict (``Judge.judge``)."""
    return {"test_accuracy": verdict["test_accuracy"], "val_accuracy": verdict["val_accuracy"],
            "test_regret": verdict["test_regret"], "test_regret_se": verdict["test_regret_se"],
            "percentile": verdict["percentile"], "table_arch": [int(a) for a in verdict["arch"]],
            "trained_on_demand": verdict["trained_on_demand"]}


def _run_supernet(spec: dict) -> dict:
    search, result = _search(_config(spec), fill=spec.get("fill"))
    verdict = result.get("ground_truth") or {"error": "the table did not judge the search"}
    if "error" in verdict:
        raise ValueError(verdict["error"])
    plan = result["protocol_plan"]
    return {**_figures(verdict), "derived_arch": result["derived_arch"], "architecture": result["architecture"],
            "wall_time_s": search.wall_time, "warmup_s": search.setup_time,
            "steps": result["steps"], "evaluations": result["evaluations"], "warmup_epochs": plan["warmup_epochs"],
            "total_epochs": plan["total_epochs"], "budget": f"{plan['total_epochs']:.3g} epochs"}


def _best_queried(config: SearchConfig) -> dict:
    """A black box on the table: its answer is its best queried cell by validation accuracy."""
    search, result = _search(config)
    env = search.env.unwrapped  # its table loaded and checked; its judge trains what a sampled one lacks
    judge = env.judge or ground_truth.Judge(env.table, env.table.space)
    answer = result["best_arch"]
    if answer is None:
        raise ValueError("no query gave a finite reward")
    return {**_figures(judge.judge(answer)), "derived_arch": answer, "policy_arch": result["derived_arch"],
            "policy_test_regret": judge.judge(result["derived_arch"])["test_regret"],
            "wall_time_s": search.wall_time, "steps": result["steps"], "queries": int(search.evaluations)}


def _run_table(spec: dict) -> dict:
    row = _best_queried(_config(spec))
    return {**row, "budget": f"{row['queries']} queries"}


def _run_random_epochs(spec: dict) -> dict:
    """Random search at equal epochs: the supernet suite's total epochs over the table recipe's
    epochs per cell (at least one cell), the best of them by validation accuracy."""
    n, total_epochs = _random_epochs_cells(spec)
    recipe_epochs = spec["recipe_epochs"]
    base = SearchConfig(**spec["config"])
    row = _best_queried(_config(spec, steps=n, env_kwargs={**base.env_kwargs, "budget": n}))
    return {**row, "total_epochs": total_epochs, "cells": n,
            "budget": f"{n} cell(s) x {recipe_epochs} epochs ({total_epochs:.3g} epochs)"}


def _random_epochs_cells(spec: dict) -> tuple[int, float]:
    """Random search's cell count at the supernet suite's epochs: its total epochs over the
    table recipe's epochs per cell (at least one cell); and those total epochs."""
    budget = _config(spec, "budget_config")
    probe = gym.make(budget.env, **search_config.env_kwargs(budget)).unwrapped  # batch counts; no warm-up
    total_epochs = protocols.plan_search(budget, probe).total_epochs
    probe.close()
    return max(1, int(total_epochs // spec["recipe_epochs"])), total_epochs


def _run_teacher(spec: dict) -> dict:
    search, result = _search(_config(spec), track_teacher=True)
    env = search.env.unwrapped
    derived = np.asarray(result["derived_arch"])
    recovered = search.recovered
    return {"loss": -float(env.score(derived)), "edges_wrong": int((derived != env.teacher).sum()),
            "recovered": recovered is not None,
            "evaluations_to_recover": recovered["evaluations"] if recovered else None,
            "seconds_to_recover": recovered["seconds"] if recovered else None,
            "derived_arch": result["derived_arch"], "teacher": [int(a) for a in env.teacher],
            "wall_time_s": search.wall_time, "steps": result["steps"], "evaluations": int(search.evaluations),
            "budget": f"{int(search.evaluations)} evaluations"}


def _run_nbg(spec: dict) -> dict:
    base = _config(spec)
    per_dataset = {}
    for dataset in spec["datasets"]:
        kwargs = {**base.env_kwargs, "dataset": dataset}
        env = gym.make(NBG_ID, **kwargs).unwrapped
        budget = max(1, round(spec["budget_frac"] * len(env.table)))
        per_step = _samples_per_step(base.controller, env.space)
        env.close()
        search, result = _search(dataclasses.replace(base, env_kwargs=kwargs, steps=math.ceil(budget / per_step)))
        u = search.env.unwrapped
        best = search.best_arch
        found = 0.0 if best is None or u.space.is_all_skip(best) else u.lookup(best)["test_perf"]
        per_dataset[dataset] = {"test_regret": u.best_test - found, "test_perf": found,
                                "queries": int(search.evaluations),
                                "wall_time_s": search.wall_time,
                                "best_arch": None if best is None else [int(a) for a in best]}
    return {"test_regret": float(np.mean([d["test_regret"] for d in per_dataset.values()])),
            "wall_time_s": float(sum(d["wall_time_s"] for d in per_dataset.values())),
            "queries": int(sum(d["queries"] for d in per_dataset.values())), "per_dataset": per_dataset,
            "budget": f"{sum(d['queries'] for d in per_dataset.values())} queries, {len(per_dataset)} dataset(s)"}


RUNNERS: dict[str, Callable[[dict], dict]] = {"supernet": _run_supernet, "table": _run_table,
                                               "random-epochs": _run_random_epochs,
                                               "teacher": _run_teacher,
                                               "nbg": _run_nbg}


def _one_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    text = f"{type(error).__name__}: {lines[0] if lines else ''}".rstrip(": ")
    return text if len(text) <= 300 else text[:297] + "..."


def run_task(spec: dict) -> dict:
    """Run one task in a fresh state: its own environment (and warm-up), every generator
    seeded from its seed, torch at its thread count. What a Ray worker executes.

    Args:
        spec: a ``Task.spec``.

    Returns:
        The task's row: ``suite``, ``method``, ``seed``, ``kind``, the suite's figures,
        ``wall_time_s`` (the architecture phase), ``task_s`` (all of it); a failure is a row
        with ``error`` (one line) instead of figures.
    """
    row = {"suite": spec["suite"], "method": spec["method"], "seed": spec["seed"], "kind": spec["kind"]}
    threads = torch.get_num_threads()
    runtime.apply_threads(spec["threads"])
    start = time.perf_counter()
    try:
        with runtime.isolated_seed(spec["seed"]):
            row.update(RUNNERS[spec["runner"]](spec))
    except Exception as error:  # one task must not sink the comparison: the report lists it
        row["error"] = _one_line(error)
    finally:
        torch.set_num_threads(threads)  # a task run in the caller's process leaves its thread count
    row["task_s"] = time.perf_counter() - start
    return row


# --- the folder ---------------------------------------------------------------------------------------
def suite_settings(plan: Plan) -> dict[str, dict]:
    """Per suite of ``plan``, the values of its ``SUITE_FIELDS`` (as JSON reads them back)."""
    settings = {}
    for suite in plan.suites:
        values = {name: getattr(plan.config, name) for name in SUITE_FIELDS[suite]}
        if suite in (NB1D, NB1D_TABLE):
            values["table_sha256"] = plan.table_sha256
        settings[suite] = json.loads(json.dumps(values))
    return settings


def _recorded(out: Path) -> Optional[dict]:
    """The per-suite settings recorded in ``out`` (None: no comparison there yet)."""
    recorded = out / SETTINGS_FILE
    if not recorded.is_file():
        if out.is_dir() and any(out.iterdir()):
            raise InputError(f"--out {out} is a folder of something else (no {SETTINGS_FILE}); give a new or "
                             f"empty folder")
        return None
    try:
        settings = json.loads(recorded.read_text())["settings"]
        if not isinstance(settings, dict) or not all(isinstance(v, dict) for v in settings.values()):
            raise TypeError
    except (OSError, ValueError, KeyError, TypeError):
        raise InputError(f"--out {out}: {SETTINGS_FILE} is unreadable; give another --out") from None
    return settings


def _check_folder(out: Path, plan: Plan) -> dict[str, dict]:
    """Refuse an ``out`` that cannot hold this comparison: not a creatable folder, a non-empty
    folder of something else, or a suite that ran there with other settings. Creates nothing.

    Returns:
        The per-suite settings to record: those recorded before, with this plan's new suites.
    """
    try:
        runtime.check_creatable_dir(out, "--out")
    except ValueError as error:
        raise InputError(str(error)) from None
    before = _recorded(out) or {}
    now = suite_settings(plan)
    for suite, values in now.items():
        old = before.get(suite)
        differing = [k for k in values if old is not None and old.get(k) != values[k]]
        if differing:
            k = differing[0]
            what = "table checksum" if k == "table_sha256" else k
            raise InputError(f"--out {out} holds suite {suite} run with other settings ({what}: {short(old.get(k))} "
                             f"there, {short(values[k])} here"
                             + (f"; {len(differing) - 1} more" if len(differing) > 1 else "") + "); give another --out")
    return {**before, **now}


def finished_row(out: Path, task: Task) -> Optional[dict]:
    """The row of ``task`` finished in ``out`` before, or None (missing, unreadable, failed)."""
    path = out / TASKS / f"{task.name}.json"
    try:
        row = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(row, dict) or "error" in row or (row.get("suite"), row.get("method"), row.get("seed")) != \
            (task.suite, task.method, task.seed):
        return None
    return row


# --- running -----------------------------------------------------------------------------------------
def _ray():
    try:
        import ray
    except ImportError:
        raise InputError(f"nasgen compare runs its tasks on Ray, which is not installed; {INSTALL_HINT}, or give "
                         f"--local") from None
    return ray


def _start_ray(ray, config: CompareConfig) -> bool:
    """Join ``config.address`` or start a local instance (``runtime.start_ray``); whether this
    call started Ray.

    Raises:
        InputError: Ray cannot start or join, or the cluster has no CPU for a task.
    """
    started = runtime.start_ray(ray, config.address, config.num_cpus)
    if float(ray.cluster_resources().get("CPU", 0.0)) < 1:
        if started:
            ray.shutdown()
        where = f"the Ray cluster at {config.address}" if config.address else "the local Ray instance"
        raise InputError(f"{where} has no CPU to run a task on")
    return started


def _run_local(todo: list[Task], done: Callable[[Task, dict], None]) -> None:
    for task in todo:
        done(task, run_task(task.spec))


def _run_ray(ray, todo: list[Task], done: Callable[[Task, dict], None]) -> None:
    remote = ray.remote(num_cpus=1, max_retries=0)(run_task)
    pending = {remote.remote(task.spec): task for task in todo}
    for task, row, error in runtime.ray_as_completed(ray, pending):
        if error is not None:  # the worker died or Ray failed the task: a failed row
            row = {"suite": task.suite, "method": task.method, "seed": task.seed, "kind": task.spec["kind"],
                   "error": runtime.error_line(error)}
        done(task, row)


def _machine() -> dict:
    return {"logical_cores": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
            "torch": torch.__version__, "load_average": runtime.load_average()}


def run(config: CompareConfig, progress: bool = True, echo: Optional[Callable[[str], None]] = print) -> dict:
    """Run a comparison: check it, skip the tasks finished in ``out`` before, run the rest
    (on Ray, or one after the other with ``local``), write each as it finishes, then write
    and return the report.

    Args:
        config: the comparison.
        progress: show a progress bar over the tasks.
        echo: where the plan line and the report's markdown go (None: nowhere).

    Returns:
        The report (``report.json``'s content) with ``markdown``, ``paths`` and ``failed``
        (the number of tasks that failed) added.

    Raises:
        InputError: bad input, in one line, before anything is created.
        KeyboardInterrupt: interrupted; the tasks finished so far are kept in ``out``, and the
            report of them is written first (the others listed as not run).
    """
    echo = echo or (lambda text: None)
    plan = check(config)
    config = plan.config
    out = Path(config.out)
    settings = _check_folder(out, plan)
    rows: dict[str, dict] = {}
    for task in plan.tasks:
        row = finished_row(out, task)
        if row is not None:
            rows[task.name] = row
    todo = [t for t in plan.tasks if t.name not in rows]
    ray, started = None, False
    if todo and not config.local:
        ray = _ray()
        started = _start_ray(ray, config)
    failures: dict[str, dict] = {}
    began = time.time()
    try:
        with runtime.folder_lock(out, LOCK, "comparison folder", "nasgen compare"):
            (out / TASKS).mkdir(exist_ok=True)
            for stale in [*out.glob(".*.tmp"), *(out / TASKS).glob(".*.tmp")]:  # writes that were killed
                stale.unlink(missing_ok=True)
            jsonfile.write(out / SETTINGS_FILE, {
                "settings": settings,
                "plan": {"methods": plan.methods, "suites": plan.suites, "seeds": plan.seeds,
                         "baselines": plan.baselines, "tasks": [t.name for t in plan.tasks], "skipped": plan.skipped}},
                default=jsonfile.numpy_default)
            where = ("" if not todo else " one after the other in this process" if config.local else
                     f" on Ray ({config.address or 'a local instance'}), one CPU each")
            echo(_plan_line(plan, len(rows), len(todo), out, where))
            bar = tqdm(total=len(plan.tasks), initial=len(rows), desc="compare", unit="task", disable=not progress,
                       dynamic_ncols=True)

            def done(task: Task, row: dict) -> None:
                if "error" in row:
                    failures[task.name] = row
                    tqdm.write(f"nasgen compare: task {task.name} failed: {row['error']}", file=sys.stderr)
                else:
                    jsonfile.write(out / TASKS / f"{task.name}.json", row, default=jsonfile.numpy_default)
                    rows[task.name] = row
                bar.set_postfix_str(task.name, refresh=False)
                bar.update(1)

            stopped = False
            try:
                if todo and ray is not None:
                    _run_ray(ray, todo, done)
                else:
                    _run_local(todo, done)
            except KeyboardInterrupt:  # a long comparison stopped: report what finished
                stopped = True
            finally:
                bar.close()
            report = build_report(plan, [rows.get(t.name) or failures.get(t.name) or _not_run(t) for t in plan.tasks],
                                  {**_machine(), "wall_s": round(time.time() - began, 1),
                                   "executor": "local" if config.local else f"ray ({config.address or 'local'})"})
            paths = write_report(out, report)
    finally:
        if started:
            ray.shutdown()
    if stopped:
        left = sum(1 for t in plan.tasks if t.name not in rows and t.name not in failures)
        echo(f"stopped with {left} task(s) not run; the report of the {len(rows)} finished: "
             f"{', '.join(map(str, paths))}; the same command runs the rest")
        raise KeyboardInterrupt
    echo(report["markdown"])
    echo(f"{len(plan.tasks) - len(failures)}/{len(plan.tasks)} tasks finished ({len(plan.tasks) - len(todo)} before), "
         f"{len(failures)} failed; report: {', '.join(map(str, paths))}")
    return {**report, "paths": [str(p) for p in paths], "failed": len(failures)}


def _not_run(task: Task) -> dict:
    """The row of a task a stopped comparison did not finish."""
    return {"suite": task.suite, "method": task.method, "seed": task.seed, "kind": task.spec["kind"], "not_run": True}


def _plan_line(plan: Plan, finished: int, todo: int, out: Path, where: str) -> str:
    pairs = sum(len(m) for m in plan.rows.values())
    size = (f"{len(plan.tasks)} tasks = {pairs} (method, suite) pairs x {len(plan.seeds)} seeds "
            f"({len(plan.methods)} methods x {len(plan.suites)} suites"
            + (f", {len(plan.skipped)} pairs skipped" if plan.skipped else "")
            + (f", + {RANDOM_EPOCHS} on {NB1D_TABLE}" if NB1D_TABLE in plan.rows else "") + ")")
    return (f"compare: {size}; {finished} finished before, {todo} to run{where}; folder {out}"
            + "".join(f"\n  skipped {s['method']} on {s['suite']}: {s['reason']}" for s in plan.skipped)
            + "".join(f"\n  note: {n}" for n in plan.notes))


# --- the report ---------------------------------------------------------------------------------------
def _finished(row: dict) -> bool:
    return "error" not in row and not row.get("not_run")


def _ok(rows: Sequence[dict], suite: str, method: str) -> dict[int, dict]:
    return {r["seed"]: r for r in rows if r["suite"] == suite and r["method"] == method and _finished(r)}


def _time_ratios(rows: Sequence[dict], suite: str) -> dict[tuple[str, int], float]:
    """Per (method, seed): its architecture-phase time over DARTS's in the same suite and seed."""
    reference = _ok(rows, suite, REFERENCE)
    ratios = {}
    for r in rows:
        base = reference.get(r["seed"])
        if r["suite"] == suite and _finished(r) and base is not None and base.get("wall_time_s"):
            ratios[(r["method"], r["seed"])] = r["wall_time_s"] / base["wall_time_s"]
    return ratios


def _summary(plan: Plan, rows: Sequence[dict], suite: str) -> list[dict]:
    s = SUITES[suite]
    ratios = _time_ratios(rows, suite)
    out = []
    for method in plan.rows[suite]:
        mine = [r for r in rows if r["suite"] == suite and r["method"] == method]
        ok = [r for r in mine if _finished(r)]
        entry = {"method": method, "kind": mine[0]["kind"] if mine else None, "seeds": len(ok),
                 "failed": sum("error" in r for r in mine), "not_run": sum(bool(r.get("not_run")) for r in mine),
                 "errors": sorted({r["error"] for r in mine if "error" in r}),
                 "budget": ok[0].get("budget") if ok else None,
                 "figure": stats.summary([r.get(s.figure) for r in ok]),
                 "percentile": stats.summary([r.get("percentile") for r in ok]) if s.percentile else None,
                 "noise_floor": stats.summary([r.get("test_regret_se") for r in ok]) if s.percentile else None,
                 "wall_time_s": stats.summary([r.get("wall_time_s") for r in ok]),
                 "time_ratio": stats.summary([ratios.get((method, r["seed"])) for r in ok])}
        if suite == NB1D:
            entry["warmup_s"] = stats.summary([r.get("warmup_s") for r in ok])
        if suite == TEACHER:
            evals = [r["evaluations_to_recover"] if r.get("recovered") else math.inf for r in ok]
            entry["recovered"] = sum(bool(r.get("recovered")) for r in ok)
            entry["median_evaluations_to_recover"] = float(np.median(evals)) if evals else math.nan
        out.append(entry)
    return out


def _tests(plan: Plan, rows: Sequence[dict], suite: str, rng: np.random.Generator) -> list[dict]:
    """Every method of ``suite`` against every baseline that ran, on their common seeds.
    ``nb1d`` is also tested against ``random@epochs`` of ``nb1d-table``: one table judges both."""
    s = SUITES[suite]
    baselines = []
    for name in plan.baselines:
        if name in plan.rows.get(suite, []):
            baselines.append((name, suite))
        elif suite == NB1D and name == RANDOM_EPOCHS and RANDOM_EPOCHS in plan.rows.get(NB1D_TABLE, []):
            baselines.append((name, NB1D_TABLE))
    tests, seen = [], set()
    for method in plan.rows[suite]:
        mine = _ok(rows, suite, method)
        for name, where in baselines:
            pair = frozenset([(method, suite), (name, where)])
            if len(pair) == 1 or pair in seen:  # itself, or two baselines already tested the other way
                continue
            seen.add(pair)
            theirs = _ok(rows, where, name)
            common = sorted(set(mine) & set(theirs))
            if not common:  # one of them has no finished seed (failed, or not run yet): nothing to pair
                continue
            a = [mine[k].get(s.figure) for k in common]
            b = [theirs[k].get(s.figure) for k in common]
            tests.append({"method": method, "versus": name + ("" if where == suite else f" ({where})"),
                          "seeds": common, "wilcoxon": stats.wilcoxon_signed_rank(a, b),
                          "bootstrap": stats.paired_bootstrap_ci(a, b, rng)})
    return tests


def build_report(plan: Plan, rows: list[dict], machine: dict) -> dict:
    """The report of ``rows`` (every task of ``plan``, finished or failed): per suite the
    summary and the paired tests, and the markdown of both."""
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    suites = {}
    for suite in plan.suites:
        suites[suite] = {"title": SUITES[suite].title, "figure": SUITES[suite].figure,
                         "figure_label": SUITES[suite].figure_label, "summary": _summary(plan, rows, suite),
                         "tests": _tests(plan, rows, suite, rng)}
    report = {"command": "nasgen compare", "settings": asdict(plan.config), "table_sha256": plan.table_sha256,
              "methods": plan.methods, "suites_run": plan.suites, "seeds": plan.seeds, "baselines": plan.baselines,
              "skipped": plan.skipped, "notes": plan.notes, "machine": machine, "suites": suites, "tasks": rows}
    report["markdown"] = markdown(report)
    return report


def _fmt(value: Optional[float], spec: str, scale: float = 1.0) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return format(value * scale + 0.0, spec)  # + 0.0: no "-0.00"


def _pm(s: dict, spec: str, scale: float = 1.0) -> str:
    if not s or not s["n"]:
        return "-"
    return f"{_fmt(s['mean'], spec, scale)} ± {_fmt(s['std'], spec, scale)}"


def _ci(s: dict, spec: str, scale: float = 1.0) -> str:
    if not s or not math.isfinite(s["low"]):
        return "-"
    return f"[{_fmt(s['low'], spec, scale)}, {_fmt(s['high'], spec, scale)}]"


def _table(header: Sequence[str], body: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in body])


def markdown(report: dict) -> str:
    """The report as markdown: per suite the summary table and the paired tests."""
    c = report["settings"]
    ran = report["suites_run"]
    settings = {
        NB1D: f"nb1d: {c['space']} on MNIST-1D, supernet C={c['supernet_channels']} x {c['supernet_cells']} "
              f"cell(s) per stage, batch {c['batch_size']}; protocol {c['protocol']}: every method "
              f"{c['warmup_epochs']:g} warm-up + {c['epochs']:.3g} search epochs of budget, split per method; "
              f"judged by table {c['table']}",
        NB1D_TABLE: f"nb1d-table: {c['queries']} queries per black box, table {c['table']}",
        TEACHER: f"teacher: {c['teacher_edges']} edges x {c['teacher_ops']} ops, {c['teacher_evaluations']} "
                 f"evaluations per method",
        NBG: f"nbg: {', '.join(c['nbg_datasets'])} at {c['nbg_budget_frac']:g} of each table"}
    lines = [f"# nasgen compare: {len(report['methods'])} methods x {len(ran)} suites x {len(report['seeds'])} seeds",
             "", "Settings: " + "; ".join(settings[s] for s in ran) + f"; {c['threads']} torch thread(s) per task, "
             f"run {report['machine'].get('executor', '')}.", ""]
    for suite, part in report["suites"].items():
        s = SUITES[suite]
        lines += [f"## {suite}: {part['title']}", ""]
        header = ["method", "kind", "seeds", "budget", f"{s.figure_label} (mean ± std)", "95% CI (t)"]
        header += ["percentile", "table SE of one regret"] if s.percentile else []
        header += ["recovered", "median evals to recover"] if suite == TEACHER else []
        timed = REFERENCE in [e["method"] for e in part["summary"]]
        header += ["arch-phase s"] + ([f"time / {REFERENCE}"] if timed else [])
        body = []
        for e in part["summary"]:
            if not e["seeds"]:
                why = ("failed: " + "; ".join(e["errors"])[:120]) if e["failed"] else "not run yet"
                body.append([e["method"], e["kind"] or "", f"0/{e['failed'] + e['not_run']}", why]
                            + [""] * (len(header) - 4))
                continue
            row = [e["method"], e["kind"], f"{e['seeds']}" + (f" ({e['failed']} failed)" if e["failed"] else "")
                   + (f" ({e['not_run']} not run)" if e["not_run"] else ""),
                   e["budget"] or "", _pm(e["figure"], s.spec, s.scale), _ci(e["figure"], s.spec, s.scale)]
            row += [_pm(e["percentile"], ".1f"), _fmt((e.get("noise_floor") or {}).get("mean"), s.spec, s.scale)] \
                if s.percentile else []
            if suite == TEACHER:
                median = e["median_evaluations_to_recover"]
                row += [f"{e['recovered']}/{e['seeds']}", "> budget" if math.isinf(median) else _fmt(median, ".0f")]
            row += [_pm(e["wall_time_s"], ".2f")] + ([_pm(e["time_ratio"], ".2f")] if timed else [])
            body.append(row)
        lines += [_table(header, body), ""]
        if s.percentile:
            lines += ["Table SE of one regret: the standard error the table's own seed noise puts on one judged "
                      "regret (its cell and the table's best, `Judge.judge`), mean over seeds; two methods whose "
                      "regrets differ by less are within the table's noise.", ""]
        if part["tests"]:
            unit = "pp" if s.scale == 100 else ""
            lines += [f"Paired tests over seeds of {s.figure_label} (difference = method - baseline; negative "
                      f"favours the method):", ""]
            lines += [_table(["method", "versus", "seeds", f"mean diff {unit}".strip(), "bootstrap 95% CI",
                              "Wilcoxon p", "smallest p possible"],
                             [[t["method"], t["versus"], len(t["seeds"]), _fmt(t["bootstrap"]["mean"], "+" + s.spec,
                                                                             s.scale),
                               _ci(t["bootstrap"], "+" + s.spec, s.scale),
                               f"{t['wilcoxon']['p']:.3f}", f"{t['wilcoxon']['min_p']:.3f}"]
                              for t in part["tests"]]), ""]
    if report["skipped"]:
        lines += ["Skipped (method, suite) pairs:", ""]
        lines += [f"- {x['method']} on {x['suite']}: {x['reason']}" for x in report["skipped"]] + [""]
    failed = [r for r in report["tasks"] if "error" in r]
    if failed:
        lines += [f"Failed tasks ({len(failed)}; start the same command again to retry them):", ""]
        lines += [f"- {r['suite']} {r['method']} seed {r['seed']}: {r['error']}" for r in failed] + [""]
    not_run = [r for r in report["tasks"] if r.get("not_run")]
    if not_run:
        lines += [f"Not run yet ({len(not_run)} tasks; the comparison was stopped before them, and the same command "
                  f"runs them): " + ", ".join(f"{r['suite']} {r['method']} seed {r['seed']}" for r in not_run), ""]
    lines += [f"Note: {n}" for n in report["notes"]]
    ratio = (f"; time / {REFERENCE} divides by {REFERENCE}'s in the same suite and seed"
             if any(REFERENCE in [e["method"] for e in part["summary"]] for part in report["suites"].values()) else "")
    lines += [f"Times: architecture phase only (nb1d: after its own warm-up){ratio}; tasks that ran side by side "
              f"shared the machine."]
    return "\n".join(lines).rstrip() + "\n"


def plot(report: dict):
    """One panel per suite: every seed's main figure per method, and their mean ± std (a
    matplotlib figure on the Agg backend; the intervals are the markdown's, too wide to draw
    with few seeds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    suites = list(report["suites"])
    ncols = min(2, max(1, len(suites)))
    nrows = max(1, math.ceil(len(suites) / ncols))
    tallest = max([len(p["summary"]) for p in report["suites"].values()] or [1])
    fig, axes = plt.subplots(nrows, ncols, figsize=(6.0 * ncols, (1.2 + 0.35 * tallest) * nrows), squeeze=False)
    for k in range(len(suites), nrows * ncols):
        axes[k // ncols][k % ncols].axis("off")
    for k, suite in enumerate(suites):
        ax = axes[k // ncols][k % ncols]
        s, part = SUITES[suite], report["suites"][suite]
        names = [e["method"] for e in part["summary"]]
        for i, e in enumerate(part["summary"]):
            values = [r[s.figure] * s.scale for r in report["tasks"] if r["suite"] == suite and
                      r["method"] == e["method"] and "error" not in r and r.get(s.figure) is not None]
            ax.scatter(values, [i] * len(values), color="grey", s=12, zorder=2)
            f = e["figure"]
            if f["n"]:
                ax.errorbar(f["mean"] * s.scale, i, xerr=f["std"] * s.scale, fmt="o", color="C0", capsize=3, zorder=3)
        ax.set_yticks(range(len(names)), names)
        ax.invert_yaxis()
        ax.set_xlabel(s.figure_label)
        ax.set_title(suite, fontsize=10)
        ax.grid(alpha=0.3, axis="x")
    fig.suptitle("mean ± std over seeds (grey dots: the seeds); lower is better", fontsize=9)
    fig.tight_layout()
    return fig


def write_report(out: Path, report: dict) -> list[Path]:
    """Write ``report.md``, ``report.json`` and ``report.png`` into ``out``; returns the paths."""
    paths = [out / f"{REPORT}.md", out / f"{REPORT}.json", out / f"{REPORT}.png"]
    paths[0].write_text(report["markdown"])
    jsonfile.write(paths[1], {k: v for k, v in report.items() if k != "markdown"},
                   default=jsonfile.numpy_default)
    import matplotlib.pyplot as plt

    figure = plot(report)
    figure.savefig(paths[2], dpi=110, bbox_inches="tight")
    plt.close(figure)
    return paths
