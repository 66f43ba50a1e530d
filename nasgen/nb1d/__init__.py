"""NAS-Bench-1D: ground-truth tables of stand-alone training results, built on Ray.

``nasgen bench build`` trains every distinct architecture of a space (its canonical form
collapses equivalent encodings) with one fixed ``Recipe`` per seed, streaming rows to an
append-only file; the finished rows pack into a checksummed table of plain arrays.
``load(name_or_path)`` gives a ``Table`` that answers ``query``, ``best`` and ``percentile``
for every encoding of the space.
"""

from .archs import CANONICAL, all_distinct, canonicalizer, plan_archs
from .build import build, merge, pack, plan_items, read_rows
from .recipe import METRICS, Recipe, train_architecture, train_group
from .table import SHIPPED_DIR, Table, figures, load, spearman

__all__ = ["CANONICAL", "all_distinct", "build", "canonicalizer", "merge", "pack", "plan_archs", "plan_items",
           "read_rows", "METRICS", "Recipe", "train_architecture", "train_group", "SHIPPED_DIR", "Table", "figures", "load", "spearman"]
