"""``nasgen sweep``: a grid of controllers x seeds (x environment kwargs) as Ray Tune trials.

Every trial is an ordinary search (``nasgen.search.Search``) with its own run directory
(TensorBoard events, ``result.json``, checkpoint, cell diagrams) under
``LOGDIR/NAME/runs/``. Ray Tune only schedules the trials onto the CPUs and GPUs of a local
Ray instance or of an existing cluster (``--address``); nasgen runs no pool or scheduler of
its own.

Layout of a sweep directory ``LOGDIR/NAME``::

    sweep.json            the grid and the settings, written at every start
    runs/<trial>/         one search run directory per trial (tensorboard --logdir runs)
    tune/attempt-<k>/     Ray Tune's experiment folder of the k-th start of the sweep
    trials.csv            one row per trial: status, best reward, score, error
    summary.csv           per controller (and env-kwargs variant): mean/std/min/max
    summary.md            the same tables as markdown, plus the failed trials

Restarting: a trial is *finished* when ``runs/<trial>/result.json`` holds the trial's own
config. Starting the sweep again with the same ``--logdir``/``--name`` skips finished
trials, continues interrupted ones from their last checkpoint (the search's exact resume)
and runs failed or missing ones afresh. Tune's own experiment restore is not used: the
result files are the single source of truth, so a sweep can also be grown (more seeds, more
controllers) under the same name. A finished trial whose config differs from the one asked
for (other ``--steps``, other kwargs) is refused rather than silently mixed in.

On a multi-node cluster ``--logdir`` must be a folder every node sees at the same path
(NFS or similar) and nasgen must be installed on every node.

Ray is an optional dependency (``pip install "nasgen[distributed]"``); this module imports
it only inside ``import_ray``.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import math
import re
import statistics
import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Optional, Sequence

from tqdm.auto import tqdm

from nasgen import config as search_config
from nasgen import controllers
from nasgen.checkpoint import CheckpointError
from nasgen.checks import MAX_SEED, InputError, short
from nasgen import runtime
from nasgen.runtime import apply_threads, folder_lock
from nasgen.search import RUN_LOCK, Search, SearchConfig, resume_state, run_logged, seed_everything

INSTALL_HINT = 'pip install "nasgen[distributed]"'
#: The most seeds a table build takes (a table holds at most 1,000).
MAX_SEEDS = 1000
#: The most trials of one sweep (controllers x env-kwargs variants x seeds).
MAX_TRIALS = 100_000
#: Planning shows a progress bar from this many trials.
PLAN_BAR_FROM = 1_000
RUNS = "runs"
TUNE = "tune"
RESULT = "result.json"


# --- the grid ------------------------------------------------------------------------------------
@dataclass
class Trial:
    """One cell of the grid.

    Attributes:
        name: unique, file-system safe name; also the run directory's name.
        controller: controller name.
        seed: the search seed.
        variant: this trial's values of ``--grid-env-kwargs`` (raw text), ``{}`` without a grid.
        config: the validated search config (as a dict of ``SearchConfig``).
        run_dir: absolute path of the trial's run directory.
    """

    name: str
    controller: str
    seed: int
    variant: dict[str, str]
    config: dict
    run_dir: str
    status: str = "pending"
    result: Optional[dict] = None
    error: Optional[str] = None

    @property
    def variant_label(self) -> str:
        return " ".join(f"{k}={v}" for k, v in self.variant.items())


def parse_seeds(text: str, most: int = None, flag: str = "--seeds") -> list[int]:
    """``"0,1,5"`` -> ``[0, 1, 5]``; ``"3"`` (a count) -> ``[0, 1, 2]``; ``"7,"`` -> ``[7]``.

    Args:
        text: the ``--seeds`` value.
        most: the most seeds a command takes (default ``MAX_SEEDS``).
        flag: the option the errors name.

    Returns:
        The distinct seeds in ``0..checks.MAX_SEED``, in the given order.

    Raises:
        InputError: not integers, out of range, a count below 1 or above ``most``, or repeated seeds.
    """
    most = MAX_SEEDS if most is None else most
    text = text.strip()
    try:
        count = int(text) if "," not in text else None
        seeds = [int(part) for part in text.split(",") if part.strip()] if count is None else []
    except ValueError:
        raise InputError(f"{flag} expects a count (3) or a comma-separated list (0,1,5), got {short(text)}") from None
    if count is not None:
        if not 1 <= count <= most:
            raise InputError(f"{flag}: a count must be in 1..{most}, got {short(count)}")
        return list(range(count))
    if not seeds or any(not 0 <= s <= MAX_SEED for s in seeds):
        raise InputError(f"{flag} expects seeds in 0..{MAX_SEED}, got {short(text)}")
    if len(seeds) > most:
        raise InputError(f"{flag} lists {len(seeds)} seeds, more than the {most} a command takes")
    if len(set(seeds)) != len(seeds):
        raise InputError(f"{flag} lists a seed twice: {short(text)}")
    return seeds


def parse_names(text: str) -> list[str]:
    """``"credit,darts"`` -> ``["credit", "darts"]``, each a controller ``controllers.get`` finds
    (a built-in, an installed plug-in or a ``module:Class`` reference)."""
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise InputError("--controllers expects a comma-separated list of controller names")
    for name in names:
        try:
            controllers.get(name)
        except KeyError:
            raise InputError(f"unknown controller {short(name)}; choose from: {', '.join(controllers.names())}") from None
    if len(set(names)) != len(names):
        raise InputError(f"--controllers lists a controller twice: {short(text)}")
    return names


def parse_grid(pairs: Optional[Sequence[str]]) -> dict[str, list[str]]:
    """``["C=4,8", "credit=taylor,exact"]`` -> ``{"C": ["4", "8"], "credit": ["taylor", "exact"]}``.

    Values stay raw text here; they are parsed like ``--env-kwargs`` values when the trial's
    config is built.
    """
    grid: dict[str, list[str]] = {}
    for pair in pairs or []:
        key, sep, values = pair.partition("=")
        key = key.strip()
        options = [v.strip() for v in values.split(",") if v.strip()]
        if not sep or not key.isidentifier() or not options:
            raise InputError(f"--grid-env-kwargs expects key=v1,v2 pairs, got {pair!r}")
        if key in grid:
            raise InputError(f"--grid-env-kwargs gives {key!r} twice")
        if len(set(options)) != len(options):
            raise InputError(f"--grid-env-kwargs lists a value of {key!r} twice: {pair!r}")
        grid[key] = options
    return grid


def split_controller_kwargs(pairs: Optional[Sequence[str]], controllers_: Sequence[str]) -> dict[str, list[str]]:
    """Sort ``--controller-kwargs`` into the ``key=value`` pairs of each controller.

    ``key=value`` applies to every controller of the sweep (each must accept ``key``);
    ``name.key=value`` applies to controller ``name`` only.

    Returns:
        ``{controller: ["key=value", ...]}`` (raw text, validated later per controller).
    """
    out: dict[str, list[str]] = {name: [] for name in controllers_}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise InputError(f"--controller-kwargs expects key=value or controller.key=value, got {pair!r}")
        scope, dot, bare = key.rpartition(".")
        if dot:
            if scope not in out:
                raise InputError(f"--controller-kwargs: {pair!r} is scoped to {scope!r}, which is not in "
                                 f"--controllers ({', '.join(controllers_)})")
            out[scope].append(f"{bare}={value}")
            continue
        for name in controllers_:
            if key not in controllers.hyperparameters(name):
                raise InputError(f"--controller-kwargs: controller {name!r} takes no {key!r}; scope it to the "
                                 f"controllers that do, e.g. {controllers_[0]}.{key}={value}")
            out[name].append(pair)
    return out


def _safe(text: str) -> str:
    """``text`` as part of a file name (a ``module:Class`` reference's colon is not)."""
    return re.sub(r"[^A-Za-z0-9._=-]+", "-", text)


def _label(variant: dict[str, str]) -> str:
    return _safe("_".join(f"{k}-{v}" for k, v in variant.items()))


def _config(args: argparse.Namespace, controller: str, seed: int, env_pairs: list[str],
            controller_pairs: list[str]) -> SearchConfig:
    """The checked search config of one trial (the gate every search goes through)."""
    return search_config.make_config(
        env_kwargs=search_config.parse_key_values(env_pairs, "--env-kwargs"),
        controller_kwargs=search_config.parse_key_values(controller_pairs, "--controller-kwargs"),
        controller=controller, seed=seed, env=args.env, dataset=args.dataset, data_dir=args.data_dir,
        space=args.space, warmup_epochs=args.warmup_epochs, device=args.device, steps=args.steps,
        epochs=args.epochs, checkpoint_every=args.checkpoint_every)


def _normalised(config: dict) -> dict:
    """A config as it reads back from JSON (tuples become lists), for comparisons."""
    return json.loads(json.dumps(config, default=str))


def plan_trials(args: argparse.Namespace, sweep_dir: Path) -> list[Trial]:
    """Every trial of the grid, each with a validated config; bad input raises ``InputError``.

    Args:
        args: the parsed ``nasgen sweep`` arguments.
        sweep_dir: the sweep directory (run directories go under ``sweep_dir/runs``).

    Returns:
        The trials in grid order: controller, then env-kwargs variant, then seed.
    """
    names = parse_names(args.controllers)
    seeds = parse_seeds(args.seeds, most=MAX_TRIALS)
    grid = parse_grid(args.grid_env_kwargs)
    base_env = list(args.env_kwargs or [])
    clash = sorted(set(grid) & {p.partition("=")[0].strip() for p in base_env})
    if clash:
        raise InputError(f"{', '.join(clash)} given in both --env-kwargs and --grid-env-kwargs")
    per_controller = split_controller_kwargs(args.controller_kwargs, names)
    n_variants = math.prod(len(values) for values in grid.values())
    total = len(names) * n_variants * len(seeds)
    if total > MAX_TRIALS:
        raise InputError(f"the sweep would run {total:,} trials ({len(names)} controllers x {n_variants:,} env-kwargs "
                         f"variants x {len(seeds):,} seeds), more than the {MAX_TRIALS:,} a sweep takes; split it")
    variants = [dict(zip(grid, values)) for values in itertools.product(*grid.values())] or [{}]
    trials: list[Trial] = []
    bar = tqdm(total=total, desc="planning the sweep", unit="trial", disable=total < PLAN_BAR_FROM)
    for name in names:
        for variant in variants:
            env_pairs = base_env + [f"{k}={v}" for k, v in variant.items()]
            checked = _config(args, name, seeds[0], env_pairs, per_controller[name])  # the gate, once
            for seed in seeds:
                config = replace(checked, seed=seed)  # parse_seeds checked the seed
                trial_name = f"{_safe(name)}__s{seed}" + (f"__{_label(variant)}" if variant else "")
                trials.append(Trial(trial_name, name, seed, dict(variant), _normalised(asdict(config)),
                                    str((sweep_dir / RUNS / trial_name).resolve())))
                bar.update(1)
    bar.close()
    if len({t.name for t in trials}) != len(trials):
        raise InputError("--grid-env-kwargs values give two trials the same directory name; "
                         "use values that differ in letters or digits")
    return trials


def finished_result(trial: Trial) -> Optional[dict]:
    """The trial's ``result.json`` when it finished with this very config, else None.

    Raises:
        InputError: a finished run with another config sits in the trial's directory.
    """
    path = Path(trial.run_dir) / RESULT
    if not path.is_file():
        return None
    try:
        result = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None  # half-written: the trial runs again (resuming from its checkpoint)
    found = result.get("config") if isinstance(result, dict) else None
    if found != trial.config:
        differing = sorted(k for k in set(trial.config) | set(found or {})
                           if (found or {}).get(k) != trial.config.get(k))
        raise InputError(f"trial {trial.name} already finished in {trial.run_dir} with other settings "
                         f"({', '.join(differing)}); give the sweep another --name")
    return result


# --- one trial -------------------------------------------------------------------------------------
def run_trial(spec: dict) -> dict:
    """Run (or continue) one trial's search; this is what each Ray Tune trial executes.

    An interrupted trial continues from the checkpoint in its run directory when that
    checkpoint holds the same config. Anything else found there (no checkpoint, a damaged or
    unsafe one, another config) is moved aside to ``<trial>.damaged-N`` / ``<trial>.stale-N``
    (one line on stderr says where; nothing is deleted) and the search starts afresh, so
    curves are never logged twice.

    Args:
        spec: ``{"name", "run_dir", "config" (a SearchConfig as dict), "threads"}``.

    Returns:
        The final metrics: ``best_reward``, ``score`` (nan when absent), ``steps``,
        ``wall_time_s``, ``resumed_from_step`` and ``run_dir``.
    """
    apply_threads(max(1, int(spec.get("threads", 1))))
    config = SearchConfig(**spec["config"])
    run_dir = Path(spec["run_dir"])
    state = None
    if run_dir.exists():
        why, kind = None, "stale"
        try:
            state = resume_state(run_dir)
            if _normalised(state.get("config")) != _normalised(asdict(config)):
                state, why = None, "its checkpoint is for other settings"
        except CheckpointError as error:
            why = str(error)
            if (run_dir / "checkpoint.pt").exists():
                kind = "damaged"
        if state is None:
            aside = move_aside(run_dir, kind)
            if aside is not None:
                print(f"nasgen sweep: trial {spec['name']} cannot continue ({why}); moved {run_dir} to {aside} "
                      f"and started it afresh", file=sys.stderr, flush=True)
    seed_everything(config.seed)
    with folder_lock(run_dir, RUN_LOCK, "trial directory", "run of this trial"):
        result = run_logged(Search(config, run_dir), state)

    def number(value: Any) -> float:
        return float("nan") if value is None else float(value)

    return {"best_reward": number(result["best_reward"]), "score": number(result["score"]),
            "steps": int(result["steps"]), "wall_time_s": float(result["wall_time_s"]),
            "resumed_from_step": int(state["step"]) if state else 0, "run_dir": str(run_dir)}


def move_aside(run_dir: Path, kind: str) -> Optional[Path]:
    """Rename ``run_dir`` to ``<run_dir>.<kind>-N`` (first free N); an empty one is just removed.

    Returns:
        The new path, or None when ``run_dir`` was empty.
    """
    if not any(run_dir.iterdir()):
        run_dir.rmdir()
        return None
    for n in itertools.count(1):
        target = run_dir.with_name(f"{run_dir.name}.{kind}-{n}")
        if not target.exists():
            run_dir.rename(target)
            return target


def _tune_trainable(config: dict, specs: Optional[dict] = None) -> dict:
    """Ray Tune function trainable: ``config["trial"]`` names the trial, ``specs`` (bound with
    ``tune.with_parameters``) holds every trial's spec; the returned dict is the final result."""
    return run_trial(specs[config["trial"]])


def _trial_name(trial) -> str:
    return trial.config["trial"]


# --- summary ---------------------------------------------------------------------------------------
def _stats(values: list[float]) -> dict[str, float]:
    values = [v for v in values if v is not None and math.isfinite(v)]
    nan = float("nan")
    if not values:
        return {"mean": nan, "std": nan, "min": nan, "max": nan}
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else nan,
            "min": min(values), "max": max(values)}


def summarize(trials: Sequence[Trial]) -> list[dict]:
    """One row per controller (and env-kwargs variant) over the finished trials.

    Returns:
        Rows with ``controller``, ``variant``, ``trials``, ``finished``, ``failed``, and
        ``best_reward_{mean,std,min,max}``, ``score_{mean,std,min,max}``, ``wall_time_s_mean``;
        ``std`` is the sample standard deviation over seeds (nan below two finished trials).
    """
    groups: dict[tuple[str, str], list[Trial]] = {}
    for trial in trials:
        groups.setdefault((trial.controller, trial.variant_label), []).append(trial)
    rows = []
    for (controller, variant), members in groups.items():
        done = [t for t in members if t.result is not None]
        row: dict[str, Any] = {"controller": controller, "variant": variant, "trials": len(members),
                               "finished": len(done), "failed": sum(t.status == "failed" for t in members)}
        for key in ("best_reward", "score"):
            stats = _stats([t.result.get(key) for t in done])
            row.update({f"{key}_{k}": v for k, v in stats.items()})
        row["wall_time_s_mean"] = _stats([t.result.get("wall_time_s") for t in done])["mean"]
        rows.append(row)
    return rows


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def _range(low: float, high: float) -> str:
    return "-" if math.isnan(low) else f"[{_fmt(low)}, {_fmt(high)}]"


def _pm(mean: float, std: float) -> str:
    if math.isnan(mean):
        return "-"
    return f"{mean:.4f}" + ("" if math.isnan(std) else f" ± {std:.4f}")


def summary_markdown(rows: list[dict], trials: Sequence[Trial], title: str) -> str:
    """The summary table (mean ± std over seeds, [min, max]) and the failed trials, as markdown."""
    with_variant = any(row["variant"] for row in rows)
    head = ["controller"] + (["env kwargs"] if with_variant else []) + [
        "finished", "failed", "best reward (mean ± std)", "best reward [min, max]",
        "derived score (mean ± std)", "derived score [min, max]", "search time (s)"]
    lines = [f"# {title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        cells = [row["controller"]] + ([row["variant"] or "-"] if with_variant else []) + [
            f"{row['finished']}/{row['trials']}", str(row["failed"]),
            _pm(row["best_reward_mean"], row["best_reward_std"]),
            _range(row["best_reward_min"], row["best_reward_max"]),
            _pm(row["score_mean"], row["score_std"]),
            _range(row["score_min"], row["score_max"]), _fmt(row["wall_time_s_mean"])]
        lines.append("| " + " | ".join(cells) + " |")
    failed = [t for t in trials if t.status == "failed"]
    lines += ["", "std: sample standard deviation over seeds; derived score: the environment's "
              "score of the controller's final architecture (higher is better)."]
    if failed:
        lines += ["", f"## Failed trials ({len(failed)})", ""]
        lines += [f"- `{t.name}`: {t.error}" for t in failed]
    missing = [t for t in trials if t.status not in ("finished", "skipped", "failed")]
    if missing:
        lines += ["", f"## Trials that did not finish ({len(missing)})", ""]
        lines += [f"- `{t.name}`: {t.status}" + (f" ({t.error})" if t.error else "") for t in missing]
    return "\n".join(lines) + "\n"


def write_summary(sweep_dir: Path, trials: Sequence[Trial], title: str) -> tuple[list[dict], str]:
    """Write ``trials.csv``, ``summary.csv`` and ``summary.md`` into ``sweep_dir``.

    Returns:
        The summary rows and the markdown text.
    """
    rows = summarize(trials)
    with open(sweep_dir / "summary.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    fields = ["name", "controller", "seed", "variant", "status", "best_reward", "score", "steps",
              "wall_time_s", "run_dir", "error"]
    with open(sweep_dir / "trials.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for t in trials:
            result = t.result or {}
            writer.writerow({"name": t.name, "controller": t.controller, "seed": t.seed,
                             "variant": t.variant_label, "status": t.status,
                             "best_reward": result.get("best_reward"), "score": result.get("score"),
                             "steps": result.get("steps"), "wall_time_s": result.get("wall_time_s"),
                             "run_dir": t.run_dir, "error": t.error or ""})
    markdown = summary_markdown(rows, trials, title)
    (sweep_dir / "summary.md").write_text(markdown)
    return rows, markdown


# --- Ray -------------------------------------------------------------------------------------------
def import_ray():
    try:
        import ray
        from ray import tune
    except ImportError:
        raise InputError(f"nasgen sweep needs Ray Tune, which is not installed; {INSTALL_HINT}") from None
    return ray, tune


def start_ray(ray, args: argparse.Namespace) -> bool:
    """Join ``--address`` or start a local instance (``runtime.start_ray``); whether it started Ray."""
    return runtime.start_ray(ray, args.address, args.num_cpus, args.num_gpus)


def check_resources(ray, args: argparse.Namespace) -> None:
    available = ray.cluster_resources()
    for flag, key, wanted in (("--cpus-per-trial", "CPU", args.cpus_per_trial),
                              ("--gpus-per-trial", "GPU", args.gpus_per_trial)):
        have = float(available.get(key, 0.0))
        if wanted > have:
            raise InputError(f"{flag} {wanted:g} exceeds the {have:g} {key}s of the Ray "
                             f"{'cluster' if args.address else 'instance'}; no trial could ever start")


def run_with_tune(ray, tune, todo: list[Trial], sweep_dir: Path, args: argparse.Namespace) -> None:
    """Run ``todo`` as one Tune experiment; sets each trial's status, result and error."""
    tune_dir = (sweep_dir / TUNE).resolve()
    tune_dir.mkdir(parents=True, exist_ok=True)
    attempt = 1 + sum(1 for p in tune_dir.glob("attempt-*") if p.is_dir())
    threads = getattr(args, "threads", None) or max(1, int(args.cpus_per_trial))
    specs = {t.name: {"name": t.name, "run_dir": t.run_dir, "config": t.config, "threads": threads} for t in todo}
    RunConfig = getattr(tune, "RunConfig", None) or ray.train.RunConfig
    FailureConfig = getattr(tune, "FailureConfig", None) or ray.train.FailureConfig
    trainable = tune.with_resources(tune.with_parameters(_tune_trainable, specs=specs),
                                    {"cpu": args.cpus_per_trial, "gpu": args.gpus_per_trial})
    tuner = tune.Tuner(
        trainable,
        param_space={"trial": tune.grid_search(list(specs))},
        # reuse_actors: a worker that finished a trial takes the next one without re-importing torch.
        tune_config=tune.TuneConfig(trial_name_creator=_trial_name, trial_dirname_creator=_trial_name,
                                    reuse_actors=True),
        run_config=RunConfig(name=f"attempt-{attempt}", storage_path=str(tune_dir),
                             failure_config=FailureConfig(max_failures=0, fail_fast=False),
                             verbose=args.verbose),
    )
    grid = tuner.fit()
    by_name = {t.name: t for t in todo}
    seen = set()
    for result in grid:
        trial = by_name.get((result.config or {}).get("trial"))
        if trial is None:
            continue
        seen.add(trial.name)
        if result.error is not None:
            trial.status, trial.error = "failed", runtime.error_line(result.error)
            continue
        try:
            trial.result = finished_result(trial)
        except InputError as error:  # cannot happen for a trial that just ran, but never hide it
            trial.status, trial.error = "failed", str(error)
            continue
        if trial.result is None and "steps" in (result.metrics or {}):
            trial.status, trial.error = "failed", (f"it finished on a Ray worker, but {RESULT} is not visible here: "
                                                   f"--logdir must be a folder every node shares")
        elif trial.result is None:  # stopped without an error: Tune was interrupted (Ctrl+C)
            trial.status, trial.error = "interrupted", "stopped before the end; it continues from its checkpoint"
        else:
            trial.status = "finished"
    for trial in todo:
        if trial.name not in seen:
            trial.status, trial.error = "interrupted", "Ray Tune returned no result for it"
