"""Keyword values checked against the annotations of the function that takes them.

The user's ``--env-kwargs`` and ``--controller-kwargs`` reach an environment's or a
controller's constructor as Python literals; ``check_kwargs`` refuses an unknown keyword or
a value of the wrong type in one line before anything is built.
"""

from __future__ import annotations

import collections.abc
import inspect
import math
import numbers
import types
import typing
from typing import Any, Callable, Mapping

from nasgen.checks import short

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


def check_kwargs(function: Callable, kwargs: Mapping[str, Any], what: str,
                 internal: tuple[str, ...] = ("self",)) -> None:
    """Check ``kwargs`` against the annotations of ``function``'s parameters (a dataclass
    gives its fields).

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
    check_names(function, kwargs, what, internal)
    for key, value in kwargs.items():
        if key not in parameters:
            continue  # taken by a **kwargs
        default = parameters[key].default
        allow_inf = isinstance(default, float) and math.isinf(default)
        annotation = hints.get(key, _from_default(default))
        if not _matches(value, annotation, allow_inf):
            raise TypeError(f"{what}: {key}={short(value)} is not {_describe(annotation, allow_inf)}")


def _from_default(default: Any) -> Any:
    """The type an unannotated parameter's default implies: a number for a number (an int
    default still takes 0.5), true/false for a bool, a string for a string; anything else
    (None, no default) leaves the value to the function's own checks."""
    if isinstance(default, bool):
        return bool
    if isinstance(default, (int, float)):
        return float
    if isinstance(default, str):
        return str
    return inspect.Parameter.empty


def check_names(function: Callable, kwargs: Mapping[str, Any], what: str,
                internal: tuple[str, ...] = ("self",)) -> None:
    """Refuse a keyword ``function`` does not take (or one the caller fills in, ``internal``).

    Raises:
        TypeError: ``"WHAT takes no 'key'; it accepts: ..."``.
    """
    parameters = inspect.signature(function).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    for key in kwargs:
        if key in internal or (key not in parameters and not takes_any):
            accepted = [p for p in parameters if p not in internal]
            raise TypeError(f"{what} takes no {key!r}; it accepts: {', '.join(accepted) or 'none'}")
