"""``nasgen toy``: the progress report's RNN toy tasks, flags from ``ToyConfig``."""

from __future__ import annotations

import argparse
import dataclasses

from nasgen.toy import ToyConfig, format_report, run_toy

from . import args as a
from .args import UsageError

FLAGS = tuple(f.name for f in dataclasses.fields(ToyConfig))


def token_list(text: str) -> tuple[int, ...]:
    """argparse type: ``1,1,0,0`` -> ``(1, 1, 0, 0)`` (``ToyConfig`` checks the tokens)."""
    parts = [p for p in text.replace(" ", "").split(",") if p]
    try:
        return tuple(int(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected tokens like 1,1,0,0, got {text[:80]!r}") from None


def add_toy_parser(subparsers) -> argparse.ArgumentParser:
    toy = subparsers.add_parser("toy", help="the report's RNN toy tasks: map [1,0,1,0] -> [1,1,0,0], or generate it",
                                description="Section 4 of the progress report: an RNN maps a sequence (--task map) "
                                            "or generates one from a random z feeding its outputs back "
                                            "(--task generate).")
    for name in FLAGS:
        a.config_flag(toy, ToyConfig, name, parse=token_list if name in ("input", "target") else None)
    toy.add_argument("--no-progress", action="store_true", help="no progress bar")
    a.add_threads_argument(toy)
    toy.set_defaults(func=cmd_toy)
    return toy


def cmd_toy(args: argparse.Namespace) -> int:
    try:
        config = ToyConfig(**a.given(args, FLAGS))
    except ValueError as error:
        raise UsageError(str(error)) from None
    print(format_report(run_toy(config, progress=not args.no_progress)))
    return 0
