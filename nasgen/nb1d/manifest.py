"""A table's files, read and checked before any of them is used or printed.

``check_manifest`` checks every field of a manifest (names, seeds, recipe and its bounds,
figures, times, versions); ``check_arrays`` the arrays' shapes and ranges against it. Each
refusal is one ``ValueError`` line naming the file and the first bad value, cut short.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from nasgen.checks import short
from nasgen.searchspace import from_dict

from .recipe import METRICS, Recipe

FORMAT = "nasgen-bench/1"

#: Longest table, space or dataset name (names are printed and become file names).
MAX_NAME = 100
#: Longest other text of a manifest that is printed (dates, devices, package versions).
MAX_TEXT = 200
#: Most seeds of a table.
MAX_SEEDS = 1000
#: Largest recipe sizes: beyond them a recipe is corrupt, and a judge training a missing cell
#: on demand with it would never finish.
RECIPE_BOUNDS = {"epochs": 10_000, "train_size": 10_000_000, "val_size": 10_000_000, "test_size": 10_000_000,
                 "batch_size": 10_000_000, "eval_batch_size": 10_000_000, "C": 4096, "cells_per_stage": 100}
#: Longest ``recipe.data_options`` as JSON (it is printed).
MAX_DATA_OPTIONS = 1000
#: Largest time figure in seconds (about 30,000 years).
MAX_SECONDS = 1e12
#: Largest manifest file and largest unpacked array file, in bytes.
MAX_MANIFEST_BYTES = 64 << 20
MAX_ARRAY_BYTES = 1 << 30
#: Figures that are accuracies or accuracy differences ([0, 1]) and those that are correlations ([-1, 1]).
ACCURACY_FIGURES = ("best", "p10", "p50", "p90", "spread", "seed_gap")
CORRELATION_FIGURES = ("spearman_all", "spearman_top_half", "val_test_spearman")
#: The arrays of every table, and those of tables packed since they were recorded.
ARRAYS = ("archs", "seeds", "epochs", *METRICS, "params", "flops", "train_time_s")
OPTIONAL_ARRAYS = ("built_by",)
#: Figures every manifest has (``figures`` always writes them).
REQUIRED_FIGURES = ("n_archs", "best", "p10", "p50", "p90", "spread", "spearman_all", "spearman_top_half")

clip = short  # an untrusted value echoed in an error line, cut short


def reason(error: BaseException, limit: int = 200) -> str:
    """The first line of ``error``'s message, cut to ``limit`` characters (messages can echo a value whole)."""
    lines = str(error).strip().splitlines()
    text = lines[0] if lines else type(error).__name__
    return text if len(text) <= limit else text[:limit] + "..."


def plain_name(value: Any, what: str) -> str:
    """``value`` if it is a plain name: a printable string of 1 to ``MAX_NAME`` characters
    without path separators, not ``.`` or ``..``.

    Raises:
        ValueError: naming ``what`` and the clipped value.
    """
    if (not isinstance(value, str) or not 0 < len(value) <= MAX_NAME or not value.isprintable()
            or "/" in value or "\\" in value or value in (".", "..")):
        raise ValueError(f"{what} must be a plain name of 1 to {MAX_NAME} printable characters without "
                         f"path separators, got {clip(value)}")
    return value


# --- checks of a table's files -------------------------------------------------------------------
def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_real(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _count(value: Any, what: str, low: int = 0) -> int:
    if not is_int(value) or not low <= value < 2 ** 63:
        raise ValueError(f"{what} must be an integer >= {low} (64-bit), got {clip(value)}")
    return value


def _seconds(value: Any, what: str) -> float:
    if not is_real(value) or not 0 <= value <= MAX_SECONDS:
        raise ValueError(f"{what} must be a number of seconds in 0..{MAX_SECONDS:g}, got {clip(value)}")
    return float(value)


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str) or len(value) > MAX_TEXT or not value.isprintable():
        raise ValueError(f"{what} must be a printable string of at most {MAX_TEXT} characters, got {clip(value)}")
    return value


def _versions(value: Any, what: str) -> dict:
    if not isinstance(value, dict) or len(value) > 50:
        raise ValueError(f"{what} must be an object of at most 50 package versions, got {clip(value)}")
    for key, version in value.items():
        _text(key, f"{what} key")
        _text(version, f"{what}[{clip(key)}]")
    return value


def _seeds(value: Any) -> list[int]:
    if not isinstance(value, list) or not 0 < len(value) <= MAX_SEEDS:
        raise ValueError(f"seeds must be a list of 1 to {MAX_SEEDS} seeds, got {clip(value)}")
    for seed in value:
        _count(seed, "each seed")
    if len(set(value)) != len(value):
        raise ValueError(f"seeds must be unique, got {clip(value)}")
    return value


def _recipe(value: Any) -> Recipe:
    """The manifest's recipe, within its own checks and ``RECIPE_BOUNDS``."""
    if not isinstance(value, dict):
        raise ValueError(f"recipe must be an object of recipe fields, got {clip(value)}")
    try:
        recipe = Recipe.from_dict(value)
    except (TypeError, ValueError, OverflowError) as error:
        raise ValueError(f"recipe: {reason(error)}") from None
    for field, most in RECIPE_BOUNDS.items():
        if getattr(recipe, field) > most:
            raise ValueError(f"recipe {field}={getattr(recipe, field)} is beyond the bound of {most}")
    _count(recipe.data_seed, "recipe data_seed")
    if len(json.dumps(recipe.data_options)) > MAX_DATA_OPTIONS:
        raise ValueError(f"recipe data_options are longer than {MAX_DATA_OPTIONS} characters as JSON")
    return recipe


def _space(value: Any):
    if not isinstance(value, dict):
        raise ValueError(f"space must be an object (SearchSpace.to_dict), got {clip(value)}")
    plain_name(value.get("name"), "space name")
    try:
        return from_dict(value)
    except (TypeError, ValueError, OverflowError) as error:
        raise ValueError(f"space: {reason(error)}") from None


def _errors(value: Any, space, seeds: list[int]) -> None:
    if not isinstance(value, list):
        raise ValueError(f"errors must be a list of {{arch, seed, error}}, got {clip(value)}")
    for k, entry in enumerate(value):
        if not isinstance(entry, dict) or not isinstance(entry.get("error"), str) or entry.get("seed") not in seeds:
            raise ValueError(f"errors[{k}] must be {{arch, seed, error}} with a seed of the table, got {clip(entry)}")
        try:
            space.validate(entry.get("arch"))
        except (TypeError, ValueError, OverflowError) as error:
            raise ValueError(f"errors[{k}]: {reason(error)}") from None


def _figures(value: Any) -> None:
    if not isinstance(value, dict):
        raise ValueError(f"figures must be an object, got {clip(value)}")
    missing = [key for key in REQUIRED_FIGURES if key not in value]
    if missing:
        raise ValueError(f"figures lack {', '.join(missing)}")
    for key in ("n_archs", "n_paired"):
        if key in value:
            _count(value[key], f"figures {key}")
    counts = value.get("seed_counts", {})
    if not isinstance(counts, dict) or not all(isinstance(k, str) and k.isdigit() for k in counts):
        raise ValueError(f"figures seed_counts must map a number of seeds to a count of cells, got {clip(counts)}")
    for key, count in counts.items():
        _count(count, f"figures seed_counts {key}")
    for keys, low, high in ((ACCURACY_FIGURES, 0.0, 1.0), (CORRELATION_FIGURES, -1.0, 1.0)):
        for key in keys:
            figure = value.get(key)
            if figure is not None and not (is_real(figure) and (math.isnan(figure) or
                                                                 low - 1e-9 <= figure <= high + 1e-9)):
                raise ValueError(f"figures {key} must be a number in [{low:g}, {high:g}] or nan, got {clip(figure)}")


def _builds(value: Any) -> None:
    if not isinstance(value, list):
        raise ValueError(f"builds must be a list of {{device, versions, rows}}, got {clip(value)}")
    for k, entry in enumerate(value):
        if not isinstance(entry, dict):
            raise ValueError(f"builds[{k}] must be an object {{device, versions, rows}}, got {clip(entry)}")
        if entry.get("device") is not None:
            _text(entry["device"], f"builds[{k}] device")
        if entry.get("versions") is not None:
            _versions(entry["versions"], f"builds[{k}] versions")
        _count(entry.get("rows"), f"builds[{k}] rows")
        if entry.get("train_time_s") is not None:
            _seconds(entry["train_time_s"], f"builds[{k}] train_time_s")


def _plan(value: Any, seeds: list[int]) -> None:
    """Refuse a build plan (``build.seed_plan``, ``build.good_extra``) a judge cannot follow."""
    if not isinstance(value, dict):
        raise ValueError(f"plan must be an object, got {clip(value)}")
    for key in ("limit_archs", "reliability_archs"):
        if value.get(key) is not None:
            _count(value[key], f"plan {key}", low=1)
    for key in ("seeds", "good_seeds"):
        listed = value.get(key)
        if listed is not None and (not isinstance(listed, list) or not listed or not set(listed) <= set(seeds)
                                   or len(set(listed)) != len(listed)):
            raise ValueError(f"plan {key} must be distinct seeds of the table's {seeds}, got {clip(listed)}")
    if (value.get("good_seeds") is None) != (value.get("good_above") is None):
        raise ValueError("plan good_seeds and good_above go together")
    above = value.get("good_above")
    if above is not None and not (is_real(above) and 0 <= above < 1):
        raise ValueError(f"plan good_above must be a test accuracy in [0, 1), got {clip(above)}")


def _check_fields(manifest: dict) -> tuple[Any, Recipe]:
    """Check every field ``load`` and ``format_summary`` use; returns ``(space, recipe)``."""
    plain_name(manifest.get("name"), "name")
    plain_name(manifest.get("dataset"), "dataset")
    space = _space(manifest.get("space"))
    seeds = _seeds(manifest.get("seeds"))
    recipe = _recipe(manifest.get("recipe"))
    _versions(manifest.get("versions"), "versions")
    for key in ("build_time_s", "train_time_s"):
        _seconds(manifest.get(key), key)
    if manifest.get("cpu_time_s") is not None:
        _seconds(manifest["cpu_time_s"], "cpu_time_s")
    _text(manifest.get("created"), "created")
    _count(manifest.get("n_rows"), "n_rows")
    if manifest.get("space_distinct") is not None:
        _count(manifest["space_distinct"], "space_distinct", low=1)
    _errors(manifest.get("errors"), space, seeds)
    if manifest.get("plan") is not None:
        _plan(manifest["plan"], seeds)
    _figures(manifest.get("figures"))
    if manifest.get("builds") is not None:
        _builds(manifest["builds"])
    sha = manifest.get("sha256")
    if not isinstance(sha, str) or len(sha) != 64 or not all(c in "0123456789abcdef" for c in sha):
        raise ValueError(f"sha256 must be 64 hex digits, got {clip(sha)}")
    return space, recipe


def check_manifest(manifest: Any, path: Path) -> tuple[Any, Recipe]:
    """Refuse a manifest with a missing, mistyped or absurd field, before any of it is used.

    Args:
        manifest: the parsed JSON.
        path: its file (named in the error).

    Returns:
        ``(space, recipe)``: the table's ``SearchSpace`` and ``Recipe``.

    Raises:
        ValueError: one line naming ``path`` and the first bad field (its value clipped).
    """
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ValueError(f"{path} is not a {FORMAT} table manifest")
    try:
        return _check_fields(manifest)
    except ValueError as error:
        raise ValueError(f"table manifest {path}: {error}") from None


def _shapes(arrays: dict[str, np.ndarray], space, n_seeds: int) -> dict[str, tuple]:
    """Each array's expected shape, from ``archs`` and the seeds; refuses a missing array."""
    missing = [k for k in ARRAYS if k not in arrays]
    if missing:
        raise ValueError(f"no array {', '.join(missing)}")
    archs = arrays["archs"]
    if archs.ndim != 2 or archs.shape[1] != space.n_decisions:
        raise ValueError(f"archs must be [K, {space.n_decisions}] (the space's decisions), got shape {list(archs.shape)}")
    for key in ("seeds", "epochs"):
        if arrays[key].ndim != 1 or not len(arrays[key]):
            raise ValueError(f"{key} must be a non-empty vector, got shape {list(arrays[key].shape)}")
    K, S, E = archs.shape[0], n_seeds, len(arrays["epochs"])
    shapes = {"archs": archs.shape, "seeds": (S,), "epochs": (E,), **{m: (K, S, E) for m in METRICS},
              "params": (K,), "flops": (K,), "train_time_s": (K, S), "built_by": (K, S)}
    return {k: v for k, v in shapes.items() if k in arrays}


def _check_array_values(arrays: dict[str, np.ndarray], space, manifest: dict, recipe: Recipe) -> None:
    """Refuse values out of their range, or that disagree with the manifest (shapes already checked)."""
    archs = arrays["archs"]
    outside = ((archs < 0) | (archs >= np.asarray(space.choices))).any(axis=1)
    if outside.any():
        row = int(np.flatnonzero(outside)[0])
        raise ValueError(f"archs[{row}] = {clip(archs[row].tolist())} is not an architecture of space "
                         f"{space.name!r} (choices {space.choices})")
    if len(np.unique(archs, axis=0)) != len(archs):
        raise ValueError("archs holds an architecture twice")
    if arrays["seeds"].tolist() != manifest["seeds"]:
        raise ValueError(f"seeds {clip(arrays['seeds'].tolist())} are not the manifest's {clip(manifest['seeds'])}")
    if arrays["epochs"].tolist() != list(recipe.record_epochs):
        raise ValueError(f"epochs {clip(arrays['epochs'].tolist())} are not the recipe's record_epochs "
                         f"{clip(list(recipe.record_epochs))}")
    for m in METRICS:
        high = 1.0 if m.endswith("accuracy") else math.inf
        values = arrays[m][~np.isnan(arrays[m])]
        if ((values < 0) | (values > high)).any():
            raise ValueError(f"{m} holds values outside [0, {high:g}] (nan marks a failed or missing training)")
    if (arrays["params"] < -1).any() or (arrays["flops"] < -1).any():
        raise ValueError("params and flops must be counts (-1: unknown)")
    times = arrays["train_time_s"][~np.isnan(arrays["train_time_s"])]
    if ((times < 0) | (times > MAX_SECONDS)).any():
        raise ValueError(f"train_time_s must be seconds in 0..{MAX_SECONDS:g} (nan: no row)")
    if "built_by" in arrays:
        n_builds = len(manifest.get("builds") or [])
        if ((arrays["built_by"] < -1) | (arrays["built_by"] >= n_builds)).any():
            raise ValueError(f"built_by must index the manifest's {n_builds} builds (-1: unknown)")
    if manifest["n_rows"] > archs.shape[0] * len(manifest["seeds"]):
        raise ValueError(f"n_rows {manifest['n_rows']} exceeds the {archs.shape[0]} x {len(manifest['seeds'])} "
                         f"cells of the arrays")


def check_arrays(arrays: dict[str, np.ndarray], manifest: dict, space, recipe: Recipe, path: Path) -> None:
    """Refuse arrays that do not agree with each other and the manifest.

    Every array has its shape from ``archs`` ``[K, D]`` (D the space's decisions), ``seeds``
    ``[S]`` and ``epochs`` ``[E]`` (metrics ``[K, S, E]``, params and flops ``[K]``,
    train_time_s and built_by ``[K, S]``) and a kind (integers, floats); the architectures are
    distinct and in the space, the seeds and epochs those of the manifest and its recipe,
    accuracies in [0, 1] and losses and times >= 0 (nan: failed or missing).

    Args:
        arrays: the arrays of the ``.npz``.
        manifest: the manifest, already through ``check_manifest``.
        space, recipe: what ``check_manifest`` returned.
        path: the ``.npz`` (named in the error).

    Raises:
        ValueError: one line naming ``path`` and the first bad array.
    """
    try:
        shapes = _shapes(arrays, space, len(manifest["seeds"]))
        for key, shape in shapes.items():
            floats = key in METRICS or key == "train_time_s"
            kind = "f" if floats else "iu"
            if arrays[key].dtype.kind not in kind:
                raise ValueError(f"{key} must hold {'floats' if floats else 'integers'}, got dtype {arrays[key].dtype}")
            if arrays[key].shape != shape:
                raise ValueError(f"{key} must have shape {list(shape)} (from archs, seeds and epochs), "
                                 f"got {list(arrays[key].shape)}")
        _check_array_values(arrays, space, manifest, recipe)
    except ValueError as error:
        raise ValueError(f"table arrays {path}: {error}") from None


def read_manifest(path: Path) -> Any:
    """The parsed JSON of ``path``; refuses a file too large or too deeply nested to parse."""
    try:
        if path.stat().st_size > MAX_MANIFEST_BYTES:
            raise ValueError(f"larger than {MAX_MANIFEST_BYTES >> 20} MiB")
        return json.loads(path.read_text())
    except RecursionError:
        raise ValueError(f"table manifest {path} is unreadable: nested too deeply") from None
    except (OSError, ValueError) as error:
        raise ValueError(f"table manifest {path} is unreadable: {reason(error)}") from None


def read_arrays(path: Path) -> dict[str, np.ndarray]:
    """The arrays of the ``.npz`` ``path`` that a table uses (``allow_pickle=False``)."""
    try:
        data = np.load(path, allow_pickle=False)
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise ValueError("a single array, not an .npz archive")
        with data:
            if sum(info.file_size for info in data.zip.infolist()) > MAX_ARRAY_BYTES:
                raise ValueError(f"unpacks to more than {MAX_ARRAY_BYTES >> 20} MiB")
            return {k: data[k] for k in (*ARRAYS, *OPTIONAL_ARRAYS) if k in data.files}
    except Exception as error:  # numpy and zipfile raise a dozen kinds of error on a corrupt file
        raise ValueError(f"table array file {path} is unreadable: {type(error).__name__}: {reason(error)}") from None
