"""``nasgen compare``: controllers side by side on ground-truth suites (``nasgen.compare``)."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import signal
from typing import Iterator

from nasgen import compare
from nasgen.compare import CompareConfig

from . import args as a

#: Fields given as comma-separated lists on the command line.
_LISTS = ("controllers", "suites", "baselines", "nbg_datasets")
_METAVARS = {"controllers": "NAMES", "suites": "SUITES", "baselines": "NAMES", "nbg_datasets": "NAMES",
             "out": "DIR", "seeds": "N", "num_cpus": "N", "threads": "N", "address": "ADDRESS", "table": "TABLE"}


def cmd_compare(args: argparse.Namespace) -> int:
    """``nasgen compare``: run (or continue) the comparison and print its report.

    Returns:
        0 when every task finished, 1 when any failed (the report lists them).

    Raises:
        UsageError: bad input, in one line, before anything is created.
    """
    config = CompareConfig(**a.given(args, [f.name for f in dataclasses.fields(CompareConfig)]))
    with stop_on_signals():  # kill or Ctrl+C: the report of the finished tasks, then status 130
        report = compare.run(config)
    return 1 if report["failed"] else 0


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """Raise KeyboardInterrupt on SIGTERM, and on SIGINT even where a background start
    ignores it, for the ``with`` block: a comparison of hours stopped by ``kill`` writes the
    report of what finished, as Ctrl+C does."""
    def interrupt(signum, frame):
        raise KeyboardInterrupt

    before = {s: signal.signal(s, interrupt) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)


def _help(name: str) -> str:
    """A preset field's help: its docstring and its full-run and quick values."""
    text = a.field_docs(CompareConfig).get(name, "")
    if name not in compare.FULL:
        return text
    full, quick = (",".join(v) if isinstance(v, tuple) else v for v in (compare.FULL[name], compare.QUICK[name]))
    return f"{text} (default: {full:.4g}; --quick: {quick:g})" if isinstance(full, float) else \
        f"{text} (default: {full}; --quick: {quick})"


def add_compare_parser(subparsers) -> argparse.ArgumentParser:
    """Register the ``compare`` subcommand (``set_defaults(func=cmd_compare)``).

    Args:
        subparsers: what ``ArgumentParser.add_subparsers()`` returned.

    Returns:
        The ``compare`` parser.
    """
    parser = subparsers.add_parser(
        "compare", help="controllers side by side against ground truth (NAS-Bench-1D, the teacher toy, ...)",
        description="Run every (method, suite, seed) as an independent task in a fresh state, on Ray (a local "
                    "instance, or --address) or --local, and report per suite each method's mean, 95% interval, "
                    "time relative to DARTS and paired tests against the baselines (report.md, report.json, "
                    "report.png in --out). Suites: " + "; ".join(f"{s.name}: {s.title}"
                                                                 for s in compare.SUITES.values())
                    + ". Starting the same command again skips the finished tasks.")
    for f in dataclasses.fields(CompareConfig):
        flag = "--suite" if f.name == "suites" else None
        kwargs = {"dest": f.name} if flag else {}
        if f.name in _METAVARS:
            kwargs["metavar"] = _METAVARS[f.name]
        parse = compare.split_names if f.name in _LISTS else None
        a.config_flag(parser, CompareConfig, f.name, flag=flag, parse=parse, help=_help(f.name).replace("%", "%%"),
                      **kwargs)
    parser.set_defaults(func=cmd_compare)
    return parser
