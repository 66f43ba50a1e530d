"""``nasgen sweep``: a grid of controllers x seeds (x env kwargs) as Ray Tune trials (``nasgen.sweep``)."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from nasgen import jsonfile, runtime, sweep
from nasgen.config import SearchConfig

from . import args as a
from .args import UsageError
from .search import add_env_shortcuts


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
    ray, tune = sweep.import_ray()
    if args.cpus_per_trial <= 0 and args.gpus_per_trial <= 0:
        raise UsageError("a trial needs some resources: --cpus-per-trial or --gpus-per-trial must be > 0")
    if args.address and (args.num_cpus is not None or args.num_gpus is not None):
        raise UsageError("--num-cpus/--num-gpus size a local Ray instance; they do not apply with --address")
    if args.device is None:
        args.device = "cuda" if args.gpus_per_trial > 0 else "cpu"
    elif args.device.startswith("cuda") and args.gpus_per_trial <= 0:
        raise UsageError("--device cuda needs --gpus-per-trial > 0, so that Ray gives each trial a GPU")
    env_short = (args.env or "nasgen/OneShotNAS-v0").split("/")[-1]
    name = args.name or f"sweep-{env_short}-{time.strftime('%Y%m%d-%H%M%S')}"
    if not name or name in (".", "..") or "/" in name or os.sep in name:
        raise UsageError(f"--name must be a plain folder name, got {name!r}")
    try:
        runtime.check_creatable_dir(args.logdir, "--logdir")
    except ValueError as error:
        raise UsageError(str(error)) from None
    sweep_dir = (Path(args.logdir) / name).resolve()
    trials = sweep.plan_trials(args, sweep_dir)
    for trial in trials:
        trial.result = sweep.finished_result(trial)
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
        started = sweep.start_ray(ray, args)
        try:
            sweep.check_resources(ray, args)
            sweep.run_with_tune(ray, tune, todo, sweep_dir, args)
        finally:
            if started:
                ray.shutdown()
    _, markdown = sweep.write_summary(sweep_dir, trials, f"Sweep {name}: {env_short}")
    print(markdown, end="")
    failed = [t for t in trials if t.status == "failed"]
    unfinished = [t for t in trials if t.result is None and t.status != "failed"]
    print(f"{len(trials) - len(failed) - len(unfinished)}/{len(trials)} trials finished ({skipped} skipped as "
          f"finished before), {len(failed)} failed, {len(unfinished)} unfinished. Summary: "
          f"{sweep_dir / 'summary.md'}, {sweep_dir / 'summary.csv'}; curves: tensorboard --logdir {sweep_dir / sweep.RUNS}")
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
    parser = subparsers.add_parser(
        "sweep", help="a grid of controllers x seeds as Ray Tune trials, with a summary table",
        description="Run every controller x seed (x env-kwargs variant) as a search on Ray Tune, then "
                    "summarise best reward and derived-architecture score per controller. Needs "
                    f"{sweep.INSTALL_HINT}. Starting the same sweep (same --logdir/--name) again skips the "
                    "trials that finished and continues interrupted ones from their checkpoints.")
    parser.add_argument("--controllers", default="credit,reinforce,random",
                       help="comma-separated controller names (default: credit,reinforce,random)")
    parser.add_argument("--seeds", default="3", help="a count (3 = seeds 0,1,2) or a list 0,1,5 (default: 3)")
    a.config_flag(parser, SearchConfig, "env", metavar="ID")
    add_env_shortcuts(parser, download=False)
    budget = parser.add_mutually_exclusive_group()
    a.config_flag(budget, SearchConfig, "steps", parse=int)
    a.config_flag(budget, SearchConfig, "epochs", parse=float)
    parser.add_argument("--device", type=a.name, help="cpu or cuda (default: cuda when --gpus-per-trial > 0, else cpu)")
    parser.add_argument("--env-kwargs", nargs="*", metavar="KEY=VALUE", help="environment keyword arguments")
    parser.add_argument("--controller-kwargs", nargs="*", metavar="[CONTROLLER.]KEY=VALUE",
                       help="controller hyper-parameters; prefix with a controller name to apply to that one only")
    parser.add_argument("--grid-env-kwargs", nargs="*", metavar="KEY=V1,V2",
                       help="environment keyword arguments to sweep over (a grid dimension each)")
    parser.add_argument("--logdir", type=a.name, default="runs", help="parent folder of sweep directories (default: runs/)")
    parser.add_argument("--name", help="sweep directory name (default: sweep-ENV-TIME); reuse it to continue a sweep")
    parser.add_argument("--address", help="join this Ray cluster (auto or HOST:PORT; run on a cluster node that "
                                         "shares --logdir with the others); default: start a local instance")
    parser.add_argument("--num-cpus", type=a.positive_int, help="CPUs of the local Ray instance (default: all)")
    parser.add_argument("--num-gpus", type=a.non_negative_int, help="GPUs of the local Ray instance (default: all)")
    parser.add_argument("--cpus-per-trial", type=a.non_negative_float, default=1.0,
                        help="CPUs reserved per trial (default: 1)")
    parser.add_argument("--gpus-per-trial", type=a.non_negative_float, default=0.0,
                       help="GPUs reserved per trial, fractions allowed (default: 0)")
    a.config_flag(parser, SearchConfig, "checkpoint_every", metavar="N")
    parser.add_argument("--threads", type=a.positive_int,
                       help="torch CPU threads of each trial (default: --cpus-per-trial, at least 1)")
    parser.add_argument("--verbose", type=int, default=1, choices=(0, 1, 2), help="Ray Tune's verbosity (default: 1)")
    parser.set_defaults(func=cmd_sweep)
    return parser
