"""``nasgen list``: controllers, environment ids, search spaces and datasets."""

from __future__ import annotations

import argparse

from nasgen import config, controllers, envs, searchspace


def add_list_parser(subparsers) -> argparse.ArgumentParser:
    listing = subparsers.add_parser("list", help="controllers, environment ids, search-space presets, datasets")
    listing.set_defaults(func=cmd_list)
    return listing


def cmd_list(args: argparse.Namespace) -> int:
    width = max(len(e) for e in envs.env_ids())
    env_lines = []
    for env_id in envs.env_ids():
        notes = [] if envs.differentiable(env_id) else ["black-box controllers only"]
        if config.incompatibility(env_id, "credit"):
            notes.append("no per-edge credit")
        datasets = envs.env_datasets(env_id)
        if datasets is not None and datasets != searchspace.dataset_names():
            notes.append(f"datasets: {', '.join(datasets)}")
        env_lines.append(f"{env_id:<{width}}  ({'; '.join(notes)})" if notes else env_id)
    for title, items in (("controllers", controllers.names()), ("envs (all searchable by nasgen search)", env_lines),
                         ("spaces", searchspace.names()), ("datasets", searchspace.dataset_names())):
        print(f"{title}:")
        for item in items:
            print(f"  {item}")
    return 0
