"""Canonical form of a NAS-Bench-201 cell: which encodings compute the same thing.

A NAS-Bench-201 cell has an input node 0 and nodes 1, 2, 3 (3 is the output); its 6 edges
come in the order ``1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2`` and an encoding names one op per
edge. Many encodings are the same computation: a ``none`` edge adds nothing, a
``skip_connect`` edge passes its input through, and a sum does not care about the order of
its terms. NAS-Bench-201 (Dong & Yang, ICLR 2020) counts 6,466 distinct cells among the
15,625 encodings of its 5 ops; this module reproduces that count with NAS-Bench-201's own
equivalence (``Structure.to_unique_str(consider_zero=True)`` in its code), which is:

- node 0 is the expression ``0``; every other node is the sorted ``+``-sum of one term per
  incoming edge;
- the term of an edge is ``#`` (a zero) when its op is ``none`` or when its source node is
  a single zero term (that is, node 1 reached only by a ``none`` edge); the source node's
  own expression for ``skip_connect``; ``(source)@op`` for every other op.

Zeros therefore stay in a sum as ``#`` markers, and only node 1 propagates a zero. This is
coarser than string identity of the encodings and finer than "compute the same function"
(a fully function-level reduction, where every all-zero node vanishes, gives 4,930 classes),
but it is the count every NAS-Bench-201 result refers to, so tables built here line up with
that literature.

Only the op *names* matter: ``none`` and ``skip_connect`` are special, every other op is an
opaque label. So the same code serves ``nb201`` (5 ops, 6,466 classes) and
``nb201-nozero`` (4 ops without ``none``: 3,131 classes of 4,096) without importing the space class.
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

#: ``(target node, source node)`` of each of the 6 edges, in encoding order.
NB201_EDGES: tuple[tuple[int, int], ...] = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
N_EDGES = len(NB201_EDGES)
ZERO = "none"
SKIP = "skip_connect"
_ZERO_TERM = "#"


def _check_op_names(op_names: Sequence[str]) -> tuple[str, ...]:
    op_names = tuple(str(op) for op in op_names)
    if len(op_names) < 1 or len(set(op_names)) != len(op_names):
        raise ValueError(f"op_names must be distinct and non-empty, got {op_names}")
    return op_names


def unique_string(arch: Sequence[int], op_names: Sequence[str]) -> str:
    """NAS-Bench-201's canonical string of one cell encoding.

    Args:
        arch: 6 op indices, one per edge in ``NB201_EDGES`` order.
        op_names: the op of each index (``none`` and ``skip_connect`` are the special ones).

    Returns:
        The expression of the output node; two encodings are equivalent iff these match.
    """
    nodes = ["0"]
    for target in (1, 2, 3):
        terms = []
        for (node, source), op_index in zip(NB201_EDGES, arch):
            if node != target:
                continue
            op = op_names[op_index]
            if op == ZERO or nodes[source] == _ZERO_TERM:
                terms.append(_ZERO_TERM)
            elif op == SKIP:
                terms.append(nodes[source])
            else:
                terms.append(f"({nodes[source]})@{op}")
        nodes.append("+".join(sorted(terms)))
    return nodes[3]


@dataclass(frozen=True)
class CanonicalMap:
    """Every encoding of a NAS-Bench-201 cell space and its equivalence class.

    Encodings are numbered in lexicographic order of their op vectors (edge 0 most
    significant), so encoding ``i`` of ``n`` ops is ``i`` written in base ``n``.

    Attributes:
        op_names: the ops the map was built for.
        encodings: ``[n_ops**6, 6]`` int8, every encoding in index order.
        class_of: ``[n_ops**6]`` int32, the class id of each encoding.
        representatives: ``[n_classes, 6]`` int8, the smallest encoding of each class; class
            ids are numbered in the order of these representatives.
    """

    op_names: tuple[str, ...]
    encodings: np.ndarray
    class_of: np.ndarray
    representatives: np.ndarray

    @property
    def n_classes(self) -> int:
        return int(self.representatives.shape[0])

    @property
    def n_ops(self) -> int:
        return len(self.op_names)

    def index(self, arch: Any) -> int:
        """The encoding index of ``arch``.

        Raises:
            ValueError: not 6 integers in ``range(n_ops)``.
        """
        array = np.asarray(arch)
        if array.shape != (N_EDGES,) or not np.issubdtype(array.dtype, np.integer):
            raise ValueError(f"a NAS-Bench-201 cell is {N_EDGES} integer op indices, got {arch!r}")
        if array.min() < 0 or array.max() >= self.n_ops:
            raise ValueError(f"cell {array.tolist()} has an op index outside 0..{self.n_ops - 1} "
                             f"(ops: {', '.join(self.op_names)})")
        return int(np.ravel_multi_index(tuple(array), (self.n_ops,) * N_EDGES))

    def class_id(self, arch: Any) -> int:
        """The class id of ``arch`` (an index into ``representatives``)."""
        return int(self.class_of[self.index(arch)])

    def canonical(self, arch: Any) -> tuple[int, ...]:
        """The representative encoding of ``arch``'s class."""
        return tuple(int(a) for a in self.representatives[self.class_id(arch)])

    def members(self, arch: Any) -> np.ndarray:
        """``[k, 6]``: every encoding equivalent to ``arch`` (itself included)."""
        return self.encodings[self.class_of == self.class_id(arch)]


@functools.lru_cache(maxsize=8)
def canonical_map(op_names: Sequence[str]) -> CanonicalMap:
    """The equivalence classes of every cell encoding over ``op_names`` (cached per op list).

    Args:
        op_names: the ops, in index order (e.g. ``none skip_connect nor_conv_1x1
            nor_conv_3x3 avg_pool_3x3``).

    Returns:
        The map; its arrays are read-only.
    """
    op_names = _check_op_names(op_names)
    n = len(op_names)
    encodings = np.array(list(itertools.product(range(n), repeat=N_EDGES)), dtype=np.int8)
    ids: dict[str, int] = {}
    class_of = np.empty(len(encodings), dtype=np.int32)
    first: list[int] = []
    # Encodings come in lexicographic order, so the first member met is the smallest.
    for i, arch in enumerate(encodings.tolist()):
        key = unique_string(arch, op_names)
        cid = ids.get(key)
        if cid is None:
            cid = ids[key] = len(first)
            first.append(i)
        class_of[i] = cid
    representatives = encodings[np.asarray(first)]
    for array in (encodings, class_of, representatives):
        array.setflags(write=False)
    return CanonicalMap(op_names, encodings, class_of, representatives)


def canonical_nb201(arch: Any, op_names: Sequence[str]) -> tuple[int, ...]:
    """The representative (smallest equivalent) encoding of a NAS-Bench-201 cell.

    Args:
        arch: 6 op indices in ``NB201_EDGES`` order.
        op_names: the ops of the space, in index order.

    Returns:
        The smallest encoding computing the same cell, as a tuple of ints.

    Raises:
        ValueError: ``arch`` is not 6 in-range op indices.
    """
    return canonical_map(tuple(op_names)).canonical(arch)


def distinct_nb201(op_names: Sequence[str]) -> np.ndarray:
    """``[n_classes, 6]``: one representative encoding per distinct cell (6,466 for nb201)."""
    return canonical_map(tuple(op_names)).representatives
