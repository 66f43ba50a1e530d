"""``credit``: AdvantageNAS (Sato, Sakuma, Akimoto, AAAI 2021), docs/design.md section 2.

A factorised categorical policy whose every decision gets its *own* advantage: the env
reports ``info["credit"][i] ~ R(a) - R(a with edge i off)`` (exact, Taylor or hybrid), and
the update ascends ``A_i (onehot(a_i) - p_i)`` for all decisions at once. Because the
subtracted term ``R(a with edge i off)`` does not depend on ``a_i``, this is an unbiased
estimate of the policy gradient with a per-decision baseline, with far less variance than
REINFORCE's single scalar reward shared by every decision.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

from .base import CategoricalPolicy, Controller, clip_signal, register
from .reinforce import Adam

ZERO_OP_CREDIT = ("zero", "pessimistic")


@register("credit")
class CreditAssignment(Controller):
    """AdvantageNAS: per-edge advantages from the env, Adam on the logits.

    Needs the env made with ``credit="taylor"`` (the default this class declares in
    ``env_requirements``), ``"exact"`` or ``"hybrid"``; ``tell`` raises a ValueError naming
    that keyword when an info has no ``"credit"``.

    The zero-op options only act in spaces with a zero op (``space.zero_op``): there the
    zero op's credit is 0 by construction, so it wins as soon as every other op on the edge
    looks harmful, which happens early with untrained shared weights.

    Args:
        space: the search space.
        seed: seeds ``self.rng``.
        lr: Adam step size. The authors use 3e-4 (CIFAR, ~30k updates) and 1e-3 (toy,
            2,000 updates). 0.01 is the default: on the 10 x 10 teacher toy it recovers the
            teacher in a median ~130 rewards (8 of 8 seeds within 3,000), where 3e-4 misses
            it in 3 of 8 seeds and 1e-3 in 2 of 8; 0.01-0.1 all work, 0.2 starts to lock in
            wrong ops. Adam bounds each step by about ``lr`` whatever the credit's scale.
        betas: Adam's moment decays; beta1 = 0.5 as in the authors' code.
        baseline_decay: if set, subtract a per-decision EMA (this decay) of past advantages
            from each advantage (the authors' "A2" variant); None: no baseline.
        zero_op_credit: ``"zero"`` uses the env's credit (0 for the zero op);
            ``"pessimistic"`` gives a sampled zero op the worst per-op EMA credit seen on
            that edge, so "off" is only preferred once every op is known to hurt.
        pessimistic_decay: decay of the per-(decision, op) credit EMA behind
            ``"pessimistic"`` (0.95, the authors' EMA coefficient 0.05).
        skip_zero: if True, a decision that sampled the zero op contributes no gradient for
            that sample; a decision that sampled it in every sample of a ``tell`` is not
            updated at all (its Adam moments and logits stay as they were).

    Attributes:
        policy: the ``CategoricalPolicy`` (``policy.theta`` are the logits).
        baseline: per-decision EMA baseline, or None when disabled / before any credit.
        op_credit: per-(decision, op) EMA of credit, used by ``"pessimistic"``.
    """

    env_requirements = {"credit": "taylor"}

    def __init__(self, space, seed: int = 0, lr: float = 0.01, betas: tuple[float, float] = (0.5, 0.999),
                 baseline_decay: Optional[float] = None, zero_op_credit: str = "zero",
                 pessimistic_decay: float = 0.95, skip_zero: bool = False):
        super().__init__(space, seed)
        if baseline_decay is not None and not 0 <= baseline_decay < 1:
            raise ValueError(f"baseline_decay must be None or lie in [0, 1), got {baseline_decay}")
        if zero_op_credit not in ZERO_OP_CREDIT:
            raise ValueError(f"zero_op_credit must be one of {', '.join(ZERO_OP_CREDIT)}, got {zero_op_credit!r}")
        if not 0 <= pessimistic_decay < 1:
            raise ValueError(f"pessimistic_decay must lie in [0, 1), got {pessimistic_decay}")
        self.policy = CategoricalPolicy(space)
        self.optimizer = Adam(self.policy.theta.shape, lr, betas)
        self.baseline_decay = baseline_decay
        self.zero_op_credit = zero_op_credit
        self.pessimistic_decay = float(pessimistic_decay)
        self.skip_zero = bool(skip_zero)
        self.baseline: Optional[np.ndarray] = None
        self.op_credit = np.zeros(self.policy.theta.shape)
        self.op_seen = np.zeros(self.policy.theta.shape, dtype=bool)

    def ask(self, n: int = 1) -> list[np.ndarray]:
        return self.policy.sample(self._check_ask(n), self.rng)

    def tell(self, archs: Sequence[Any], rewards: Sequence[float],
             infos: Optional[Sequence[dict]] = None) -> dict[str, float]:
        """Update from per-decision credit.

        Args:
            archs: the architectures evaluated.
            rewards: their rewards (logged; the update uses only the credit).
            infos: env infos, each with ``"credit"``: one value per decision.

        Returns:
            Metrics; besides the common ones ``credit_mean``, ``baseline`` (mean over
            decisions) and ``credit_corr`` when the env reports it (hybrid).

        Raises:
            ValueError: an info without ``"credit"`` (make the env with ``credit="taylor"``)
                or with the wrong number of values.
        """
        if infos is None:
            raise ValueError(self._missing_credit_message())
        infos = list(infos)
        n_dec = self.space.n_decisions
        values = []
        for k, info in enumerate(infos):  # checked before _check_tell counts the evaluations
            if "credit" not in info:
                raise ValueError(self._missing_credit_message(k))
            value = np.asarray(info["credit"], dtype=np.float64).reshape(-1)
            if value.shape[0] != n_dec:
                raise ValueError(f"infos[{k}]['credit'] has {value.shape[0]} values; the space "
                                 f"{self.space.name!r} has {n_dec} decisions")
            values.append(value)
        archs, rewards, infos, finite = self._check_tell(archs, rewards, infos)
        credits = np.stack(values)
        # Non-finite credit is as unusable as a non-finite reward: skip and count the sample.
        finite = finite & np.isfinite(credits).all(axis=1)
        credits = clip_signal(credits)
        extra: dict[str, float] = {}
        if finite.any():
            extra = self._update(archs[finite], credits[finite])
        corr = [info["credit_corr"] for info in infos if "credit_corr" in info]
        if corr:
            extra["credit_corr"] = float(corr[-1])
        return self._metrics(archs, rewards, finite, **extra)

    def _update(self, archs: np.ndarray, credits: np.ndarray) -> dict[str, float]:
        advantage = credits.copy()
        rows = np.arange(archs.shape[1])
        zero = (archs == 0) if self.space.zero_op else np.zeros(archs.shape, dtype=bool)
        used = ~zero if self.skip_zero else np.ones(archs.shape, dtype=bool)
        for a, c, z in zip(archs, credits, zero):
            # Fold this sample's credit into the per-(decision, op) EMA (non-zero ops only).
            live = ~z
            idx = (rows[live], a[live])
            d = self.pessimistic_decay
            self.op_credit[idx] = np.where(self.op_seen[idx], d * self.op_credit[idx] + (1 - d) * c[live], c[live])
            self.op_seen[idx] = True
        if self.zero_op_credit == "pessimistic" and zero.any():
            # A sampled zero op gets the worst EMA credit among the non-zero ops seen on its
            # edge (0 while none has been seen).
            known = self.op_seen.copy()
            known[:, 0] = False
            worst = np.where(known, self.op_credit, np.inf).min(axis=1)
            worst = np.where(np.isfinite(worst), worst, 0.0)
            advantage = np.where(zero, worst[None, :], advantage)
        out: dict[str, float] = {"credit_mean": float(credits.mean())}
        if self.baseline_decay is not None:
            if self.baseline is None:
                self.baseline = np.where(used, advantage, 0.0).sum(axis=0) / np.maximum(used.sum(axis=0), 1)
            base = self.baseline.copy()
            for adv, u in zip(advantage, used):
                self.baseline = np.where(u, self.baseline_decay * self.baseline + (1 - self.baseline_decay) * adv,
                                         self.baseline)
            advantage = advantage - base[None, :]
            out["baseline"] = float(base.mean())
        advantage = np.where(used, advantage, 0.0)
        grad = (advantage[:, :, None] * self.policy.log_prob_grad(archs)).mean(axis=0)
        # A decision skipped in every sample is left alone entirely, Adam momentum included.
        where = used.any(axis=0)[:, None] if self.skip_zero else None
        self.policy.theta += self.optimizer.step(grad, where) * self.policy.mask
        return out

    def _missing_credit_message(self, k: Optional[int] = None) -> str:
        where = "tell() got no infos" if k is None else f"infos[{k}] has no 'credit'"
        return (f"controller 'credit' needs per-decision credit: {where}; make the environment "
                f"with the credit keyword, e.g. gym.make(..., credit='taylor') "
                f"(or 'exact' / 'hybrid'), and pass the step infos to tell()")

    # --- answers and state ----------------------------------------------------------------------
    def derive(self) -> np.ndarray:
        return self.space.derive(self.op_probabilities())

    def op_probabilities(self) -> np.ndarray:
        return self.policy.probs()

    def state_dict(self) -> dict:
        return {**super().state_dict(), "theta": self.policy.theta.copy(), "optimizer": self.optimizer.state_dict(),
                "baseline": None if self.baseline is None else self.baseline.copy(),
                "op_credit": self.op_credit.copy(), "op_seen": self.op_seen.copy()}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.policy.theta = np.array(state["theta"], dtype=np.float64)
        self.optimizer.load_state_dict(state["optimizer"])
        self.baseline = None if state["baseline"] is None else np.array(state["baseline"], dtype=np.float64)
        self.op_credit = np.array(state["op_credit"], dtype=np.float64)
        self.op_seen = np.array(state["op_seen"], dtype=bool)
