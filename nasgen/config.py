"""``SearchConfig``: what defines a search run, its defaults, and the one gate it goes through.

A config is plain data (it is written to ``result.json`` and to every checkpoint). ``check``
validates one against the registries without building anything -- no model, no data -- so a
command can refuse bad input in one line before it creates a run directory. ``make_config``
builds a checked config from a command's options; the CLI, the sweep and the data-parallel
search all go through it.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field, fields
from typing import Any, Optional, Sequence

from nasgen import checks, controllers, envs, protocols, runtime
from nasgen import kwargs as typed_kwargs
from nasgen.checks import InputError, short
from nasgen.searchspace import dataset_options
from nasgen.searchspace import names as space_names
from nasgen.searchspace.registry import is_reference

#: Search steps when neither ``steps`` nor ``epochs`` is given.
DEFAULT_STEPS = 1000
#: The longest keyword value read as a Python literal (longer text stays a string).
MAX_LITERAL = 10_000


@dataclass
class SearchConfig:
    """Everything that defines a search run (written once to TensorBoard and result.json)."""

    controller: str = field(default="credit", metadata=checks.field(checks.non_empty))
    """registered controller name (``nasgen list``)"""
    env: str = field(default="nasgen/OneShotNAS-v0", metadata=checks.field(checks.non_empty))
    """registered environment id"""
    steps: Optional[int] = field(default=None, metadata=checks.field(checks.positive_int))
    """search steps (one ask/tell round, or one gradient step); default 1000"""
    epochs: Optional[float] = field(default=None, metadata=checks.field(checks.positive_float))
    """architecture-phase epochs over the validation split, instead of ``steps``"""
    seed: int = field(default=0, metadata=checks.field(checks.seed))
    """seeds everything: the run is repeatable on CPU"""
    device: str = field(default="cpu", metadata=checks.field(checks.non_empty))
    """torch device of the environment's model (cpu, cuda, cuda:N)"""
    env_kwargs: dict = field(default_factory=dict)
    """keyword arguments of the environment (dataset, space, warmup_epochs, credit, ...)"""
    controller_kwargs: dict = field(default_factory=dict)
    """hyper-parameters of the controller"""
    checkpoint_every: int = field(default=50, metadata=checks.field(checks.positive_int))
    """steps between checkpoints (and one at the end)"""
    image_every: int = field(default=0, metadata=checks.field(checks.non_negative_int))
    """steps between op-probability heatmaps and genotype text; 0 = about ten per run"""
    protocol: Optional[str] = field(default=None, metadata=checks.field(checks.non_empty))
    """``nasgen.protocols`` preset (``paper``, ``shared``) splitting the supernet-training budget
    into warm-up and search per method, with a cosine weight lr over both; None: as configured"""
    table: Optional[str] = field(default=None, metadata=checks.field(checks.non_empty))
    """ground-truth table (shipped name or path) judging the derived architecture; None: the shipped
    table of ``nasgen.nb1d.judge.TABLES`` for the env's space and dataset, if any; "none": off"""

    @property
    def budget_steps(self) -> int:
        """The steps of a step budget (``steps``, or the default when neither it nor ``epochs`` is given)."""
        return DEFAULT_STEPS if self.steps is None else self.steps


def parse_value(text: str) -> Any:
    """``"3"`` -> 3, ``"0.5"`` -> 0.5, ``"true"``/``"false"``/``"none"``, lists; else the string.

    Values are read as Python literals (``ast.literal_eval``), never evaluated.
    """
    if len(text) > MAX_LITERAL:  # no keyword value is this long; parsing it could exhaust memory
        return text
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    if lowered.lstrip("+-") in ("nan", "inf", "infinity"):
        return float(lowered)  # so that the checks can name it as a number out of range
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return text


def parse_key_values(pairs: Optional[Sequence[str]], flag: str) -> dict[str, Any]:
    """``["a=1", "b=x"]`` -> ``{"a": 1, "b": "x"}``.

    Raises:
        InputError: a malformed pair, or a key given twice.
    """
    result: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key or not key.isidentifier():
            raise InputError(f"{flag} expects key=value pairs, got {short(pair)}")
        if key in result:
            raise InputError(f"{flag} gives {key!r} twice")
        result[key] = parse_value(value)
    return result


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _choice(value: Any, known: list[str], what: str) -> str:
    if not isinstance(value, str) or value not in known:
        raise ValueError(f"unknown {what} {short(value)}; choose from: {', '.join(known)}")
    return value


def check_fields(config: SearchConfig) -> None:
    """The values of ``config``'s own fields, each on its own (their declared checks).

    Raises:
        ValueError: the first bad value, in one line.
    """
    checks.check_fields(config)
    if config.steps is not None and config.epochs is not None:
        raise ValueError("give steps or epochs, not both")
    for name in ("env_kwargs", "controller_kwargs"):
        value = getattr(config, name)
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise ValueError(f"{name} must be a dict of keyword arguments, got {short(value)}")


def incompatibility(env_id: str, controller: str, env_kwargs: Optional[dict[str, Any]] = None) -> Optional[str]:
    """Why ``controller`` cannot search ``env_id`` (with ``env_kwargs``), or None when it can.

    Returns:
        One line naming the problem and what would work, or None.
    """
    spec = controllers.get(controller)
    if spec.kind == "gradient" and not envs.differentiable(env_id):
        usable = [e for e in envs.env_ids() if envs.differentiable(e)]
        black_box = [n for n in controllers.names()
                     if controllers.get(n).kind != "gradient" and incompatibility(env_id, n) is None]
        return (f"gradient controller {controller!r} needs an env with a differentiable model; {env_id} has "
                f"none. Use it with {', '.join(usable)}, or search {env_id} with a black-box controller: "
                f"{', '.join(black_box)}")
    modes = envs.credit_modes(env_id)
    wanted = dict(spec.env_requirements)
    wanted.update({k: v for k, v in (env_kwargs or {}).items() if k in spec.env_requirements or k == "credit"})
    credit = wanted.get("credit")
    if credit is not None and credit not in modes:
        if "credit" in spec.env_requirements:
            return (f"controller {controller!r} needs per-edge credit, which {env_id} cannot give"
                    + (f" (credit modes: {', '.join(modes)})" if modes else "")
                    + "; use another controller, or an env with credit: "
                    + ", ".join(e for e in envs.env_ids() if envs.credit_modes(e)))
        return (f"--env-kwargs credit={credit}: {env_id} takes "
                + (f"credit in {', '.join(modes)} only" if modes else "no credit"))
    return None


def env_kwargs(config: SearchConfig, progress: bool = False) -> dict[str, Any]:
    """The keyword arguments the environment of ``config`` is made with: the controller's
    requirements, then the user's, then the run's seed and device where the env takes them.

    ``progress`` turns on the env's own progress bar (the supernet warm-up) where it has one;
    it is not part of the config, so it never changes a run or its checkpoint.
    """
    accepted = envs.env_parameters(config.env)
    kwargs = {k: v for k, v in controllers.get(config.controller).env_requirements.items() if k in accepted}
    kwargs.update(config.env_kwargs)
    for key, value in (("seed", config.seed), ("device", config.device), ("progress", progress or None)):
        if key in accepted and value is not None:
            kwargs.setdefault(key, value)
    if "threads" in accepted:  # a search's process sets its threads itself (--threads)
        kwargs.setdefault("threads", None)
    return kwargs


def check(config: SearchConfig):
    """The gate (``_check``), its refusals as ``InputError``: see ``_check``."""
    try:
        return _check(config)
    except InputError:
        raise
    except (TypeError, ValueError) as error:
        raise InputError(str(error)) from None


def _check(config: SearchConfig):
    """The gate: check everything ``config`` would build -- names, environment arguments,
    controller hyper-parameters, device, budget -- without building the supernet or loading
    data.

    Returns:
        The search space the env would have (None when its class can only tell once built).

    Raises:
        ValueError: the first bad value, in one line naming it and what was expected.
    """
    check_fields(config)
    try:
        controllers.get(config.controller)
    except KeyError:
        _choice(config.controller, controllers.names(), "controller")
    _choice(config.env, envs.env_ids(), "env")
    accepted = envs.env_parameters(config.env)
    typed_kwargs.check_names(_env_function(config.env), config.env_kwargs, f"--env-kwargs: env {config.env}")
    dataset = config.env_kwargs.get("dataset")
    if dataset is not None and not (isinstance(dataset, str) and is_reference(dataset)):  # a plug-in's: the env checks it
        _choice(dataset, envs.env_datasets(config.env), "dataset")
    reason = incompatibility(config.env, config.controller, config.env_kwargs)
    if reason:
        raise ValueError(reason)
    if config.env_kwargs.get("dataset_options") is not None:
        options = config.env_kwargs["dataset_options"]
        if not isinstance(options, dict):
            raise ValueError(f"--env-kwargs: dataset_options must be a dict, e.g. dataset_options={{'n_test':10000}}, "
                             f"got {short(options)}")
        try:
            dataset_options(recorded_env_value(config, "dataset"), options)
        except ValueError as error:
            raise ValueError(f"--env-kwargs: {error}") from None

    if config.protocol is not None:
        _choice(config.protocol, protocols.names(), "protocol")
        if "schedule_epochs" not in accepted:
            raise ValueError(f"--protocol needs an env that trains shared weights with a warm-up "
                             f"(nasgen/OneShotNAS-v0); {config.env} has none")
    cls = envs.env_class(config.env)
    if config.epochs is not None and not getattr(cls, "has_validation_split", False):
        raise ValueError(f"--epochs needs an env with a validation split; {config.env} has none, give --steps")
    budget = config.env_kwargs.get("budget")
    if _int(budget) and config.epochs is None:
        needed = config.budget_steps * controllers.get(config.controller).samples_per_step
        if budget < needed:
            raise ValueError(f"env budget={budget} queries is less than the {needed} the run asks for "
                             f"({config.budget_steps} steps); raise budget or lower --steps")
    try:
        runtime.check_device(config.device)
        space = _check_env(config.env, env_kwargs(config))
        controllers.check_kwargs(config.controller, config.controller_kwargs)
        if space is not None:  # the constructor's own value checks, on a controller thrown away
            controllers.make(config.controller, space, seed=config.seed, **config.controller_kwargs)
    except (TypeError, ValueError) as error:
        raise ValueError(str(error)) from None
    return space


def _env_function(env_id: str):
    """What takes an env's keyword arguments: its ``config_class``, else its ``__init__``."""
    cls = envs.env_class(env_id)
    return getattr(cls, "config_class", None) or cls.__init__


def _check_env(env_id: str, kwargs: dict[str, Any]):
    """Types against the env's parameters, then its ``check_arguments`` (which builds nothing);
    returns the space it would have, or None."""
    cls = envs.env_class(env_id)
    typed_kwargs.check_kwargs(_env_function(env_id), kwargs, f"env {env_id}")
    checker = getattr(cls, "check_arguments", None)
    if checker is None:
        return None
    try:
        return checker(**kwargs)
    except (TypeError, ValueError) as error:
        raise type(error)(f"env {env_id}: {error}") from None


#: Command options that are shortcuts for env keywords: option -> (flag, env keyword).
SHORTCUTS = {"dataset": ("--dataset", "dataset"), "data_dir": ("--data-dir", "data_dir"),
             "space": ("--space", "space"), "warmup_epochs": ("--warmup-epochs", "warmup_epochs"),
             "download": ("--download", "download")}


def make_config(env_kwargs: Optional[dict] = None, controller_kwargs: Optional[dict] = None,
                **options: Any) -> SearchConfig:
    """A checked ``SearchConfig`` from a command's options.

    Args:
        env_kwargs: the env's keyword arguments.
        controller_kwargs: the controller's hyper-parameters.
        **options: ``SearchConfig`` fields (None or absent: the field's default) and the env
            shortcuts of ``SHORTCUTS`` (``dataset``, ``data_dir``, ``space``,
            ``warmup_epochs``, ``download``; None or False: not given).

    Raises:
        InputError: a bad value or an option that does not apply, in one line.
    """
    names = {f.name for f in fields(SearchConfig)}
    unknown = [k for k in options if k not in names and k not in SHORTCUTS]
    if unknown:
        raise TypeError(f"make_config takes no {unknown[0]!r}")
    given = {k: v for k, v in options.items() if k in names and v is not None}
    config = SearchConfig(**given, env_kwargs=dict(env_kwargs or {}), controller_kwargs=dict(controller_kwargs or {}))
    try:
        check_fields(config)
        _choice(config.env, envs.env_ids(), "env")
    except ValueError as error:
        raise InputError(str(error)) from None
    accepted = envs.env_parameters(config.env)
    for option, (flag, key) in SHORTCUTS.items():
        value = options.get(option)
        if value is None or value is False:
            continue
        if key not in accepted:
            raise InputError(f"{flag} does not apply to env {config.env}; it accepts: {', '.join(accepted)}")
        config.env_kwargs[key] = value
    check(config)
    return config


#: The defaults of ``space`` and ``dataset`` before they became ``nb201`` and ``mnist1d``.
EARLIER_DEFAULTS = {"space": "small", "dataset": "digits"}


def with_settings_of_its_checkpoint(config: SearchConfig, state: dict) -> SearchConfig:
    """``config`` with the ``space`` and ``dataset`` its checkpointed run was made with, where it
    recorded neither (runs made under the earlier defaults, ``EARLIER_DEFAULTS``): the env's
    state holds the space, and a supernet of 2-D convolutions was trained on images (the
    earlier default dataset), one of 1-D convolutions on signals (the current one)."""
    accepted = envs.env_parameters(config.env)
    env_state = state.get("env") if isinstance(state.get("env"), dict) else {}
    found = {}
    space = (env_state.get("space") or {}).get("name") if isinstance(env_state.get("space"), dict) else None
    if "space" in accepted and "space" not in config.env_kwargs and isinstance(space, str) and space in space_names():
        found["space"] = space
    model = env_state.get("model") if isinstance(env_state.get("model"), dict) else {}
    images = any(getattr(t, "dim", lambda: 0)() == 4 for t in model.values())
    if "dataset" in accepted and "dataset" not in config.env_kwargs and images:
        found["dataset"] = EARLIER_DEFAULTS["dataset"]
    config.env_kwargs = {**found, **config.env_kwargs}
    return config


def recorded_env_value(config: SearchConfig, key: str) -> Any:
    """The value env keyword ``key`` has in the run of ``config``: given, or the env's default.

    Raises:
        ValueError: the env takes no ``key``.
    """
    recorded = env_kwargs(config)
    if key in recorded:
        return recorded[key]
    parameter = envs.env_parameters(config.env).get(key)
    if parameter is None:
        raise ValueError(f"env {config.env} takes no {key!r}")
    return parameter.default


def recorded_controller_value(config: SearchConfig, key: str) -> Any:
    """The value hyper-parameter ``key`` has in the run of ``config``: given, or the default.

    Raises:
        ValueError: the controller takes no ``key``.
    """
    if key in config.controller_kwargs:
        return config.controller_kwargs[key]
    parameter = controllers.hyperparameters(config.controller).get(key)
    if parameter is None:
        raise ValueError(f"controller {config.controller!r} takes no {key!r}")
    return parameter.default


def anneals_over_the_run(config: SearchConfig) -> bool:
    """Whether the controller of ``config`` fits a schedule to the run length (it takes
    ``total_steps`` and the run did not fix it), so the run cannot be extended."""
    return "total_steps" in controllers.hyperparameters(config.controller) \
        and "total_steps" not in config.controller_kwargs
