"""Search spaces: what an architecture is, and how to read, check and write one.

An architecture is a numpy int vector with one entry per *decision*; entry ``i`` is a
choice in ``range(space.choices[i])``. In a cell space every decision is the op of one
edge: of the normal or the reduction cell in the DARTS ``CellSearchSpace``, of the one cell
in the ``NB201SearchSpace``. Where the space has the zero op ("none", ``zero_op`` True) it
is choice 0, so an edge is off when its entry is 0; ``nb201-nozero`` has no zero op.
"""

from __future__ import annotations

from collections import namedtuple
from typing import Any, Callable, Sequence

import numpy as np

from .ops import DARTS_OPS, OPS, ZERO_OP
from .registry import Registry

# The DARTS genotype form: ``normal`` and ``reduce`` list (op, input) pairs, two per
# intermediate node in node order; input 0 and 1 are the outputs of cells k-2 and k-1.
Genotype = namedtuple("Genotype", "normal normal_concat reduce reduce_concat")

# The published DARTS (second order) CIFAR-10 cell, Liu et al. 2019.
DARTS_V2 = Genotype(
    normal=[("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("sep_conv_3x3", 1),
            ("sep_conv_3x3", 1), ("skip_connect", 0), ("skip_connect", 0), ("dil_conv_3x3", 2)],
    normal_concat=[2, 3, 4, 5],
    reduce=[("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 1),
            ("max_pool_3x3", 0), ("skip_connect", 2), ("skip_connect", 2), ("max_pool_3x3", 1)],
    reduce_concat=[2, 3, 4, 5],
)


class SearchSpace:
    """A vector of categorical decisions; the base of every space.

    Args:
        name: preset name, kept in checkpoints to refuse a mismatched resume.
        choices: number of choices of each decision (they may differ).
        zero_op: True when choice 0 of every decision means "no contribution"; controllers
            report the share of zero choices and the credit estimator treats them as off.
        decision_names: optional readable name of each decision, used in error messages.
    """

    def __init__(self, name: str, choices: Sequence[int], *, zero_op: bool = False,
                 decision_names: Sequence[str] | None = None):
        choices = tuple(int(c) for c in choices)
        if not choices or min(choices) < 1:
            raise ValueError(f"choices must be a non-empty sequence of positive counts, got {choices}")
        if decision_names is not None and len(decision_names) != len(choices):
            raise ValueError(f"{len(decision_names)} decision names for {len(choices)} decisions")
        self.name = name
        self.choices = choices
        self.zero_op = zero_op
        self._decision_names = tuple(decision_names) if decision_names else None

    @property
    def n_decisions(self) -> int:
        return len(self.choices)

    @property
    def max_choices(self) -> int:
        return max(self.choices)

    def decision_name(self, i: int) -> str:
        return self._decision_names[i] if self._decision_names else f"decision {i}"

    def choice_mask(self) -> np.ndarray:
        """Bool ``[n_decisions, max_choices]``: True where a choice exists."""
        return np.arange(self.max_choices)[None, :] < np.asarray(self.choices)[:, None]

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        """A uniformly random architecture drawn from ``rng``."""
        return (rng.random(self.n_decisions) * np.asarray(self.choices)).astype(np.int64)

    def validate(self, arch: Any) -> np.ndarray:
        """Check ``arch`` and return it as an int64 vector.

        A space with architectures the encoding can express but the space does not hold
        (NAS-Bench-Graph's all-``skip`` ones) adds that check here; ``validate_encoding``
        keeps to the encoding.

        Raises:
            ValueError: one line naming the bad length, dtype, or position, value and range.
        """
        return self.validate_encoding(arch)

    def validate_encoding(self, arch: Any) -> np.ndarray:
        """Check only that ``arch`` is a vector of in-range choices; return it as int64.

        Controllers learn from every architecture an env rewarded, including those an env
        accepts with a stand-in reward, so they check the encoding, not membership.

        Raises:
            ValueError: one line naming the bad length, dtype, or position, value and range.
        """
        array = np.asarray(arch)
        if array.ndim != 1 or array.shape[0] != self.n_decisions:
            raise ValueError(f"architecture for space {self.name!r} must be a vector of "
                             f"{self.n_decisions} ints, got shape {array.shape}")
        if array.dtype == np.bool_ or not np.issubdtype(array.dtype, np.integer):
            if np.issubdtype(array.dtype, np.floating):
                bad = np.flatnonzero(~np.isfinite(array) | (array != np.round(array)))
                if bad.size:
                    i = int(bad[0])
                    raise ValueError(f"arch[{i}] = {array[i]} is not an integer choice for "
                                     f"{self.decision_name(i)}: allowed 0..{self.choices[i] - 1}")
            raise ValueError(f"architecture for space {self.name!r} must hold integers, "
                             f"got dtype {array.dtype}")
        bad = np.flatnonzero((array < 0) | (array >= np.asarray(self.choices)))
        if bad.size:
            i = int(bad[0])
            raise ValueError(f"arch[{i}] = {int(array[i])} is out of range for "
                             f"{self.decision_name(i)}: allowed 0..{self.choices[i] - 1}")
        return array.astype(np.int64)

    def derive(self, probs: Any) -> np.ndarray:
        """The architecture a controller answers with, from per-decision probabilities.

        Args:
            probs: ``[n_decisions, max_choices]`` scores (probabilities or logits).

        Returns:
            The argmax of each decision over its existing choices.
        """
        probs = self._check_probs(probs)
        return np.where(self.choice_mask(), probs, -np.inf).argmax(axis=1).astype(np.int64)

    def _check_probs(self, probs: Any) -> np.ndarray:
        probs = np.asarray(probs, dtype=np.float64)
        if probs.shape != (self.n_decisions, self.max_choices):
            raise ValueError(f"probabilities must have shape {(self.n_decisions, self.max_choices)}, "
                             f"got {probs.shape}")
        return probs

    def describe(self, arch: Any) -> str:
        arch = self.validate(arch)
        return " ".join(str(int(a)) for a in arch)

    def to_dict(self) -> dict:
        """What identifies the space (stored in checkpoints and results)."""
        return {"name": self.name, "choices": list(self.choices), "zero_op": self.zero_op}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SearchSpace) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(repr(self.to_dict()))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, decisions={self.n_decisions})"


class CellSpace(SearchSpace):
    """A space whose decisions are the ops of cell edges, so it has a network (the common base
    of the DARTS ``CellSearchSpace`` and the ``NB201SearchSpace``).

    Decisions are grouped by cell type (``cell_types``), ``n_edges`` per cell type, in the
    order of ``edges``; every decision is an index into ``op_names``. ``Supernet`` and
    ``Network`` build any ``CellSpace``; each subclass sets ``op_names``, ``edges``,
    ``n_nodes`` and ``cell_types`` before calling ``SearchSpace.__init__``.
    """

    cell_types: tuple[str, ...] = ()
    op_names: tuple[str, ...]
    edges: tuple[tuple[int, int], ...]
    n_nodes: int

    @staticmethod
    def _check_op_names(op_names: Sequence[str]) -> tuple[str, ...]:
        op_names = tuple(op_names)
        unknown = [op for op in op_names if op not in OPS]
        if unknown:
            raise ValueError(f"unknown op {unknown[0]!r}; known ops: {', '.join(OPS)}")
        if len(set(op_names)) != len(op_names):
            raise ValueError(f"op names repeat: {op_names}")
        return op_names

    @property
    def n_edges(self) -> int:
        """Edges per cell."""
        return len(self.edges)

    def decision_index(self, cell_type: str, edge: int) -> int:
        return self.cell_types.index(cell_type) * self.n_edges + edge

    def cell_slice(self, cell_type: str) -> slice:
        start = self.cell_types.index(cell_type) * self.n_edges
        return slice(start, start + self.n_edges)

    def parameter_free_share(self, arch: Any) -> dict[str, float]:
        """Share of parameter-free ops among each cell's active (non-zero) edges."""
        arch = self.validate(arch)
        shares = {}
        for cell in self.cell_types:
            active = [op for op in (self.op_names[a] for a in arch[self.cell_slice(cell)]) if op != ZERO_OP]
            shares[cell] = (sum(OPS[op].parameter_free for op in active) / len(active)
                            if active else 1.0)
        return shares


class CellSearchSpace(CellSpace):
    """The DARTS cell space: a normal and a reduction cell, one op per edge.

    Each cell has two inputs (the outputs of cells k-2 and k-1, states 0 and 1) and
    ``n_nodes`` intermediate nodes; node ``n`` (state ``n + 2``) may take input from every
    earlier state, so it has ``n + 2`` incoming edges. The cell output concatenates the
    intermediate nodes. Decisions are the normal cell's edges, then the reduction cell's.

    Args:
        name: preset name.
        op_names: candidate ops, keys of ``ops.OPS``; the first must be ``"none"``.
        n_nodes: intermediate nodes per cell.
        inputs_per_node: how many inputs per node ``derive`` keeps (2, as DARTS).
    """

    cell_types = ("normal", "reduce")

    def __init__(self, name: str, op_names: Sequence[str], n_nodes: int = 4,
                 inputs_per_node: int = 2):
        op_names = self._check_op_names(op_names)
        if not op_names or op_names[0] != ZERO_OP:
            raise ValueError(f"op 0 must be the zero op {ZERO_OP!r}, got {op_names[:1]}")
        if n_nodes < 1:
            raise ValueError(f"n_nodes must be >= 1, got {n_nodes}")
        self.op_names = op_names
        self.n_nodes = n_nodes
        self.inputs_per_node = inputs_per_node
        # edges[e] = (node, input state); node n's edges come in input order.
        self.edges: tuple[tuple[int, int], ...] = tuple(
            (node, src) for node in range(n_nodes) for src in range(node + 2))
        names = [f"{cell} edge {node + 2}<-{src}" for cell in self.cell_types
                 for node, src in self.edges]
        super().__init__(name, [len(op_names)] * len(names), zero_op=True, decision_names=names)

    def derive(self, probs: Any) -> np.ndarray:
        """DARTS derivation: per node, the two edges whose best non-zero op is strongest.

        Args:
            probs: ``[n_decisions, n_ops]`` op probabilities (or any monotone score).

        Returns:
            An architecture with exactly ``inputs_per_node`` non-zero edges per node (fewer
            when a node has fewer incoming edges), each on its argmax non-zero op.
        """
        probs = self._check_probs(probs)
        best_op = probs[:, 1:].argmax(axis=1) + 1
        strength = probs[:, 1:].max(axis=1)
        arch = np.zeros(self.n_decisions, dtype=np.int64)
        for cell in self.cell_types:
            base = self.cell_slice(cell).start
            for node in range(self.n_nodes):
                edge_ids = [base + e for e, (n, _) in enumerate(self.edges) if n == node]
                # Stable sort: ties go to the earlier input, which keeps derivation deterministic.
                kept = sorted(edge_ids, key=lambda d: -strength[d])[: self.inputs_per_node]
                arch[kept] = best_op[kept]
        return arch

    def to_genotype(self, arch: Any) -> Genotype:
        """The DARTS ``Genotype`` of an architecture in DARTS form.

        Raises:
            ValueError: if a node has other than ``inputs_per_node`` active inputs (the DARTS
                form cannot say which node a pair belongs to otherwise); ``derive`` gives
                that form.
        """
        arch = self.validate(arch)
        parts = {}
        for cell in self.cell_types:
            pairs = []
            cell_arch = arch[self.cell_slice(cell)]
            for node in range(self.n_nodes):
                node_pairs = [(self.op_names[cell_arch[e]], src)
                              for e, (n, src) in enumerate(self.edges) if n == node and cell_arch[e]]
                wanted = min(self.inputs_per_node, node + 2)
                if len(node_pairs) != wanted:
                    raise ValueError(f"{cell} cell node {node + 2} has {len(node_pairs)} active "
                                     f"inputs; the DARTS genotype form needs exactly {wanted} "
                                     f"(use space.derive to get that form)")
                pairs.extend(node_pairs)
            parts[cell] = pairs
        concat = list(range(2, self.n_nodes + 2))
        return Genotype(parts["normal"], concat, parts["reduce"], list(concat))

    def from_genotype(self, genotype: Genotype) -> np.ndarray:
        """The architecture of a DARTS ``Genotype`` (pairs grouped ``inputs_per_node`` per node).

        Raises:
            ValueError: unknown op, impossible input, repeated edge, or wrong pair count.
        """
        genotype = Genotype(*genotype)
        arch = np.zeros(self.n_decisions, dtype=np.int64)
        for cell, pairs in (("normal", genotype.normal), ("reduce", genotype.reduce)):
            expected = sum(min(self.inputs_per_node, node + 2) for node in range(self.n_nodes))
            if len(pairs) != expected:
                raise ValueError(f"genotype {cell} cell has {len(pairs)} (op, input) pairs; "
                                 f"space {self.name!r} expects {expected}")
            position = 0
            base = self.cell_slice(cell).start
            for node in range(self.n_nodes):
                for _ in range(min(self.inputs_per_node, node + 2)):
                    op, src = pairs[position]
                    position += 1
                    if op not in self.op_names or op == ZERO_OP:
                        raise ValueError(f"genotype {cell} op {op!r} is not a non-zero op of "
                                         f"space {self.name!r}: {', '.join(self.op_names[1:])}")
                    if not 0 <= int(src) < node + 2:
                        raise ValueError(f"genotype {cell} node {node + 2} input {src} is out "
                                         f"of range 0..{node + 1}")
                    d = base + self.edges.index((node, int(src)))
                    if arch[d]:
                        raise ValueError(f"genotype {cell} node {node + 2} uses input {src} twice")
                    arch[d] = self.op_names.index(op)
        return arch

    def describe(self, arch: Any) -> str:
        """One line per cell: ``node<-input:op`` for every active edge."""
        arch = self.validate(arch)
        lines = []
        for cell in self.cell_types:
            cell_arch = arch[self.cell_slice(cell)]
            active = [f"{n + 2}<-{src}:{self.op_names[cell_arch[e]]}"
                      for e, (n, src) in enumerate(self.edges) if cell_arch[e]]
            lines.append(f"{cell}: " + (" ".join(active) if active else "(no active edge)"))
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {**super().to_dict(), "op_names": list(self.op_names), "n_nodes": self.n_nodes,
                "inputs_per_node": self.inputs_per_node}


NB201_OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")


class NB201SearchSpace(CellSpace):
    """The NAS-Bench-201 cell: an input node 0 and nodes 1..3, every node summing an op on
    an edge from each earlier node (6 edges, all active); node 3 is the cell's output.

    An architecture is a length-6 int vector in the edge order of ``edges``,
    ``(to_node, from_node)`` = 1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2 (the order of
    NAS-Bench-201's string), each entry an index into ``op_names``. Every cell of the
    network is the same cell (one cell type, ``"cell"``). ``derive`` is the argmax per edge,
    the zero op allowed: a cell without a path from input to output is valid and simply
    passes zeros on. Encodings print and parse in NAS-Bench-201's string form
    ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`` (``to_genotype`` / ``from_genotype``).

    Args:
        name: preset name.
        op_names: candidate ops, keys of ``ops.OPS``; the zero op ``"none"``, when present,
            must come first (then index 0 means "no connection" and ``zero_op`` is True).
    """

    cell_types = ("cell",)

    def __init__(self, name: str, op_names: Sequence[str] = NB201_OPS):
        op_names = self._check_op_names(op_names)
        if not op_names:
            raise ValueError("op_names must name at least one op")
        if ZERO_OP in op_names[1:]:
            raise ValueError(f"the zero op {ZERO_OP!r} must be op 0 when present, got {op_names}")
        self.op_names = op_names
        self.n_nodes = 3
        self.edges: tuple[tuple[int, int], ...] = tuple(
            (to, src) for to in range(1, self.n_nodes + 1) for src in range(to))
        super().__init__(name, [len(op_names)] * len(self.edges), zero_op=op_names[0] == ZERO_OP,
                         decision_names=[f"edge {to}<-{src}" for to, src in self.edges])

    def to_genotype(self, arch: Any) -> str:
        """The NAS-Bench-201 string of ``arch``, e.g. ``|nor_conv_3x3~0|+|none~0|skip_connect~1|+...``."""
        arch = self.validate(arch)
        nodes = []
        for to in range(1, self.n_nodes + 1):
            nodes.append("|" + "|".join(f"{self.op_names[arch[e]]}~{src}"
                                        for e, (t, src) in enumerate(self.edges) if t == to) + "|")
        return "+".join(nodes)

    def from_genotype(self, text: str) -> np.ndarray:
        """Parse a NAS-Bench-201 string into an architecture of this space.

        Raises:
            ValueError: one line naming the malformed part, the unknown op or the wrong input.
        """
        if not isinstance(text, str):
            raise ValueError(f"a NAS-Bench-201 architecture string is expected, got {type(text).__name__}")
        nodes = text.strip().split("+")
        if len(nodes) != self.n_nodes:
            raise ValueError(f"NAS-Bench-201 string {text!r} has {len(nodes)} nodes separated by '+'; "
                             f"expected {self.n_nodes}")
        arch = np.zeros(self.n_edges, dtype=np.int64)
        for to, node in enumerate(nodes, start=1):
            parts = node.split("|")
            if len(parts) != to + 2 or parts[0] or parts[-1]:
                raise ValueError(f"node {to} of {text!r} must read |op~0|...|op~{to - 1}|, got {node!r}")
            for src, part in enumerate(parts[1:-1]):
                op, sep, source = part.partition("~")
                if not sep or source != str(src):
                    raise ValueError(f"node {to} of {text!r}: expected op~{src}, got {part!r}")
                if op not in self.op_names:
                    raise ValueError(f"op {op!r} in {text!r} is not an op of space {self.name!r}: "
                                     f"{', '.join(self.op_names)}")
                arch[self.edges.index((to, src))] = self.op_names.index(op)
        return arch

    def describe(self, arch: Any) -> str:
        """The NAS-Bench-201 string."""
        return self.to_genotype(arch)

    def to_dict(self) -> dict:
        return {**super().to_dict(), "cell": "nb201", "op_names": list(self.op_names)}


def as_space_factory(loaded: object, name: str) -> Callable[[], SearchSpace]:
    """A plug-in space, checked: a ``SearchSpace`` (or a function of no arguments returning
    one) whose every decision has at least two choices and that ``from_dict`` rebuilds from
    ``to_dict`` (checkpoints and results store it so)."""
    space = loaded() if callable(loaded) and not isinstance(loaded, SearchSpace) else loaded
    if not isinstance(space, SearchSpace):
        raise TypeError(f"gives {type(space).__name__}, not a nasgen.searchspace.SearchSpace")
    narrow = [k for k, c in enumerate(space.choices) if c < 2]
    if narrow:
        raise ValueError(f"decision {narrow[0]} ({space.decision_name(narrow[0])}) has {space.choices[narrow[0]]} "
                         f"choice(s); every decision needs at least 2")
    try:
        rebuilt = from_dict(space.to_dict())
    except (TypeError, ValueError) as error:
        raise ValueError(f"from_dict cannot rebuild it from to_dict: {error}") from None
    if rebuilt != space or type(rebuilt) is not type(space):
        raise ValueError(f"from_dict(to_dict()) gives a {type(rebuilt).__name__} {rebuilt.to_dict()}, not the "
                         f"space itself: build it from SearchSpace, CellSearchSpace or NB201SearchSpace")
    return loaded if callable(loaded) and not isinstance(loaded, SearchSpace) else (lambda: space)


#: Entry-point group of search-space plug-ins (``[project.entry-points."nasgen.spaces"]``).
SPACES_GROUP = "nasgen.spaces"
PRESETS: Registry[Callable[[], SearchSpace]] = Registry("search space", group=SPACES_GROUP,
                                                        check=as_space_factory)
# The DARTS CIFAR-10 space: 4 nodes, 14 edges per cell, 8 ops -> 28 decisions.
PRESETS.register("darts")(lambda: CellSearchSpace("darts", DARTS_OPS, n_nodes=4))
# A CPU-sized space with the same API: 3 nodes, 9 edges per cell, 5 ops -> 18 decisions.
PRESETS.register("small")(lambda: CellSearchSpace(
    "small", ("none", "skip_connect", "max_pool_3x3", "sep_conv_3x3", "dil_conv_3x3"), n_nodes=3))
# The NAS-Bench-201 cell: 6 edges, 5 ops -> 15,625 encodings.
PRESETS.register("nb201")(lambda: NB201SearchSpace("nb201", NB201_OPS))
# Without the zero op (AdvantageNAS's CIFAR setting): 4 ops -> 4,096 encodings.
PRESETS.register("nb201-nozero")(lambda: NB201SearchSpace("nb201-nozero", NB201_OPS[1:]))


def names() -> list[str]:
    """The search spaces ``get`` knows: the presets, then the plug-ins installed."""
    return PRESETS.list()


def check_space_name(name: str) -> SearchSpace:
    """The space ``name`` builds; ValueError (one line, the known names) for an unknown one."""
    try:
        return get(name)
    except KeyError:
        raise ValueError(f"unknown search space {name!r}; choose from: {', '.join(names())}"[:2000]) from None


def get(name: str) -> SearchSpace:
    """Build the space ``name``: a preset, an installed plug-in, or a ``module:attribute``
    reference to a ``SearchSpace`` or to a function returning one.

    Raises:
        KeyError: for an unknown name, listing the known ones.
        PluginError: a plug-in that cannot be used (one line).
    """
    return PRESETS.get(name)()


#: Bounds on spaces read from files: far above any real space, far below what exhausts memory
#: (a cell of n nodes has n (n + 3) / 2 edges; controllers hold decisions x choices tables).
MAX_CELL_NODES = 32
MAX_DECISIONS = 100_000


def _field(spec: dict, key: str, kind: type, item: type | None = None, default: Any = ...) -> Any:
    """``spec[key]`` checked to be a ``kind`` (a list of ``item``); ValueError naming it otherwise."""
    if key not in spec:
        if default is not ...:
            return default
        raise ValueError(f"search space {spec.get('name', '?')!r} misses {key!r} (has: {', '.join(map(str, spec))})")
    value = spec[key]
    ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
    if ok and item is not None:
        ok = all(isinstance(v, item) and not (item is int and isinstance(v, bool)) for v in value)
    if not ok:
        what = f"a list of {item.__name__}" if item is not None else kind.__name__
        raise ValueError(f"search space field {key!r} must be {what}, got {value!r}"[:300])
    return value


def from_dict(spec: dict) -> SearchSpace:
    """Rebuild a space from ``SearchSpace.to_dict()`` (checkpoints, result files).

    Raises:
        ValueError: not an object, a missing or mistyped field, or a size beyond
            ``MAX_CELL_NODES`` / ``MAX_DECISIONS``.
    """
    if not isinstance(spec, dict):
        raise ValueError(f"a search space must be an object, got {spec!r}"[:300])
    name = _field(spec, "name", str)
    if spec.get("cell") == "nb201":
        return NB201SearchSpace(name, _field(spec, "op_names", list, str))
    if "op_names" in spec:
        op_names = _field(spec, "op_names", list, str)
        n_nodes = _field(spec, "n_nodes", int)
        inputs_per_node = _field(spec, "inputs_per_node", int, default=2)
        if not 1 <= n_nodes <= MAX_CELL_NODES:
            raise ValueError(f"search space {name!r}: n_nodes must be in 1..{MAX_CELL_NODES}, got {n_nodes}")
        if inputs_per_node < 1:
            raise ValueError(f"search space {name!r}: inputs_per_node must be >= 1, got {inputs_per_node}")
        return CellSearchSpace(name, op_names, n_nodes, inputs_per_node)
    choices = _field(spec, "choices", list, int)
    if len(choices) * max(choices, default=1) > MAX_DECISIONS * 100:
        raise ValueError(f"search space {name!r}: {len(choices)} decisions of up to {max(choices)} choices "
                         f"exceed the bound of {MAX_DECISIONS * 100} (decisions x choices)")
    return SearchSpace(name, choices, zero_op=_field(spec, "zero_op", bool, default=False))
