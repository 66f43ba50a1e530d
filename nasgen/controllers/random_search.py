"""``random``: uniform sampling, the baseline every controller must beat."""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

from .base import BestSoFar, register


@register("random")
class RandomSearch(BestSoFar):
    """Samples uniformly; its answer is the best architecture it has been told about."""

    def ask(self, n: int = 1) -> list[np.ndarray]:
        return [self.space.sample(self.rng) for _ in range(self._check_ask(n))]

    def tell(self, archs: Sequence[Any], rewards: Sequence[float],
             infos: Optional[Sequence[dict]] = None) -> dict[str, float]:
        archs, rewards, infos, finite = self._check_tell(archs, rewards, infos)
        self._keep_best(archs, rewards, finite)
        return self._metrics(archs, rewards, finite, best_reward=self.best_reward)

    def op_probabilities(self) -> np.ndarray:
        mask = self.space.choice_mask()
        return mask / mask.sum(axis=1, keepdims=True)
