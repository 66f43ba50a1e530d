"""Checks of user values, run before a command creates anything.

Two layers, one source of truth each:

- flag values are checked by the argparse ``type`` functions below (a bad one is argparse's
  one-line usage error, exit status 2);
- keyword arguments (``--env-kwargs``, ``--controller-kwargs``) are checked against the
  annotations of the environment's or controller's ``__init__`` (``check_kwargs``), then by
  the class's own argument checks: an environment's ``check_arguments`` classmethod (which
  builds no model and loads no data) and a controller's ``__init__`` (cheap to run).

Everything raises ``ValueError``/``TypeError`` with one line naming the value and what was
expected; the CLI turns them into exit status 2.
"""

from __future__ import annotations

import argparse
import collections.abc
import inspect
import math
import numbers
import os
import types
import typing
from pathlib import Path
from typing import Any, Callable

#: Seeds go to numpy, torch and gymnasium; all accept this range.
MAX_SEED = 2**32 - 1


# --- argparse types ---------------------------------------------------------------------------------
def _number(text: str, kind: type) -> Any:
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, "
                                         f"got {text!r}") from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """argparse type: an int >= 1."""
    value = _number(text, int)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return value


def non_negative_int(text: str) -> int:
    """argparse type: an int >= 0."""
    value = _number(text, int)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def seed(text: str) -> int:
    """argparse type: a seed, an int in ``[0, MAX_SEED]``."""
    value = _number(text, int)
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"expected a seed in 0..{MAX_SEED}, got {text!r}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    value = _number(text, float)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text!r}")
    return value


def non_negative_float(text: str) -> float:
    """argparse type: a finite number >= 0."""
    value = _number(text, float)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text!r}")
    return value


def name(text: str) -> str:
    """argparse type: a non-empty string (an empty one would silently mean the default)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a non-empty value, got ''")
    return text


# --- keyword arguments ------------------------------------------------------------------------------
def _describe(annotation: Any, allow_inf: bool = False) -> str:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a, allow_inf) for a in typing.get_args(annotation))
    if annotation is type(None):
        return "None"
    if origin is tuple:
        return f"a list of {len(typing.get_args(annotation))} numbers"
    if origin is not None and isinstance(origin, type) and issubclass(origin, collections.abc.Sequence):
        return "a list"
    number = "a number (inf allowed, not nan)" if allow_inf else "a finite number"
    return {bool: "true/false", int: "an integer", float: number, str: "a string"}.get(
        annotation, getattr(annotation, "__name__", str(annotation)))


def _matches(value: Any, annotation: Any, allow_inf: bool) -> bool:
    if annotation is Any or annotation is inspect.Parameter.empty:
        return True
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, a, allow_inf) for a in typing.get_args(annotation))
    if annotation is type(None):
        return value is None
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if annotation is float:
        return (isinstance(value, numbers.Real) and not isinstance(value, bool)
                and (math.isfinite(value) or (allow_inf and not math.isnan(value))))
    if annotation is str:
        return isinstance(value, str)
    if origin is tuple:
        args = typing.get_args(annotation)
        return (isinstance(value, (list, tuple)) and len(value) == len(args)
                and all(_matches(v, a, allow_inf) for v, a in zip(value, args)))
    if origin is not None and isinstance(origin, type) and issubclass(origin, collections.abc.Sequence):
        (item,) = typing.get_args(annotation) or (Any,)
        return isinstance(value, (list, tuple)) and all(_matches(v, item, allow_inf) for v in value)
    if isinstance(annotation, type):
        return isinstance(value, annotation)
    return True  # an annotation this checker does not read: the class's own checks decide


def check_kwargs(function: Callable, kwargs: dict[str, Any], what: str, internal: tuple[str, ...] = ("self",)) -> None:
    """Check ``kwargs`` against the annotations of ``function``'s parameters.

    Floats must be finite, except where the parameter's default is itself infinite (there
    ``inf`` means "no limit"); NaN is never accepted.

    Args:
        function: e.g. an environment's or controller's ``__init__``.
        kwargs: the keyword arguments the user gave.
        what: names the receiver in the message, e.g. ``"env nasgen/OneShotNAS-v0"``.
        internal: parameters the caller fills in, never the user (refused as unknown).

    Raises:
        TypeError: an unknown keyword, or a value of the wrong type, in one line.
    """
    parameters = inspect.signature(function).parameters
    try:
        hints = typing.get_type_hints(function)
    except (NameError, TypeError, AttributeError):  # an annotation that does not resolve: names only
        hints = {}
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    for key, value in kwargs.items():
        if key not in parameters or key in internal:
            if takes_any and key not in internal:
                continue
            accepted = [p for p in parameters if p not in internal]
            raise TypeError(f"{what} takes no {key!r}; it accepts: {', '.join(accepted) or 'none'}")
        default = parameters[key].default
        allow_inf = isinstance(default, float) and math.isinf(default)
        annotation = hints.get(key, inspect.Parameter.empty)
        if not _matches(value, annotation, allow_inf):
            raise TypeError(f"{what}: {key}={value!r} is not {_describe(annotation, allow_inf)}")


def check_env(env_id: str, kwargs: dict[str, Any]):
    """Check the keyword arguments of environment ``env_id`` without building it.

    Returns:
        The search space the environment would have, when its class can say so without
        being built (a ``check_arguments`` classmethod), else None.

    Raises:
        TypeError, ValueError: one line naming the bad value.
    """
    from nasgen.search import env_class

    cls = env_class(env_id)
    check_kwargs(cls.__init__, kwargs, f"env {env_id}")
    check = getattr(cls, "check_arguments", None)
    if check is None:
        return None
    try:
        return check(**kwargs)
    except (TypeError, ValueError) as error:
        raise type(error)(f"env {env_id}: {error}") from None


def check_controller(name_: str, space: Any, seed_: int, kwargs: dict[str, Any]) -> None:
    """Check controller ``name_``'s hyper-parameters: types, then its own ``__init__`` checks
    (the controller is built for ``space`` and thrown away; without a space, types only).

    Raises:
        TypeError, ValueError: one line naming the bad value.
    """
    from nasgen import controllers

    cls = controllers.get(name_)
    check_kwargs(cls.__init__, kwargs, f"controller {name_!r}", internal=("self", "space", "seed"))
    if space is not None:
        try:
            controllers.make(name_, space, seed=seed_, **kwargs)
        except (TypeError, ValueError) as error:
            raise type(error)(f"controller {name_!r}: {error}") from None
        except (RuntimeError, OverflowError) as error:  # torch refusing a value the checks let through
            raise ValueError(f"controller {name_!r} cannot be built with "
                             f"{', '.join(f'{k}={v!r}' for k, v in kwargs.items())}: {error}") from None


def check_device(device: str) -> str:
    """``device`` when torch can use it here; ValueError naming what is available otherwise."""
    import torch

    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError):
        raise ValueError(f"unknown device {device!r}; choose from: cpu, cuda, cuda:N") from None
    if parsed.type == "cpu":
        return device
    if parsed.type != "cuda":
        raise ValueError(f"unknown device {device!r}; choose from: cpu, cuda, cuda:N")
    if not torch.cuda.is_available():
        raise ValueError(f"device {device!r} but CUDA is not available here; use --device cpu")
    if parsed.index is not None and parsed.index >= torch.cuda.device_count():
        raise ValueError(f"device {device!r} but this machine has {torch.cuda.device_count()} CUDA device(s)")
    return device


def check_creatable_dir(path: str | Path, flag: str) -> None:
    """Refuse a folder that cannot be created or written: it is a file, or its nearest
    existing ancestor is a file or not writable. Creates nothing.

    Raises:
        ValueError: one line naming ``flag`` and the path.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{flag} {str(path)!r} is a file, not a folder")
    existing = path
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        raise ValueError(f"{flag} {str(path)!r} cannot be created: {str(existing)!r} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"{flag} {str(path)!r} cannot be written: no write permission in {str(existing)!r}")
