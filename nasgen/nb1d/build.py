"""Building a table on Ray: the architectures to train, the append-only rows file, packing.

A build directory holds::

    build.json    space, dataset, seeds, recipe, the plan (architecture limit, reliability
                  subset, good seeds: ``plan_items``, ``good_extra``), and one entry per
                  start of the build (``sessions``: start time, the device it trained on and
                  the package versions); a restart with other settings is refused (another
                  device is not another setting: the recipe is the same, only the order of
                  float additions differs, which moves a row by about half a seed's noise)
    rows.jsonl    one JSON row per (architecture, seed), appended as Ray tasks finish
                  (``recipe.train_architecture`` rows plus ``session`` and ``time``)
    build.lock    held (``flock``) by the build or pack using the folder, so two never mix
                  their rows; it holds the last holder's pid
    rows.rejected.jsonl  lines moved out of ``rows.jsonl`` because they were not rows of the
                  build (``read_rows(move_bad_lines=True)``, ``--move-bad-rows``)

Rows trained elsewhere from a copy of the folder come back with ``merge`` (``nasgen bench
merge``). A restart reads ``rows.jsonl`` (a torn last line from a kill is cut off; any other line that
is not a row of the build stops it, naming the line), skips the (architecture, seed) pairs
that have a row without an error, and trains the rest; rows with an error are trained again,
and packing keeps the last row of each pair.
"""

from __future__ import annotations

import contextlib
import functools
import heapq
import importlib.metadata
import json
import math
import os
import platform
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence

import gymnasium
import numpy as np
import torch
from tqdm.auto import tqdm

from nasgen import __version__, jsonfile
from nasgen.runtime import append_synced, folder_lock, ray_as_completed, start_ray
from nasgen.searchspace import from_dict

from .archs import all_distinct, canonicalizer, plan_archs
from .recipe import METRICS, Recipe, train_items, training_device
from .manifest import FORMAT, clip, is_int, is_real, plain_name, reason
from .table import figures, sha256_of


ROWS = "rows.jsonl"
BUILD = "build.json"
LOCK = "build.lock"


def versions() -> dict[str, str]:
    """The versions a table was built with (Ray's only where it is installed: ``--local``
    builds run without it)."""
    out = {"nasgen": __version__, "python": platform.python_version(), "torch": torch.__version__,
           "numpy": np.__version__, "gymnasium": gymnasium.__version__}
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):
        out["ray"] = importlib.metadata.version("ray")
    return out


# --- the build folder's lock -----------------------------------------------------------------------
def build_lock(out: str | Path):
    """Hold the exclusive lock of build folder ``out`` (``runtime.folder_lock`` on its
    ``build.lock``) for a ``with`` block; ValueError (one line, the holder's pid) when another
    build or pack holds it. A folder this call created is removed again if it stays empty."""
    return folder_lock(out, LOCK, "build folder", "build")


# --- the rows file ---------------------------------------------------------------------------------
def rejected_path(path: Path) -> Path:
    """Where ``read_rows(move_bad_lines=True)`` keeps the bad lines of ``path``: ``rows.rejected.jsonl``
    beside ``rows.jsonl``."""
    return path.with_name(f"{path.stem}.rejected{path.suffix}")


def read_rows(path: Path, repair: bool = False, move_bad_lines: bool = False,
              check: Optional[Callable[[dict], None]] = None) -> list[dict]:
    """The rows of a JSON-lines rows file, one JSON object a line.

    A torn last line (a killed build) is ignored, and cut off the file when ``repair`` (so the
    next append starts on a fresh line). Any other line that is not a JSON object, or that
    ``check`` refuses, stops the read with its line number, unless ``move_bad_lines``: then
    such lines are appended to ``rejected_path(path)`` (kept, not lost) and ``path`` is
    rewritten without them (a temporary file replacing it, so a crash leaves one or the other).

    Args:
        path: the rows file (none yet: no rows).
        repair: cut a torn last line off the file.
        move_bad_lines: move bad lines aside instead of refusing them.
        check: called with each row; raises ValueError saying what is wrong with it.

    Raises:
        ValueError: ``PATH line N is not a JSON row: ...`` or ``... is not a row of this
            build: ...`` (one line).
    """
    if not path.is_file():
        return []
    data = path.read_bytes()
    good_end = data.rfind(b"\n") + 1
    rows, kept, bad = [], [], []
    for number, line in enumerate(data[:good_end].split(b"\n")[:-1], 1):
        if not line.strip():
            continue
        row, problem = _parse_row(line, check)
        if problem is None:
            rows.append(row)
            kept.append(line)
        elif move_bad_lines:
            bad.append(line)
        else:
            raise ValueError(f"{path} line {number} {problem}; move_bad_lines=True (nasgen bench build "
                             f"--move-bad-rows) moves such lines into {rejected_path(path).name}")
    tail = b"" if repair else data[good_end:]
    if bad:
        _set_aside(path, kept, bad, tail)
    elif repair and good_end < len(data):
        with open(path, "r+b") as f:
            f.truncate(good_end)
    return rows


def _parse_row(line: bytes, check: Optional[Callable[[dict], None]]) -> tuple[Optional[dict], Optional[str]]:
    """``(row, None)`` for a good line, ``(None, what is wrong)`` for a bad one."""
    try:
        row = json.loads(line)
    except (ValueError, RecursionError) as error:  # UnicodeDecodeError is a ValueError
        return None, f"is not a JSON row: {reason(error)}"
    if not isinstance(row, dict):
        return None, f"is not a JSON row: {clip(row)} is not an object"
    if check is not None:
        try:
            check(row)
        except ValueError as error:
            return None, f"is not a row of this build: {reason(error)}"
    return row, None


def _set_aside(path: Path, kept: list[bytes], bad: list[bytes], tail: bytes) -> None:
    """Append ``bad`` lines to the rejected file, then replace ``path`` by ``kept`` + ``tail``."""
    with open(rejected_path(path), "ab") as f:
        f.write(b"".join(line + b"\n" for line in bad))
        f.flush()
        os.fsync(f.fileno())
    jsonfile.replace_file(path, b"".join(line + b"\n" for line in kept) + tail)


def _is_count(value: Any) -> bool:
    return is_int(value) and value >= 0


def row_check(space, seeds: Sequence[int], recipe: Recipe) -> Callable[[dict], None]:
    """A ``read_rows`` check for the rows of a build of ``space``, ``seeds`` and ``recipe``.

    A row's architecture must be the representative of its class in ``space``, its seed one of
    ``seeds``; a row without an error must hold each metric at every recorded epoch
    (accuracies in [0, 1], losses >= 0, nan allowed) and its training time, as ``pack`` needs.
    """
    canonical = canonicalizer(space)
    allowed = {int(s) for s in seeds}
    n_epochs = len(recipe.record_epochs)

    def check(row: dict) -> None:
        try:
            arch = space.validate(row.get("arch"))
        except (TypeError, ValueError, OverflowError) as error:
            raise ValueError(f"arch: {reason(error)}") from None
        if canonical(arch) != tuple(arch.tolist()):
            raise ValueError(f"arch {arch.tolist()} is not the representative {list(canonical(arch))} of its class")
        if not _is_count(row.get("seed")) or row["seed"] not in allowed:
            raise ValueError(f"seed {clip(row.get('seed'))} is not one of the build's seeds {sorted(allowed)}")
        if row.get("error") is not None and not isinstance(row["error"], str):
            raise ValueError(f"error must be a string or null, got {clip(row['error'])}")
        for key in ("params", "flops", "session"):
            if row.get(key) is not None and not _is_count(row[key]):
                raise ValueError(f"{key} must be a count or null, got {clip(row[key])}")
        for key in ("time", "cpu_time_s"):
            if row.get(key) is not None and not (is_real(row[key]) and math.isfinite(row[key])):
                raise ValueError(f"{key} must be a finite number or null, got {clip(row[key])}")
        if row.get("error") is None:
            _check_results(row, n_epochs)

    return check


def _check_results(row: dict, n_epochs: int) -> None:
    """Refuse a finished row without every metric at each recorded epoch, in range, and its time."""
    for m in METRICS:
        values = row.get(m)
        if not isinstance(values, list) or len(values) != n_epochs or not all(is_real(v) for v in values):
            raise ValueError(f"{m} must be {n_epochs} numbers (one per recorded epoch), got {clip(values)}")
        high = 1.0 if m.endswith("accuracy") else math.inf
        if any(not 0 <= v <= high for v in values if not math.isnan(v)):
            raise ValueError(f"{m} {clip(values)} is outside [0, {high:g}]")
    time_s = row.get("train_time_s")
    if not is_real(time_s) or not 0 <= time_s < math.inf:
        raise ValueError(f"train_time_s must be a number of seconds >= 0, got {clip(time_s)}")


def _key(row: dict) -> tuple:
    return tuple(row["arch"]), int(row["seed"])


#: Settings a build folder may gain after it started: they add trainings and change none.
EXTENSIONS = ("good_seeds", "good_above")


def _settings(space, dataset: str, seeds: Sequence[int], recipe: Recipe, limit: Optional[int],
              reliability_archs: Optional[int] = None, good_seeds: Optional[Sequence[int]] = None,
              good_above: Optional[float] = None) -> dict:
    settings = {"space": space.to_dict(), "dataset": dataset, "seeds": [int(s) for s in seeds],
                "recipe": recipe.to_dict(), "limit_archs": limit}
    if reliability_archs is not None:
        settings["reliability_archs"] = int(reliability_archs)
    if _check_good(good_seeds, good_above):
        settings["good_seeds"], settings["good_above"] = [int(s) for s in good_seeds], float(good_above)
    return settings


def _check_good(good_seeds: Any, good_above: Any) -> bool:
    """Whether a plan has good seeds (``good_extra``).

    Raises:
        ValueError: one of the two without the other, or a bad value (one line).
    """
    if (good_seeds is None) != (good_above is None):
        raise ValueError("good_seeds and good_above go together: the seeds of a good cell, and the first seed's "
                         "final test accuracy a good cell is above")
    if good_seeds is None:
        return False
    if not isinstance(good_seeds, (list, tuple)) or not good_seeds or not all(_is_count(s) for s in good_seeds) \
            or len(set(good_seeds)) != len(good_seeds):
        raise ValueError(f"good_seeds must be distinct seeds >= 0, got {clip(good_seeds)}")
    if not (is_real(good_above) and 0 <= good_above < 1):
        raise ValueError(f"good_above must be a test accuracy in [0, 1), got {clip(good_above)}")
    return True


def all_seeds(settings: dict) -> list[int]:
    """Every seed a build of ``settings`` trains: its ``seeds``, then those of ``good_seeds``
    they lack (the table's seeds, in this order)."""
    seeds = [int(s) for s in settings["seeds"]]
    return seeds + [int(s) for s in settings.get("good_seeds") or () if int(s) not in seeds]


def good_extra(settings: dict, planned: Sequence[int], first_accuracy: float) -> list[int]:
    """The seeds a cell trains beyond its ``planned`` ones (``plan_items``) once its first
    seed has finished with final test accuracy ``first_accuracy``: the ``good_seeds`` it
    lacks if that is above ``good_above`` (a good cell), else none.

    Why: a table ranks its good half only with several seeds per good cell, and which cells
    are good is known only from their first seed. The threshold is a number fixed when the
    plan is set (the median of the first seed over a random sample), so a cell's seeds
    depend on nothing but its own first training, and a cell trained on demand for a sampled
    table (``nasgen.nb1d.judge.Judge``) gets exactly the seeds the finished build gives it.
    """
    good = settings.get("good_seeds")
    if not good or not first_accuracy > settings["good_above"]:
        return []
    return [int(s) for s in all_seeds(settings) if int(s) in good and int(s) not in planned]


def plan_items(archs: np.ndarray, seeds: Sequence[int], reliability_archs: Optional[int] = None) -> list[tuple]:
    """The (architecture, seed) trainings of a build, in the order they are trained.

    With ``reliability_archs`` the seeds after the first train only that many distinct
    architectures, drawn at random (the reliability subset); the first seed trains all. The
    subset comes first, in a random order and each architecture with every seed in a row, so
    a build cut anywhere in it is a random sample of the space with every seed on each
    sampled cell (a sampled table, with the seed-agreement figures); then the first seed for
    the rest, in a random order, so a build cut anywhere holds a random sample of the
    architectures. Which architectures form the subset, and the order of the rest, depend
    only on ``archs`` and ``reliability_archs``, so a build resumed by a later version trains
    the same cells.

    Args:
        archs: ``[K, D]`` the distinct architectures.
        seeds: training seeds.
        reliability_archs: size of the subset trained with every seed (None: all).

    Returns:
        ``[(arch list, seed), ...]``.
    """
    seeds = [int(s) for s in seeds]
    if reliability_archs is None or reliability_archs >= len(archs):
        return [(a, s) for s in seeds for a in archs.tolist()]
    if reliability_archs < 1:
        raise ValueError(f"reliability_archs must be >= 1, got {reliability_archs}")
    rng = np.random.default_rng(1)
    chosen = np.zeros(len(archs), dtype=bool)
    chosen[rng.choice(len(archs), size=reliability_archs, replace=False)] = True
    rest = archs[~chosen][rng.permutation(int((~chosen).sum()))].tolist()
    subset = archs[chosen][rng.permutation(reliability_archs)].tolist()
    return [(a, s) for a in subset for s in seeds] + [(a, seeds[0]) for a in rest]


def seed_plan(space, seeds: Sequence[int], limit_archs: Optional[int] = None,
              reliability_archs: Optional[int] = None) -> dict[tuple, list[int]]:
    """The seeds a build of these settings trains each of its architectures with
    (``plan_items``), in the order of ``seeds``: what a cell trained on demand for a sampled
    table needs, so that it answers as the finished table will."""
    planned: dict[tuple, list[int]] = {}
    for arch, seed in plan_items(plan_archs(space, limit_archs), seeds, reliability_archs):
        planned.setdefault(tuple(arch), []).append(int(seed))
    order = {int(s): i for i, s in enumerate(seeds)}
    return {arch: sorted(s, key=order.__getitem__) for arch, s in planned.items()}


class Schedule:
    """The trainings a build has left, the earliest cell of its plan first.

    The plan's items (``plan_items``) come in their order; a good cell's extra seeds
    (``good_extra``) join the queue at the cell's place as soon as its first seed has
    finished, so a build cut anywhere in its reliability subset holds each cell's whole plan
    up to the cut (a random sample, as without good seeds).

    Args:
        settings: the build's settings.
        items: its planned items (``plan_items``).
        rows: the rows file's finished rows (their items are done).
    """

    def __init__(self, settings: dict, items: list[tuple], rows: list[dict]):
        self.settings = settings
        rank = {s: i for i, s in enumerate(all_seeds(settings))}
        self._rank = rank.__getitem__
        self.position: dict[tuple, int] = {}
        self.planned: dict[tuple, list[int]] = {}
        for arch, seed in items:
            self.position.setdefault(tuple(arch), len(self.position))
            self.planned.setdefault(tuple(arch), []).append(int(seed))
        self.first = int(settings["seeds"][0])
        self.done = {_key(r) for r in rows if r.get("error") is None}
        self._queue: list[tuple] = []
        self.total = 0
        for cell, seeds in self.planned.items():
            self._add(cell, seeds)
        for row in rows:
            self._add_extra(row)
        self.left_at_start = len(self._queue)

    def _add(self, cell: tuple, seeds: Sequence[int]) -> None:
        self.total += len(seeds)
        for seed in seeds:
            if (cell, seed) not in self.done:
                heapq.heappush(self._queue, (self.position[cell], self._rank(seed), cell, seed))

    def _add_extra(self, row: dict) -> None:
        cell = tuple(row["arch"])
        if row.get("error") is None and int(row["seed"]) == self.first and cell in self.planned:
            extra = good_extra(self.settings, self.planned.pop(cell), row["test_accuracy"][-1])
            self._add(cell, extra)

    def take(self, n: int) -> list[tuple]:
        """Up to ``n`` items ``(arch list, seed)``, the earliest first (none: nothing left now)."""
        batch = []
        while self._queue and len(batch) < n:
            _, _, cell, seed = heapq.heappop(self._queue)
            batch.append((list(cell), seed))
        return batch

    def record(self, rows: list[dict]) -> None:
        """Note finished ``rows``: a good cell's first seed queues its extra seeds."""
        for row in rows:
            self._add_extra(row)


def _check_build_dir(out: Path, settings: dict) -> list[dict]:
    """Refuse a build directory of other settings (writing nothing); returns its sessions."""
    path = out / BUILD
    if not path.is_file():
        return []
    found = read_settings(out)
    differing = sorted(k for k in (set(settings) | set(found)) - {"sessions"} if found.get(k) != settings.get(k))
    if differing and not (set(differing) <= set(EXTENSIONS) and not any(k in found for k in EXTENSIONS)):
        raise ValueError(f"build directory {out} holds a build with other {', '.join(differing)}; "
                         f"use another --out or the same settings")
    return found.get("sessions", [])  # equal, or the plan extended by good seeds (recorded by the next start)


def read_settings(out: Path) -> dict:
    """The settings of ``out/build.json``.

    Raises:
        ValueError: the file is missing, unreadable or not a JSON object (one line).
    """
    path = out / BUILD
    try:
        found = json.loads(path.read_text())
    except (OSError, ValueError, RecursionError) as error:
        raise ValueError(f"{path} is not a readable build file: {reason(error)}") from None
    if not isinstance(found, dict):
        raise ValueError(f"{path} is not a build file: {clip(found)} is not an object")
    return found


def table_settings(manifest: dict) -> dict:
    """The build settings (``build.json`` less its sessions) of the table ``manifest``
    describes: its space, dataset, seeds, recipe and, where the manifest records it, its plan."""
    plan = manifest.get("plan") or {}
    seeds = [int(s) for s in plan.get("seeds", manifest["seeds"])]
    settings = {"space": manifest["space"], "dataset": manifest["dataset"], "seeds": seeds,
                "recipe": manifest["recipe"], "limit_archs": plan.get("limit_archs")}
    for key in ("reliability_archs", *EXTENSIONS):
        if plan.get(key) is not None:
            settings[key] = plan[key]
    return settings


def read_on_demand(out: str | Path, settings: dict) -> list[dict]:
    """The finished rows of build folder ``out`` of cells trained on demand (``append_on_demand``;
    none while it has no ``build.json``).

    Raises:
        ValueError: ``out`` holds a build of other settings, or a bad row (one line).
    """
    out = Path(out)
    if not (out / BUILD).is_file():
        return []
    space, recipe, seeds = _decode_settings(_same_build(out, settings), out)
    return [r for r in read_rows(out / ROWS, check=row_check(space, seeds, recipe)) if r.get("error") is None]


def _same_build(out: Path, settings: dict) -> dict:
    """``out``'s settings, refused (one line) unless its trainings are those of ``settings``
    (space, dataset, seeds, recipe: a table of another plan shares the rows; ``merge`` wants
    the same plan too)."""
    found = read_settings(out)
    differing = [k for k in ("space", "dataset", "seeds", "recipe") if found.get(k) != settings.get(k)]
    if differing:
        raise ValueError(f"fill folder {out} holds rows of a build with other {', '.join(differing)}; use another "
                         f"folder for this table")
    return found


def append_on_demand(out: str | Path, settings: dict, row: dict, device: str = "cpu") -> dict:
    """Append ``row``, trained outside a build for a cell its table lacks, to build folder
    ``out`` of the table's build ``settings`` (``table_settings``), so that ``merge`` folds
    it into that build. The folder's one session (created with the folder) says so; several
    processes may append at once. Returns the row as written.

    Raises:
        ValueError: ``out`` holds a build of other settings (one line).
    """
    out = Path(out)
    if (out / BUILD).is_file():
        _same_build(out, settings)
    else:
        out.mkdir(parents=True, exist_ok=True)
        session = {"started": time.time(), "device": device, "versions": versions(), "on_demand": True}
        jsonfile.replace_file(out / BUILD, (json.dumps({**settings, "sessions": [session]}, indent=2) + "\n").encode())
    row = _full_row(row, Recipe.from_dict(settings["recipe"]), session=0)
    append_synced(out / ROWS, (json.dumps(row) + "\n").encode())
    return row


def _start_build_dir(out: Path, settings: dict, sessions: list[dict], device: str = "cpu") -> int:
    """Write ``build.json`` with one more session (its start, device and versions); returns its number."""
    out.mkdir(parents=True, exist_ok=True)
    sessions = sessions + [{"started": time.time(), "device": device, "versions": versions()}]
    (out / BUILD).write_text(json.dumps({**settings, "sessions": sessions}, indent=2) + "\n")
    return len(sessions) - 1


def merge(src: str | Path, out: str | Path) -> int:
    """Append to build folder ``out`` the finished rows of build folder ``src`` that it lacks.

    For a build split across machines: a copy of ``out`` trained further elsewhere (a lent
    GPU, another cluster) comes back as ``src``, while ``out`` may have grown meanwhile; or
    the cells a sampled table trained on demand (``append_on_demand``). A row depends on the
    space, dataset, recipe, cell and seed alone, so ``src`` must share ``out``'s space,
    dataset and recipe, and train only seeds ``out`` trains; its plan may differ (an earlier
    plan of the same build, a folder that trained chosen cells). Each
    merged row keeps the start that trained it: a session of ``src`` that ``out`` lacks is
    appended to ``out``'s sessions and the row's ``session`` renumbered, so the packed table
    still says which device trained it. Runs under ``out``'s build lock; rows of ``src`` are
    checked like those of a build before anything is written.

    Returns:
        The number of rows appended.

    Raises:
        ValueError: one line: a folder without a readable build, builds of other settings,
            a bad row, or ``out`` locked by a running build.
    """
    src, out = Path(src), Path(out)
    theirs, mine = read_settings(src), read_settings(out)
    differing = [k for k in ("space", "dataset", "recipe") if mine.get(k) != theirs.get(k)]
    extra = sorted(set(all_seeds(theirs)) - set(all_seeds(mine))) if not differing else []
    if differing or extra:
        what = ", ".join(differing) if differing else f"seeds (it trains {extra}, which {out} does not)"
        raise ValueError(f"build folders {src} and {out} hold builds with other {what}; "
                         f"only rows of the same trainings merge")
    check = row_check(from_dict(mine["space"]), all_seeds(mine), Recipe.from_dict(mine["recipe"]))
    incoming = {_key(r): r for r in read_rows(src / ROWS, check=check) if r.get("error") is None}
    with build_lock(out):
        mine = read_settings(out)  # as of now, under the lock
        done = {_key(r) for r in read_rows(out / ROWS, repair=True, check=check) if r.get("error") is None}
        new = [r for key, r in incoming.items() if key not in done]
        if not new:
            return 0
        sessions, their_sessions = list(mine.get("sessions", [])), theirs.get("sessions", [])
        renumber: dict[Any, Any] = {None: None}
        for row in new:
            k = row.get("session")
            if k not in renumber:
                session = their_sessions[k] if isinstance(k, int) and k < len(their_sessions) else None
                if session is None:
                    renumber[k] = None
                elif session in sessions:
                    renumber[k] = sessions.index(session)
                else:
                    sessions.append(session)
                    renumber[k] = len(sessions) - 1
        jsonfile.replace_file(out / BUILD, (json.dumps({**mine, "sessions": sessions}, indent=2) + "\n").encode())
        with open(out / ROWS, "a") as f:
            f.write("".join(json.dumps({**row, "session": renumber[row.get("session")]}) + "\n" for row in new))
            f.flush()
            os.fsync(f.fileno())
    return len(new)


def build_time(sessions: list[dict], rows: list[dict]) -> float:
    """Wall-clock seconds of the build over all its starts (``sessions`` of ``build.json``):
    per start, from its start to its last row (a killed start counts up to its last written row)."""
    total = 0.0
    for k, session in enumerate(sessions):
        times = [r["time"] for r in rows if r.get("session") == k and r.get("time") is not None]
        if times:
            total += max(0.0, max(times) - session["started"])
    return total


def build(space, dataset: str, seeds: Sequence[int], recipe: Recipe, out: str | Path, *,
          address: Optional[str] = None, num_cpus: Optional[int] = None, limit_archs: Optional[int] = None,
          archs_per_task: int = 1, stop_after: Optional[int] = None, progress: bool = True,
          local: bool = False, archs: Optional[Sequence[Any]] = None, threads: int = 1,
          reliability_archs: Optional[int] = None, device: str = "cpu", move_bad_rows: bool = False,
          good_seeds: Optional[Sequence[int]] = None, good_above: Optional[float] = None) -> list[dict]:
    """Train every (distinct architecture, seed) not yet in ``out/rows.jsonl`` as Ray tasks.

    The build holds the folder's lock (``build_lock``) throughout. Rows are appended as tasks
    finish, so a killed build resumes where it stopped. Ray is joined at ``address``, or a
    local instance with ``num_cpus`` CPUs is started (and shut down at the end); an already
    initialised Ray is used as it is.

    Args:
        space: the search space.
        dataset: the dataset name.
        seeds: training seeds.
        recipe: the training recipe.
        out: the build directory.
        address: a Ray cluster address (``auto`` or ``HOST:PORT``).
        num_cpus: CPUs of a local Ray instance (default: all).
        threads: torch CPU threads of each training (each Ray task reserves as many CPUs).
        limit_archs: train only this many distinct architectures (pilots, tests).
        archs_per_task: (architecture, seed) items per Ray task (amortises task overhead); the
            items of one seed in a task train side by side (``recipe.train_group``).
        stop_after: stop after writing this many new rows (tests of the resume; None = all).
        progress: show a tqdm bar (done/total, ETA).
        local: train in this process, one item after the other, without Ray (same rows file).
        archs: train these architectures (each replaced by its class representative)
            instead of planning them; not together with ``limit_archs``.
        reliability_archs: train the seeds after the first only on this many distinct
            architectures drawn at random (``plan_items``); None: every seed on every one.
        good_seeds, good_above: a cell whose first seed ends above test accuracy
            ``good_above`` also trains the ``good_seeds`` it lacks (``good_extra``); both or
            neither. A build folder without them may gain them (its rows stay planned).
        device: where the networks train: ``cpu``, or ``cuda``/``cuda:N`` with ``local``
            (one process per GPU; the items of a batch train as one stacked model, so give a
            large ``archs_per_task``). Recorded per session in ``build.json``.
        move_bad_rows: move lines of ``rows.jsonl`` that are not rows of this build into
            ``rows.rejected.jsonl`` instead of stopping at the first (``read_rows``).

    Returns:
        All rows of the rows file after this run.

    Raises:
        ValueError: bad settings, ``out`` holds a build with other settings or is in use by
            another build (``build_lock``), or a line of its rows file is not a row of this
            build (checked before any training).
        ImportError: Ray is not installed (and ``local`` is False).
    """
    if archs_per_task < 1:
        raise ValueError(f"archs_per_task must be >= 1, got {archs_per_task}")
    if not seeds:
        raise ValueError("a build needs at least one seed")
    device = str(training_device(device))
    if device != "cpu" and not local:
        raise ValueError(f"device {device!r} trains in this process: use local=True (--local); Ray tasks train on CPUs")
    out = Path(out)
    settings = _settings(space, dataset, seeds, recipe, limit_archs, reliability_archs, good_seeds, good_above)
    if archs is None:
        archs = plan_archs(space, limit_archs)
    else:
        if limit_archs is not None:
            raise ValueError("give archs or limit_archs, not both")
        canonical = canonicalizer(space)
        archs = np.array(sorted({canonical(space.validate(a)) for a in archs}), dtype=np.int64)
        settings["archs"] = archs.tolist()
    planned = plan_items(archs, seeds, reliability_archs)
    with build_lock(out):
        sessions = _check_build_dir(out, settings)
        rows_path = out / ROWS
        check = row_check(space, all_seeds(settings), recipe)
        rows = read_rows(rows_path, move_bad_lines=move_bad_rows, check=check)  # before any training
        schedule = Schedule(settings, planned, rows)
        if not schedule.left_at_start:
            return rows
        write = functools.partial(_write_rows, recipe=recipe, rows_path=rows_path, stop_after=stop_after,
                                  progress=progress, schedule=schedule)
        payload = (space.to_dict(), dataset, recipe.to_dict())
        if local:
            session = _start_build_dir(out, settings, sessions, device)
            read_rows(rows_path, repair=True)
            write(_train_here(schedule, payload, archs_per_task, threads, device), session=session)
        else:
            _build_on_ray(out, settings, sessions, payload, schedule, archs_per_task, write, address, num_cpus,
                          threads)
        return read_rows(rows_path, check=check)


def _train_here(schedule: Schedule, payload: tuple, archs_per_task: int, threads: int,
                device: str) -> Iterator[tuple[list, list[dict]]]:
    """``(batch, rows)`` of the schedule's batches trained in this process, one after the other."""
    while batch := schedule.take(archs_per_task):
        rows = train_items(*payload, batch, threads, device)
        schedule.record(rows)
        yield batch, rows


def _build_on_ray(out: Path, settings: dict, sessions: list[dict], payload: tuple, schedule: Schedule,
                  archs_per_task: int, write: Callable, address: Optional[str], num_cpus: Optional[int],
                  threads: int) -> None:
    """Train the schedule's batches as Ray tasks, writing their rows as they finish (``write``).

    Twice as many tasks as the cluster runs at once are in flight: enough to keep it busy,
    few enough that a good cell's extra seeds, queued when its first seed finishes, train
    soon after it rather than after everything submitted before. The cluster's CPUs are read
    again as tasks finish, so nodes that join (an autoscaler answering the waiting tasks)
    get work."""
    import ray

    started_ray = start_ray(ray, address, num_cpus)  # before anything is written
    try:
        session = _start_build_dir(out, settings, sessions)
        read_rows(out / ROWS, repair=True)
        task = ray.remote(num_cpus=threads, max_retries=0)(train_items)
        window = lambda: 2 * max(1, int(ray.cluster_resources().get("CPU", 1)) // threads)  # noqa: E731
        results = _as_completed(ray, task, payload, threads, schedule, archs_per_task, window)
        try:
            write(results, session=session)
        finally:
            results.close()  # stopped early: ray_as_completed cancels the rest (the workers stay up)
    finally:
        if started_ray:
            ray.shutdown()


def _as_completed(ray, task, payload: tuple, threads: int, schedule: Schedule, archs_per_task: int,
                  window: Callable[[], int]) -> Iterator[tuple[list, list[dict]]]:
    """``(batch, rows)`` of each Ray task as it finishes, ``window()`` tasks in flight, the
    next batches taken from ``schedule`` as tasks finish; a task that died gives error rows."""
    pending: dict = {}

    def submit() -> None:
        most = window()
        while len(pending) < most and (batch := schedule.take(archs_per_task)):
            pending[task.remote(*payload, batch, threads)] = batch

    submit()
    with contextlib.closing(ray_as_completed(ray, pending)) as finished:
        for batch, rows, error in finished:
            if error is not None:  # the worker died: every item of it is a failed row
                text = str(error).strip()
                rows = [{"arch": list(a), "seed": s, "error": "task failed: " +
                         (text.splitlines()[-1] if text else type(error).__name__)} for a, s in batch]
            schedule.record(rows)
            submit()  # before the rows are handed on: ray_as_completed sees the new tasks
            yield batch, rows


def _write_rows(results, *, recipe: Recipe, rows_path: Path, session: int, stop_after: Optional[int],
                progress: bool, schedule: Schedule) -> None:
    """Append each result's rows; the bar's total grows as good cells queue their extra seeds."""
    written = 0
    bar = tqdm(total=schedule.total, initial=schedule.total - schedule.left_at_start, unit="row",
               desc="bench build", disable=not progress)
    try:
        with open(rows_path, "a") as f:
            for _, rows in results:
                f.write("".join(json.dumps(_full_row(row, recipe, session)) + "\n" for row in rows))
                f.flush()
                os.fsync(f.fileno())
                written += len(rows)
                bar.total = schedule.total
                bar.update(len(rows))
                if stop_after is not None and written >= stop_after:
                    return
    finally:
        bar.close()


def _full_row(row: dict, recipe: Recipe, session: int) -> dict:
    """A row of a rows file: ``row`` over the fields every row has, with its session and time."""
    return {"epochs": list(recipe.record_epochs), **{m: [] for m in METRICS}, "params": None, "flops": None,
            "train_time_s": None, "error": None, **row, "session": session, "time": time.time()}


# --- packing ---------------------------------------------------------------------------------------
def _space_distinct(space) -> Optional[int]:
    every = all_distinct(space)
    return None if every is None else int(len(every))


def pack(out: str | Path, name: str, dest: Optional[str | Path] = None) -> Path:
    """Pack the rows of a build directory into ``dest/NAME.npz`` and ``dest/NAME.json``.

    The last row of each (architecture, seed) counts; architectures and seeds missing a row
    get nan metrics (a partial table: its manifest says how many rows it has). The manifest's
    ``builds`` lists each (device, package versions) that trained rows, with its row count and
    its seconds of training (``train_time_s``: CPU hours and GPU minutes, apart),
    and the array ``built_by`` gives each row's entry (-1: no row, or a session that recorded
    neither).

    Args:
        out: the build directory.
        name: the table's name (file stem).
        dest: where to write (default: ``out``).

    Returns:
        The manifest path.

    Raises:
        ValueError: ``name`` is not a plain name, ``out`` is no build folder, is in use by a
            build (``build_lock``), or holds a line that is not a row of its build (one line).
    """
    out = Path(out)
    plain_name(name, "a table name")
    dest = Path(dest) if dest is not None else out
    if not (out / BUILD).is_file():
        raise ValueError(f"{out} is not a build folder: it has no {BUILD}")
    with build_lock(out):
        settings = read_settings(out)
        space, recipe, seeds = _decode_settings(settings, out)
        rows = read_rows(out / ROWS, check=row_check(space, seeds, recipe))
        return _write_table(out, dest, name, settings, space, recipe, seeds, rows)


def _decode_settings(settings: dict, out: Path) -> tuple[Any, Recipe, list[int]]:
    """``(space, recipe, seeds)`` of a build's settings.

    Raises:
        ValueError: a missing or bad field (one line naming ``build.json``).
    """
    try:
        space = from_dict(settings.get("space"))
        if not isinstance(settings.get("recipe"), dict) or not isinstance(settings.get("seeds"), list):
            raise ValueError("no recipe object or no seeds list")
        recipe = Recipe.from_dict(settings["recipe"])
        seeds = all_seeds(settings)
        _check_good(settings.get("good_seeds"), settings.get("good_above"))
        plain_name(settings.get("dataset"), "dataset")
    except (TypeError, ValueError, OverflowError) as error:
        raise ValueError(f"{out / BUILD} holds no valid build settings: {reason(error)}") from None
    return space, recipe, seeds


def _write_table(out: Path, dest: Path, name: str, settings: dict, space, recipe: Recipe, seeds: list[int],
                 rows: list[dict]) -> Path:
    """Write ``dest/NAME.npz`` and ``dest/NAME.json`` from checked rows (``pack``); returns the manifest path."""
    last: dict[tuple, dict] = {}
    for row in rows:
        last[_key(row)] = row
    archs = np.array(sorted({k[0] for k in last}), dtype=np.int64).reshape(-1, space.n_decisions)
    index = {tuple(a): i for i, a in enumerate(archs.tolist())}
    K, S, E = len(archs), len(seeds), len(recipe.record_epochs)
    arrays: dict[str, np.ndarray] = {m: np.full((K, S, E), np.nan, dtype=np.float32) for m in METRICS}
    params = np.full(K, -1, dtype=np.int64)
    flops = np.full(K, -1, dtype=np.int64)
    train_time = np.full((K, S), np.nan, dtype=np.float32)
    # Which device and package versions trained each row: an index into the manifest's "builds".
    sessions = settings.get("sessions", [])
    builds: list[dict] = []
    build_of_session: dict[int, int] = {}
    for k, session in enumerate(sessions):
        entry = {"device": session.get("device"), "versions": session.get("versions")}
        if entry not in builds:
            builds.append(entry)
        build_of_session[k] = builds.index(entry)
    built_by = np.full((K, S), -1, dtype=np.int16)
    errors = []
    for (arch, seed), row in last.items():  # checked rows: their seeds are the build's
        i, j = index[arch], seeds.index(seed)
        if row.get("params") is not None:
            params[i], flops[i] = row["params"], row["flops"]
        if row.get("error") is not None:
            errors.append({"arch": list(arch), "seed": seed, "error": row["error"]})
            continue
        for m in METRICS:
            arrays[m][i, j] = row[m]
        train_time[i, j] = row["train_time_s"]
        built_by[i, j] = build_of_session.get(row.get("session"), -1)
    dest.mkdir(parents=True, exist_ok=True)
    npz = dest / f"{name}.npz"
    np.savez_compressed(npz, archs=archs.astype(np.int8), seeds=np.asarray(seeds, dtype=np.int64),
                        epochs=np.asarray(recipe.record_epochs, dtype=np.int64), params=params, flops=flops,
                        train_time_s=train_time, built_by=built_by, **arrays)
    manifest = {
        "format": FORMAT, "name": name, "space": space.to_dict(), "dataset": settings["dataset"],
        "seeds": seeds, "recipe": recipe.to_dict(), "versions": versions(),
        "build_time_s": build_time(sessions, rows), "train_time_s": float(np.nansum(train_time)),
        "cpu_time_s": float(sum(r.get("cpu_time_s") or 0.0 for r in last.values())),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "n_rows": len(last),
        "space_distinct": _space_distinct(space), "errors": errors,
        "builds": [{**b, "rows": int((built_by == k).sum()),
                    "train_time_s": float(np.nansum(np.where(built_by == k, train_time, 0.0)))}
                   for k, b in enumerate(builds)],
        "figures": figures(arrays["test_accuracy"][:, :, -1], arrays["val_accuracy"][:, :, -1]), "sha256": sha256_of(npz),
    }
    if "archs" not in settings:  # the build's plan (``seed_plan``, ``good_extra``): which seeds a missing cell gets
        manifest["plan"] = {"limit_archs": settings.get("limit_archs"),
                            "reliability_archs": settings.get("reliability_archs")}
        if settings.get("good_seeds") is not None:
            manifest["plan"].update(seeds=settings["seeds"], good_seeds=settings["good_seeds"],
                                    good_above=settings["good_above"])
    path = dest / f"{name}.json"
    path.write_text(json.dumps(manifest, indent=1, allow_nan=True) + "\n")
    return path
