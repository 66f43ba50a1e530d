"""Ground truth for a search: which table judges a (space, dataset), and its judgement.

``TABLES`` maps each shipped table to the search spaces and the dataset it answers for, as
data. A search on one of those spaces and that dataset (``nasgen search --space nb201
--dataset mnist1d``) finds the table with ``table_for`` and, at its end, looks the derived
cell up (``Judge.judge``): table test accuracy (mean over the table's training seeds),
test regret against the table's best, and percentile among all its distinct architectures.

A search is judged only where the table's training is the task the search ran on: the same
dataset, and the same dataset options except those in ``FREE_DATA_OPTIONS`` (split sizes and
the generator's seed change how much of the task is seen, not the task). Architectures of
another space map into the table's space through their NAS-Bench-201 string, so a table of
``nb201`` (with the zero op) judges ``nb201-nozero`` searches too.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

from nasgen.searchspace import dataset_options as get_dataset_options
from nasgen.searchspace import get as get_space
from nasgen.searchspace.registry import Registry

from .build import all_seeds, append_on_demand, good_extra, read_on_demand, seed_plan, table_settings
from .recipe import Recipe, network_cells, train_architecture
from .table import SHIPPED_DIR, Table, load


@dataclass(frozen=True)
class TableEntry:
    """A shipped table and the searches it can judge."""

    spaces: tuple[str, ...]
    """search-space presets whose architectures the table answers (through the NAS-Bench-201 string)"""
    dataset: str
    """the dataset the table's architectures were trained on"""
    cells_per_stage: int = 1
    """the depth of the table's networks (its recipe's ``cells_per_stage``; a test checks the two agree)"""
    dataset_options: dict = field(default_factory=dict)
    """the task's dataset options a search must share (``task_options`` of the table; a test checks)"""


#: Shipped table name -> what it judges. A name whose files are not in ``SHIPPED_DIR`` yet is
#: skipped (the table is built with ``nasgen bench build`` and shipped later): v2 is registered
#: for the harder MNIST-1D its recipe trains on and judges searches of that task once shipped.
TABLES: Registry[TableEntry] = Registry("ground-truth table")
TABLES.register("nb201-mnist1d")(TableEntry(spaces=("nb201", "nb201-nozero"), dataset="mnist1d"))
TABLES.register("nb201-mnist1d-v2")(TableEntry(spaces=("nb201", "nb201-nozero"), dataset="mnist1d",
                                               dataset_options={"iid_noise_scale": 0.04, "corr_noise_scale": 0.5}))

#: Per dataset, the options a search may set differently from the table's recipe.
FREE_DATA_OPTIONS: dict[str, tuple[str, ...]] = {
    "mnist1d": ("n_train", "n_test", "n_val", "val_fraction", "seed"),
}

#: ``SearchConfig.table`` value that turns the judgement off.
OFF = "none"

#: Build folder of a run directory holding cells a partial table lacked, trained for the verdict.
FILL_NAME = "ground_truth_trained"


class TableError(ValueError):
    """A table given for a search cannot judge it (unreadable, or another space or task)."""


def table_for(space: str, dataset: Optional[str], dataset_options: Optional[dict] = None) -> Optional[str]:
    """The shipped table that judges searches on ``space``, ``dataset`` and its options, if one
    is shipped: one trained on that task (``same_task``).

    Args:
        space: the search-space preset name.
        dataset: the dataset name (None: no dataset, no table).
        dataset_options: the search's dataset options (None: the dataset's defaults).

    Returns:
        The table's name, or None.
    """
    for name in TABLES:
        entry = TABLES.get(name)
        if space in entry.spaces and dataset == entry.dataset and (SHIPPED_DIR / f"{name}.json").is_file() \
                and same_task(dataset, entry.dataset_options, dataset_options) is None:
            return name
    return None


def same_task(dataset: str, table_options: Optional[dict], search_options: Optional[dict]) -> Optional[str]:
    """None when a search with ``search_options`` runs the task a table trained with
    ``table_options`` on ``dataset`` (every option compared with the dataset's defaults filled
    in, except ``FREE_DATA_OPTIONS``), else the first difference in words.

    Raises:
        ValueError: an option the dataset does not have.
    """
    theirs, ours = get_dataset_options(dataset, table_options), get_dataset_options(dataset, search_options)
    if theirs is None:
        return None
    free = FREE_DATA_OPTIONS.get(dataset, ())
    for f in dataclasses.fields(theirs):
        its, mine = getattr(theirs, f.name), getattr(ours, f.name)
        if f.name not in free and mine != its:
            return f"trained on {dataset} with {f.name}={its!r}, the search runs it with {f.name}={mine!r}"
    return None


def supernet_cells_for(space: str, dataset: Optional[str]) -> Optional[int]:
    """The supernet depth that matches the networks of the table judging ``space`` on ``dataset``.

    A one-shot search ranks the sub-networks of its supernet; when a table judges the search,
    the supernet whose sub-networks are the table's networks is the one with the table's
    skeleton, so that depth is the search's default (``OneShotNAS-v0``'s ``n_cells=None``).
    Read from ``TABLES`` (data), not from a table's files.

    Returns:
        Cells per stage (``nb201`` spaces) or cells in all (DARTS spaces) of the table's
        networks, or None when no registered table judges the search.
    """
    for name in TABLES:
        entry = TABLES.get(name)
        if space in entry.spaces and dataset == entry.dataset:
            return network_cells(get_space(space), entry.cells_per_stage)
    return None


def to_table_arch(table: Table, space: Any, arch: Any) -> np.ndarray:
    """``arch`` of ``space`` as an encoding of the table's space.

    Raises:
        ValueError: ``space`` neither is the table's space nor maps into it by its
            NAS-Bench-201 string (an op the table's space lacks, or another kind of cell).
    """
    if space == table.space:
        return table.space.validate(arch)
    if space.to_dict().get("cell") == "nb201" and table.space.to_dict().get("cell") == "nb201":
        return table.space.from_genotype(space.to_genotype(arch))
    raise ValueError(f"table {table.name!r} of space {table.space.name!r} cannot judge architectures of "
                     f"space {space.name!r}")


class Judge:
    """A loaded table and the search space whose architectures it judges.

    A partial table (a random sample of the distinct architectures, ``nasgen bench build
    --reliability-archs``, cut short) judges a cell it lacks only with ``fill``: the cell is
    then trained with the table's own recipe (``recipe.train_architecture``) and the seeds
    its build plans for that cell (``build.seed_plan``, recorded in the manifest, and a good
    cell's ``build.good_extra`` once its first seed has trained; every seed of the table for
    a cell outside the plan or a table that does not record it), so it
    answers as the finished table will. So is a cell the table holds with fewer seeds than its
    plan gives it (a build cut between a cell's seeds, ``lacks``): the seeds it lacks are
    trained, and it answers with all of them. ``fill`` is a build folder of the table's build
    (``build.json`` + ``rows.jsonl``): later judges of the same build reuse its rows, several
    processes may share it, and ``nasgen bench merge FILL BUILD`` folds them into the build.
    The cell is compared with the table's architectures: the percentile is among the
    sampled cells, the regret against the best sampled cell (negative when the cell beats
    every one).

    Args:
        table: the table.
        space: the search's space (the table's, or an NB201 space whose ops it holds).
        fill: a build folder for cells trained on demand (None: a missing cell is an error).
    """

    def __init__(self, table: Table, space: Any, fill: Optional[str | Path] = None):
        self.table = table
        self.space = space
        best = table.best("test_accuracy")
        self.best_test = best["value"]
        self.best_arch = best["arch"]
        self.best_test_se = float(table.standard_error("test_accuracy")[table.row_of(best["arch"])])
        self.fill = Path(fill) if fill is not None else None
        self._filled: dict[tuple, dict[int, dict]] = {}
        self._plan: Optional[dict[tuple, list[int]]] = None
        self._settings = table_settings(table.manifest)

    def _fill_seeds(self, key: tuple) -> list[int]:
        """The seeds the table's build plans for cell ``key`` before its first seed is known
        (all of the table's without a plan); a good cell adds ``build.good_extra``'s."""
        plan = self.table.manifest.get("plan")
        if plan is None:
            return [int(s) for s in self.table.seeds.tolist()]
        seeds = self._settings["seeds"]
        if self._plan is None:
            self._plan = seed_plan(self.table.space, seeds, plan.get("limit_archs"), plan.get("reliability_archs"))
        return self._plan.get(key, seeds)

    def _read_fill(self) -> None:
        """Load the rows the fill folder holds now (other processes may have added some)."""
        self._filled = {}
        for row in read_on_demand(self.fill, self._settings):
            self._filled.setdefault(tuple(row["arch"]), {})[int(row["seed"])] = row

    def _key(self, arch: Any) -> tuple:
        """The canonical cell of ``arch`` (an encoding of the table's space), as the fill keys it."""
        return tuple(int(v) for v in self.table._canonical(self.table.space.validate(arch)))

    def _held(self, key: tuple) -> dict[int, dict]:
        """``{seed: row}`` of the trainings the table holds of cell ``key`` (none when it lacks
        the cell), as rows: ``arch``, ``seed`` and the final test and validation accuracy (none
        for a failed training)."""
        try:
            per_seed = self.table.query(np.asarray(key))["per_seed"]
        except ValueError:
            return {}
        return {s: {"arch": list(key), "seed": s, **{m: [v[m]] if math.isfinite(v[m]) else []
                                                      for m in ("test_accuracy", "val_accuracy")}}
                for s, v in per_seed.items()}

    def lacks(self, arch: Any) -> bool:
        """Whether the table holds fewer trainings of ``arch`` (an encoding of the table's
        space) than its build plans for it: the cell itself, a planned seed, or a good cell's
        extra seeds (a build cut between a cell's seeds). A table that records no plan lacks
        only the cells it does not hold."""
        key = self._key(arch)
        held = self._held(key)
        if not held or self.table.manifest.get("plan") is None:
            return not held
        seeds = self._fill_seeds(key)
        if any(s not in held for s in seeds):
            return True
        return any(s not in held for s in good_extra(self._settings, seeds, final(held[seeds[0]], "test_accuracy")))

    def trained_rows(self, arch: Any) -> dict[int, dict]:
        """``{seed: row}`` of a cell the table lacks or holds only in part (``lacks``; an
        encoding of the table's space), in the table's seed order: the table's rows of it,
        and each other seed its build plans for it, trained now unless ``fill`` holds it.

        A training that fails is a row with its ``error`` and no metrics, as the finished
        table holds it (the fill keeps it; a later judge trains it again, as a build's next
        start does); a good cell's extra seeds follow only a finished first seed.

        Raises:
            ValueError: no ``fill`` (one line).
        """
        if self.fill is None:
            raise ValueError(f"table {self.table.name!r} lacks {list(arch)} and no fill folder trains it")
        key = self._key(arch)
        held = self._held(key)
        seeds = self._fill_seeds(key)
        rows = {**self._complete(key, held, seeds), **held}
        extra = good_extra(self._settings, seeds, final(rows[seeds[0]], "test_accuracy"))
        rows = {**self._complete(key, held, extra), **held}
        order = {s: i for i, s in enumerate(all_seeds(self._settings))}
        return {s: rows[s] for s in sorted(rows, key=lambda s: (order.get(s, len(order)), s))}

    def _complete(self, key: tuple, held: dict[int, dict], seeds: list[int]) -> dict[int, dict]:
        """The fill's rows of cell ``key``, after training each of ``seeds`` that neither the
        table (``held``) nor the fill (as another process may have added it) holds."""
        need = [s for s in seeds if s not in held]
        if any(s not in self._filled.get(key, {}) for s in need):
            self._read_fill()
        rows = self._filled.setdefault(key, {})
        self._train(key, need, rows)
        return rows

    def _train(self, key: tuple, seeds: list[int], rows: dict[int, dict]) -> None:
        """Train cell ``key`` with each of ``seeds`` that ``rows`` lacks, into ``rows`` and the fill."""
        recipe = Recipe.from_dict(self.table.manifest["recipe"])
        for seed in seeds:
            if seed not in rows:
                row = train_architecture(self.table.space, np.asarray(key), seed, self.table.manifest["dataset"],
                                         recipe)
                if row["error"] is not None:
                    print(f"warning: training {list(key)} seed {seed} on demand failed (scored as the table scores a "
                          f"failed training): {row['error']}", file=sys.stderr)
                rows[seed] = append_on_demand(self.fill, self._settings, row)

    def _answer(self, encoded: np.ndarray) -> tuple[dict, float]:
        """``(answer, percentile)`` of ``encoded``: from the table, else (the table lacks the
        cell or seeds its build plans for it, ``lacks``) with its rows trained (``fill``)."""
        if self.fill is None or not self.lacks(encoded):
            return self.table.query(encoded), self.table.percentile(encoded)
        rows = self.trained_rows(encoded)
        values = {m: [v for v in (final(r, m) for r in rows.values()) if math.isfinite(v)]
                  for m in ("test_accuracy", "val_accuracy")}
        mean = {m: float(np.mean(v)) if v else math.nan for m, v in values.items()}  # as Table.query: finite seeds
        percentile = self.table.value_percentile(mean["test_accuracy"])
        se = {m: self.table.noise_sd(mean[m], m) / math.sqrt(len(v)) if v else math.nan for m, v in values.items()}
        key = next(iter(rows.values()))["arch"]
        return {"arch": list(key), "mean": mean, "standard_error": se, "epoch": int(self.table.epochs[-1]),
                "trained_on_demand": True}, percentile

    def judge(self, arch: Any, space: Any = None) -> dict:
        """The table's verdict on ``arch`` (an encoding of ``space``, default the search's).

        Returns:
            ``table`` (name), ``sha256``, ``arch`` (the table's representative encoding),
            ``test_accuracy`` and ``val_accuracy`` (means over the table's seeds),
            ``test_regret`` (best mean test accuracy of the table minus it), ``best_test_accuracy``,
            ``test_accuracy_se`` and ``test_regret_se`` (their standard errors, the table's
            noise floor: ``Table.standard_error`` of the cell, and of the cell and the best
            combined as independent trainings; 0 for the best cell itself),
            ``percentile`` (share in % of the distinct architectures no better by test
            accuracy), ``n_archs``, ``epoch`` (the recorded epoch judged),
            ``trained_on_demand`` (the cell, or seeds its build plans for it, was not in the table
            and was trained, ``fill``).

        Raises:
            ValueError: the architecture is not in the table (a partial table without ``fill``).
        """
        encoded = to_table_arch(self.table, self.space if space is None else space, arch)
        answer, percentile = self._answer(encoded)
        test = answer["mean"]["test_accuracy"]
        se = answer["standard_error"]["test_accuracy"]
        regret_se = 0.0 if answer["arch"] == self.best_arch else math.hypot(se, self.best_test_se)
        return {"table": self.table.name, "sha256": self.table.manifest.get("sha256"), "arch": answer["arch"],
                "test_accuracy": test, "val_accuracy": answer["mean"]["val_accuracy"],
                "test_regret": self.best_test - test if math.isfinite(test) else math.nan,
                "best_test_accuracy": self.best_test, "test_accuracy_se": se, "test_regret_se": regret_se,
                "percentile": percentile,
                "n_archs": int(len(self.table.archs)), "epoch": answer["epoch"],
                "trained_on_demand": bool(answer.get("trained_on_demand", False))}


def final(row: dict, metric: str) -> float:
    """``metric`` of a table row at its last recorded epoch (nan for a failed training)."""
    values = row.get(metric) or []
    return float(values[-1]) if values else math.nan


def check_task(table: Table, space: Any, dataset: Optional[str], dataset_options: Optional[dict]) -> None:
    """Raise TableError unless ``table`` judges searches on ``space`` / ``dataset`` / options
    (its space, or one mapping into it, and its task: ``same_task``)."""
    built_on = table.manifest.get("dataset")
    if dataset is not None and dataset != built_on:
        raise TableError(f"table {table.name!r} was trained on dataset {built_on!r}, the search runs on {dataset!r}")
    try:
        to_table_arch(table, space, space.sample(np.random.default_rng(0)))
    except ValueError as error:
        raise TableError(str(error)) from None
    recipe_options = task_options(table)
    try:
        difference = same_task(built_on, recipe_options, dataset_options)
    except (KeyError, ValueError) as error:
        raise TableError(f"table {table.name!r} cannot judge this search: {str(error).strip(chr(39))}") from None
    if difference is not None:
        raise TableError(f"table {table.name!r} was {difference}; search the table's task: --env-kwargs "
                         f"dataset_options={json.dumps(recipe_options, separators=(',', ':'))}")


def task_options(table: Table) -> dict:
    """The dataset options of the task ``table`` was trained on that a search must share with it
    (its recipe's ``data_options`` less ``FREE_DATA_OPTIONS``): what a search judged by this
    table sets in ``dataset_options``."""
    free = FREE_DATA_OPTIONS.get(table.manifest.get("dataset"), ())
    options = table.manifest.get("recipe", {}).get("data_options", {}) or {}
    return {k: v for k, v in options.items() if k not in free}


def for_search(table: Optional[str], space: Any, dataset: Optional[str],
               dataset_options: Optional[dict] = None) -> Optional[Judge]:
    """The judge of a search, or None when no table applies.

    Args:
        table: ``SearchConfig.table``: a table name or path (must fit the search), ``"none"``
            (no judgement), or None (the shipped table of ``TABLES`` for the space and
            dataset, when there is one; a shipped table that fails to load is skipped with
            a warning line, so a search never fails for want of its ground truth).
        space: the search's space.
        dataset: the search's dataset name (None for an env without one).
        dataset_options: the env's ``dataset_options``.

    Raises:
        TableError: a given ``table`` is unknown, unreadable, or of another space or task.
    """
    if table == OFF:
        return None
    if table is None:
        try:
            name = table_for(space.name, dataset, dataset_options)
        except (KeyError, ValueError) as error:
            print(f"warning: no ground truth for this search: {error}", file=sys.stderr)
            return None
        if name is None:
            other = table_for(space.name, dataset) if dataset_options else None  # one of the default task
            if other is not None:
                print(f"note: no shipped table was trained on this task ({other} was "
                      f"{same_task(dataset, TABLES.get(other).dataset_options, dataset_options)}); the search runs "
                      f"unjudged", file=sys.stderr)
            return None
        try:
            loaded = load(name)
            check_task(loaded, space, dataset, dataset_options)
        except ValueError as error:  # TableError included: the search runs on, unjudged
            print(f"warning: no ground truth for this search: {error}", file=sys.stderr)
            return None
        return Judge(loaded, space)
    try:
        loaded = load(table)
    except ValueError as error:
        raise TableError(f"--table {table}: {error}") from None
    try:
        check_task(loaded, space, dataset, dataset_options)
    except TableError as error:
        raise TableError(f"--table {table}: {error}") from None
    return Judge(loaded, space)


def format_verdict(verdict: dict) -> str:
    """One line for the end of a search."""
    if "error" in verdict:
        return f"ground truth ({verdict.get('table')}): {verdict['error']}"
    trained = "; the cell is not in this sampled table and was trained with its recipe" \
        if verdict.get("trained_on_demand") else ""
    return (f"ground truth ({verdict['table']}, {verdict['n_archs']} architectures): test accuracy "
            f"{100 * verdict['test_accuracy']:.2f}%, regret {100 * verdict['test_regret']:.2f} pp"
            f"{_plus_minus(verdict.get('test_regret_se'))} "
            f"(best {100 * verdict['best_test_accuracy']:.2f}%), percentile {verdict['percentile']:.1f}{trained}")



def _plus_minus(se: Any) -> str:
    """`` ± x.xx (SE)`` in points, or nothing when the table cannot tell its noise (one seed)."""
    return f" ± {100 * se:.2f} (SE)" if isinstance(se, float) and math.isfinite(se) else ""
