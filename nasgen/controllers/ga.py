"""``ga``: regularised ("aging") evolution (Real, Aggarwal, Huang, Le, AAAI 2019).

A population of the ``P`` most recently evaluated architectures. Each child is made by a
tournament: draw ``S`` members at random, mutate the best of them. When a child's reward
arrives it joins the population and the *oldest* member leaves, whatever its reward, so an
architecture that was lucky once cannot stay forever (the "regularisation").
"""

from __future__ import annotations

from collections import deque
from typing import Any, Optional, Sequence

import numpy as np

from .base import BestSoFar, register


@register("ga")
class RegularizedEvolution(BestSoFar):
    """Aging evolution with tournament selection and single-decision mutation.

    Until ``P`` architectures have been told, ``ask`` samples uniformly (the initial
    population). After that every asked architecture is a mutated tournament winner.

    ``derive()`` answers the best architecture of the whole history (as Real et al. report
    their search's result), not only of the current population, so a good architecture that
    aged out is not lost; with noisy rewards it is the best *observed* reward.

    Args:
        space: the search space.
        seed: seeds ``self.rng``.
        population_size: ``P`` (100 in Real et al.).
        sample_size: ``S``, the tournament size (25 in Real et al.); capped at the
            population's current size.
        mutation_rate: None (default): every child changes exactly one randomly chosen
            decision, as in the paper. A float in (0, 1]: each decision changes
            independently with that probability (at least one always changes).

    Attributes:
        population: deque of ``(arch, reward)``, oldest first.
        best_arch, best_reward: the best of the history.
    """

    def __init__(self, space, seed: int = 0, population_size: int = 100, sample_size: int = 25,
                 mutation_rate: Optional[float] = None):
        super().__init__(space, seed)
        if population_size < 1 or sample_size < 1:
            raise ValueError(f"population_size and sample_size must be >= 1, got {population_size}, {sample_size}")
        if sample_size > population_size:
            raise ValueError(f"sample_size {sample_size} exceeds population_size {population_size}")
        if mutation_rate is not None and not 0 < mutation_rate <= 1:
            raise ValueError(f"mutation_rate must be None or lie in (0, 1], got {mutation_rate}")
        self.population_size, self.sample_size = int(population_size), int(sample_size)
        self.mutation_rate = mutation_rate
        self.population: deque[tuple[np.ndarray, float]] = deque()
        self._mutable = np.flatnonzero(np.asarray(space.choices) > 1)

    def ask(self, n: int = 1) -> list[np.ndarray]:
        out = []
        for _ in range(self._check_ask(n)):
            if len(self.population) < self.population_size:
                out.append(self.space.sample(self.rng))
            else:
                out.append(self.mutate(self._tournament()))
        return out

    def _tournament(self) -> np.ndarray:
        size = min(self.sample_size, len(self.population))
        picks = self.rng.choice(len(self.population), size=size, replace=False)
        # Ties go to the earliest drawn member, which keeps the choice a function of rng only.
        winner = max(picks, key=lambda k: self.population[k][1])
        return self.population[winner][0]

    def mutate(self, arch: np.ndarray) -> np.ndarray:
        """A copy of ``arch`` with one (or, with ``mutation_rate``, several) decisions set to a
        different choice drawn uniformly."""
        child = arch.copy()
        if self._mutable.size == 0:  # nothing can change: every decision has one choice
            return child
        if self.mutation_rate is None:
            which = self.rng.choice(self._mutable, size=1)
        else:
            which = self._mutable[self.rng.random(self._mutable.size) < self.mutation_rate]
            if which.size == 0:
                which = self.rng.choice(self._mutable, size=1)
        choices = np.asarray(self.space.choices)
        for i in which:
            # Uniform over the other choices: shift by 1..K-1 modulo K.
            child[i] = (child[i] + 1 + self.rng.integers(choices[i] - 1)) % choices[i]
        return child

    def tell(self, archs: Sequence[Any], rewards: Sequence[float],
             infos: Optional[Sequence[dict]] = None) -> dict[str, float]:
        archs, rewards, infos, finite = self._check_tell(archs, rewards, infos)
        for arch, reward in zip(archs[finite], rewards[finite]):
            self.population.append((arch.copy(), float(reward)))
            if len(self.population) > self.population_size:
                self.population.popleft()
        self._keep_best(archs, rewards, finite)
        population_mean = (float(np.mean([r for _, r in self.population])) if self.population else float("nan"))
        return self._metrics(archs, rewards, finite, best_reward=self.best_reward,
                             population_size=len(self.population), population_reward_mean=population_mean)

    def op_probabilities(self) -> np.ndarray:
        """Choice frequencies in the current population (uniform while it is empty); their
        entropy measures the population's diversity."""
        mask = self.space.choice_mask()
        if not self.population:
            return mask / mask.sum(axis=1, keepdims=True)
        counts = np.zeros(mask.shape)
        archs = np.stack([a for a, _ in self.population])
        np.add.at(counts, (np.broadcast_to(np.arange(archs.shape[1]), archs.shape), archs), 1.0)
        return counts / len(self.population)

    def state_dict(self) -> dict:
        return {**super().state_dict(), "population": [(a.copy(), r) for a, r in self.population]}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.population = deque((np.array(a, dtype=np.int64), float(r)) for a, r in state["population"])
