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
it only inside ``cmd_sweep``.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import logging
import math
import os
import re
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

# Attribute access at call time, so nasgen.cli may import this module at its top (no import cycle).
import nasgen.cli as _cli
from nasgen import jsonfile

INSTALL_HINT = 'pip install "nasgen[distributed]"'
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


def parse_seeds(text: str) -> list[int]:
    """``"0,1,5"`` -> ``[0, 1, 5]``; ``"3"`` (a count) -> ``[0, 1, 2]``; ``"7,"`` -> ``[7]``.

    Args:
        text: the ``--seeds`` value.

    Returns:
        The distinct non-negative seeds, in the given order.

    Raises:
        UsageError: not integers, negative, a count below 1, or repeated seeds.
    """
    text = text.strip()
    try:
        if "," not in text:
            count = int(text)
            if count < 1:
                raise _cli.UsageError(f"--seeds: a count must be >= 1, got {count}")
            return list(range(count))
        seeds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise _cli.UsageError(f"--seeds expects a count (3) or a comma-separated list (0,1,5), got {text!r}") from None
    if not seeds or any(s < 0 for s in seeds):
        raise _cli.UsageError(f"--seeds expects non-negative seeds, got {text!r}")
    if len(set(seeds)) != len(seeds):
        raise _cli.UsageError(f"--seeds lists a seed twice: {text!r}")
    return seeds


def parse_names(text: str, known: Sequence[str]) -> list[str]:
    """``"credit,darts"`` -> ``["credit", "darts"]``, each checked against ``known``."""
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise _cli.UsageError("--controllers expects a comma-separated list of controller names")
    for name in names:
        if name not in known:
            raise _cli.UsageError(f"unknown controller {name!r}; choose from: {', '.join(known)}")
    if len(set(names)) != len(names):
        raise _cli.UsageError(f"--controllers lists a controller twice: {text!r}")
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
            raise _cli.UsageError(f"--grid-env-kwargs expects key=v1,v2 pairs, got {pair!r}")
        if key in grid:
            raise _cli.UsageError(f"--grid-env-kwargs gives {key!r} twice")
        if len(set(options)) != len(options):
            raise _cli.UsageError(f"--grid-env-kwargs lists a value of {key!r} twice: {pair!r}")
        grid[key] = options
    return grid


def split_controller_kwargs(pairs: Optional[Sequence[str]], controllers_: Sequence[str]) -> dict[str, list[str]]:
    """Sort ``--controller-kwargs`` into the ``key=value`` pairs of each controller.

    ``key=value`` applies to every controller of the sweep (each must accept ``key``);
    ``name.key=value`` applies to controller ``name`` only.

    Returns:
        ``{controller: ["key=value", ...]}`` (raw text, validated later per controller).
    """
    import inspect

    from nasgen import controllers

    out: dict[str, list[str]] = {name: [] for name in controllers_}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise _cli.UsageError(f"--controller-kwargs expects key=value or controller.key=value, got {pair!r}")
        scope, dot, bare = key.rpartition(".")
        if dot:
            if scope not in out:
                raise _cli.UsageError(f"--controller-kwargs: {pair!r} is scoped to {scope!r}, which is not in "
                                 f"--controllers ({', '.join(controllers_)})")
            out[scope].append(f"{bare}={value}")
            continue
        for name in controllers_:
            taken = [p for p in inspect.signature(controllers.get(name).__init__).parameters
                     if p not in ("self", "space", "seed")]
            if key not in taken:
                raise _cli.UsageError(f"--controller-kwargs: controller {name!r} takes no {key!r}; scope it to the "
                                 f"controllers that do, e.g. {controllers_[0]}.{key}={value}")
            out[name].append(pair)
    return out


def _label(variant: dict[str, str]) -> str:
    text = "_".join(f"{k}-{v}" for k, v in variant.items())
    return re.sub(r"[^A-Za-z0-9._=-]+", "-", text)


def _config_namespace(args: argparse.Namespace, controller: str, seed: int, env_pairs: list[str],
                      controller_pairs: list[str]) -> argparse.Namespace:
    """The ``nasgen search`` arguments of one trial (validated by the search command's code)."""
    return argparse.Namespace(
        controller=controller, env=args.env, env_kwargs=env_pairs, controller_kwargs=controller_pairs,
        dataset=args.dataset, data_dir=args.data_dir, space=args.space, warmup_epochs=args.warmup_epochs,
        download=False, device=args.device, steps=args.steps, epochs=args.epochs,
        checkpoint_every=args.checkpoint_every, seed=seed)


def _normalised(config: dict) -> dict:
    """A config as it reads back from JSON (tuples become lists), for comparisons."""
    return json.loads(json.dumps(config, default=str))


def plan_trials(args: argparse.Namespace, sweep_dir: Path) -> list[Trial]:
    """Every trial of the grid, each with a validated config; bad input raises ``UsageError``.

    Args:
        args: the parsed ``nasgen sweep`` arguments.
        sweep_dir: the sweep directory (run directories go under ``sweep_dir/runs``).

    Returns:
        The trials in grid order: controller, then env-kwargs variant, then seed.
    """
    from nasgen import controllers
    from nasgen.cli import _search_config

    names = parse_names(args.controllers, controllers.names())
    seeds = parse_seeds(args.seeds)
    grid = parse_grid(args.grid_env_kwargs)
    base_env = list(args.env_kwargs or [])
    clash = sorted(set(grid) & {p.partition("=")[0].strip() for p in base_env})
    if clash:
        raise _cli.UsageError(f"{', '.join(clash)} given in both --env-kwargs and --grid-env-kwargs")
    per_controller = split_controller_kwargs(args.controller_kwargs, names)
    variants = [dict(zip(grid, values)) for values in itertools.product(*grid.values())] or [{}]
    trials: list[Trial] = []
    for name in names:
        for variant in variants:
            for seed in seeds:
                env_pairs = base_env + [f"{k}={v}" for k, v in variant.items()]
                config = _search_config(_config_namespace(args, name, seed, env_pairs, per_controller[name]))
                trial_name = f"{name}__s{seed}" + (f"__{_label(variant)}" if variant else "")
                trials.append(Trial(trial_name, name, seed, dict(variant), _normalised(asdict(config)),
                                    str((sweep_dir / RUNS / trial_name).resolve())))
    if len({t.name for t in trials}) != len(trials):
        raise _cli.UsageError("--grid-env-kwargs values give two trials the same directory name; "
                         "use values that differ in letters or digits")
    return trials


def finished_result(trial: Trial) -> Optional[dict]:
    """The trial's ``result.json`` when it finished with this very config, else None.

    Raises:
        UsageError: a finished run with another config sits in the trial's directory.
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
        raise _cli.UsageError(f"trial {trial.name} already finished in {trial.run_dir} with other settings "
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
    from nasgen.checkpoint import CheckpointError
    from nasgen.search import Search, SearchConfig, resume_state, seed_everything
    from nasgen.threads import apply_threads

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
    result = _cli.run_logged(Search(config, run_dir), state)

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


def _error_line(error: BaseException) -> str:
    """The last meaningful line of a (Ray-wrapped) exception: ``ValueError: lr must be > 0``."""
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    for line in reversed(lines):
        if re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt|Exit)\b", line):
            return line
    return lines[-1] if lines else type(error).__name__


# --- Ray -------------------------------------------------------------------------------------------
def _import_ray():
    try:
        import ray
        from ray import tune
    except ImportError:
        raise _cli.UsageError(f"nasgen sweep needs Ray Tune, which is not installed; {INSTALL_HINT}") from None
    return ray, tune


def _start_ray(ray, args: argparse.Namespace) -> bool:
    """Join ``--address`` or start a local instance; returns whether this call started Ray."""
    if ray.is_initialized():
        return False
    kwargs: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.WARNING}
    try:
        if args.address:
            ray.init(address=args.address, **kwargs)
        else:
            ray.init(num_cpus=args.num_cpus, num_gpus=args.num_gpus, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as error:
        where = f"the Ray cluster at {args.address}" if args.address else "a local Ray instance"
        raise _cli.UsageError(f"could not start or join {where}: {_error_line(error)}") from None
    return True


def _check_resources(ray, args: argparse.Namespace) -> None:
    available = ray.cluster_resources()
    for flag, key, wanted in (("--cpus-per-trial", "CPU", args.cpus_per_trial),
                              ("--gpus-per-trial", "GPU", args.gpus_per_trial)):
        have = float(available.get(key, 0.0))
        if wanted > have:
            raise _cli.UsageError(f"{flag} {wanted:g} exceeds the {have:g} {key}s of the Ray "
                             f"{'cluster' if args.address else 'instance'}; no trial could ever start")


def _run_with_tune(ray, tune, todo: list[Trial], sweep_dir: Path, args: argparse.Namespace) -> None:
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
            trial.status, trial.error = "failed", _error_line(result.error)
            continue
        try:
            trial.result = finished_result(trial)
        except _cli.UsageError as error:  # cannot happen for a trial that just ran, but never hide it
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


# --- the command ----------------------------------------------------------------------------------
def cmd_sweep(args: argparse.Namespace) -> int:
    """``nasgen sweep``: plan the grid, skip finished trials, run the rest on Ray Tune, summarise.

    Args:
        args: the arguments registered by ``add_sweep_parser``.

    Returns:
        0 when every trial finished, 1 when any failed (the summary lists them), 130 when the
        sweep was interrupted (Ctrl+C) before every trial finished.

    Raises:
        UsageError: Ray missing, bad flags, an unreachable cluster, or a name clash with a
            finished sweep of other settings.
    """
    from nasgen import validation

    ray, tune = _import_ray()
    for flag, value in (("--cpus-per-trial", args.cpus_per_trial), ("--gpus-per-trial", args.gpus_per_trial)):
        if value < 0:
            raise _cli.UsageError(f"{flag} must be >= 0, got {value:g}")
    if args.cpus_per_trial <= 0 and args.gpus_per_trial <= 0:
        raise _cli.UsageError("a trial needs some resources: --cpus-per-trial or --gpus-per-trial must be > 0")
    if args.address and (args.num_cpus is not None or args.num_gpus is not None):
        raise _cli.UsageError("--num-cpus/--num-gpus size a local Ray instance; they do not apply with --address")
    if args.num_cpus is not None and args.num_cpus < 1:
        raise _cli.UsageError(f"--num-cpus must be >= 1, got {args.num_cpus}")
    if args.device is None:
        args.device = "cuda" if args.gpus_per_trial > 0 else "cpu"
    elif args.device.startswith("cuda") and args.gpus_per_trial <= 0:
        raise _cli.UsageError("--device cuda needs --gpus-per-trial > 0, so that Ray gives each trial a GPU")
    env_short = (args.env or "nasgen/OneShotNAS-v0").split("/")[-1]
    name = args.name or f"sweep-{env_short}-{time.strftime('%Y%m%d-%H%M%S')}"
    if not name or name in (".", "..") or "/" in name or os.sep in name:
        raise _cli.UsageError(f"--name must be a plain folder name, got {name!r}")
    try:
        validation.check_creatable_dir(args.logdir, "--logdir")
    except ValueError as error:
        raise _cli.UsageError(str(error)) from None
    sweep_dir = (Path(args.logdir) / name).resolve()
    trials = plan_trials(args, sweep_dir)
    for trial in trials:
        trial.result = finished_result(trial)
        if trial.result is not None:
            trial.status = "skipped"
    todo = [t for t in trials if t.result is None]
    sweep_dir.mkdir(parents=True, exist_ok=True)
    settings = {k: v for k, v in vars(args).items() if k != "func"}
    jsonfile.write(sweep_dir / "sweep.json", {
        "settings": settings, "trials": [{"name": t.name, "controller": t.controller, "seed": t.seed,
                                          "variant": t.variant, "run_dir": t.run_dir} for t in trials]},
        default=str)
    skipped = len(trials) - len(todo)
    continuing = sum((Path(t.run_dir) / "checkpoint.pt").is_file() for t in todo)
    print(f"sweep {name}: {len(trials)} trials ({skipped} finished before and skipped, {len(todo)} to run"
          + (f", {continuing} of them from a checkpoint" if continuing else "") + f"); directory {sweep_dir}",
          flush=True)
    if todo:
        started = _start_ray(ray, args)
        try:
            _check_resources(ray, args)
            _run_with_tune(ray, tune, todo, sweep_dir, args)
        finally:
            if started:
                ray.shutdown()
    _, markdown = write_summary(sweep_dir, trials, f"Sweep {name}: {env_short}")
    print(markdown, end="")
    failed = [t for t in trials if t.status == "failed"]
    unfinished = [t for t in trials if t.result is None and t.status != "failed"]
    print(f"{len(trials) - len(failed) - len(unfinished)}/{len(trials)} trials finished ({skipped} skipped as "
          f"finished before), {len(failed)} failed, {len(unfinished)} unfinished. Summary: "
          f"{sweep_dir / 'summary.md'}, {sweep_dir / 'summary.csv'}; curves: tensorboard --logdir {sweep_dir / RUNS}")
    if failed or unfinished:
        print(f"nasgen sweep: {len(failed)} trial(s) failed, {len(unfinished)} unfinished; start the same command "
              f"again to retry or continue them (finished trials are skipped)", file=sys.stderr)
    return 1 if failed else 130 if unfinished else 0


def add_sweep_parser(subparsers) -> argparse.ArgumentParser:
    """Register the ``sweep`` subcommand (``set_defaults(func=cmd_sweep)``).

    Args:
        subparsers: what ``ArgumentParser.add_subparsers()`` returned.

    Returns:
        The ``sweep`` parser.
    """
    from nasgen import validation as v

    sweep = subparsers.add_parser(
        "sweep", help="a grid of controllers x seeds as Ray Tune trials, with a summary table",
        description="Run every controller x seed (x env-kwargs variant) as a search on Ray Tune, then "
                    "summarise best reward and derived-architecture score per controller. Needs "
                    f"{INSTALL_HINT}. Starting the same sweep (same --logdir/--name) again skips the "
                    "trials that finished and continues interrupted ones from their checkpoints.")
    sweep.add_argument("--controllers", default="credit,reinforce,random",
                       help="comma-separated controller names (default: credit,reinforce,random)")
    sweep.add_argument("--seeds", default="3", help="a count (3 = seeds 0,1,2) or a list 0,1,5 (default: 3)")
    sweep.add_argument("--env", type=v.name, help="environment id (default: nasgen/OneShotNAS-v0)")
    sweep.add_argument("--dataset", type=v.name, help="dataset of the environment (default: digits)")
    sweep.add_argument("--data-dir", type=v.name, help="local folder of CIFAR-10/MNIST/Fashion-MNIST")
    sweep.add_argument("--space", type=v.name, help="search-space preset (default: small)")
    budget = sweep.add_mutually_exclusive_group()
    budget.add_argument("--steps", type=v.positive_int, help="search steps per trial (default: 1000)")
    budget.add_argument("--epochs", type=v.positive_float, help="architecture-phase epochs per trial")
    sweep.add_argument("--warmup-epochs", type=v.non_negative_float,
                       help="weight-training epochs before the first reward")
    sweep.add_argument("--device", type=v.name, help="cpu or cuda (default: cuda when --gpus-per-trial > 0, else cpu)")
    sweep.add_argument("--env-kwargs", nargs="*", metavar="KEY=VALUE", help="environment keyword arguments")
    sweep.add_argument("--controller-kwargs", nargs="*", metavar="[CONTROLLER.]KEY=VALUE",
                       help="controller hyper-parameters; prefix with a controller name to apply to that one only")
    sweep.add_argument("--grid-env-kwargs", nargs="*", metavar="KEY=V1,V2",
                       help="environment keyword arguments to sweep over (a grid dimension each)")
    sweep.add_argument("--logdir", type=v.name, default="runs", help="parent folder of sweep directories (default: runs/)")
    sweep.add_argument("--name", help="sweep directory name (default: sweep-ENV-TIME); reuse it to continue a sweep")
    sweep.add_argument("--address", help="join this Ray cluster (auto or HOST:PORT; run on a cluster node that "
                                         "shares --logdir with the others); default: start a local instance")
    sweep.add_argument("--num-cpus", type=int, help="CPUs of the local Ray instance (default: all)")
    sweep.add_argument("--num-gpus", type=int, help="GPUs of the local Ray instance (default: all)")
    sweep.add_argument("--cpus-per-trial", type=float, default=1.0, help="CPUs reserved per trial (default: 1)")
    sweep.add_argument("--gpus-per-trial", type=float, default=0.0,
                       help="GPUs reserved per trial, fractions allowed (default: 0)")
    sweep.add_argument("--checkpoint-every", type=v.positive_int, default=50,
                       help="steps between checkpoints (default: 50)")
    sweep.add_argument("--threads", type=v.positive_int,
                       help="torch CPU threads of each trial (default: --cpus-per-trial, at least 1)")
    sweep.add_argument("--verbose", type=int, default=1, choices=(0, 1, 2), help="Ray Tune's verbosity (default: 1)")
    sweep.set_defaults(func=cmd_sweep)
    return sweep


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m nasgen.sweep [flags]``: the ``nasgen sweep`` command on its own.

    Returns:
        The exit status: 0, 1 (a trial failed), 2 (bad input, Ray missing), 130 (interrupted).
    """
    parser = argparse.ArgumentParser(prog="nasgen")
    add_sweep_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["sweep", *(sys.argv[1:] if argv is None else argv)])
    from nasgen.searchspace import DataError, DataNotFoundError

    try:
        return args.func(args)
    except (_cli.UsageError, DataNotFoundError, DataError) as error:
        print(f"nasgen sweep: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("nasgen sweep: interrupted; start the same command again to continue", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
