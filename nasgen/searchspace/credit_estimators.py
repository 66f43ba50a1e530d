"""Per-edge credit A_i = R(a) - R(a with edge i off), the AdvantageNAS signal.

The estimators only need ``loss_of_gates(gates)``: the loss of the sampled architecture
with every decision's output multiplied by ``gates[i]`` (a gate of 0 turns the edge off,
which is what the zero op does). That keeps them independent of the model: the DARTS
supernet and the teacher toy both provide it. Reward is ``-loss`` throughout.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
import torch

LossOfGates = Callable[[torch.Tensor], torch.Tensor]
CREDIT_MODES = ("taylor", "exact", "hybrid")


@dataclass
class Credit:
    """Credit of one architecture.

    Attributes:
        credit: one value per decision (0 where the decision is off).
        loss: loss of the full architecture (gates all 1).
        evaluations: forward passes spent (1 for Taylor, 1 + ablations otherwise).
        backward_passes: backward passes spent.
        exact: for hybrid, ``{decision: exact credit}`` of the checked subset.
        taylor: for hybrid, the uncorrected Taylor credit.
    """

    credit: np.ndarray
    loss: float
    evaluations: int
    backward_passes: int = 0
    exact: dict[int, float] = field(default_factory=dict)
    taylor: Optional[np.ndarray] = None


def _ones(n: int, device: torch.device | str) -> torch.Tensor:
    return torch.ones(n, device=device)


def taylor_credit(loss_of_gates: LossOfGates, active: np.ndarray,
                  device: torch.device | str = "cpu") -> Credit:
    """First-order credit from one forward and one backward pass.

    ``A_i ~ -dL/dg_i`` at ``g = 1``: the linear estimate of ``L(edge i off) - L(a)``.

    Args:
        loss_of_gates: loss as a function of the gate vector.
        active: bool per decision; inactive decisions get credit 0.
        device: where the gates live.
    """
    gates = _ones(len(active), device).requires_grad_(True)
    loss = loss_of_gates(gates)
    (grad,) = torch.autograd.grad(loss, gates, allow_unused=True)
    credit = np.zeros(len(active)) if grad is None else -grad.detach().cpu().double().numpy()
    credit[~active] = 0.0
    return Credit(credit=credit, loss=loss.item(), evaluations=1, backward_passes=1)


def exact_credit(loss_of_gates: LossOfGates, active: np.ndarray, device: torch.device | str = "cpu",
                 decisions: Optional[np.ndarray] = None, base_loss: Optional[float] = None) -> Credit:
    """Exact credit by ablation: one extra forward pass per active decision.

    Args:
        loss_of_gates: loss as a function of the gate vector.
        active: bool per decision; inactive decisions get credit 0.
        device: where the gates live.
        decisions: ablate only these (default: every active decision).
        base_loss: loss of the full architecture when already known (saves a forward).
    """
    n = len(active)
    evaluations = 0
    with torch.no_grad():
        if base_loss is None:
            base_loss = loss_of_gates(_ones(n, device)).item()
            evaluations += 1
        credit = np.zeros(n)
        targets = np.flatnonzero(active) if decisions is None else np.asarray(decisions, dtype=int)
        for i in targets:
            if not active[i]:
                continue
            gates = _ones(n, device)
            gates[i] = 0.0
            credit[i] = loss_of_gates(gates).item() - base_loss
            evaluations += 1
    return Credit(credit=credit, loss=base_loss, evaluations=evaluations,
                  exact={int(i): float(credit[i]) for i in targets if active[i]})


def hybrid_credit(loss_of_gates: LossOfGates, active: np.ndarray, rng: np.random.Generator,
                  device: torch.device | str = "cpu", subset_size: int = 1,
                  taylor: Optional[Credit] = None) -> Credit:
    """Taylor credit corrected on a random subset K of edges: unbiased, O(|K|) extra passes.

    ``A_i = T_i + (E / |K|) * 1[i in K] * (exact_i - T_i)`` with E the number of active
    decisions, K drawn uniformly without replacement among them.

    Args:
        loss_of_gates: loss as a function of the gate vector.
        active: bool per decision.
        rng: draws the subset K.
        device: where the gates live.
        subset_size: |K|.
        taylor: the Taylor credit of this architecture when already computed (the env's
            training pass); otherwise computed here.
    """
    if taylor is None:
        taylor = taylor_credit(loss_of_gates, active, device)
    candidates = np.flatnonzero(active)
    credit = taylor.credit.copy()
    exact: dict[int, float] = {}
    evaluations = taylor.evaluations
    if candidates.size:
        k = min(subset_size, candidates.size)
        subset = rng.choice(candidates, size=k, replace=False)
        checked = exact_credit(loss_of_gates, active, device, decisions=subset, base_loss=taylor.loss)
        evaluations += checked.evaluations
        exact = checked.exact
        credit = subset_corrected(taylor.credit, exact, candidates.size)
    return Credit(credit=credit, loss=taylor.loss, evaluations=evaluations,
                  backward_passes=taylor.backward_passes, exact=exact, taylor=taylor.credit)


def subset_corrected(taylor: np.ndarray, exact: dict[int, float], n_active: int) -> np.ndarray:
    """The hybrid estimate: ``T_i + (n_active / |K|) (exact_i - T_i)`` on the checked subset K.

    Args:
        taylor: Taylor credit per decision.
        exact: ``{decision: exact credit}`` of the subset K.
        n_active: number of active decisions K was drawn from.
    """
    credit = np.array(taylor, dtype=np.float64)
    scale = n_active / max(len(exact), 1)
    for i, value in exact.items():
        credit[i] = taylor[i] + scale * (value - taylor[i])
    return credit


def compute_credit(mode: str, loss_of_gates: LossOfGates, active: np.ndarray,
                   rng: np.random.Generator, device: torch.device | str = "cpu",
                   subset_size: int = 1) -> Credit:
    """Dispatch on ``mode`` in ``CREDIT_MODES``."""
    if mode == "taylor":
        return taylor_credit(loss_of_gates, active, device)
    if mode == "exact":
        return exact_credit(loss_of_gates, active, device)
    if mode == "hybrid":
        return hybrid_credit(loss_of_gates, active, rng, device, subset_size)
    raise ValueError(f"unknown credit mode {mode!r}; expected one of {', '.join(CREDIT_MODES)}")


# --- credit quality: the estimators against exact credit -------------------------------------------
#: Figures of ``agreement``, each reported for ``taylor_`` and ``hybrid_``.
AGREEMENT_FIGURES = ("corr", "sign_agreement", "bias", "rmse", "below_exact")


def agreement(estimate: np.ndarray, exact: np.ndarray) -> dict[str, float]:
    """How well ``estimate`` matches ``exact`` credit, value by value.

    Returns:
        ``corr`` (Pearson; nan with fewer than 3 values or a constant side),
        ``sign_agreement`` (share with the same sign, 0 counting as its own sign),
        ``bias`` (mean of estimate - exact), ``rmse``, ``below_exact`` (share with
        estimate <= exact); all nan for no values.
    """
    t, a = np.asarray(estimate, dtype=np.float64), np.asarray(exact, dtype=np.float64)
    if t.size == 0:
        return {name: float("nan") for name in AGREEMENT_FIGURES}
    corr = float(np.corrcoef(t, a)[0, 1]) if t.size >= 3 and t.std() > 0 and a.std() > 0 else float("nan")
    return {"corr": corr, "sign_agreement": float(np.mean(np.sign(t) == np.sign(a))),
            "bias": float(np.mean(t - a)), "rmse": float(np.sqrt(np.mean((t - a) ** 2))),
            "below_exact": float(np.mean(t <= a))}


@dataclass
class CreditCheck:
    """Taylor and hybrid credit against exact credit on one sample, over its active decisions.

    Attributes:
        taylor, hybrid, exact: the three estimates on the active decisions (in order).
        hybrid_extra_passes: forward passes the hybrid estimator adds to Taylor's one
            forward + backward (|K|); exact credit adds one per active decision.
        loss: loss of the full architecture.
    """

    taylor: np.ndarray
    hybrid: np.ndarray
    exact: np.ndarray
    hybrid_extra_passes: int
    loss: float = float("nan")

    def figures(self) -> dict[str, float]:
        """``taylor_*`` and ``hybrid_*`` agreement figures, the passes and the edge count."""
        return figures_of(self.taylor, self.hybrid, self.exact, self.hybrid_extra_passes)


def figures_of(taylor: np.ndarray, hybrid: np.ndarray, exact: np.ndarray,
               hybrid_extra_passes: float) -> dict[str, float]:
    """The flat figure dict of ``CreditCheck.figures`` (also for values pooled over checks)."""
    out = {f"taylor_{k}": v for k, v in agreement(taylor, exact).items()}
    out.update({f"hybrid_{k}": v for k, v in agreement(hybrid, exact).items()})
    out.update(active_edges=float(len(exact)), hybrid_extra_passes=float(hybrid_extra_passes),
               exact_extra_passes=float(len(exact)))
    return out


def check_credit(loss_of_gates: LossOfGates, active: np.ndarray, rng: np.random.Generator,
                 device: torch.device | str = "cpu", subset_size: int = 1) -> CreditCheck:
    """Taylor and hybrid credit against exact credit on one architecture.

    Runs ``taylor_credit``, ``exact_credit`` on every active decision (one
    forward each), and forms the hybrid estimate from those same values with a subset K of
    ``subset_size`` decisions drawn from ``rng`` (``subset_corrected``), so all three see the
    same weights and batch.

    Args:
        loss_of_gates: loss as a function of the gate vector.
        active: bool per decision.
        rng: draws the hybrid subset (pass a generator the search does not use).
        device: where the gates live.
        subset_size: |K| of the hybrid estimator.
    """
    taylor = taylor_credit(loss_of_gates, active, device)
    exact = exact_credit(loss_of_gates, active, device, base_loss=taylor.loss)
    idx = np.flatnonzero(active)
    k = min(subset_size, idx.size)
    subset = rng.choice(idx, size=k, replace=False) if k else np.array([], dtype=int)
    hybrid = subset_corrected(taylor.credit, {int(i): exact.exact[int(i)] for i in subset}, idx.size)
    return CreditCheck(taylor=taylor.credit[idx].copy(), hybrid=hybrid[idx], exact=exact.credit[idx].copy(),
                       hybrid_extra_passes=k, loss=taylor.loss)
