"""``asng``: ASNG-NAS, the adaptive stochastic natural gradient (Akimoto et al., ICML 2019).

The distribution is a factorised categorical in its *expectation parameters*: ``theta[i, j]``
is the probability of choice ``j`` of decision ``i``. In those coordinates the natural
gradient of ``E[utility]`` is simply ``mean_k u_k (onehot(a_k) - theta)``, and the update is
a step of Fisher length ``delta`` along it. The step size adapts: an accumulation ``s`` of the
normalised steps is compared against what pure noise would give (``gamma``); when the steps
agree (signal) ``delta`` grows, when they cancel (noise) it shrinks. ``theta`` is kept at or
above ``theta_min = 1 / (D (K_i - 1))`` so no choice ever dies out.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

from .base import Controller, register


@register("asng")
class ASNG(Controller):
    """ASNG-NAS on a factorised categorical; works with differing choice counts.

    Samples are accumulated across ``tell`` calls until ``lam`` have arrived, then one
    update uses all of them, so ``ask(1)``/``tell`` loops and ``ask(lam)`` batches behave the
    same. Ties in the ranking give zero utility; an update whose utilities are all equal is
    skipped (nothing to learn from two equally good samples).

    Args:
        space: the search space.
        seed: seeds ``self.rng``.
        lam: samples per update (2 in the paper).
        alpha: threshold on the signal-to-noise ratio of the step-size adaptation (1.5).
        init_delta: initial step size ``delta_0`` in Fisher norm (1.0).
        delta_max: upper bound on the adaptation factor ``Delta`` (``inf``: none, as the paper).
        range_restriction: keep ``theta >= theta_min`` (True in the paper).

    Attributes:
        theta: ``[n_decisions, max_choices]`` probabilities (0 where a choice does not exist).
        delta: the current step size ``delta_0 / Delta``.
    """

    def __init__(self, space, seed: int = 0, lam: int = 2, alpha: float = 1.5, init_delta: float = 1.0,
                 delta_max: float = float("inf"), range_restriction: bool = True):
        super().__init__(space, seed)
        if isinstance(lam, bool) or not isinstance(lam, (int, np.integer)) or lam < 2:
            raise ValueError(f"lam must be an int >= 2 (a ranking needs two samples), got {lam!r}")
        if alpha <= 0 or init_delta <= 0 or delta_max <= 0:
            raise ValueError(f"alpha, init_delta and delta_max must be > 0, got {alpha}, {init_delta}, {delta_max}")
        self.lam, self.alpha, self.init_delta = int(lam), float(alpha), float(init_delta)
        self.samples_per_step = self.lam  # the search loop asks for one update's worth at a time
        self.delta_max, self.range_restriction = float(delta_max), bool(range_restriction)
        self.mask = space.choice_mask()
        choices = np.asarray(space.choices)
        self.theta = self.mask / choices[:, None]
        self.n_params = int((choices - 1).sum())  # dimension of the expectation parameters
        valid = int((choices > 1).sum())
        self.theta_min = np.where(choices > 1, 1.0 / (max(valid, 1) * np.maximum(choices - 1, 1)), 0.0)
        if not self.range_restriction:
            self.theta_min[:] = 0.0
        self.Delta = 1.0
        self.gamma = 0.0
        self.s = np.zeros(self.mask.shape)
        self._pending_archs: list[np.ndarray] = []
        self._pending_rewards: list[float] = []

    @property
    def delta(self) -> float:
        return self.init_delta / self.Delta

    def ask(self, n: int = 1) -> list[np.ndarray]:
        cdf = np.cumsum(self.theta, axis=1)
        top = np.asarray(self.space.choices) - 1
        out = []
        for _ in range(self._check_ask(n)):
            u = self.rng.random(len(top))[:, None]
            out.append(np.minimum((u >= cdf).sum(axis=1), top).astype(np.int64))
        return out

    def tell(self, archs: Sequence[Any], rewards: Sequence[float],
             infos: Optional[Sequence[dict]] = None) -> dict[str, float]:
        archs, rewards, infos, finite = self._check_tell(archs, rewards, infos)
        self._pending_archs.extend(a.copy() for a in archs[finite])
        self._pending_rewards.extend(float(r) for r in rewards[finite])
        updated = 0.0
        if len(self._pending_rewards) >= self.lam:
            updated = float(self._update(np.stack(self._pending_archs), np.asarray(self._pending_rewards)))
            self._pending_archs, self._pending_rewards = [], []
        return self._metrics(archs, rewards, finite, delta=self.delta, updated=updated)

    # --- the algorithm ------------------------------------------------------------------------
    @staticmethod
    def utility(rewards: np.ndarray) -> np.ndarray:
        """Ranking utility: the best ``ceil(n/4)`` get ``+1/mu``, the worst as many ``-1/mu``,
        the rest 0; tied rewards share the mean of their weights (so a tie of two gives 0)."""
        n = len(rewards)
        mu = int(np.ceil(n / 4))
        order = np.argsort(-rewards, kind="stable")
        by_rank = np.zeros(n)
        by_rank[:mu] = 1.0 / mu
        by_rank[n - mu:] = -1.0 / mu
        sorted_r = rewards[order]
        weights = np.empty(n)
        start = 0
        while start < n:
            stop = start + 1
            while stop < n and sorted_r[stop] == sorted_r[start]:
                stop += 1
            weights[order[start:stop]] = by_rank[start:stop].mean()
            start = stop
        return weights

    def _update(self, archs: np.ndarray, rewards: np.ndarray) -> bool:
        u = self.utility(rewards)
        if np.all(u == u[0]):
            return False
        onehot = np.zeros((len(archs),) + self.mask.shape)
        np.put_along_axis(onehot, archs[:, :, None], 1.0, axis=2)
        ngrad = ((u - u.mean())[:, None, None] * (onehot - self.theta[None])).mean(axis=0)
        # Fisher metric of a categorical in expectation parameters: |g|_F^2 = sum_j g_j^2 / theta_j.
        # g / sqrt(theta) (over all K choices) is an isometric embedding, used as F^(1/2) g.
        safe = np.where(self.mask & (self.theta > 0), self.theta, 1.0)
        fisher_root = np.where(self.mask, ngrad / np.sqrt(safe), 0.0)
        norm = float(np.sqrt((fisher_root ** 2).sum()))
        if not np.isfinite(norm) or norm < 1e-18:
            return False
        delta = self.delta
        beta = delta / np.sqrt(max(self.n_params, 1))
        self.theta = self._project(self.theta + delta * ngrad / norm)
        self.s = (1 - beta) * self.s + np.sqrt(beta * (2 - beta)) * fisher_root / norm
        self.gamma = (1 - beta) ** 2 * self.gamma + beta * (2 - beta)
        self.Delta = min(self.Delta * float(np.exp(beta * (self.gamma - (self.s ** 2).sum() / self.alpha))),
                         self.delta_max)
        return True

    def _project(self, theta: np.ndarray) -> np.ndarray:
        """Clip each row at ``theta_min`` and rescale the excess so it sums to 1 again."""
        theta = np.where(self.mask, theta, 0.0)
        lo = self.theta_min[:, None]
        theta = np.where(self.mask, np.maximum(theta, lo), 0.0)
        total = theta.sum(axis=1, keepdims=True)
        excess = total - lo * np.asarray(self.space.choices)[:, None]
        scale = np.where(excess > 0, (total - 1.0) / np.where(excess > 0, excess, 1.0), 0.0)
        theta = np.where(self.mask, theta - scale * (theta - lo), 0.0)
        return theta / theta.sum(axis=1, keepdims=True)

    # --- answers and state ----------------------------------------------------------------------
    def derive(self) -> np.ndarray:
        return self.space.derive(self.op_probabilities())

    def op_probabilities(self) -> np.ndarray:
        return self.theta.copy()

    def state_dict(self) -> dict:
        return {**super().state_dict(), "theta": self.theta.copy(), "Delta": self.Delta, "gamma": self.gamma,
                "s": self.s.copy(), "pending_archs": [a.copy() for a in self._pending_archs],
                "pending_rewards": list(self._pending_rewards)}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.theta = np.array(state["theta"], dtype=np.float64)
        self.Delta, self.gamma = float(state["Delta"]), float(state["gamma"])
        self.s = np.array(state["s"], dtype=np.float64)
        self._pending_archs = [np.array(a, dtype=np.int64) for a in state["pending_archs"]]
        self._pending_rewards = [float(r) for r in state["pending_rewards"]]
