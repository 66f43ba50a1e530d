"""``reinforce``: a factorised categorical policy trained by REINFORCE (Williams, 1992).

``theta`` holds one row of logits per decision; a sample draws every decision
independently. The update ascends ``(R - b) * d log p(a) / d theta = (R - b)(onehot(a) - p)``
with ``b`` an exponential moving average of the reward, so only better-than-usual
architectures gain probability.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

from .base import CategoricalPolicy, Controller, register
from .logits import LogitOptimizer


@register("reinforce")
class Reinforce(Controller):
    """REINFORCE with an exponential-moving-average reward baseline on a factorised policy.

    The optimiser is Adam (``torch.optim.Adam`` on theta through ``logits.LogitOptimizer``)
    rather than plain SGD: Adam's per-coordinate normalisation makes
    the step size independent of the reward's scale (a cross-entropy of ~2 on the supernet,
    an MSE of ~0.07 on the teacher toy), so one default works on every environment. This is
    also what the AdvantageNAS authors used for their REINFORCE baseline.

    Args:
        space: the search space.
        seed: seeds ``self.rng`` (sampling).
        lr: Adam step size on the logits; 0.05, the fastest that does not collapse onto
            wrong ops on the teacher toy (docs: Controllers > reinforce).
        baseline_decay: decay of the reward EMA baseline (0.95 as in the AdvantageNAS toy,
            ENAS uses 0.99). The baseline starts at the first batch's mean reward.
        betas: Adam's moment decays.
        entropy_weight: weight of an entropy bonus added to the objective (0: none, as in
            plain REINFORCE).

    Attributes:
        policy: the ``CategoricalPolicy`` (``policy.theta`` are the logits).
        baseline: the current EMA baseline (None before the first reward).
    """

    def __init__(self, space, seed: int = 0, lr: float = 0.05, baseline_decay: float = 0.95,
                 betas: tuple[float, float] = (0.9, 0.999), entropy_weight: float = 0.0):
        super().__init__(space, seed)
        if not 0 <= baseline_decay < 1:
            raise ValueError(f"baseline_decay must lie in [0, 1), got {baseline_decay}")
        if entropy_weight < 0:
            raise ValueError(f"entropy_weight must be >= 0, got {entropy_weight}")
        self.policy = CategoricalPolicy(space)
        self.optimizer = LogitOptimizer(self.policy, lr, betas)
        self.baseline_decay = float(baseline_decay)
        self.entropy_weight = float(entropy_weight)
        self.baseline: Optional[float] = None

    def ask(self, n: int = 1) -> list[np.ndarray]:
        return self.policy.sample(self._check_ask(n), self.rng)

    def tell(self, archs: Sequence[Any], rewards: Sequence[float],
             infos: Optional[Sequence[dict]] = None) -> dict[str, float]:
        archs, rewards, infos, finite = self._check_tell(archs, rewards, infos)
        used_baseline = float("nan")
        if finite.any():
            good, r = archs[finite], rewards[finite]
            if self.baseline is None:
                self.baseline = float(r.mean())
            used_baseline = self.baseline
            advantage = r - self.baseline
            grad = (advantage[:, None, None] * self.policy.log_prob_grad(good)).mean(axis=0)
            if self.entropy_weight:
                grad += self.entropy_weight * _entropy_grad(self.policy)
            self.optimizer.ascend(grad)
            for value in r:  # one EMA step per reward, whatever the batch size
                self.baseline = self.baseline_decay * self.baseline + (1 - self.baseline_decay) * float(value)
        return self._metrics(archs, rewards, finite, baseline=used_baseline)

    def derive(self) -> np.ndarray:
        return self.space.derive(self.op_probabilities())

    def op_probabilities(self) -> np.ndarray:
        return self.policy.probs()

    def state_dict(self) -> dict:
        return {**super().state_dict(), "optimizer": self.optimizer.state_dict(), "baseline": self.baseline}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.optimizer.load_state_dict(state["optimizer"])
        self.baseline = state["baseline"]


def _entropy_grad(policy: CategoricalPolicy) -> np.ndarray:
    """Gradient of the summed per-decision entropy with respect to the logits."""
    p = policy.probs()
    logp = np.log(np.where(policy.mask, p, 1.0))
    h = -(p * logp).sum(axis=1, keepdims=True)
    return -p * (logp + h) * policy.mask
