"""Value checks that a config declares on its fields, and the CLI reuses for its flags.

A config owns its values: each field names its check in its metadata
(``field(default=..., metadata=checks.field(checks.positive_int))``), ``check_fields``
runs them, and the command line turns the same check into an argparse ``type`` (the value
is checked once, where it is owned, and the flag's error is that check's message).

Each check takes a parsed value and returns it, or raises ``ValueError`` with the words
"expected ..., got ..." (the value cut short, never echoed whole).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import reprlib
from typing import Any, Callable

class InputError(ValueError):
    """Bad input from the user: a command reports it as one line with exit status 2.

    Raised where a value is owned and checked (a config, an application's set-up), never
    for a failure of the work itself.
    """


#: Seeds go to numpy, torch and gymnasium; all accept this range.
MAX_SEED = 2**32 - 1

Check = Callable[[Any], Any]


_SHORT = reprlib.Repr()
_SHORT.maxstring, _SHORT.maxother, _SHORT.maxlist, _SHORT.maxdict, _SHORT.maxlevel = 80, 80, 6, 4, 2


def short(value: Any, limit: int = 80) -> str:
    """``repr(value)`` cut to about ``limit`` characters without building the whole of it
    (``reprlib``), so an error line never echoes a huge value."""
    text = _SHORT.repr(value)
    return text if len(text) <= limit + 10 else text[:limit - 3] + "..."


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def cut(text: str, limit: int = 200) -> str:
    """The first line of ``text``, cut to ``limit`` characters (a message that may quote a value)."""
    lines = str(text).strip().splitlines()
    line = lines[0] if lines else ""
    return line if len(line) <= limit else line[:limit - 3] + "..."


def integer_at_least(low: int) -> Check:
    """An integer ``>= low``."""
    def check(value: Any) -> int:
        if not _is_int(value) or value < low:
            raise ValueError(f"expected an integer >= {low}, got {short(value)}")
        return int(value)
    check.__name__ = f"integer_at_least_{low}"
    return check


positive_int = integer_at_least(1)
non_negative_int = integer_at_least(0)


def seed(value: Any) -> int:
    """A seed: an integer in ``[0, MAX_SEED]``."""
    if not _is_int(value) or not 0 <= value <= MAX_SEED:
        raise ValueError(f"expected a seed in 0..{MAX_SEED}, got {short(value)}")
    return int(value)


def positive_float(value: Any) -> float:
    """A finite number > 0."""
    if not _is_number(value) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"expected a finite number > 0, got {short(value)}")
    return float(value)


def non_negative_float(value: Any) -> float:
    """A finite number >= 0."""
    if not _is_number(value) or not math.isfinite(value) or value < 0:
        raise ValueError(f"expected a finite number >= 0, got {short(value)}")
    return float(value)


def non_empty(value: Any) -> str:
    """A non-empty string (an empty one would silently mean the default)."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"expected a non-empty value, got {short(value)}")
    return value


def one_of(*choices: str) -> Check:
    """One of ``choices``."""
    def check(value: Any) -> str:
        if value not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}, got {short(value)}")
        return value
    check.__name__ = "one_of"
    return check


def field(check: Check) -> dict:
    """The ``metadata`` of a dataclass field checked by ``check`` (None passes an Optional)."""
    return {"check": check}


def check_fields(obj: Any) -> None:
    """Run the declared check of every field of dataclass instance ``obj`` (a None value
    passes: the field is optional where None is its default or allowed by its type).

    Raises:
        ValueError: ``"FIELD: expected ..., got ..."`` for the first bad value.
    """
    for f in dataclasses.fields(obj):
        check = f.metadata.get("check")
        value = getattr(obj, f.name)
        if check is None or value is None:
            continue
        try:
            check(value)
        except ValueError as error:
            raise ValueError(f"{f.name}: {error}") from None
