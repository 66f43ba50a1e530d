"""The logits of a ``CategoricalPolicy`` as a torch parameter under ``torch.optim``.

Shared by the black-box policy-gradient controllers (``reinforce``, ``credit``): they compute
an *ascent* direction in numpy (the score-function estimate) and hand it to ``ascend``, which
runs ``torch.optim.Adam`` with the options the AdvantageNAS authors used on theta: L2 weight
decay, gradient-norm clipping and a cosine learning-rate schedule over the run
(``torch.optim.lr_scheduler.CosineAnnealingLR``). The controller keeps drawing its samples
from its own numpy generator, so a run stays repeatable.
"""

from __future__ import annotations

import copy
from typing import Optional

import numpy as np
import torch

from .base import CategoricalPolicy


class LogitOptimizer:
    """Adam (plus decay, clipping and schedule) on ``policy.theta``, held as a float64 tensor.

    ``policy.theta`` becomes a numpy view of the parameter, so the policy's sampling and
    probabilities see every step without a copy.

    Per ``ascend(grad)``, in the authors' (Chainer hook) order: the loss gradient is
    ``-grad`` (masked to existing choices), ``weight_decay * theta`` is added to it, the sum
    is clipped to norm ``grad_clip``, Adam steps, and the cosine schedule advances.

    Args:
        policy: the policy whose logits are optimised (its ``theta`` is re-pointed here).
        lr: Adam step size (the schedule's start).
        betas: Adam's moment decays.
        eps: Adam's epsilon.
        weight_decay: L2 coefficient on theta added to the gradient (0: none).
        grad_clip: clip the gradient's global L2 norm to this (None: no clipping).
        total_steps: updates of the whole run; when given the lr follows a cosine from ``lr``
            to 0 over that many updates (and stays at 0 after them); None: constant lr.

    Raises:
        ValueError: a non-positive lr, betas outside [0, 1), negative weight decay, a
            non-positive clip or total_steps.
    """

    def __init__(self, policy: CategoricalPolicy, lr: float, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, grad_clip: Optional[float] = None,
                 total_steps: Optional[int] = None):
        if not lr > 0:
            raise ValueError(f"lr must be > 0, got {lr}")
        if len(betas) != 2 or not all(0 <= b < 1 for b in betas):
            raise ValueError(f"betas must be two values in [0, 1), got {betas}")
        if weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
        if grad_clip is not None and not grad_clip > 0:
            raise ValueError(f"grad_clip must be > 0 or None, got {grad_clip}")
        if total_steps is not None and (isinstance(total_steps, bool) or int(total_steps) != total_steps
                                        or total_steps < 1):
            raise ValueError(f"total_steps must be a positive int or None, got {total_steps}")
        self.policy = policy
        self.mask = torch.as_tensor(policy.mask)
        self.theta = torch.nn.Parameter(torch.as_tensor(policy.theta, dtype=torch.float64).clone())
        policy.theta = self.theta.data.numpy()  # a view: in-place optimiser steps show through
        self.weight_decay = float(weight_decay)
        self.grad_clip = None if grad_clip is None else float(grad_clip)
        self.total_steps = None if total_steps is None else int(total_steps)
        self.optimizer = torch.optim.Adam([self.theta], lr=float(lr), betas=(float(betas[0]), float(betas[1])),
                                          eps=float(eps), foreach=False)
        self.scheduler = None
        if self.total_steps is not None:
            self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=self.total_steps,
                                                                        eta_min=0.0)

    @property
    def lr(self) -> float:
        """The step size the next ``ascend`` uses."""
        return float(self.optimizer.param_groups[0]["lr"])

    def ascend(self, grad: np.ndarray, where: Optional[np.ndarray] = None) -> dict[str, float]:
        """One optimiser step *up* along ``grad``.

        Args:
            grad: ascent direction, shaped like theta.
            where: optional bool ``[n_decisions, 1]`` (or theta-shaped) mask; rows outside it
                keep their logits and Adam moments (a skipped update, momentum included).

        Returns:
            ``{"lr": step size used, "theta_grad_norm": gradient norm before clipping}``.
        """
        lr = self.lr
        with torch.no_grad():
            g = -torch.as_tensor(grad, dtype=torch.float64) * self.mask
            if self.weight_decay:
                g = g + self.weight_decay * self.theta.detach() * self.mask
            if where is not None:
                keep = torch.as_tensor(np.broadcast_to(where, g.shape).copy())
                g = g * keep
        self.theta.grad = g
        norm = float(g.norm())
        if self.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_([self.theta], self.grad_clip)
        if where is None:
            self.optimizer.step()
        else:
            before = {"theta": self.theta.detach().clone(),
                      **{k: v.clone() for k, v in self.optimizer.state.get(self.theta, {}).items()
                         if k in ("exp_avg", "exp_avg_sq")}}
            self.optimizer.step()
            state = self.optimizer.state[self.theta]
            with torch.no_grad():
                self.theta.copy_(torch.where(keep, self.theta, before["theta"]))
                for name in ("exp_avg", "exp_avg_sq"):
                    # Moments created by this (first) step start at 0 on the skipped rows.
                    old = before.get(name, torch.zeros_like(state[name]))
                    state[name].copy_(torch.where(keep, state[name], old))
        self.optimizer.zero_grad(set_to_none=True)
        if self.scheduler is not None and self.scheduler.last_epoch < self.total_steps:
            self.scheduler.step()
        return {"lr": lr, "theta_grad_norm": norm}

    def state_dict(self) -> dict:
        """Tensors and plain containers only (loadable with ``torch.load(weights_only=True)``);
        deep copies, so the live optimiser moving on does not change a taken snapshot."""
        return {"theta": self.theta.detach().clone(),
                "optimizer": copy.deepcopy(self.optimizer.state_dict()),
                "scheduler": None if self.scheduler is None else copy.deepcopy(self.scheduler.state_dict())}

    def load_state_dict(self, state: dict) -> None:
        """Restore ``state_dict()``; theta is copied in place, so ``policy.theta`` stays a view.

        Raises:
            ValueError: a state of another shape, or one with / without a schedule that this
                optimiser lacks / has.
        """
        theta = torch.as_tensor(state["theta"], dtype=torch.float64)
        if theta.shape != self.theta.shape:
            raise ValueError(f"theta in the state has shape {tuple(theta.shape)}, expected {tuple(self.theta.shape)}")
        if (state.get("scheduler") is None) != (self.scheduler is None):
            raise ValueError("the state and this controller disagree on the lr schedule (total_steps): "
                             f"state has {'none' if state.get('scheduler') is None else 'one'}, "
                             f"this controller has {'none' if self.scheduler is None else 'one'}")
        with torch.no_grad():
            self.theta.copy_(theta)
        self.optimizer.load_state_dict(copy.deepcopy(state["optimizer"]))
        if self.scheduler is not None:
            self.scheduler.load_state_dict(copy.deepcopy(state["scheduler"]))
