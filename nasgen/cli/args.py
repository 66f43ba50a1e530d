"""The command line's edge: flags built from config dataclasses, and text turned into values.

A config dataclass owns its defaults (its field values), its help (the docstring under each
field) and its checks (``nasgen.checks`` in the field's metadata). ``config_flag`` adds one
field as a flag from those three, so the command line repeats none of them: the flag's
default is None ("not given": the config's default applies), its ``type`` parses the text and
runs the field's check (argparse prints the check's message in one line, exit status 2).
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import functools
import inspect
import textwrap
import types
import typing
from typing import Any, Callable, Optional, Sequence

from nasgen import checks, config
from nasgen.runtime import DEFAULT_THREADS


#: Bad input from the user: printed as one line, exit status 2 (``main`` catches it).
UsageError = checks.InputError


class Parser(argparse.ArgumentParser):
    """argparse, with its usage errors on one line (exit status 2 as usual)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


# --- text -> values ---------------------------------------------------------------------------------
parse_value = config.parse_value
parse_key_values = config.parse_key_values


def _int(text: str) -> int:
    return int(text)


def _float(text: str) -> float:
    return float(text)


def flag_type(check: checks.Check, parse: Callable[[str], Any] = str) -> Callable[[str], Any]:
    """An argparse ``type``: ``parse`` the text, then ``check`` the value (one line on failure)."""
    kind = {int: "an integer", _int: "an integer", float: "a number", _float: "a number"}.get(parse)

    def convert(text: str) -> Any:
        try:
            value = parse(text)
        except (ValueError, OverflowError):
            raise argparse.ArgumentTypeError(f"expected {kind or 'a value'}, got {checks.short(text)}") from None
        try:
            return check(value)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None
    convert.__name__ = getattr(check, "__name__", "value")  # argparse names the type in some messages
    return convert


# --- config dataclasses -> flags ---------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def field_docs(cls: type) -> dict[str, str]:
    """The docstring under each field of dataclass ``cls`` (from its source), whitespace folded."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError):  # no source (a frozen build): no help text
        return {}
    body = tree.body[0].body
    docs = {}
    for node, following in zip(body, body[1:]):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and \
                isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant) and \
                isinstance(following.value.value, str):
            docs[node.target.id] = " ".join(following.value.value.replace("``", "").split())
    return docs


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return None


def config_flag(parser: argparse.ArgumentParser | Any, cls: type, name: str, flag: Optional[str] = None,
                parse: Optional[Callable[[str], Any]] = None, help: Optional[str] = None,
                check: Optional[checks.Check] = None, **kwargs: Any):
    """Add field ``name`` of config ``cls`` as ``--name-with-dashes`` (or ``flag``).

    The help is the field's docstring with its default; the flag's default is None (not
    given); ``type`` parses with ``parse`` (int, float or str, from the field's annotation when
    not given) and runs the field's declared check (or ``check`` for a field without one: an
    empty flag value must not silently mean the default). A bool field becomes a switch.
    """
    field_ = next(f for f in dataclasses.fields(cls) if f.name == name)
    default = _default(field_)
    text = help or field_docs(cls).get(name, "")
    flag = flag or "--" + name.replace("_", "-")
    shown = "" if default is None or default == () or isinstance(default, bool) else f" (default: {default})"
    if isinstance(default, bool):
        action = "store_true" if default is False else argparse.BooleanOptionalAction
        return parser.add_argument(flag, action=action, default=None, help=text + shown, **kwargs)
    if parse is None:
        parse = _parser_of(cls, name)
    parse = {int: _int, float: _float}.get(parse, parse)
    check = field_.metadata.get("check") or check or (lambda value: value)
    return parser.add_argument(flag, type=flag_type(check, parse), default=None, help=text + shown, **kwargs)


def _parser_of(cls: type, name: str) -> Callable[[str], Any]:
    """int, float or str, from the field's annotation (``Optional[X]`` reads as X)."""
    hint = typing.get_type_hints(cls).get(name, str)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        hint = next((h for h in typing.get_args(hint) if h is not type(None)), str)
    return {int: _int, float: _float}.get(hint, str)


def given(args: argparse.Namespace, names: Sequence[str]) -> dict[str, Any]:
    """The flags of ``names`` the user gave (not None), by name."""
    return {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}


def add_threads_argument(parser: argparse.ArgumentParser) -> None:
    """Add ``--threads N`` (default ``DEFAULT_THREADS``): torch CPU threads of the process."""
    parser.add_argument("--threads", type=positive_int, default=DEFAULT_THREADS,
                        help=f"torch CPU threads of this process (default: {DEFAULT_THREADS}; more rarely "
                             f"help the small models here and compete with other processes)")


#: argparse types of flags no config owns.
positive_int = flag_type(checks.positive_int, _int)
non_negative_int = flag_type(checks.non_negative_int, _int)
non_negative_float = flag_type(checks.non_negative_float, _float)
name = flag_type(checks.non_empty)
