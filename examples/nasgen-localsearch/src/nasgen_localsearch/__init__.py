"""``localsearch``: first-improvement local search with random restarts, a nasgen plug-in.

White, Nolen and Savani ("Exploring the loss landscape in neural architecture search",
UAI 2021) argue that plain local search is a strong baseline on NAS benchmarks: the
neighbourhood of one decision changed is small, and good architectures tend to lie close
to other good ones. This package is also the worked example of a controller shipped in its
own distribution: ``pyproject.toml`` declares it under the entry-point group
``nasgen.controllers``, so ``--controller localsearch`` works in every nasgen command
(search, resume, sweep on Ray, compare) once the package is installed.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

from nasgen.controllers import BestSoFar

__all__ = ["LocalSearch"]
__version__ = "0.1.0"


class LocalSearch(BestSoFar):
    """First-improvement local search over one-decision neighbours, restarting at local optima.

    The search stands on a *current* architecture. Its neighbours are the architectures
    that differ from it in exactly one decision; ``ask`` hands them out in a random order
    (a fresh permutation from ``self.rng`` each time the current architecture changes), and
    the first one whose reward beats the current reward becomes the new current
    architecture (first improvement: no need to evaluate the whole neighbourhood before
    moving). The architecture just left is not asked again from the new one: it is known
    to be worse. When every neighbour has been told without beating the current one, the
    current architecture is a local optimum: with ``restarts`` the next architecture asked
    is drawn uniformly and becomes the current one whatever its reward; without, the
    neighbourhood is asked again in a new order (useful where rewards are noisy).

    Batches: with ``neighbours_per_step`` > 1 (or any ``ask(n)`` with n > 1) a batch holds
    the next neighbours in the permutation, and ``tell`` goes through it in that order, so
    it moves to the first improvement of the batch as a one-at-a-time search would; a
    later architecture of the batch that beats the new current one is moved to as well.
    When a neighbourhood runs out within a batch, the rest of the batch is uniform draws
    (with ``restarts``) or the start of a new pass (without).

    Any told architecture with a finite reward that beats the current one is moved to,
    whether it was asked as a neighbour or not, so that told rewards are never thrown away;
    non-finite rewards are skipped. ``derive()`` answers the best architecture ever told
    (the best observed reward; with noisy rewards, a lucky evaluation can win), which
    ``BestSoFar`` keeps and checkpoints.

    Args:
        space: the search space.
        seed: seeds ``self.rng``, the only source of randomness.
        neighbours_per_step: architectures the search loop asks for per step
            (``samples_per_step``); 1 is sequential first improvement, more suits envs that
            evaluate a batch at once.
        restarts: restart from a uniform draw at a local optimum (True), or search the same
            neighbourhood again (False).

    Attributes:
        current, current_reward: where the search stands (None and -inf before any reward).
        untried: ``[m, 2]`` int array of the moves ``(decision, choice)`` of the current
            architecture not asked yet, in the order they will be asked.
        stuck: the current architecture is a local optimum; the next told architecture
            is the restart.
        best_arch, best_reward: the best architecture told so far and its reward (``BestSoFar``).
        moves, restarts_done: improvements moved to, and restarts, so far.
    """

    def __init__(self, space, seed: int = 0, neighbours_per_step: int = 1, restarts: bool = True):
        super().__init__(space, seed)
        if isinstance(neighbours_per_step, bool) or not isinstance(neighbours_per_step, (int, np.integer)) \
                or neighbours_per_step < 1:
            raise ValueError(f"neighbours_per_step must be an int >= 1, got {neighbours_per_step!r}")
        if not isinstance(restarts, (bool, np.bool_)):
            raise ValueError(f"restarts must be True or False, got {restarts!r}")
        self.neighbours_per_step = int(neighbours_per_step)
        self.samples_per_step = self.neighbours_per_step
        self.restarts = bool(restarts)
        self.current: Optional[np.ndarray] = None
        self.current_reward = -np.inf
        self.untried = np.zeros((0, 2), dtype=np.int64)
        self.stuck = False
        self.moves = 0
        self.restarts_done = 0

    # --- neighbourhoods -------------------------------------------------------------------------
    def _moves_of(self, arch: np.ndarray, skip: Optional[tuple[int, int]] = None) -> np.ndarray:
        """Every one-decision move ``(decision, choice)`` away from ``arch``, in a random order
        drawn from ``self.rng``; ``skip`` (the move back to where the search came from) left out."""
        moves = [(d, c) for d, count in enumerate(self.space.choices) for c in range(count)
                 if c != arch[d] and (d, c) != skip]
        moves = np.array(moves, dtype=np.int64).reshape(-1, 2)
        return moves[self.rng.permutation(len(moves))]

    def _stand_on(self, arch: np.ndarray, reward: float, came_from: Optional[np.ndarray] = None) -> None:
        """Make ``arch`` the current architecture, with a fresh neighbourhood to try."""
        skip = None
        if came_from is not None:
            changed = np.flatnonzero(came_from != arch)
            if changed.size == 1:
                skip = (int(changed[0]), int(came_from[changed[0]]))
        self.current, self.current_reward = arch.copy(), float(reward)
        self.untried = self._moves_of(self.current, skip)
        self.stuck = False

    # --- the interface ----------------------------------------------------------------------------
    def ask(self, n: int = 1) -> list[np.ndarray]:
        out = []
        for _ in range(self._check_ask(n)):
            if self.current is None or self.stuck:  # a start, or a restart
                out.append(self.space.sample(self.rng))
                continue
            if len(self.untried) == 0:  # the neighbourhood ran out within this batch
                if self.restarts:
                    out.append(self.space.sample(self.rng))
                    continue
                self.untried = self._moves_of(self.current)
                if len(self.untried) == 0:  # no decision has a second choice: nothing else to ask
                    out.append(self.current.copy())
                    continue
            decision, choice = self.untried[0]
            self.untried = self.untried[1:]
            neighbour = self.current.copy()
            neighbour[decision] = choice
            out.append(neighbour)
        return out

    def tell(self, archs: Sequence[Any], rewards: Sequence[float],
             infos: Optional[Sequence[dict]] = None) -> dict[str, float]:
        archs, rewards, infos, finite = self._check_tell(archs, rewards, infos)
        self._keep_best(archs, rewards, finite)
        for arch, reward in zip(archs[finite], rewards[finite]):
            if self.current is None:
                self._stand_on(arch, reward)
            elif self.stuck:
                self.restarts_done += 1
                self._stand_on(arch, reward)
            elif reward > self.current_reward:
                self.moves += 1
                self._stand_on(arch, reward, came_from=self.current)
        if self.current is not None and len(self.untried) == 0 and not self.stuck:
            # Every neighbour was asked and none beat the current architecture: a local optimum.
            self.stuck = self.restarts
            if not self.restarts:
                self.untried = self._moves_of(self.current)
        return self._metrics(archs, rewards, finite, best_reward=self.best_reward,
                             current_reward=self.current_reward, moves=self.moves,
                             restarts=self.restarts_done, neighbours_left=len(self.untried))

    def op_probabilities(self) -> None:
        """None: local search keeps no distribution over choices."""
        return None

    # --- checkpoints --------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {**super().state_dict(), "current": _copy(self.current), "current_reward": self.current_reward,
                "untried": self.untried.copy(), "stuck": self.stuck, "moves": self.moves,
                "restarts_done": self.restarts_done}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.current, self.current_reward = _arch(state["current"]), float(state["current_reward"])
        self.untried = np.array(state["untried"], dtype=np.int64).reshape(-1, 2)
        self.stuck = bool(state["stuck"])
        self.moves, self.restarts_done = int(state["moves"]), int(state["restarts_done"])


def _copy(arch: Optional[np.ndarray]) -> Optional[np.ndarray]:
    return None if arch is None else arch.copy()


def _arch(value: Any) -> Optional[np.ndarray]:
    """An architecture read back from a state (None stays None)."""
    return None if value is None else np.array(value, dtype=np.int64)
