"""``nasgen/NASBenchGraph-v0``: rewards looked up in the NAS-Bench-Graph table.

NAS-Bench-Graph (Qin et al., NeurIPS 2022 datasets track; pip package ``nas-bench-graph``,
which ships the tables) trained 26,206 graph-neural-network architectures on 9 datasets. An
architecture is a DAG of 4 computing nodes: a *link structure* says which earlier node (0 =
the raw input) feeds each node, and each node applies one op. Every leaf node feeds the
output.

Encoding used here (every in-range action except one family is a table entry):

- decision 0, ``link structure``: an index into the benchmark's 9 canonical link structures
  (``nas_bench_graph.architecture.link_list``, e.g. 8 = the chain ``[0, 1, 2, 3]``). The
  other 15 input patterns of the macro space are isomorphic to these, so nothing is lost.
- decisions 1-4, ``op of node k``: an index into the benchmark's ops
  (``gat gcn gin cheb sage arma graph fc skip``; ``proteins`` was run only with
  ``gcn sage arma fc skip``). ``skip`` is the identity, not "no connection", so the space has
  ``zero_op=False``.

All 9 x 9^4 combinations (9 x 5^4 for proteins) map onto a table entry through the
benchmark's own canonical hash, except the 9 (link structure, all four ops ``skip``)
architectures, which have no graph layer and are not in the table. Those raise ``ValueError``
(the default), or, with ``invalid_reward=<float>``, give that reward with
``info["invalid"] = True``; ``space.sample`` never draws them, and
``space.valid_choices(prefix)`` masks the last ``skip`` out when one decision is made per
step (``SequentialArchitectureEnv``), so a masked agent never meets them.

The package is optional (``pip install "nasgen[bench]"``): importing ``nasgen.envs`` works
without it, and making the env raises an ``ImportError`` that says what to install.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Optional

import gymnasium as gym
import numpy as np

from nasgen.searchspace import SearchSpace

from .base import ArchitectureEnv

#: The benchmark's datasets (``valid_perf``/``perf`` are accuracies, ROC-AUC for proteins).
DATASETS = ("cora", "citeseer", "pubmed", "cs", "physics", "photo", "computers", "arxiv", "proteins")
N_NODES = 4
_INSTALL_HINT = 'NASBenchGraph-v0 needs the package nas-bench-graph: pip install "nasgen[bench]"'


def _bench_module():
    """The ``nas_bench_graph`` package, or an ImportError naming the extra to install."""
    try:
        import nas_bench_graph
        from nas_bench_graph import architecture
    except ImportError as error:
        raise ImportError(f"{_INSTALL_HINT} (import failed: {error})") from error
    return nas_bench_graph, architecture


@functools.lru_cache(maxsize=None)
def _load_table(dataset: str) -> dict:
    """The benchmark's light table of ``dataset`` (read once per process, never modified)."""
    bench, _ = _bench_module()
    return bench.light_read(dataset)


class NASBenchGraphSpace(SearchSpace):
    """The NAS-Bench-Graph macro space: a link structure, then one op per computing node.

    Args:
        node_ops: op names of the benchmark, in its order.
        link_structures: the canonical link structures (one input node per computing node).
    """

    def __init__(self, node_ops: Any, link_structures: Any):
        self.node_ops = tuple(str(op) for op in node_ops)
        self.link_structures = tuple(tuple(int(i) for i in links) for links in link_structures)
        if "skip" not in self.node_ops:
            raise ValueError(f"the benchmark's ops must include 'skip', got {self.node_ops}")
        self.skip_index = self.node_ops.index("skip")
        names = ["link structure"] + [f"op of node {k + 1}" for k in range(N_NODES)]
        super().__init__(f"nas-bench-graph-{len(self.node_ops)}ops",
                         [len(self.link_structures)] + [len(self.node_ops)] * N_NODES,
                         zero_op=False, decision_names=names)

    def is_all_skip(self, arch: np.ndarray) -> bool:
        """True for the architectures without any graph layer (not in the table)."""
        return bool(np.all(arch[1:] == self.skip_index))

    def validate(self, arch: Any, allow_all_skip: bool = False) -> np.ndarray:
        """Check ``arch`` (see ``SearchSpace.validate``) and that it is in the table.

        Args:
            arch: the architecture.
            allow_all_skip: accept the all-``skip`` architectures (the env's ``invalid_reward``).

        Raises:
            ValueError: bad shape, type or range, or every node op is ``skip``.
        """
        arch = super().validate(arch)
        if not allow_all_skip and self.is_all_skip(arch):
            raise ValueError(f"arch[1:5] are all 'skip' (op of node 1..4): NAS-Bench-Graph has no "
                             f"architecture without a graph layer; at least one of op of node 1..4 "
                             f"must be in 0..{len(self.node_ops) - 1} except {self.skip_index} ('skip')")
        return arch

    def valid_choices(self, prefix: Any) -> np.ndarray:
        """Which choices of decision ``len(prefix)`` can still complete ``prefix`` to a table
        architecture (the action mask of the sequential view).

        Args:
            prefix: the decisions made so far.

        Returns:
            Bool ``[max_choices]``: the existing choices, less ``skip`` for the last node
            when every earlier node is ``skip``.
        """
        prefix = np.asarray(prefix, dtype=np.int64)
        position = len(prefix)
        mask = np.arange(self.max_choices) < self.choices[position]
        if position == self.n_decisions - 1 and np.all(prefix[1:] == self.skip_index):
            mask[self.skip_index] = False
        return mask

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        """A uniformly random architecture of the table (all-``skip`` ones are redrawn)."""
        while True:
            arch = super().sample(rng)
            if not self.is_all_skip(arch):
                return arch

    def to_bench(self, arch: Any, allow_all_skip: bool = False) -> tuple[list[int], list[str]]:
        """``(link, ops)`` as the benchmark's ``Arch(link, ops)`` takes them."""
        arch = self.validate(arch, allow_all_skip)
        return list(self.link_structures[arch[0]]), [self.node_ops[a] for a in arch[1:]]

    def describe(self, arch: Any) -> str:
        link, ops = self.to_bench(arch, allow_all_skip=True)
        return f"link {link} ops {' '.join(ops)}"

    def to_dict(self) -> dict:
        return {**super().to_dict(), "node_ops": list(self.node_ops),
                "link_structures": [list(links) for links in self.link_structures]}


class NASBenchGraphEnv(ArchitectureEnv):
    """One step looks one GNN architecture up in the NAS-Bench-Graph table.

    Reward: the table's ``valid_perf`` of the architecture: validation accuracy (ROC-AUC for
    ``proteins``) in [0, 1], **higher is better** (no sign flip, unlike the loss-based envs).
    Deterministic: the table holds one number per architecture.

    Observation: ``[last reward]`` (float32, 0 before the first step).

    info: ``valid_perf`` (= reward), ``test_perf`` (the table's test performance, never used
    for the reward), ``test_regret = best_test - test_perf``, ``valid_regret = best_valid -
    valid_perf``, ``params`` (millions, from the table), ``latency`` (seconds), ``hash`` (the
    benchmark's key), ``evaluations`` (1), ``nonfinite`` (False) and ``invalid``.

    ``env.unwrapped`` exposes ``table``, ``best_valid``, ``best_test``, ``best_arch`` (the
    architecture with the best ``valid_perf``), ``best_arch_test`` (its test performance:
    the regret of an oracle on validation), ``lookup(arch)`` and ``score(arch)``.

    Args:
        dataset: one of ``DATASETS``.
        invalid_reward: ``None`` (default): an all-``skip`` architecture raises ValueError;
            a float: it gets this reward and ``info["invalid"] = True`` instead.
        credit: only ``None``: a table has no gates to ablate, so no per-edge credit.
        seed: see ``ArchitectureEnv`` (the table is deterministic; the seed only drives
            ``np_random``).

    Raises:
        ImportError: the ``nas-bench-graph`` package is not installed.
        ValueError: unknown dataset, non-finite ``invalid_reward`` or a credit mode.
    """

    credit_modes: tuple[str, ...] = ()  # a table has no gates to ablate

    @staticmethod
    def dataset_names() -> list[str]:
        """The names ``dataset=`` accepts (the benchmark's; no package needed to ask)."""
        return list(DATASETS)

    def __init__(self, dataset: str = "cora", invalid_reward: Optional[float] = None,
                 credit: Optional[str] = None, seed: Optional[int] = None):
        _, architecture = _bench_module()
        if credit is not None:
            raise ValueError(f"NASBenchGraph-v0 cannot give credit={credit!r}: the table has no gates "
                             f"to ablate; use credit=None (black-box controllers)")
        if dataset not in DATASETS:
            raise ValueError(f"unknown NAS-Bench-Graph dataset {dataset!r}; known: {', '.join(DATASETS)}")
        if invalid_reward is not None and not math.isfinite(invalid_reward):
            raise ValueError(f"invalid_reward must be finite or None, got {invalid_reward}")
        ops = architecture.gnn_list_proteins if dataset == "proteins" else architecture.gnn_list
        space = NASBenchGraphSpace(ops, architecture.link_list)
        super().__init__(space, seed=seed)
        self.dataset = dataset
        self.invalid_reward = None if invalid_reward is None else float(invalid_reward)
        self._arch_class = architecture.Arch
        self.table = _load_table(dataset)
        self._keys: dict[tuple[int, ...], int] = {}
        records = list(self.table.values())
        self.best_valid = float(max(r["valid_perf"] for r in records))
        self.best_test = float(max(r["perf"] for r in records))
        best_key = max(self.table, key=lambda k: (self.table[k]["valid_perf"], -k))
        self.best_arch = self._arch_of_key(best_key)
        self.best_arch_test = float(self.table[best_key]["perf"])
        low, high = self.reward_obs_bounds
        self.observation_space = gym.spaces.Box(np.float32(low), np.float32(high), shape=(1,), dtype=np.float32)

    @property
    def reward_obs_bounds(self) -> tuple[float, float]:
        """Rewards are performances in [0, 1], widened to hold ``invalid_reward``."""
        extra = 0.0 if self.invalid_reward is None else self.invalid_reward
        return (min(0.0, extra), max(1.0, extra))

    # --- table access -------------------------------------------------------------------------
    def _key(self, arch: np.ndarray) -> int:
        """The benchmark's canonical hash of a validated architecture (cached)."""
        k = tuple(int(a) for a in arch)
        if k not in self._keys:
            link, ops = self.space.to_bench(arch)
            self._keys[k] = self._arch_class(link, ops).valid_hash()
        return self._keys[k]

    def _arch_of_key(self, key: int) -> np.ndarray:
        """The architecture of a table key: the key is the canonical form written in base 10
        (link-structure index, then the ops' indices in the full op list)."""
        _, architecture = _bench_module()
        digits = [int(c) for c in str(key).zfill(N_NODES + 1)]
        arch = np.array([digits[0]] + [self.space.node_ops.index(architecture.gnn_list[d])
                                       for d in digits[1:]], dtype=np.int64)
        if self._key(arch) != key:  # pragma: no cover - guards against a changed hash scheme
            raise RuntimeError(f"cannot decode NAS-Bench-Graph key {key}")
        return arch

    def lookup(self, arch: Any) -> dict[str, float]:
        """The table's record of ``arch``: ``valid_perf``, ``test_perf``, ``params``, ``latency``.

        Raises:
            ValueError: invalid architecture (see ``NASBenchGraphSpace.validate``).
        """
        arch = self.space.validate(arch)
        record = self.table[self._key(arch)]
        return {"valid_perf": float(record["valid_perf"]), "test_perf": float(record["perf"]),
                "params": float(record["para"]), "latency": float(record["latency"])}

    def score(self, arch: Any) -> float:
        """The reward ``step`` would give ``arch``, without taking a step.

        The table's validation performance, or ``invalid_reward`` for an all-``skip``
        architecture when the env was made with one (else ValueError, as in ``step``).
        """
        arch = self.space.validate(arch, allow_all_skip=self.invalid_reward is not None)
        if self.space.is_all_skip(arch):
            return self.invalid_reward
        return self.lookup(arch)["valid_perf"]

    # --- gymnasium API ------------------------------------------------------------------------
    def step(self, action: Any):
        arch = self.space.validate(action, allow_all_skip=self.invalid_reward is not None)
        self._check_can_step()
        if self.space.is_all_skip(arch):
            nan = float("nan")
            reward = self.invalid_reward
            info = {"valid_perf": nan, "test_perf": nan, "test_regret": nan, "valid_regret": nan,
                    "params": nan, "latency": nan, "hash": -1, "invalid": True}
        else:
            key = self._key(arch)
            record = self.lookup(arch)
            reward = record["valid_perf"]
            info = {**record, "test_regret": self.best_test - record["test_perf"],
                    "valid_regret": self.best_valid - record["valid_perf"], "hash": int(key),
                    "invalid": False}
        info.update(evaluations=1, nonfinite=False)
        self.steps += 1
        self.evaluations += 1
        self.last_reward = float(reward)
        self._episode_over = True
        return self._observation(), float(reward), True, False, info

    # --- hooks ----------------------------------------------------------------------------------
    def _build(self) -> None:
        """Nothing to build: the table is fixed."""

    def _observation(self) -> np.ndarray:
        return np.array([self._clipped_reward()], dtype=np.float32)

    def state_dict(self) -> dict:
        return {**self._base_state(), "dataset": self.dataset}

    def load_state_dict(self, state: dict) -> None:
        if state["dataset"] != self.dataset:
            raise ValueError(f"environment state is for dataset {state['dataset']!r}, not {self.dataset!r}")
        self._load_base_state(state)
