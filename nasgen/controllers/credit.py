"""``credit``: AdvantageNAS (Sato, Sakuma, Akimoto, AAAI 2021), docs/design.md section 2.

A factorised categorical policy whose every decision gets its *own* advantage: the env
reports ``info["credit"][i] ~ R(a) - R(a with edge i off)`` (exact, Taylor or hybrid), and
the update ascends ``A_i (onehot(a_i) - p_i)`` for all decisions at once. Because the
subtracted term ``R(a with edge i off)`` does not depend on ``a_i``, this is an unbiased
estimate of the policy gradient with a per-decision baseline, with far less variance than
REINFORCE's single scalar reward shared by every decision.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

import numpy as np
import torch

from nasgen.checks import short

from .base import CategoricalPolicy, Controller, clip_signal, register
from .logits import LogitOptimizer

ZERO_OP_CREDIT = ("authors", "zero", "pessimistic")
LR_SCHEDULES = ("cosine", "constant")


@register("credit")
class CreditAssignment(Controller):
    """AdvantageNAS: per-edge advantages from the env, Adam on the logits.

    Needs the env made with ``credit="taylor"`` (the default this class declares in
    ``env_requirements``), ``"exact"`` or ``"hybrid"``; ``tell`` raises a ValueError naming
    that keyword when an info has no ``"credit"``.

    **The zero op.** In spaces with a zero op (``space.zero_op``) the env reports credit 0
    for a decision that sampled it (an edge that is off has nothing to ablate). Taken as is,
    "off" then wins as soon as every other op on the edge looks harmful, which happens early
    with untrained shared weights, and the Taylor credit is biased low on top (the loss is
    convex in the gate). ``zero_op_credit`` chooses what the update uses instead:

    - ``"authors"`` (default; the authors' PTB code, ``adv_grad`` with ``zero_pos``): the
      controller keeps an EMA ``E[i, j]`` of the credit each op ``j`` received on decision
      ``i`` (coefficient 0.05: ``E <- 0.95 E + 0.05 c`` for the sampled op only, the other
      entries unchanged; every entry starts at 0, except that the very first update of the
      run sets ``E`` to that sample's credit matrix, as the authors' ``EMA`` class does). The
      zero op's own column is part of ``E``: it is the EMA of the credit the zero op itself
      received from the env, i.e. of 0, so it stays exactly 0. A sampled zero op then gets
      ``min(0, min_j E[i, j])`` over every existing op *including the zero column*: the
      worst EMA credit on that edge, never positive, so "off" is never rewarded, and it is
      penalised as much as the worst op on the edge. (The authors minimise the loss, so
      their code takes the max of the EMA of dL/dgate; it is the same rule.)
    - ``"zero"``: the env's credit as is (0 for a sampled zero op).
    - ``"pessimistic"``: the worst EMA credit among the *non-zero* ops seen on that edge
      (each op's EMA starting at its first credit; 0 while none has been seen), not capped
      at 0.

    **Theta's optimiser** is ``torch.optim.Adam`` (``logits.LogitOptimizer``) with the
    authors' options: cosine schedule over the run (``torch.optim.lr_scheduler``; the search
    loop passes ``total_steps``), L2 weight decay on theta, gradient-norm clipping, beta1 0.5.
    Defaults against the authors' CIFAR-10 code (lr 3e-4 cosine, weight decay 3e-3, clip 1.0,
    betas (0.5, 0.999)): the schedule, clip and betas are theirs; lr and weight decay differ,
    chosen by measurement (docs: Controllers > credit).

    Derivation is the space's: ``space.derive(p)`` (the DARTS two-inputs rule on DARTS cell
    spaces, plain argmax per decision elsewhere, where the zero op may win an edge).

    Args:
        space: the search space.
        seed: seeds ``self.rng`` (sampling).
        lr: Adam step size on theta (the start of the cosine schedule). 0.01, not the
            authors' 3e-4 (tuned for ~8k theta updates on CIFAR-10): Adam bounds each step by
            about ``lr``, so over a run of about 1,000 updates 3e-4 moves the logits too little
            for the argmax to leave the noise (``benchmarks/credit_theta.py`` measures it).
        betas: Adam's moment decays; beta1 = 0.5 as in the authors' code.
        weight_decay: L2 coefficient on theta added to its gradient. 0, not the authors'
            3e-3: credits of order 0.01 compete with a decay of 3e-3 * theta (same benchmark).
        grad_clip: clip the norm of theta's gradient; 1.0 as the authors; None: no clipping.
        total_steps: updates in the run (one per ``tell``); the search loop passes it. With
            ``lr_schedule="cosine"`` the lr falls from ``lr`` to 0 over them; without it the
            lr is constant.
        lr_schedule: ``"cosine"`` (the authors') or ``"constant"``.
        baseline_decay: if set, subtract a per-decision EMA (this decay) of past advantages
            from each advantage (the authors' "A2" variant); None: no baseline.
        zero_op_credit: ``"authors"``, ``"zero"`` or ``"pessimistic"``, see above.
        op_credit_decay: decay of the per-(decision, op) credit EMA behind ``"authors"`` and
            ``"pessimistic"`` (0.95: the authors' EMA coefficient 0.05).
        skip_zero: if True, a decision that sampled the zero op contributes no gradient for
            that sample; a decision that sampled it in every sample of a ``tell`` is not
            updated at all (its Adam moments and logits stay as they were).

    Attributes:
        policy: the ``CategoricalPolicy`` (``policy.theta`` are the logits, a view of the
            torch parameter ``optimizer.theta``).
        optimizer: the ``LogitOptimizer``.
        baseline: per-decision EMA baseline, or None when disabled / before any credit.
        op_credit: per-(decision, op) EMA of credit, used by ``"authors"``/``"pessimistic"``.
    """

    env_requirements = {"credit": "taylor"}

    def __init__(self, space, seed: int = 0, lr: float = 0.01, betas: tuple[float, float] = (0.5, 0.999),
                 weight_decay: float = 0.0, grad_clip: Optional[float] = 1.0,
                 total_steps: Optional[int] = None, lr_schedule: str = "cosine",
                 baseline_decay: Optional[float] = None, zero_op_credit: str = "authors",
                 op_credit_decay: float = 0.95, skip_zero: bool = False):
        super().__init__(space, seed)
        if baseline_decay is not None and not 0 <= baseline_decay < 1:
            raise ValueError(f"baseline_decay must be None or lie in [0, 1), got {baseline_decay}")
        if zero_op_credit not in ZERO_OP_CREDIT:
            raise ValueError(f"zero_op_credit must be one of {', '.join(ZERO_OP_CREDIT)}, got {zero_op_credit!r}")
        if not 0 <= op_credit_decay < 1:
            raise ValueError(f"op_credit_decay must lie in [0, 1), got {op_credit_decay}")
        if lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}, got {lr_schedule!r}")
        self.policy = CategoricalPolicy(space)
        self.lr_schedule = lr_schedule
        self.optimizer = LogitOptimizer(self.policy, lr, betas, weight_decay=weight_decay, grad_clip=grad_clip,
                                        total_steps=total_steps if lr_schedule == "cosine" else None)
        self.baseline_decay = baseline_decay
        self.zero_op_credit = zero_op_credit
        self.op_credit_decay = float(op_credit_decay)
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
            Metrics; besides the common ones ``credit_mean``, ``lr`` (the step size this
            update used), ``theta_grad_norm`` (before clipping), ``baseline`` (mean over
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
            if not isinstance(info, Mapping):
                raise ValueError(f"tell's infos must be dicts (an env's info), got {short(info)}")
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
        zero = (archs == 0) if self.space.zero_op else np.zeros(archs.shape, dtype=bool)
        used = ~zero if self.skip_zero else np.ones(archs.shape, dtype=bool)
        advantage = credits.copy()
        for k, (a, c, z) in enumerate(zip(archs, credits, zero)):  # one sample at a time, as the authors
            self._fold_op_credit(a, c, z)
            if z.any() and self.zero_op_credit != "zero":
                advantage[k] = np.where(z, self._zero_op_value(), c)
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
        out.update(self.optimizer.ascend(grad, where))
        return out

    def _fold_op_credit(self, arch: np.ndarray, credit: np.ndarray, zero: np.ndarray) -> None:
        """Fold one sample's credit into the per-(decision, op) EMA ``op_credit``."""
        d = self.op_credit_decay
        rows = np.arange(len(arch))
        if self.zero_op_credit == "pessimistic":
            # Non-zero ops only, each EMA starting at the op's first credit.
            idx = (rows[~zero], arch[~zero])
            self.op_credit[idx] = np.where(self.op_seen[idx], d * self.op_credit[idx] + (1 - d) * credit[~zero],
                                           credit[~zero])
            self.op_seen[idx] = True
            return
        # The authors' EMA: every op (the zero op too, with the credit it got); entries start
        # at 0, but the run's first update sets the whole matrix to that sample's credit.
        idx = (rows, arch)
        if not self.op_seen.any():
            self.op_credit[:] = 0.0
            self.op_credit[idx] = credit
        else:
            self.op_credit[idx] = d * self.op_credit[idx] + (1 - d) * credit
        self.op_seen[idx] = True

    def _zero_op_value(self) -> np.ndarray:
        """Per decision: the advantage a sampled zero op gets under ``zero_op_credit``."""
        if self.zero_op_credit == "pessimistic":
            known = self.op_seen.copy()
            known[:, 0] = False
            worst = np.where(known, self.op_credit, np.inf).min(axis=1)
            return np.where(np.isfinite(worst), worst, 0.0)
        worst = np.where(self.policy.mask, self.op_credit, np.inf).min(axis=1)  # zero column included
        return np.minimum(0.0, worst)

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
        return {**super().state_dict(), "optimizer": self.optimizer.state_dict(),
                "baseline": None if self.baseline is None else torch.as_tensor(self.baseline).clone(),
                "op_credit": torch.as_tensor(self.op_credit).clone(), "op_seen": torch.as_tensor(self.op_seen).clone()}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.optimizer.load_state_dict(state["optimizer"])
        self.baseline = None if state["baseline"] is None else _numpy(state["baseline"], np.float64)
        self.op_credit = _numpy(state["op_credit"], np.float64)
        self.op_seen = _numpy(state["op_seen"], bool)


def _numpy(value, dtype) -> np.ndarray:
    """A fresh numpy array of a state entry (a tensor, or an array / list from older code)."""
    return np.array(torch.as_tensor(value).cpu().numpy(), dtype=dtype)
