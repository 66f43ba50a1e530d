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
        scale = candidates.size / k
        for i, value in exact.items():
            credit[i] = taylor.credit[i] + scale * (value - taylor.credit[i])
    return Credit(credit=credit, loss=taylor.loss, evaluations=evaluations,
                  backward_passes=taylor.backward_passes, exact=exact, taylor=taylor.credit)


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
