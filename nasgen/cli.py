"""The ``nasgen`` command."""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nasgen", description=__doc__)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("list", help="controllers, environment ids, search-space presets, datasets")
    return parser


def cmd_list(args: argparse.Namespace) -> int:
    from nasgen import controllers, envs, searchspace

    for title, items in (("controllers", controllers.names()), ("envs", envs.env_ids()),
                         ("spaces", searchspace.names()), ("datasets", searchspace.dataset_names())):
        print(f"{title}:")
        for item in items:
            print(f"  {item}")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    return {"list": cmd_list}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
