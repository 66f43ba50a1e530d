"""Name -> entry registries (timm style), open to plug-ins.

Built-ins ``register`` themselves by name. Beside them a registry finds:

- **entry points** of its ``group`` (``nasgen.controllers``, ``nasgen.spaces``,
  ``nasgen.datasets``), the way pytest finds its plug-ins: an installed package declares
  ``name = "module:attribute"`` and the entry is loaded the first time it is asked for, in
  any process (Ray workers included);
- **references** ``module:attribute`` given in place of a name, the way gymnasium takes
  ``entry_point="module:Class"``: code that is not packaged, importable from ``sys.path``.

A plug-in that fails to import, fails the registry's ``check``, shadows a built-in name or
shares its name with another plug-in never breaks the built-ins or ``names()``: it is
listed by ``problems()``, and asking for it raises ``PluginError``, one line naming the
plug-in and the problem.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import traceback
from typing import Callable, Generic, Iterator, Optional, TypeVar

from nasgen.checks import InputError, cut, short

T = TypeVar("T")

BUILT_IN = "built-in"


class PluginError(InputError):
    """A plug-in that cannot be used; the message names it and the problem."""


def is_reference(name: str) -> bool:
    """Whether ``name`` is a ``module:attribute`` reference rather than a registered name."""
    module, sep, attribute = name.partition(":")
    return bool(sep) and bool(module) and bool(attribute)


def _error_line(error: BaseException) -> str:
    return cut(traceback.format_exception_only(type(error), error)[-1])


def load_reference(reference: str, what: str) -> object:
    """The object ``module:attribute`` names (dots in ``attribute`` walk into it).

    Raises:
        PluginError: the module does not import or has no such attribute (one line).
    """
    module_name, _, attribute = reference.partition(":")
    try:
        target = importlib.import_module(module_name)
    except Exception as error:  # any failure of someone else's module: one line, never a traceback
        raise PluginError(f"{what} {reference!r}: module {module_name!r} fails to import: "
                          f"{_error_line(error)}") from None
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise PluginError(f"{what} {reference!r}: module {module_name!r} has no {attribute!r}")
        target = getattr(target, part)
    return target


class Registry(Generic[T]):
    """Named entries: built-ins registered by a decorator, plug-ins found by entry point or
    given as a ``module:attribute`` reference.

    Args:
        kind: what the entries are ("controller", ...), used in messages.
        group: the entry-point group of its plug-ins (None: no plug-ins by entry point).
        check: ``check(loaded object, name) -> entry``: turns a plug-in's object into an
            entry, raising TypeError or ValueError (one line) when it is not one.
    """

    def __init__(self, kind: str, group: Optional[str] = None,
                 check: Optional[Callable[[object, str], T]] = None):
        self.kind = kind
        self.group = group
        self.check = check
        self._entries: dict[str, T] = {}
        self._origins: dict[str, str] = {}
        self._pending: dict[str, importlib.metadata.EntryPoint] = {}
        self._problems: dict[str, str] = {}
        self._discovered = group is None

    # --- built-ins ----------------------------------------------------------------------------
    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: ``@registry.register("name")`` (a built-in, or code registering at run time)."""
        def add(entry: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._entries[name] = entry
            self._origins.setdefault(name, BUILT_IN if _is_ours(entry) else f"registered by {_module_of(entry)}")
            return entry
        return add

    # --- plug-ins -------------------------------------------------------------------------------
    def _discover(self) -> None:
        """Record (not load) the entry points of ``group``; once per process."""
        if self._discovered:
            return
        self._discovered = True
        claimed: dict[str, list[importlib.metadata.EntryPoint]] = {}
        for point in importlib.metadata.entry_points(group=self.group):
            claimed.setdefault(point.name, []).append(point)
        for name, points in claimed.items():
            origin = " and ".join(_origin(p, self.group) for p in points)
            if name in self._entries:
                self._problems[name] = (f"{self.kind} plug-in {name!r} ({origin}) shadows the built-in "
                                        f"{self.kind} {name!r}, which is used; rename the plug-in")
            elif len(points) > 1:
                self._problems[name] = f"two plug-ins claim the {self.kind} name {name!r}: {origin}"
            else:
                self._pending[name] = points[0]
                self._origins[name] = origin

    def _accept(self, name: str, loaded: object, origin: str) -> T:
        try:
            entry = self.check(loaded, name) if self.check is not None else loaded
        except (TypeError, ValueError) as error:
            raise PluginError(f"{self.kind} plug-in {name!r} ({origin}): {cut(str(error), 300)}") from None
        self._entries[name] = entry
        self._origins[name] = origin
        return entry

    def get(self, name: str) -> T:
        """The entry ``name``: a built-in, a plug-in, or a ``module:attribute`` reference.

        Raises:
            KeyError: an unknown name (not a reference), listing the known names.
            PluginError: a plug-in or reference that cannot be used (one line).
        """
        if not isinstance(name, str):
            raise KeyError(f"unknown {self.kind} {short(name)}; known: {', '.join(self.list())}")
        if name in self._entries:
            return self._entries[name]
        self._discover()
        if name in self._problems:
            raise PluginError(self._problems[name])
        if name in self._pending:
            point = self._pending.pop(name)
            try:
                loaded = point.load()
            except Exception as error:  # someone else's package: one line, never a traceback
                self._problems[name] = (f"{self.kind} plug-in {name!r} ({self._origins[name]}) fails to import: "
                                        f"{_error_line(error)}")
                raise PluginError(self._problems[name]) from None
            try:
                return self._accept(name, loaded, self._origins[name])
            except PluginError as error:
                self._problems[name] = str(error)
                raise
        if is_reference(name):
            return self._accept(name, load_reference(name, self.kind), f"module {name.partition(':')[0]}")
        raise KeyError(f"unknown {self.kind} {short(name)}; known: {', '.join(self.list())}")

    def list(self) -> list[str]:
        """Built-in and plug-in names (plug-ins not loaded yet included; references used in
        this process too), in registration order."""
        self._discover()
        return list(self._entries) + [name for name in self._pending if name not in self._entries]

    def origin(self, name: str) -> str:
        """Where entry ``name`` comes from: ``built-in``, an entry point and its package, or a module."""
        self._discover()
        return self._origins.get(name, "unknown")

    def problems(self) -> dict[str, str]:
        """Plug-ins that cannot be used, by name: the one-line reason of each (entry points are
        loaded here to find out)."""
        self._discover()
        for name in list(self._pending):
            try:
                self.get(name)
            except PluginError:
                pass
        return dict(self._problems)

    def __contains__(self, name: object) -> bool:
        return name in self._entries or (isinstance(name, str) and name in self.list())

    def __iter__(self) -> Iterator[str]:
        return iter(self.list())


def _is_ours(entry: object) -> bool:
    return _module_of(entry).split(".")[0] == "nasgen"


def _module_of(entry: object) -> str:
    return getattr(entry, "__module__", None) or type(entry).__module__


def _origin(point: importlib.metadata.EntryPoint, group: Optional[str]) -> str:
    dist = getattr(point, "dist", None)
    package = f"{dist.metadata['Name']} {dist.version}" if dist is not None else point.value
    return f"entry point {group} of {package}"
