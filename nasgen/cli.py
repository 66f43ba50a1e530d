"""The ``nasgen`` command: ``list``, ``search``, ``retrain`` and ``toy``.

Bad input (an unknown name, a malformed ``key=value``, a missing data folder, a corrupt
or mismatched checkpoint) exits with status 2 and one line naming the problem and the
valid choices.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
import time
from pathlib import Path
from typing import Any, Optional, Sequence


class UsageError(Exception):
    """Bad input from the user: printed as one line, exit status 2."""


# --- parsing helpers ------------------------------------------------------------------------------
def parse_value(text: str) -> Any:
    """``"3"`` -> 3, ``"0.5"`` -> 0.5, ``"true"``/``"false"``/``"none"``, lists; else the string."""
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    if lowered.lstrip("+-") in ("nan", "inf", "infinity"):
        return float(lowered)  # so that the checks can name it as a number out of range
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def parse_key_values(pairs: Optional[Sequence[str]], flag: str) -> dict[str, Any]:
    """``["a=1", "b=x"]`` -> ``{"a": 1, "b": "x"}``; UsageError on a malformed pair."""
    result: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip() or not key.strip().isidentifier():
            raise UsageError(f"{flag} expects key=value pairs, got {pair!r}")
        result[key.strip()] = parse_value(value)
    return result


def _choice(value: str, known: Sequence[str], what: str) -> str:
    if value not in known:
        raise UsageError(f"unknown {what} {value!r}; choose from: {', '.join(known)}")
    return value


# --- list ------------------------------------------------------------------------------------------
def cmd_list(args: argparse.Namespace) -> int:
    from nasgen import controllers, envs, searchspace
    from nasgen.compat import differentiable, env_datasets, incompatibility

    width = max(len(e) for e in envs.env_ids())
    env_lines = []
    for env_id in envs.env_ids():
        notes = [] if differentiable(env_id) else ["black-box controllers only"]
        if incompatibility(env_id, "credit"):
            notes.append("no per-edge credit")
        datasets = env_datasets(env_id)
        if datasets is not None and datasets != searchspace.dataset_names():
            notes.append(f"datasets: {', '.join(datasets)}")
        env_lines.append(f"{env_id:<{width}}  ({'; '.join(notes)})" if notes else env_id)
    for title, items in (("controllers", controllers.names()), ("envs (all searchable by nasgen search)", env_lines),
                         ("spaces", searchspace.names()), ("datasets", searchspace.dataset_names())):
        print(f"{title}:")
        for item in items:
            print(f"  {item}")
    return 0


# --- search ----------------------------------------------------------------------------------------
_SEARCH_DEFAULTS = {"controller": "credit", "env": "nasgen/OneShotNAS-v0", "seed": 0, "device": "cpu",
                    "checkpoint_every": 50, "logdir": "runs"}


def _search_config(args: argparse.Namespace):
    """A validated ``SearchConfig`` from the command line."""
    from nasgen import controllers, envs, searchspace
    from nasgen.compat import env_datasets, incompatibility
    from nasgen.search import SearchConfig, env_parameters

    controller = _choice(_given(args.controller, "controller"), controllers.names(), "controller")
    env_id = _choice(_given(args.env, "env"), envs.env_ids(), "env")
    env_kwargs = parse_key_values(args.env_kwargs, "--env-kwargs")
    controller_kwargs = parse_key_values(args.controller_kwargs, "--controller-kwargs")
    accepted = env_parameters(env_id)
    for flag, key, value in (("--dataset", "dataset", args.dataset), ("--data-dir", "data_dir", args.data_dir),
                             ("--space", "space", args.space), ("--warmup-epochs", "warmup_epochs", args.warmup_epochs),
                             ("--download", "download", True if args.download else None)):
        if value is None:
            continue
        if key not in accepted:
            raise UsageError(f"{flag} does not apply to env {env_id}; it accepts: {', '.join(accepted)}")
        env_kwargs[key] = value
    for key in env_kwargs:
        if key not in accepted:
            raise UsageError(f"--env-kwargs: env {env_id} takes no {key!r}; it accepts: {', '.join(accepted)}")
    if "dataset" in env_kwargs:
        _choice(env_kwargs["dataset"], env_datasets(env_id), "dataset")
    reason = incompatibility(env_id, controller, env_kwargs)
    if reason:
        raise UsageError(reason)
    if env_kwargs.get("dataset_options") is not None:
        if not isinstance(env_kwargs["dataset_options"], dict):
            raise UsageError(f"--env-kwargs: dataset_options must be a dict, e.g. "
                             f"dataset_options={{'n_test':10000}}, got {env_kwargs['dataset_options']!r}")
        try:
            searchspace.dataset_options(env_kwargs.get("dataset", "digits"), env_kwargs["dataset_options"])
        except ValueError as error:
            raise UsageError(f"--env-kwargs: {error}") from None
    if "space" in env_kwargs:
        _choice(env_kwargs["space"], searchspace.names(), "search space")
    import inspect

    taken = [p for p in inspect.signature(controllers.get(controller).__init__).parameters
             if p not in ("self", "space", "seed")]
    for key in controller_kwargs:
        if key not in taken:
            raise UsageError(f"--controller-kwargs: controller {controller!r} takes no {key!r}; "
                             f"it accepts: {', '.join(taken) or 'none'}")
    if args.steps is not None and args.epochs is not None:
        raise UsageError("give --steps or --epochs, not both")
    image_every = getattr(args, "image_every", None) or 0  # nasgen sweep's trials do not set it
    if image_every < 0:
        raise UsageError(f"--image-every must be >= 0 (0 = about ten per run), got {image_every}")
    protocol = getattr(args, "protocol", None)  # the sweep's trial namespaces have none
    if protocol is not None:
        from nasgen import protocols

        _choice(protocol, protocols.names(), "protocol")
        if "schedule_epochs" not in accepted:
            raise UsageError(f"--protocol needs an env that trains shared weights with a warm-up "
                             f"(nasgen/OneShotNAS-v0); {env_id} has none")
    config = SearchConfig(controller=controller, env=env_id, steps=args.steps, epochs=args.epochs, protocol=protocol,
                          table=getattr(args, "table", None), seed=_given(args.seed, "seed"),
                          device=_given(args.device, "device"),
                          env_kwargs=env_kwargs, controller_kwargs=controller_kwargs,
                          checkpoint_every=_given(args.checkpoint_every, "checkpoint_every"),
                          image_every=image_every)
    check_search(config)
    return config


def _given(value: Any, key: str) -> Any:
    """A flag's value, or the search default when the flag was not given (None, never "")."""
    return _SEARCH_DEFAULTS[key] if value is None else value


def check_search(config) -> None:
    """Check everything ``config`` would build -- device, environment arguments, controller
    hyper-parameters -- without building the supernet or loading data.

    Raises:
        UsageError: the first bad value, in one line.
    """
    from nasgen import validation
    from nasgen.search import env_class, env_kwargs

    if config.epochs is not None and not getattr(env_class(config.env), "has_validation_split", False):
        raise UsageError(f"--epochs needs an env with a validation split; {config.env} has none, give --steps")
    budget = config.env_kwargs.get("budget")
    if isinstance(budget, int) and not isinstance(budget, bool) and config.epochs is None:
        from nasgen import controllers
        from nasgen.search import DEFAULT_STEPS

        steps = DEFAULT_STEPS if config.steps is None else config.steps
        needed = steps * controllers.get(config.controller).samples_per_step
        if budget < needed:
            raise UsageError(f"env budget={budget} queries is less than the {needed} the run asks for "
                             f"({steps} steps); raise budget or lower --steps")
    try:
        validation.check_device(config.device)
        space = validation.check_env(config.env, env_kwargs(config))
        validation.check_controller(config.controller, space, config.seed, config.controller_kwargs)
    except (TypeError, ValueError) as error:
        raise UsageError(str(error)) from None


def _run_dir(logdir: str, config) -> Path:
    """Create and return a new run directory under ``logdir``.

    The directory is made with an exclusive ``mkdir``, so runs started in the same second
    get ``NAME``, ``NAME-2``, ... and never share one.
    """
    name = f"{config.env.split('/')[-1]}__{config.controller}__s{config.seed}__{time.strftime('%Y%m%d-%H%M%S')}"
    Path(logdir).mkdir(parents=True, exist_ok=True)
    for suffix in range(1, 10_000):
        path = Path(logdir) / (name if suffix == 1 else f"{name}-{suffix}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise UsageError(f"{logdir} already holds 9999 runs named {name}-N")


def _resume_config(args: argparse.Namespace):
    """Config and state of ``--resume RUN_DIR``, refusing flags that contradict it.

    Only what can change is accepted: more ``--steps`` (extends a step-budget run) and
    ``--checkpoint-every``; any other flag must repeat the run's value.

    Returns:
        ``(run_dir, config, state, note)``: ``note`` is the line saying what was taken from
        the checkpoint and what changed.
    """
    from nasgen.checkpoint import CheckpointError
    from nasgen.search import DEFAULT_STEPS, SearchConfig, resume_state

    run_dir = Path(args.resume)
    if not run_dir.is_dir():
        raise UsageError(f"--resume: no run directory {str(run_dir)!r}")
    try:
        state = resume_state(run_dir)
    except CheckpointError as error:
        raise UsageError(f"--resume: {error}; nothing was changed") from None
    try:
        config = SearchConfig(**state["config"])
    except (KeyError, TypeError) as error:
        raise UsageError(f"--resume: the checkpoint in {run_dir} holds no valid search config ({error}); "
                         f"nothing was changed") from None
    refuse = f"--resume: the checkpoint in {run_dir} is for"
    if getattr(args, "logdir", None) is not None:
        raise UsageError(f"--resume continues the run in {run_dir}; --logdir does not apply")
    given = {"controller": args.controller, "env": args.env, "seed": args.seed, "device": args.device,
             "epochs": args.epochs, "protocol": getattr(args, "protocol", None),
             "table": getattr(args, "table", None), "image_every": getattr(args, "image_every", None)}
    for key, value in given.items():
        if value is not None and value != getattr(config, key):
            raise UsageError(f"{refuse} {key} {getattr(config, key)!r}, not {value!r}; nothing was changed")
    env_given = parse_key_values(args.env_kwargs, "--env-kwargs")
    for flag, key, value in (("--dataset", "dataset", args.dataset), ("--data-dir", "data_dir", args.data_dir),
                             ("--space", "space", args.space), ("--warmup-epochs", "warmup_epochs", args.warmup_epochs)):
        if value is not None:
            env_given[key] = value
    for key, value in env_given.items():
        recorded = _recorded_env_value(config, key)
        if value != recorded:
            raise UsageError(f"{refuse} {key} {recorded!r}, not {value!r}; nothing was changed")
    for key, value in parse_key_values(args.controller_kwargs, "--controller-kwargs").items():
        recorded = _recorded_controller_value(config, key)
        if value != recorded:
            raise UsageError(f"{refuse} controller {key} {recorded!r}, not {value!r}; nothing was changed")
    changes = []
    if args.steps is not None and _check_extension(config, args.steps, state["step"], refuse):
        changes.append(f"extended to {args.steps} steps")
        config.steps = args.steps
    if args.checkpoint_every is not None and args.checkpoint_every != config.checkpoint_every:
        changes.append(f"checkpoint every {args.checkpoint_every} steps")
        config.checkpoint_every = args.checkpoint_every
    check_search(config)
    budget = (f"{config.epochs:g} epochs" if config.epochs is not None
              else f"{DEFAULT_STEPS if config.steps is None else config.steps} steps")
    note = (f"resuming {run_dir} at step {state['step']}: controller {config.controller}, env {config.env}, "
            f"seed {config.seed}, {budget} and the rest of its settings from its checkpoint"
            + (f"; {', '.join(changes)}" if changes else ""))
    return run_dir, config, state, note


def _recorded_env_value(config, key: str) -> Any:
    """The value of env keyword ``key`` in a run: given, or the environment's default."""
    import inspect

    from nasgen.search import env_class, env_kwargs

    recorded = env_kwargs(config)
    if key in recorded:
        return recorded[key]
    parameter = inspect.signature(env_class(config.env).__init__).parameters.get(key)
    if parameter is None:
        raise UsageError(f"--resume: env {config.env} takes no {key!r}")
    return parameter.default


def _recorded_controller_value(config, key: str) -> Any:
    """The value of controller hyper-parameter ``key`` in a run: given, or the default."""
    import inspect

    from nasgen import controllers

    if key in config.controller_kwargs:
        return config.controller_kwargs[key]
    parameter = inspect.signature(controllers.get(config.controller).__init__).parameters.get(key)
    if parameter is None:
        raise UsageError(f"--resume: controller {config.controller!r} takes no {key!r}")
    return parameter.default


def _check_extension(config, steps: int, done: int, refuse: str) -> bool:
    """Whether ``--steps`` on resume extends the run; UsageError when it cannot do so cleanly."""
    import inspect

    from nasgen import controllers
    from nasgen.search import DEFAULT_STEPS

    if config.epochs is not None:
        raise UsageError(f"{refuse} a budget of {config.epochs:g} epochs; --steps does not apply "
                         f"(resume without it)")
    recorded = DEFAULT_STEPS if config.steps is None else config.steps
    if steps < recorded:
        raise UsageError(f"{refuse} {recorded} steps ({done} done); --steps can only extend it, not "
                         f"shorten it to {steps}")
    if config.protocol is not None and steps != recorded:
        raise UsageError(f"{refuse} {recorded} steps under protocol {config.protocol!r}, whose weight-lr "
                         f"schedule spans them; extending would change the schedule mid-run (start a new run)")
    schedule = "total_steps" in inspect.signature(controllers.get(config.controller).__init__).parameters
    if schedule and "total_steps" not in config.controller_kwargs and steps != recorded:
        raise UsageError(f"{refuse} {recorded} steps and controller {config.controller!r} anneals its "
                         f"schedule over them; extending would change the schedule mid-run "
                         f"(start a new run, or one with --controller-kwargs total_steps=N)")
    return steps != recorded


def cmd_search(args: argparse.Namespace) -> int:
    from nasgen import validation
    from nasgen.search import Search, seed_everything

    if args.resume is not None:
        run_dir, config, state, note = _resume_config(args)
        print(note, flush=True)
    else:
        config, state, run_dir = _search_config(args), None, None
        try:
            validation.check_creatable_dir(_given(args.logdir, "logdir"), "--logdir")
        except ValueError as error:
            raise UsageError(str(error)) from None
    from nasgen.nb1d.judge import TableError
    from nasgen.checkpoint import CheckpointError, CheckpointWriteError

    seed_everything(config.seed)
    logdir = _given(args.logdir, "logdir")
    try:
        search = Search(config, run_dir or logdir, progress=not args.no_progress)
    except (TableError, ValueError) as error:  # an argument only the built env could check
        raise UsageError(str(error).splitlines()[0] if str(error) else type(error).__name__) from None
    if run_dir is None:  # made only once the environment accepted its arguments
        search.run_dir = run_dir = _run_dir(logdir, config)
    try:
        result = run_logged(search, state)
    except CheckpointWriteError:
        raise  # a failed write (disk full): its own one line, exit 1
    except CheckpointError as error:
        if state is None:
            raise
        # A resumed state that decoded safely but does not fit this run.
        raise UsageError(f"--resume: {error}; the checkpoint was not changed") from None
    print_result(result, run_dir)
    return 0


def run_logged(search: Any, state: Optional[dict]) -> dict:
    """Run ``search`` (from ``state`` when resuming) with a TensorBoard writer on its run
    directory; a resumed run drops the events logged after its checkpoint.

    Returns:
        The search's result.
    """
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(search.run_dir), purge_step=state["step"] + 1 if state else None)
    search.logger = writer
    try:
        return search.run(resume_state=state)
    finally:
        writer.close()


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
    if result.get("ground_truth"):
        from nasgen.nb1d.judge import format_verdict

        print(format_verdict(result["ground_truth"]))
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


# --- retrain ----------------------------------------------------------------------------------------
def _load_architecture(source: str):
    """(space, arch, dataset hint, dataset options hint) from a run directory, a genotype JSON
    file, or a text file holding a NAS-Bench-201 architecture string."""
    from nasgen import searchspace

    path = Path(source)
    if path.is_dir():
        path = path / "result.json"
        if not path.is_file():
            raise UsageError(f"{source} holds no result.json; pass a finished run directory or a genotype JSON file")
    elif not path.is_file():
        raise UsageError(f"no run directory or genotype file {source!r}")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"cannot read {path}: {error}") from None
    if text.lstrip().startswith("|"):  # a NAS-Bench-201 string (genotype.txt of an nb201 search)
        data = {"space": "nb201", "genotype": text.strip().splitlines()[0]}
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise UsageError(f"{path} is not valid JSON ({error.msg} at line {error.lineno})") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path} must hold a JSON object (a result.json or a genotype)")
    config = data.get("config")
    env_kwargs = config.get("env_kwargs") if isinstance(config, dict) else None
    env_kwargs = env_kwargs if isinstance(env_kwargs, dict) else {}
    dataset, options = env_kwargs.get("dataset"), env_kwargs.get("dataset_options")
    dataset = dataset if isinstance(dataset, str) else None
    options = options if isinstance(options, dict) else None
    try:
        if "derived_arch" in data:
            space = searchspace.from_dict(data.get("space"))
            if not isinstance(space, searchspace.CellSpace):
                raise UsageError(f"{path} is a search in space {space.name!r}, which has no network to retrain")
            return space, space.validate(data["derived_arch"]), dataset, options
        genotype = data.get("genotype", data)
        space_spec = data.get("space", "nb201" if isinstance(genotype, str) else "darts")
        if isinstance(space_spec, dict):
            space = searchspace.from_dict(space_spec)
        elif isinstance(space_spec, str):
            space = searchspace.get(_choice(space_spec, searchspace.names(), "search space"))
        else:
            raise ValueError(f"'space' must be a preset name or a space object, got {space_spec!r}")
        if not isinstance(space, searchspace.CellSpace):
            raise UsageError(f"{path}: space {space.name!r} has no network to retrain")
        if isinstance(space, searchspace.NB201SearchSpace):
            if not isinstance(genotype, str):
                raise ValueError(f"an nb201 genotype is a string like |op~0|+|op~0|op~1|+..., got {genotype!r}"[:300])
            return space, space.from_genotype(genotype), dataset, options
        return space, space.from_genotype(_genotype_from_json(genotype)), dataset, options
    except (TypeError, ValueError) as error:
        raise UsageError(f"{path}: {error}") from None


def _genotype_from_json(genotype: Any):
    """A ``Genotype`` from its JSON form; ValueError naming the first malformed field."""
    from nasgen.searchspace import Genotype

    if not isinstance(genotype, dict):
        raise ValueError(f"'genotype' must be an object with {', '.join(Genotype._fields)}, got {genotype!r}"[:300])
    missing = [f for f in Genotype._fields if f not in genotype]
    if missing:
        raise ValueError(f"neither a result.json nor a genotype: missing {', '.join(missing)}")
    fields = {}
    for key in Genotype._fields:
        value = genotype[key]
        if key in ("normal", "reduce"):
            if not (isinstance(value, list) and all(isinstance(p, list) and len(p) == 2 and isinstance(p[0], str)
                                                    and type(p[1]) is int for p in value)):
                raise ValueError(f"genotype {key!r} must be a list of [op name, input index] pairs, "
                                 f"got {value!r}"[:300])
            fields[key] = [tuple(p) for p in value]
        else:
            if not (isinstance(value, list) and all(type(v) is int for v in value)):
                raise ValueError(f"genotype {key!r} must be a list of node indices, got {value!r}"[:300])
            fields[key] = list(value)
    return Genotype(**fields)


def cmd_retrain(args: argparse.Namespace) -> int:
    import torch
    from torch.utils.tensorboard import SummaryWriter

    from nasgen import jsonfile, searchspace, validation
    from nasgen.search import seed_everything
    from nasgen.searchspace import Network, TrainConfig, train_network
    from nasgen.tblog import hyperparameter_table, write_hparams

    if args.channels % 2:
        raise UsageError(f"--channels must be even, got {args.channels}")
    for flag, value in (("--crop-padding", args.crop_padding), ("--cutout", args.cutout)):
        if value < 0:
            raise UsageError(f"{flag} must be >= 0 (0 = off), got {value}")
    space, arch, dataset_hint, options_hint = _load_architecture(args.source)
    dataset_name = _choice(args.dataset or dataset_hint or "digits", searchspace.dataset_names(), "dataset")
    # The search's dataset settings (mnist1d sizes and seed) hold when retraining on its dataset.
    options = options_hint if dataset_name == dataset_hint else None
    source = Path(args.source)
    out_dir = Path(args.out) if args.out else (source / "retrain" if source.is_dir() else source.with_suffix("") .with_name(source.stem + "-retrain"))
    try:
        validation.check_device(args.device)
        validation.check_creatable_dir(out_dir, "--out")
    except ValueError as error:
        raise UsageError(str(error)) from None
    seed_everything(args.seed)
    try:
        data = searchspace.load_dataset(dataset_name, args.data_dir, download=args.download, limit=args.limit,
                                        options=options)
    except ValueError as error:
        raise UsageError(str(error)) from None
    if data.dims != 2 and (args.crop_padding or args.flip or args.cutout):
        raise UsageError(f"--crop-padding, --flip and --cutout augment images; {dataset_name} holds 1-D signals")
    if args.cells is None:
        args.cells = 5 if isinstance(space, searchspace.NB201SearchSpace) else 8
    model = Network(space, arch, C=args.channels, n_cells=args.cells, in_channels=data.in_channels,
                    n_classes=data.n_classes, dims=data.dims)
    writer = SummaryWriter(str(out_dir))
    settings = {k: v for k, v in vars(args).items() if k not in ("func", "command", "no_progress")}
    writer.add_text("retrain/hyperparameters", hyperparameter_table(settings), 0)
    try:
        recipe = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                             crop_padding=args.crop_padding, flip=args.flip, cutout=args.cutout)
        result = train_network(model, data, recipe,
                               torch.Generator().manual_seed(args.seed), args.device, logger=writer,
                               progress=not args.no_progress)
        write_hparams(writer, settings, {"hparams/test_accuracy": result.test_accuracy,
                                         "hparams/val_accuracy": result.val_accuracy,
                                         "hparams/parameters": result.parameters}, args.epochs)
    finally:
        writer.close()
    record = {"source": str(args.source), "dataset": dataset_name, "architecture": space.describe(arch),
              "derived_arch": [int(a) for a in arch], "channels": args.channels, "cells": args.cells,
              "seed": args.seed, "crop_padding": args.crop_padding, "flip": args.flip, "cutout": args.cutout,
              **result.to_dict()}
    out_dir.mkdir(parents=True, exist_ok=True)
    jsonfile.write(out_dir / "retrain.json", record)
    print(f"test accuracy: {result.test_accuracy:.4f}  (val {result.val_accuracy:.4f}, "
          f"{result.parameters} parameters, {args.epochs} epochs on {dataset_name})")
    print(f"results: {out_dir / 'retrain.json'}  (TensorBoard: tensorboard --logdir {out_dir})")
    return 0


# --- toy ----------------------------------------------------------------------------------------------
def cmd_toy(args: argparse.Namespace) -> int:
    from nasgen.toy import format_report, run_toy, toy_config_from_args

    try:
        config = toy_config_from_args(args)
    except ValueError as error:
        raise UsageError(str(error)) from None
    print(format_report(run_toy(config, progress=not args.no_progress)))
    return 0


# --- parser ------------------------------------------------------------------------------------------
class _Parser(argparse.ArgumentParser):
    """argparse, with its usage errors on one line (exit status 2 as usual)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    from nasgen import validation as v
    from nasgen.threads import add_threads_argument
    from nasgen.toy import add_toy_arguments

    parser = _Parser(prog="nasgen", description="Neural-architecture-search controllers "
                     "against a one-shot supernet environment.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    listing = sub.add_parser("list", help="controllers, environment ids, search-space presets, datasets")
    listing.set_defaults(func=cmd_list)

    search = sub.add_parser("search", help="run a controller against an environment",
                            description="Run a search. With no flags: credit assignment on digits.")
    search.add_argument("--controller", type=v.name, help="controller name (default: credit)")
    search.add_argument("--env", type=v.name, help="environment id (default: nasgen/OneShotNAS-v0)")
    search.add_argument("--dataset", type=v.name, help="dataset of the environment (default: digits)")
    search.add_argument("--data-dir", type=v.name, help="local folder of CIFAR-10/MNIST/Fashion-MNIST")
    search.add_argument("--download", action="store_true", help="let torchvision download the dataset")
    search.add_argument("--space", type=v.name, help="search-space preset (default: small)")
    budget = search.add_mutually_exclusive_group()
    budget.add_argument("--steps", type=v.positive_int, help="search steps (default: 1000)")
    budget.add_argument("--epochs", type=v.positive_float, help="architecture-phase epochs over the validation split")
    search.add_argument("--warmup-epochs", type=v.non_negative_float,
                        help="weight-training epochs before the first reward")
    search.add_argument("--protocol", type=v.name,
                        help="paper or shared: each method's split of the supernet-training budget "
                             "(warm-up + search) and a cosine weight lr over it (default: as configured)")
    search.add_argument("--table", type=v.name, metavar="NAME|PATH",
                        help="ground-truth table that judges the derived cell (test accuracy, regret, percentile); "
                             "default: the shipped table of the space and dataset, if any; none: off")
    search.add_argument("--seed", type=v.seed, help="seed (default: 0)")
    search.add_argument("--device", type=v.name, help="cpu or cuda (default: cpu)")
    search.add_argument("--logdir", type=v.name, help="parent folder of run directories (default: runs/)")
    search.add_argument("--resume", type=v.name, metavar="RUN_DIR",
                        help="continue the run in RUN_DIR from its last checkpoint (more --steps extend it)")
    search.add_argument("--env-kwargs", nargs="*", metavar="KEY=VALUE", help="environment keyword arguments")
    search.add_argument("--controller-kwargs", nargs="*", metavar="KEY=VALUE", help="controller hyper-parameters")
    search.add_argument("--checkpoint-every", type=v.positive_int, help="steps between checkpoints (default: 50)")
    search.add_argument("--image-every", type=v.non_negative_int, default=None, metavar="N",
                        help="steps between op-probability heatmaps in TensorBoard (default: 0 = about ten per run)")
    search.add_argument("--no-progress", action="store_true", help="no progress bars (warm-up and search)")
    add_threads_argument(search)
    search.set_defaults(func=cmd_search)

    retrain = sub.add_parser("retrain", help="train a found architecture from scratch and report test accuracy")
    retrain.add_argument("source", metavar="RUN_DIR|GENOTYPE.json",
                         help="a search run directory, a genotype JSON file, or a text file holding a "
                         "NAS-Bench-201 string (|op~0|+|op~0|op~1|+|op~0|op~1|op~2|)")
    retrain.add_argument("--dataset", type=v.name, help="dataset (default: the search's, else digits)")
    retrain.add_argument("--data-dir", type=v.name, help="local folder of CIFAR-10/MNIST/Fashion-MNIST")
    retrain.add_argument("--download", action="store_true", help="let torchvision download the dataset")
    retrain.add_argument("--limit", type=v.positive_int, help="at most this many examples per split")
    retrain.add_argument("--epochs", type=v.positive_int, default=20, help="training epochs (default: 20)")
    retrain.add_argument("--channels", type=v.positive_int, default=16, help="channels of the first cells (default: 16)")
    retrain.add_argument("--cells", type=v.positive_int, default=None,
                         help="number of cells (default: 8); nb201 spaces: cells per stage, N (default: 5, "
                              "NAS-Bench-201's)")
    retrain.add_argument("--batch-size", type=v.positive_int, default=64, help="batch size (default: 64)")
    retrain.add_argument("--lr", type=v.positive_float, default=0.025, help="initial SGD learning rate (default: 0.025)")
    retrain.add_argument("--crop-padding", type=int, default=0,
                         help="random crop after zero padding by N pixels (DARTS on CIFAR-10: 4; default: 0 = off)")
    retrain.add_argument("--flip", action="store_true", help="random horizontal flip (natural images only)")
    retrain.add_argument("--cutout", type=int, default=0,
                         help="zero a random N x N square of each training image (DARTS on CIFAR-10: 16; default: 0 = off)")
    retrain.add_argument("--seed", type=v.seed, default=0, help="seed (default: 0)")
    retrain.add_argument("--device", type=v.name, default="cpu", help="cpu or cuda (default: cpu)")
    retrain.add_argument("--out", type=v.name, help="output folder (default: RUN_DIR/retrain)")
    retrain.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_threads_argument(retrain)
    retrain.set_defaults(func=cmd_retrain)

    toy = sub.add_parser("toy", help="the report's RNN toy tasks: map [1,0,1,0] -> [1,1,0,0], or generate it",
                         description="Section 4 of the progress report: an RNN maps a sequence (--task map) or "
                         "generates one from a random z feeding its outputs back (--task generate).")
    add_toy_arguments(toy)
    toy.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_threads_argument(toy)
    toy.set_defaults(func=cmd_toy)

    from nasgen.sweep import add_sweep_parser

    add_sweep_parser(sub)
    from nasgen.nb1d.cli import add_bench_parser

    add_bench_parser(sub)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    from nasgen.checkpoint import CheckpointWriteError
    from nasgen.searchspace import DataError, DataNotFoundError
    from nasgen.threads import apply_threads

    if getattr(args, "threads", None) is not None:
        apply_threads(args.threads)
    try:
        return args.func(args)
    except UsageError as error:
        print(f"nasgen {args.command}: error: {error}", file=sys.stderr)
        return 2
    except (DataNotFoundError, DataError) as error:
        print(f"nasgen {args.command}: error: {error}", file=sys.stderr)
        return 2
    except CheckpointWriteError as error:
        print(f"nasgen {args.command}: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"nasgen {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
