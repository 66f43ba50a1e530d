"""Which architectures a table holds: canonical forms per cell kind, and the build plan."""

from __future__ import annotations

import math
from typing import Callable, Optional

import numpy as np

from nasgen.searchspace.canonical import canonical_map
from nasgen.searchspace.registry import Registry

#: Spaces with at most this many encodings and no canonical form are enumerated one class each.
ENUMERABLE = 200_000

#: Canonical forms by cell kind (``space.to_dict()["cell"]``):
#: ``factory(space) -> (canonical(arch) -> tuple, all_distinct() -> [K, D])``.
CANONICAL: Registry[Callable] = Registry("canonical form")


def _nb201_form(space):
    cmap = canonical_map(tuple(space.op_names))
    return cmap.canonical, lambda: cmap.representatives.astype(np.int64)


# Every NAS-Bench-201 cell space (nb201, nb201-nozero, other op lists): the form works from op names.
CANONICAL.register("nb201")(_nb201_form)


def _identity_form(space):
    def canonical(arch):
        return tuple(int(a) for a in arch)

    def every():
        if math.prod(space.choices) > ENUMERABLE:
            return None
        grids = np.meshgrid(*[np.arange(c) for c in space.choices], indexing="ij")
        return np.stack([g.ravel() for g in grids], axis=1).astype(np.int64)

    return canonical, every


def _form(space):
    kind = space.to_dict().get("cell")
    return CANONICAL.get(kind)(space) if kind in CANONICAL else _identity_form(space)


def canonicalizer(space) -> Callable[[np.ndarray], tuple[int, ...]]:
    """``arch -> representative tuple`` for ``space`` (identity for spaces without a form)."""
    return _form(space)[0]


def all_distinct(space) -> Optional[np.ndarray]:
    """``[K, D]`` one representative per distinct architecture, or None when the space is too
    large to enumerate (then a build needs ``limit_archs``)."""
    return _form(space)[1]()


def plan_archs(space, limit: Optional[int] = None, seed: int = 0) -> np.ndarray:
    """The distinct architectures a build trains: all of them, or ``limit`` drawn at random.

    Args:
        space: the search space.
        limit: at most this many (a uniform random subset of the distinct ones, drawn with
            ``seed``; spaces too large to enumerate get ``limit`` distinct random encodings).
        seed: seed of that draw.

    Returns:
        ``[K, D]`` int64 representatives in lexicographic order.

    Raises:
        ValueError: a non-enumerable space without ``limit``, or ``limit < 1``.
    """
    if limit is not None and limit < 1:
        raise ValueError(f"limit_archs must be >= 1, got {limit}")
    every = all_distinct(space)
    rng = np.random.default_rng(seed)
    if every is None:
        if limit is None:
            raise ValueError(f"space {space.name!r} has {math.prod(space.choices):.3g} encodings and no "
                             f"canonical form to enumerate; give limit_archs (--limit-archs)")
        canonical = canonicalizer(space)
        chosen: set[tuple[int, ...]] = set()
        while len(chosen) < limit:
            chosen.add(canonical(space.sample(rng)))
        archs = np.array(sorted(chosen), dtype=np.int64)
    elif limit is not None and limit < len(every):
        archs = every[np.sort(rng.choice(len(every), size=limit, replace=False))]
    else:
        archs = every
    return archs
