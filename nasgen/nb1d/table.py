"""A packed table: plain arrays (``.npz``) beside a manifest (``.json``) that holds its SHA-256.

Files of a table named ``NAME``::

    NAME.npz    archs [K, D] int8 (one representative encoding per distinct architecture,
                sorted), seeds [S], epochs [E] (the recorded epochs), and per metric of
                ``recipe.METRICS`` a float32 [K, S, E] array (nan where a training failed),
                params [K], flops [K] (int64, -1 when unknown), train_time_s [K, S] float32
    NAME.json   format, name, space (SearchSpace.to_dict), dataset, recipe, versions,
                build_time_s, train_time_s and cpu_time_s (summed over rows), created, n_rows, errors
                ([{arch, seed, error}]), figures (``summary``) and sha256 (of NAME.npz)

Loading checks the manifest's fields (``check_manifest``), the SHA-256, then reads the arrays
with ``allow_pickle=False`` and checks their shapes and ranges against the manifest
(``check_arrays``): a malformed table is refused with one line naming the file, before any of
it is used or printed.
"""

from __future__ import annotations

import hashlib
import json
import math
import reprlib
from pathlib import Path
from typing import Any, Optional

import numpy as np

from nasgen.searchspace import from_dict

from .archs import all_distinct, canonicalizer
from .recipe import METRICS, Recipe

FORMAT = "nasgen-bench/1"
#: Where the tables shipped with the package live.
SHIPPED_DIR = Path(__file__).resolve().parent / "tables"

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

_SHORT = reprlib.Repr()
_SHORT.maxstring, _SHORT.maxother, _SHORT.maxlist, _SHORT.maxdict, _SHORT.maxlevel = 80, 80, 6, 4, 2


def clip(value: Any) -> str:
    """``repr(value)`` cut to about 80 characters, for echoing an untrusted value in an error line."""
    text = _SHORT.repr(value)
    return text if len(text) <= 90 else text[:80] + "..."


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


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation of two vectors (average ranks for ties; nan below 3 pairs
    or when one side is constant)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    if len(a) < 3:
        return math.nan
    ra, rb = _average_ranks(a), _average_ranks(b)
    if ra.std() == 0 or rb.std() == 0:
        return math.nan
    return float(np.corrcoef(ra, rb)[0, 1])


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 0..n-1 of ``values``, ties sharing their mean rank."""
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(len(values))
    _, group, counts = np.unique(values, return_inverse=True, return_counts=True)
    return (np.bincount(group, weights=ranks) / counts)[group]


def _seed_mean(values: np.ndarray) -> np.ndarray:
    count = np.isfinite(values).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, np.where(np.isfinite(values), values, 0.0).sum(axis=1) / np.maximum(count, 1),
                        np.nan)


def figures(test_accuracy: np.ndarray, val_accuracy: Optional[np.ndarray] = None) -> dict[str, float]:
    """The table's quality figures from final accuracies ``[K, S]`` (nan = failed).

    Args:
        test_accuracy: test accuracy per architecture and seed.
        val_accuracy: validation accuracy likewise (for ``val_test_spearman``), optional.

    Returns:
        ``n_archs`` (with a finite mean), ``n_paired`` (with both of the first two seeds), ``best``, ``p10``, ``p50``, ``p90``, ``spread``
        (p90 - p10, accuracy points in [0, 1]), ``spearman_all`` and ``spearman_top_half``
        (between the first two seeds, over every architecture / those whose mean is above
        the median), ``seed_gap`` (mean absolute difference of the first two seeds; these
        three nan with one seed) and ``val_test_spearman`` (seed-mean validation against
        seed-mean test accuracy; nan without ``val_accuracy``).
    """
    keys = ("best", "p10", "p50", "p90", "spread", "spearman_all", "spearman_top_half", "seed_gap",
            "val_test_spearman")
    acc = np.asarray(test_accuracy, dtype=np.float64).reshape(len(test_accuracy), -1)
    mean = _seed_mean(acc)
    ok = np.isfinite(mean)
    values = mean[ok]
    out: dict[str, float] = {"n_archs": int(ok.sum()), **{k: math.nan for k in keys}}
    if not values.size:
        return out
    p10, p50, p90 = np.percentile(values, [10, 50, 90])
    out.update(best=float(values.max()), p10=float(p10), p50=float(p50), p90=float(p90),
               spread=float(p90 - p10))
    if acc.shape[1] >= 2:
        out["n_paired"] = int((np.isfinite(acc[:, 0]) & np.isfinite(acc[:, 1])).sum())
        out["spearman_all"] = spearman(acc[ok, 0], acc[ok, 1])
        top = values > p50
        out["spearman_top_half"] = spearman(acc[ok, 0][top], acc[ok, 1][top])
        gaps = np.abs(acc[:, 0] - acc[:, 1])
        gaps = gaps[np.isfinite(gaps)]
        out["seed_gap"] = float(gaps.mean()) if gaps.size else math.nan
    if val_accuracy is not None:
        val = _seed_mean(np.asarray(val_accuracy, dtype=np.float64).reshape(len(val_accuracy), -1))
        out["val_test_spearman"] = spearman(val, mean)
    return out


def _percent(value: Any) -> str:
    return "-" if not _is_real(value) or math.isnan(value) else f"{100 * value:.2f}%"


def _decimal(value: Any) -> str:
    return "-" if not _is_real(value) or math.isnan(value) else f"{value:.3f}"


def _trained_on(builds: list[dict]) -> list[str]:
    """The ``trained on`` line: each device and torch version with its row count (none without builds)."""
    parts = [f"{b.get('device') or 'unknown device'}"
             f"{' torch ' + b['versions']['torch'] if (b.get('versions') or {}).get('torch') else ''} "
             f"({b['rows']} rows)" for b in builds if b.get("rows")]
    return ["trained on: " + "; ".join(parts)] if parts else []


def format_summary(manifest: dict) -> str:
    """The lines ``nasgen bench info`` prints, from a manifest that passed ``check_manifest``
    (optional fields, absent from older tables, are left out or shown as ``-``)."""
    f = manifest["figures"]
    seeds = manifest["seeds"]
    distinct = manifest.get("space_distinct")
    sampled = (f" of the space's {distinct} (a sampled table: cells it lacks are trained on demand by judges "
               f"with fill)" if distinct not in (None, f["n_archs"]) else "")
    paired = (f" (the seeds after the first on {f['n_paired']} of them)"
              if f.get("n_paired") not in (None, f["n_archs"]) else "")
    spread = f.get("spread")
    accuracy = (f"test accuracy (mean over seeds): best {_percent(f.get('best'))}, p10 {_percent(f.get('p10'))}, "
                f"median {_percent(f.get('p50'))}, p90 {_percent(f.get('p90'))}; spread p90-p10 "
                f"{100 * spread:.2f} pp" if _is_real(spread) and math.isfinite(spread)
                else "test accuracy: no finished row")
    cpu = manifest.get("cpu_time_s")
    cpu = math.nan if cpu is None else cpu
    lines = [
        f"table {manifest['name']}: space {manifest['space']['name']}, dataset {manifest['dataset']}, "
        f"{f['n_archs']} distinct architectures{sampled} x seeds {seeds}{paired}, "
        f"{len(manifest['errors'])} failed rows",
        accuracy,
        f"seed agreement (Spearman of test accuracy, seeds {seeds[:2]}): all {_decimal(f.get('spearman_all'))}, "
        f"above the median {_decimal(f.get('spearman_top_half'))}; mean |seed difference| "
        f"{_percent(f.get('seed_gap')).rstrip('%')} pp; validation vs test Spearman "
        f"{_decimal(f.get('val_test_spearman'))}",
        f"build time {manifest['build_time_s'] / 60:.1f} min wall ({manifest['train_time_s'] / 3600:.2f} h of "
        f"training, {cpu / max(1, manifest['n_rows']):.1f} CPU s per training), built {manifest['created']}",
        "recipe: " + " ".join(f"{k}={v}" for k, v in manifest["recipe"].items()),
        *_trained_on(manifest.get("builds") or []),
        "versions: " + " ".join(f"{k}={v}" for k, v in manifest["versions"].items()),
    ]
    return "\n".join(lines)


def resolve(name_or_path: str | Path) -> Path:
    """The manifest path of a shipped table name or of a table path (``.json`` or ``.npz``).

    A name is looked up only in ``SHIPPED_DIR`` and must be a plain name; anything with a
    path separator or a ``.json``/``.npz`` suffix is a path and must be an existing file.

    Raises:
        ValueError: a path that is not an existing table file, a name that is not plain, or
            not a shipped name (lists the shipped names).
    """
    text = str(name_or_path)
    path = Path(text)
    if path.suffix in (".json", ".npz"):
        if not path.is_file():
            raise ValueError(f"no table file {clip(text)}")
        return path.with_suffix(".json")
    if "/" in text or "\\" in text or text in (".", ".."):
        raise ValueError(f"no table {clip(text)}: give a table's path as its .json or .npz file, or the plain "
                         f"name of a shipped table")
    known = sorted(p.stem for p in SHIPPED_DIR.glob("*.json")) if SHIPPED_DIR.is_dir() else []
    try:
        shipped = SHIPPED_DIR / f"{plain_name(text, 'a table name')}.json"
    except ValueError:
        shipped = None
    if shipped is None or not shipped.is_file():
        raise ValueError(f"no table {clip(text)}: not a .json/.npz table file nor a shipped table "
                         f"(shipped: {', '.join(known) or 'none yet; build one with nasgen bench build'})")
    return shipped


# --- checks of a table's files -------------------------------------------------------------------
def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _count(value: Any, what: str, low: int = 0) -> int:
    if not _is_int(value) or not low <= value < 2 ** 63:
        raise ValueError(f"{what} must be an integer >= {low} (64-bit), got {clip(value)}")
    return value


def _seconds(value: Any, what: str) -> float:
    if not _is_real(value) or not 0 <= value <= MAX_SECONDS:
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
    for keys, low, high in ((ACCURACY_FIGURES, 0.0, 1.0), (CORRELATION_FIGURES, -1.0, 1.0)):
        for key in keys:
            figure = value.get(key)
            if figure is not None and not (_is_real(figure) and (math.isnan(figure) or
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


def _read_manifest(path: Path) -> Any:
    """The parsed JSON of ``path``; refuses a file too large or too deeply nested to parse."""
    try:
        if path.stat().st_size > MAX_MANIFEST_BYTES:
            raise ValueError(f"larger than {MAX_MANIFEST_BYTES >> 20} MiB")
        return json.loads(path.read_text())
    except RecursionError:
        raise ValueError(f"table manifest {path} is unreadable: nested too deeply") from None
    except (OSError, ValueError) as error:
        raise ValueError(f"table manifest {path} is unreadable: {reason(error)}") from None


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
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


class Table:
    """A loaded table: query any encoding of its space through the canonical form.

    Attributes:
        name: the table's name.
        manifest: the manifest (recipe, versions, figures, ...).
        space: the ``SearchSpace`` the table covers.
        archs: ``[K, D]`` the representative encodings, one per distinct architecture.
        seeds: ``[S]`` training seeds; epochs: ``[E]`` recorded epochs.
        metrics: per name of ``METRICS``, ``[K, S, E]`` float arrays (nan = failed).
        params, flops: ``[K]``; train_time_s: ``[K, S]``.
        built_by: ``[K, S]`` each row's index into ``manifest["builds"]`` (the device and
            package versions that trained it; -1: unknown), or None for a table packed before
            this was recorded.
        failed: ``[K, S]`` bool: the training of that cell and seed is a recorded failure
            (``manifest["errors"]``).
        ran: ``[K, S]`` bool: that cell was trained with that seed, successfully or not. A
            sampled seed (the table's later seeds on a subset of its cells) is False on
            the other cells: missing, not failed.
    """

    def __init__(self, manifest: dict, arrays: dict[str, np.ndarray], space: Any = None):
        self.manifest = manifest
        self.name = manifest["name"]
        self.space = from_dict(manifest["space"]) if space is None else space
        self.archs = arrays["archs"].astype(np.int64)
        self.seeds = arrays["seeds"].astype(np.int64)
        self.epochs = arrays["epochs"].astype(np.int64)
        self.metrics = {m: arrays[m].astype(np.float64) for m in METRICS}
        self.params = arrays["params"]
        self.flops = arrays["flops"]
        self.train_time_s = arrays["train_time_s"]
        self.built_by = arrays.get("built_by")
        self._canonical = canonicalizer(self.space)
        self._row = {tuple(a): i for i, a in enumerate(self.archs.tolist())}
        self.failed = np.zeros(self.train_time_s.shape, dtype=bool)
        seed_index = {int(s): j for j, s in enumerate(self.seeds)}
        for error in manifest.get("errors", []):
            row = self._row.get(tuple(self._canonical(np.asarray(error["arch"], dtype=np.int64))))
            if row is not None and int(error["seed"]) in seed_index:
                self.failed[row, seed_index[int(error["seed"])]] = True
        self.ran = np.isfinite(self.train_time_s) | self.failed

    # --- lookup ---------------------------------------------------------------------------------
    def row_of(self, arch: Any, space: Any = None) -> int:
        """The row of ``arch`` (any encoding; equivalent encodings share a row).

        Args:
            arch: an architecture of the table's space.
            space: optionally the space ``arch`` comes from; it must be the table's.

        Raises:
            ValueError: ``space`` is another space, ``arch`` is not an architecture of the
                table's space, or its class is not in the table (a partial build).
        """
        if space is not None and space != self.space:
            raise ValueError(f"architecture of space {getattr(space, 'name', space)!r}, but table "
                             f"{self.name!r} is of space {self.space.name!r}")
        arch = self.space.validate(arch)
        key = self._canonical(arch)
        row = self._row.get(key)
        if row is None:
            raise ValueError(f"architecture {arch.tolist()} (canonical {list(key)}) is not in table "
                             f"{self.name!r}, which holds {len(self.archs)} distinct architectures")
        return row

    def _values(self, metric: str, epoch: Optional[int]) -> np.ndarray:
        """``[K, S]`` values of ``metric`` at ``epoch`` (default: the last recorded)."""
        if metric not in self.metrics:
            raise ValueError(f"unknown metric {metric!r}; known: {', '.join(self.metrics)}")
        if epoch is None:
            return self.metrics[metric][:, :, -1]
        hits = np.flatnonzero(self.epochs == epoch)
        if not hits.size:
            raise ValueError(f"epoch {epoch} is not recorded in table {self.name!r}; recorded: "
                             f"{', '.join(map(str, self.epochs.tolist()))}")
        return self.metrics[metric][:, :, int(hits[0])]

    def query(self, arch: Any, epoch: Optional[int] = None, space: Any = None) -> dict:
        """Everything the table knows about ``arch``.

        Args:
            arch: any encoding of the table's space.
            epoch: a recorded epoch (default: the last).
            space: optionally the space of ``arch`` (checked against the table's).

        Returns:
            ``arch`` (the representative), ``per_seed`` ({seed: {metric: value}}), ``mean``
            ({metric: mean over seeds, nan-ignoring}), ``params``, ``flops``, ``epoch``.
        """
        row = self.row_of(arch, space)
        per_seed = {int(s): {m: float(self._values(m, epoch)[row, j]) for m in METRICS}
                    for j, s in enumerate(self.seeds)}
        mean = {m: _nanmean(self._values(m, epoch)[row]) for m in METRICS}
        return {"arch": self.archs[row].tolist(), "per_seed": per_seed, "mean": mean,
                "params": int(self.params[row]), "flops": int(self.flops[row]),
                "epoch": int(self.epochs[-1] if epoch is None else epoch)}

    def mean(self, metric: str = "test_accuracy", epoch: Optional[int] = None) -> np.ndarray:
        """``[K]``: ``metric`` averaged over seeds per distinct architecture (nan = all failed)."""
        values = self._values(metric, epoch)
        count = np.isfinite(values).sum(axis=1)
        total = np.where(np.isfinite(values), values, 0.0).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(count > 0, total / np.maximum(count, 1), np.nan)

    def best(self, metric: str = "test_accuracy", epoch: Optional[int] = None) -> dict:
        """The best distinct architecture by the seed-mean of ``metric`` (highest accuracy,
        lowest loss).

        Returns:
            ``{"arch", "value"}``.
        """
        values = self.mean(metric, epoch)
        finite = np.where(np.isfinite(values), values, np.nan)
        if np.isnan(finite).all():
            raise ValueError(f"table {self.name!r} has no finished training with a finite {metric} "
                             f"(every row failed; rebuild the failed rows)")
        row = int(np.nanargmin(finite) if metric.endswith("loss") else np.nanargmax(finite))
        return {"arch": self.archs[row].tolist(), "value": float(values[row])}

    def percentile(self, arch: Any, metric: str = "test_accuracy", space: Any = None) -> float:
        """Share (in %) of the distinct architectures whose seed-mean ``metric`` is no better
        than ``arch``'s: 100 for the best, about 50 for the median."""
        value = self.mean(metric)[self.row_of(arch, space)]
        values = self.mean(metric)
        values = values[np.isfinite(values)]
        if not math.isfinite(value) or not values.size:
            return math.nan
        no_better = values >= value if metric.endswith("loss") else values <= value
        return float(100.0 * no_better.mean())

    def covers_space(self) -> bool:
        """Whether every distinct architecture of the space is in the table."""
        every = all_distinct(self.space)
        return every is not None and len(every) == len(self.archs)

    def summary(self) -> str:
        return format_summary(self.manifest)


def _nanmean(values: np.ndarray) -> float:
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    return float(values.mean()) if values.size else math.nan


def load(name_or_path: str | Path = "nb201-mnist1d") -> Table:
    """Load a table: a shipped name (``"nb201-mnist1d"``) or a path to its ``.json``/``.npz``.

    Raises:
        ValueError: one line naming the file: unknown name, an unreadable manifest or one of
            another format or with a bad field (``check_manifest``), an ``.npz`` whose SHA-256
            does not match its manifest, or unreadable arrays or ones that disagree with the
            manifest (``check_arrays``).
    """
    manifest_path = resolve(name_or_path)
    manifest = _read_manifest(manifest_path)
    space, recipe = check_manifest(manifest, manifest_path)
    npz = manifest_path.with_suffix(".npz")
    if not npz.is_file():
        raise ValueError(f"table {manifest_path} has no array file {npz}")
    found = sha256_of(npz)
    if found != manifest["sha256"]:
        raise ValueError(f"table file {npz} fails its checksum: SHA-256 {found}, manifest says "
                         f"{manifest['sha256']}; rebuild or re-fetch it")
    arrays = _read_arrays(npz)
    check_arrays(arrays, manifest, space, recipe, npz)
    return Table(manifest, arrays, space)
