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
import math
from pathlib import Path
from typing import Any, Optional

import numpy as np

from nasgen.searchspace import from_dict
from nasgen.stats import average_ranks

from .archs import all_distinct, canonicalizer
from .manifest import check_arrays, check_manifest, clip, is_real, plain_name, read_arrays, read_manifest
from .recipe import METRICS

#: Where the tables shipped with the package live.
SHIPPED_DIR = Path(__file__).resolve().parent / "tables"

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
    ra, rb = average_ranks(a), average_ranks(b)
    if ra.std() == 0 or rb.std() == 0:
        return math.nan
    return float(np.corrcoef(ra, rb)[0, 1])


def _seed_mean(values: np.ndarray) -> np.ndarray:
    count = np.isfinite(values).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, np.where(np.isfinite(values), values, 0.0).sum(axis=1) / np.maximum(count, 1),
                        np.nan)


#: Accuracy bins (quantiles of the seed mean) over which ``Table`` pools its seed variance.
NOISE_BINS = 10
#: Fewest cells with two or more seeds per noise bin (fewer cells: fewer bins).
NOISE_MIN_PER_BIN = 20


def noise_model(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The seed noise of one training as a function of a cell's level, from ``values [K, S]``.

    A cell's own two seeds give its variance with one degree of freedom, too noisy to use
    alone, and the noise is far from constant: collapsed cells scatter over several points,
    good ones over a fraction of one. So the cells with two or more finite seeds are cut into
    ``NOISE_BINS`` quantile bins of their seed mean (at least ``NOISE_MIN_PER_BIN`` cells a bin),
    and each bin's sample variances (ddof 1) are pooled.

    Returns:
        ``(edges [B-1], sd [B])``: the inner bin edges on the seed-mean scale and the pooled
        standard deviation of one training in each bin (``sd`` is ``[nan]`` with fewer than
        two cells of two seeds: a one-seed table cannot tell its noise).
    """
    values = np.asarray(values, dtype=np.float64).reshape(len(values), -1)
    count = np.isfinite(values).sum(axis=1)
    paired = count >= 2
    if paired.sum() < 2:
        return np.empty(0), np.array([math.nan])
    rows = values[paired]
    means = _seed_mean(rows)
    variance = np.nanvar(rows, axis=1, ddof=1)
    bins = int(max(1, min(NOISE_BINS, paired.sum() // NOISE_MIN_PER_BIN)))
    edges = np.quantile(means, np.linspace(0.0, 1.0, bins + 1)[1:-1])
    index = np.searchsorted(edges, means, side="right")
    members = np.bincount(index, minlength=bins)
    pooled = np.bincount(index, weights=variance, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        sd = np.sqrt(np.where(members > 0, pooled / np.maximum(members, 1), variance.mean()))
    return edges, sd


def figures(test_accuracy: np.ndarray, val_accuracy: Optional[np.ndarray] = None) -> dict[str, float]:
    """The table's quality figures from final accuracies ``[K, S]`` (nan = failed).

    Args:
        test_accuracy: test accuracy per architecture and seed.
        val_accuracy: validation accuracy likewise (for ``val_test_spearman``), optional.

    Returns:
        ``n_archs`` (with a finite mean), ``n_paired`` (with both of the first two seeds),
        ``seed_counts`` (``{"n": cells with n finished seeds}``, those with one or more),
        ``best``, ``p10``, ``p50``, ``p90``, ``spread``
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
    out: dict[str, Any] = {"n_archs": int(ok.sum()), **{k: math.nan for k in keys}}
    counts = np.isfinite(acc).sum(axis=1)
    out["seed_counts"] = {str(n): int((counts == n).sum()) for n in range(1, acc.shape[1] + 1) if (counts == n).any()}
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
    return "-" if not is_real(value) or math.isnan(value) else f"{100 * value:.2f}%"


def _decimal(value: Any) -> str:
    return "-" if not is_real(value) or math.isnan(value) else f"{value:.3f}"


def _trained_on(builds: list[dict]) -> list[str]:
    """The ``trained on`` line: each device and torch version with its row count and, where the
    table recorded it, its training time (hours on a CPU, minutes on a GPU; none without builds)."""
    def spent(b: dict) -> str:
        seconds = b.get("train_time_s")
        if seconds is None:
            return ""
        on_gpu = (b.get("device") or "cpu").startswith("cuda")
        return f", {seconds / 60:.1f} GPU min of training" if on_gpu else f", {seconds / 3600:.2f} h of training"
    parts = [f"{b.get('device') or 'unknown device'}"
             f"{' torch ' + b['versions']['torch'] if (b.get('versions') or {}).get('torch') else ''} "
             f"({b['rows']} rows{spent(b)})" for b in builds if b.get("rows")]
    return ["trained on: " + "; ".join(parts)] if parts else []


def format_summary(manifest: dict) -> str:
    """The lines ``nasgen bench info`` prints, from a manifest that passed ``check_manifest``
    (optional fields, absent from older tables, are left out or shown as ``-``)."""
    f = manifest["figures"]
    seeds = manifest["seeds"]
    distinct = manifest.get("space_distinct")
    sampled = (f" of the space's {distinct} (a sampled table: cells it lacks are trained on demand by judges "
               f"with fill)" if distinct not in (None, f["n_archs"]) else "")
    counts = f.get("seed_counts") or {}
    if len(counts) > 1:  # cells with different numbers of seeds (a reliability subset, good seeds)
        paired = " (cells by finished seeds: " + ", ".join(f"{c} with {n}" for n, c in counts.items()) + ")"
    else:
        paired = (f" (the seeds after the first on {f['n_paired']} of them)"
                  if f.get("n_paired") not in (None, f["n_archs"]) else "")
    spread = f.get("spread")
    accuracy = (f"test accuracy (mean over seeds): best {_percent(f.get('best'))}, p10 {_percent(f.get('p10'))}, "
                f"median {_percent(f.get('p50'))}, p90 {_percent(f.get('p90'))}; spread p90-p10 "
                f"{100 * spread:.2f} pp" if is_real(spread) and math.isfinite(spread)
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
        self._cache: dict[tuple[str, str], Any] = {}  # (what, metric) -> arrays computed once

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
            ``arch`` (the representative), ``per_seed`` ({seed: {metric: value}} for the
            seeds the cell was trained with), ``mean`` ({metric: mean over seeds,
            nan-ignoring}), ``standard_error`` ({metric: of that mean, ``standard_error``; at
            the last epoch only, else nan}), ``n_seeds`` (finite test accuracies averaged),
            ``params``, ``flops``, ``epoch``.
        """
        row = self.row_of(arch, space)
        per_seed = {int(s): {m: float(self._values(m, epoch)[row, j]) for m in METRICS}
                    for j, s in enumerate(self.seeds) if self.ran[row, j]}
        mean = {m: _nanmean(self._values(m, epoch)[row]) for m in METRICS}
        last = epoch is None or epoch == int(self.epochs[-1])
        se = {m: float(self.standard_error(m)[row]) if last else math.nan for m in METRICS}
        return {"arch": self.archs[row].tolist(), "per_seed": per_seed, "mean": mean, "standard_error": se,
                "n_seeds": int(np.isfinite(self._values("test_accuracy", epoch)[row]).sum()),
                "params": int(self.params[row]), "flops": int(self.flops[row]),
                "epoch": int(self.epochs[-1] if epoch is None else epoch)}

    # --- noise ----------------------------------------------------------------------------------
    def noise_sd(self, value: float, metric: str = "test_accuracy") -> float:
        """The standard deviation of one training of a cell whose seed-mean ``metric`` is
        ``value``, pooled over the table's cells at that level (``noise_model``; nan for a nan
        ``value`` or a table with one seed)."""
        edges, sd = self._noise(metric)
        if not math.isfinite(value):
            return math.nan
        return float(sd[int(np.searchsorted(edges, value, side="right"))])

    def standard_error(self, metric: str = "test_accuracy") -> np.ndarray:
        """``[K]``: the standard error of each cell's seed mean of ``metric`` at the last epoch,
        its level's one-training deviation (``noise_sd``) over the root of its finite seeds: a
        cell with one seed has the noise of one training, a paired cell ``1/sqrt(2)`` of it
        (nan: every training of the cell failed, or the table has one seed)."""
        if ("se", metric) not in self._cache:
            edges, sd = self._noise(metric)
            values = self._values(metric, None)
            count = np.isfinite(values).sum(axis=1)
            index = np.searchsorted(edges, np.nan_to_num(_seed_mean(values)), side="right")
            self._cache[("se", metric)] = np.where(count > 0, sd[index] / np.sqrt(np.maximum(count, 1)), math.nan)
        return self._cache[("se", metric)]

    def _noise(self, metric: str) -> tuple[np.ndarray, np.ndarray]:
        """``noise_model`` of ``metric`` at the last recorded epoch, computed once per metric."""
        if ("noise", metric) not in self._cache:
            self._cache[("noise", metric)] = noise_model(self._values(metric, None))
        return self._cache[("noise", metric)]

    def noise_summary(self) -> str:
        """The ``noise floor`` line of ``info``: what one training and a seed mean scatter by."""
        se = self.standard_error("test_accuracy")
        means = self.mean("test_accuracy")
        ok = np.isfinite(se) & np.isfinite(means)
        if not ok.any():
            return "noise floor: unknown (fewer than two cells trained with two seeds)"
        good = ok & (means > np.median(means[ok]))
        sd = self._noise("test_accuracy")[1]
        return (f"noise floor (standard error of a cell's seed-mean test accuracy, seed variance pooled per "
                f"accuracy decile): median {100 * np.median(se[ok]):.2f} pp over all cells, "
                f"{100 * np.median(se[good]):.2f} pp above the median; one training scatters by "
                f"{100 * sd[0]:.2f} pp (lowest decile) to {100 * sd[-1]:.2f} pp (highest)")

    def mean(self, metric: str = "test_accuracy", epoch: Optional[int] = None) -> np.ndarray:
        """``[K]``: ``metric`` averaged over seeds per distinct architecture (nan = all failed)."""
        return _seed_mean(self._values(metric, epoch))

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
        row = self.row_of(arch, space)
        return self.value_percentile(self._ranked(metric)[0][row], metric)

    def value_percentile(self, value: float, metric: str = "test_accuracy") -> float:
        """Share (in %) of the distinct architectures whose seed-mean ``metric`` is no better
        than ``value`` (nan for a nan ``value`` or a table without a finite one)."""
        ranked = self._ranked(metric)[1]
        if not math.isfinite(value) or not ranked.size:
            return math.nan
        if metric.endswith("loss"):
            no_better = len(ranked) - int(np.searchsorted(ranked, value, side="left"))
        else:
            no_better = int(np.searchsorted(ranked, value, side="right"))
        return float(100.0 * (no_better / len(ranked)))

    def _ranked(self, metric: str) -> tuple[np.ndarray, np.ndarray]:
        """``(seed means [K], their finite values sorted)`` of ``metric`` at the last recorded
        epoch, computed once per metric (``percentile`` runs on every ``Tabular-v0`` query)."""
        if ("ranked", metric) not in self._cache:
            means = self.mean(metric)
            self._cache[("ranked", metric)] = means, np.sort(means[np.isfinite(means)])
        return self._cache[("ranked", metric)]

    def covers_space(self) -> bool:
        """Whether every distinct architecture of the space is in the table."""
        every = all_distinct(self.space)
        return every is not None and len(every) == len(self.archs)

    def summary(self) -> str:
        """``format_summary`` of the manifest and the noise floor line."""
        return format_summary(self.manifest) + "\n" + self.noise_summary()


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
    manifest = read_manifest(manifest_path)
    space, recipe = check_manifest(manifest, manifest_path)
    npz = manifest_path.with_suffix(".npz")
    if not npz.is_file():
        raise ValueError(f"table {manifest_path} has no array file {npz}")
    found = sha256_of(npz)
    if found != manifest["sha256"]:
        raise ValueError(f"table file {npz} fails its checksum: SHA-256 {found}, manifest says "
                         f"{manifest['sha256']}; rebuild or re-fetch it")
    arrays = read_arrays(npz)
    check_arrays(arrays, manifest, space, recipe, npz)
    return Table(manifest, arrays, space)
