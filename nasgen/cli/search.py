"""``nasgen search``: flags -> a checked ``SearchConfig`` -> a run directory -> ``Search.run``."""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from nasgen import config as search_config
from nasgen import checks, envs, runtime
from nasgen.checkpoint import CheckpointError, CheckpointWriteError
from nasgen.checks import InputError
from nasgen.config import SearchConfig
from nasgen.envs.oneshot import OneShotConfig
from nasgen.runtime import folder_lock
from nasgen.nb1d.judge import TableError, format_verdict
from nasgen.search import RUN_LOCK, Search, resume_state, run_logged, seed_everything

from . import args as a
from .args import UsageError

#: Flags that are ``SearchConfig`` fields.
CONFIG_FLAGS = ("controller", "env", "steps", "epochs", "seed", "device", "protocol", "table", "checkpoint_every",
                "image_every")
#: Flags that are shortcuts for env keywords (``config.SHORTCUTS``).
SHORTCUT_FLAGS = ("dataset", "data_dir", "space", "warmup_epochs")
DEFAULT_LOGDIR = "runs"


def add_search_arguments(search: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The flags of ``nasgen search`` (also those of the data-parallel search)."""
    flag = lambda name, **kw: a.config_flag(search, SearchConfig, name, **kw)  # noqa: E731
    flag("controller", metavar="NAME")
    flag("env", metavar="ID")
    add_env_shortcuts(search)
    budget = search.add_mutually_exclusive_group()
    a.config_flag(budget, SearchConfig, "steps", parse=int)
    a.config_flag(budget, SearchConfig, "epochs", parse=float)
    flag("protocol", help="paper or shared: each method's split of the supernet-training budget "
                          "(warm-up + search) and a cosine weight lr over it (default: as configured)")
    flag("table", metavar="NAME|PATH",
         help="ground-truth table that judges the derived cell (test accuracy, regret, percentile); "
              "default: the shipped table of the space and dataset, if any; none: off")
    flag("seed")
    flag("device")
    search.add_argument("--logdir", type=a.name, help=f"parent folder of run directories (default: {DEFAULT_LOGDIR}/)")
    search.add_argument("--resume", type=a.name, metavar="RUN_DIR",
                        help="continue the run in RUN_DIR from its last checkpoint (more --steps extend it)")
    search.add_argument("--env-kwargs", nargs="*", metavar="KEY=VALUE", help="environment keyword arguments")
    search.add_argument("--controller-kwargs", nargs="*", metavar="KEY=VALUE", help="controller hyper-parameters")
    flag("checkpoint_every", metavar="N")
    flag("image_every", metavar="N")
    search.add_argument("--no-progress", action="store_true", help="no progress bars (warm-up and search)")
    a.add_threads_argument(search)
    return search


def add_env_shortcuts(parser: argparse.ArgumentParser, download: bool = True) -> None:
    """``--dataset``, ``--data-dir``, ``--download``, ``--space`` and ``--warmup-epochs``: fields of
    the supernet env's config (``OneShotConfig``) given as flags (``config.SHORTCUTS``)."""
    for name in ("dataset", "data_dir", "space", "warmup_epochs") + (("download",) if download else ()):
        a.config_flag(parser, OneShotConfig, name, check=checks.non_empty if name != "warmup_epochs" else None)


def add_search_parser(subparsers) -> argparse.ArgumentParser:
    search = subparsers.add_parser("search", help="run a controller against an environment",
                                   description="Run a search. With no flags: credit assignment on the "
                                               "NAS-Bench-201 cell on MNIST-1D, judged at the end by the shipped "
                                               "NAS-Bench-1D table.")
    add_search_arguments(search)
    search.set_defaults(func=cmd_search)
    return search


def config_from_args(args: argparse.Namespace) -> SearchConfig:
    """The checked config of a new run from its flags (``--logdir`` checked too: its run
    directory can be created)."""
    config = search_config.make_config(
        env_kwargs=a.parse_key_values(args.env_kwargs, "--env-kwargs"),
        controller_kwargs=a.parse_key_values(args.controller_kwargs, "--controller-kwargs"),
        download=bool(getattr(args, "download", False)),
        **a.given(args, CONFIG_FLAGS + SHORTCUT_FLAGS))
    try:
        runtime.check_creatable_dir(args.logdir or DEFAULT_LOGDIR, "--logdir")
    except ValueError as error:
        raise UsageError(str(error)) from None
    return config


def make_run_dir(logdir: str, config: SearchConfig) -> Path:
    """Create and return a new run directory under ``logdir``.

    The directory is made with an exclusive ``mkdir``, so runs started in the same second
    get ``NAME``, ``NAME-2``, ... and never share one.
    """
    task = "-".join(str(search_config.recorded_env_value(config, key)) for key in ("space", "dataset")
                    if key in envs.env_parameters(config.env))
    parts = [config.env.split("/")[-1], task, config.controller, f"s{config.seed}", time.strftime("%Y%m%d-%H%M%S")]
    name = re.sub(r"[^A-Za-z0-9._=-]+", "-", "__".join(p for p in parts if p))  # a module:Class reference too
    Path(logdir).mkdir(parents=True, exist_ok=True)
    for suffix in range(1, 10_000):
        path = Path(logdir) / (name if suffix == 1 else f"{name}-{suffix}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise UsageError(f"{logdir} already holds 9999 runs named {name}-N")


def resume_from_args(args: argparse.Namespace) -> tuple[Path, SearchConfig, dict, str]:
    """Config and state of ``--resume RUN_DIR``, refusing flags that contradict it.

    Only what can change is accepted: more ``--steps`` (extends a step-budget run) and
    ``--checkpoint-every``; any other flag must repeat the run's value.

    Returns:
        ``(run_dir, config, state, note)``: ``note`` is the line saying what was taken from
        the checkpoint and what changed.
    """
    run_dir = Path(args.resume)
    if not run_dir.is_dir():
        raise UsageError(f"--resume: no run directory {str(run_dir)!r}")
    try:
        state = resume_state(run_dir)
    except CheckpointError as error:
        raise UsageError(f"--resume: {error}; nothing was changed") from None
    try:
        config = search_config.with_settings_of_its_checkpoint(SearchConfig(**state["config"]), state)
    except (KeyError, TypeError) as error:
        raise UsageError(f"--resume: the checkpoint in {run_dir} holds no valid search config ({error}); "
                         f"nothing was changed") from None
    refuse = f"--resume: the checkpoint in {run_dir} is for"
    if getattr(args, "logdir", None) is not None:
        raise UsageError(f"--resume continues the run in {run_dir}; --logdir does not apply")
    for key, value in a.given(args, ("controller", "env", "seed", "device", "epochs", "protocol", "table",
                                     "image_every")).items():
        if value != getattr(config, key):
            raise UsageError(f"{refuse} {key} {getattr(config, key)!r}, not {value!r}; nothing was changed")
    env_given = a.parse_key_values(args.env_kwargs, "--env-kwargs")
    env_given.update(a.given(args, SHORTCUT_FLAGS))
    try:
        for key, value in env_given.items():
            recorded = search_config.recorded_env_value(config, key)
            if value != recorded:
                raise UsageError(f"{refuse} {key} {recorded!r}, not {value!r}; nothing was changed")
        for key, value in a.parse_key_values(args.controller_kwargs, "--controller-kwargs").items():
            recorded = search_config.recorded_controller_value(config, key)
            if value != recorded:
                raise UsageError(f"{refuse} controller {key} {recorded!r}, not {value!r}; nothing was changed")
    except InputError:
        raise
    except ValueError as error:
        raise UsageError(f"--resume: {error}") from None
    changes = []
    if args.steps is not None and _extends(config, args.steps, state["step"], refuse):
        changes.append(f"extended to {args.steps} steps")
        config.steps = args.steps
    if args.checkpoint_every is not None and args.checkpoint_every != config.checkpoint_every:
        changes.append(f"checkpoint every {args.checkpoint_every} steps")
        config.checkpoint_every = args.checkpoint_every
    search_config.check(config)
    budget = f"{config.epochs:g} epochs" if config.epochs is not None else f"{config.budget_steps} steps"
    note = (f"resuming {run_dir} at step {state['step']}: controller {config.controller}, env {config.env}, "
            f"seed {config.seed}, {budget} and the rest of its settings from its checkpoint"
            + (f"; {', '.join(changes)}" if changes else ""))
    return run_dir, config, state, note


def _extends(config: SearchConfig, steps: int, done: int, refuse: str) -> bool:
    """Whether ``--steps`` on resume extends the run; UsageError when it cannot do so cleanly."""
    if config.epochs is not None:
        raise UsageError(f"{refuse} a budget of {config.epochs:g} epochs; --steps does not apply "
                         f"(resume without it)")
    recorded = config.budget_steps
    if steps < recorded:
        raise UsageError(f"{refuse} {recorded} steps ({done} done); --steps can only extend it, not "
                         f"shorten it to {steps}")
    if config.protocol is not None and steps != recorded:
        raise UsageError(f"{refuse} {recorded} steps under protocol {config.protocol!r}, whose weight-lr "
                         f"schedule spans them; extending would change the schedule mid-run (start a new run)")
    if search_config.anneals_over_the_run(config) and steps != recorded:
        raise UsageError(f"{refuse} {recorded} steps and controller {config.controller!r} anneals its "
                         f"schedule over them; extending would change the schedule mid-run "
                         f"(start a new run, or one with --controller-kwargs total_steps=N)")
    return steps != recorded


def cmd_search(args: argparse.Namespace) -> int:
    if args.resume is not None:
        run_dir, config, state, note = resume_from_args(args)
        print(note, flush=True)
    else:
        config, state, run_dir = config_from_args(args), None, None
    seed_everything(config.seed)
    logdir = args.logdir or DEFAULT_LOGDIR
    try:
        search = Search(config, run_dir or logdir, progress=not args.no_progress)
    except (TableError, ValueError) as error:  # an argument only the built env could check
        raise UsageError(str(error).splitlines()[0] if str(error) else type(error).__name__) from None
    new_run = run_dir is None
    if new_run:  # made only once the environment accepted its arguments
        search.run_dir = run_dir = make_run_dir(logdir, config)
    try:
        try:
            with folder_lock(run_dir, RUN_LOCK, "run directory", "search"):
                result = run_logged(search, state)
        except CheckpointWriteError:
            raise  # a failed write (disk full): its own one line, exit 1
        except CheckpointError as error:
            if state is None:
                raise
            # A resumed state that decoded safely but does not fit this run.
            raise UsageError(f"--resume: {error}; the checkpoint was not changed") from None
    except BaseException as error:
        # A failed write keeps the curves (its own line says no checkpoint was written).
        if new_run and not isinstance(error, CheckpointWriteError) and remove_if_unstarted(Path(run_dir)):
            if isinstance(error, InputError):  # bad input found at run time: still one line
                raise InputError(f"{error}; its run directory {run_dir} held nothing to resume and was removed") \
                    from None
            print(f"nasgen search: the run ended before its first checkpoint; removed its directory {run_dir}",
                  file=sys.stderr)
        raise
    print_result(result, run_dir)
    return 0


def remove_if_unstarted(run_dir: Path) -> bool:
    """Remove a new run's directory that holds nothing a later ``--resume`` could use (no
    checkpoint, no result: only TensorBoard events and the lock); returns whether it did."""
    names = {p.name for p in run_dir.iterdir()} if run_dir.is_dir() else set()
    if not names or any(not (n.startswith("events.out.tfevents") or n == RUN_LOCK) for n in names):
        return False
    shutil.rmtree(run_dir, ignore_errors=True)
    return True


def print_result(result: dict, run_dir: Any, where: str = "") -> None:
    """The end-of-search summary: derived architecture, score and where the files are."""
    print(f"derived architecture ({result['controller']} on {result['env']}, {result['steps']} steps{where}):")
    if result["genotype"] and result["genotype"] != result["architecture"]:
        print(f"genotype: {result['genotype']}")
    print(result["architecture"])
    if result["score"] is not None:
        best = result["best_reward"]
        print(f"score of the derived architecture: {result['score']:.4f}   best reward seen: "
              f"{best if best is None else round(best, 4)}")
        print("  (higher is better: the score is the env's reward of the derived architecture on its whole "
              "validation data; the best reward seen is the best of every single evaluation, each on one batch, "
              "so noise lifts it above the score)")
    if result.get("ground_truth"):
        print(format_verdict(result["ground_truth"]))
        if "error" not in result["ground_truth"]:
            print("  (the table trained this cell alone: test accuracy is the mean over its seeds; regret is the "
                  "best cell's test accuracy minus it, lower is better, ± its standard error from the table's own "
                  "seed noise; percentile is the share of the table's cells no better than it, higher is better)")
    loop = result.get("loop_time_s", result["wall_time_s"])
    setup = result.get("setup_time_s")
    print(f"search time: {loop:.1f} s (the loop its progress bar times: steps, logging, checkpoints; "
          f"{result['wall_time_s']:.1f} s in the steps themselves)"
          + (f"; set-up and warm-up before it: {setup:.1f} s" if setup is not None else ""))
    folder = Path(run_dir)
    diagrams = sorted(path.name for path in folder.glob("*.png"))  # one per cell type of a cell space
    written = [name for name in ("result.json", "genotype.txt", *diagrams, "checkpoint.pt")
               if (folder / name).is_file()]
    print(f"results: {run_dir}  ({', '.join(written)}; TensorBoard: tensorboard --logdir {run_dir})")
