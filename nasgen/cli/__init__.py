"""The ``nasgen`` command: ``list``, ``search``, ``retrain``, ``toy``, ``sweep`` and ``bench``.

The top of the import graph: nothing in the package imports it. Each subcommand turns its
flags into a config, and bad input -- an ``InputError`` from wherever the value is owned --
becomes one line on stderr and exit status 2 here, before anything is created.
"""

from __future__ import annotations

import sys
from typing import Callable, Optional, Sequence

from nasgen.checkpoint import CheckpointWriteError
from nasgen.checks import InputError
from nasgen.runtime import apply_threads
from nasgen.searchspace import DataError, DataNotFoundError

from .args import Parser, UsageError, parse_key_values, parse_value
from .bench import add_bench_parser
from .compare import add_compare_parser
from .listing import add_list_parser
from .retrain import add_retrain_parser
from .search import add_search_parser
from .sweep import add_sweep_parser
from .toy import add_toy_parser

__all__ = ["UsageError", "build_parser", "main", "parse_key_values", "parse_value"]


def build_parser() -> Parser:
    parser = Parser(prog="nasgen", description="Neural-architecture-search controllers against a one-shot "
                                               "supernet environment.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    add_list_parser(sub)
    add_search_parser(sub)
    add_retrain_parser(sub)
    add_toy_parser(sub)
    add_sweep_parser(sub)
    add_bench_parser(sub)
    add_compare_parser(sub)
    return parser


def run_command(work: Callable[[], int], prog: str, speak: bool = True) -> int:
    """``work()``'s exit status, with the command line's endings: bad input is one line on
    stderr and status 2, a failed checkpoint write one line and status 1, Ctrl+C status 130.

    Args:
        work: the command.
        prog: names the command in the lines (``nasgen search``).
        speak: print the lines of bad input and of Ctrl+C (False on the data-parallel
            search's ranks other than 0, which see the same input; a failed write is always told).
    """
    try:
        return work()
    except (InputError, DataNotFoundError, DataError) as error:
        if speak:
            print(f"{prog}: error: {error}", file=sys.stderr)
        return 2
    except CheckpointWriteError as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        if speak:
            print(f"{prog}: interrupted", file=sys.stderr)
        return 130


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    if getattr(args, "threads", None) is not None:
        apply_threads(args.threads)
    return run_command(lambda: args.func(args), f"nasgen {args.command}")


if __name__ == "__main__":
    sys.exit(main())
