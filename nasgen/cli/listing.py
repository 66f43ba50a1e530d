"""``nasgen list``: controllers, environment ids, search spaces and datasets, with where each
plug-in comes from and the plug-ins that cannot be used."""

from __future__ import annotations

import argparse

from nasgen import config, controllers, envs, searchspace
from nasgen.searchspace.registry import BUILT_IN, Registry


def add_list_parser(subparsers) -> argparse.ArgumentParser:
    listing = subparsers.add_parser("list", help="controllers, environment ids, search spaces, datasets and plug-ins")
    listing.set_defaults(func=cmd_list)
    return listing


def _entries(registry: Registry) -> list[str]:
    """Each name, with its origin when it is not built in."""
    return [name if registry.origin(name) == BUILT_IN else f"{name}  (plug-in: {registry.origin(name)})"
            for name in registry.list()]


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
    registries = (controllers.CONTROLLERS, searchspace.PRESETS, searchspace.DATASETS)
    for title, items in (("controllers", _entries(controllers.CONTROLLERS)),
                         ("envs (all searchable by nasgen search)", env_lines),
                         ("spaces", _entries(searchspace.PRESETS)), ("datasets", _entries(searchspace.DATASETS))):
        print(f"{title}:")
        for item in items:
            print(f"  {item}")
    problems = [line for registry in registries for line in registry.problems().values()]
    if problems:
        print("plug-ins that cannot be used:")
        for line in problems:
            print(f"  {line}")
    return 0
