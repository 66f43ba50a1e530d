"""``random``: uniform sampling, the baseline every controller must beat."""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

from .base import Controller, register


@register("random")
class RandomSearch(Controller):
    """Samples uniformly; its answer is the best architecture it has been told about."""

    def __init__(self, space, seed: int = 0):
        super().__init__(space, seed)
        self.best_arch: Optional[np.ndarray] = None
        self.best_reward = -np.inf

    def ask(self, n: int = 1) -> list[np.ndarray]:
        return [self.space.sample(self.rng) for _ in range(self._check_ask(n))]

    def tell(self, archs: Sequence[Any], rewards: Sequence[float],
             infos: Optional[Sequence[dict]] = None) -> dict[str, float]:
        archs, rewards, infos, finite = self._check_tell(archs, rewards, infos)
        for arch, reward in zip(archs[finite], rewards[finite]):
            if reward > self.best_reward:
                self.best_reward, self.best_arch = float(reward), arch.copy()
        return self._metrics(archs, rewards, finite, best_reward=self.best_reward)

    def derive(self) -> np.ndarray:
        if self.best_arch is None:  # nothing told yet: a deterministic uniform draw
            return self.space.sample(np.random.default_rng(self.seed))
        return self.best_arch.copy()

    def op_probabilities(self) -> np.ndarray:
        mask = self.space.choice_mask()
        return mask / mask.sum(axis=1, keepdims=True)

    def state_dict(self) -> dict:
        return {**super().state_dict(), "best_arch": self.best_arch, "best_reward": self.best_reward}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.best_arch = None if state["best_arch"] is None else np.array(state["best_arch"])
        self.best_reward = state["best_reward"]
