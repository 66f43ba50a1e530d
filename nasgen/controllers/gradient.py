"""Gradient controllers: ``darts``, ``snas``, ``gdas`` and ``proxyless``.

They keep architecture parameters alpha ``[n_decisions, max_choices]`` (logits; a space's
zero op keeps its column, as in DARTS) and drive the environment's differentiable model
directly::

    ctrl = controllers.make("darts", space=env.unwrapped.space, seed=0, order=2)
    for _ in range(steps):
        metrics = ctrl.step(env.unwrapped)   # one weight step and one alpha step
    arch = ctrl.derive()

``env`` is ``env.unwrapped`` of ``nasgen/OneShotNAS-v0`` or ``nasgen/TeacherArch-v0`` (or any
object with the same members): ``model(x, weights=W)`` mixes every op ``j`` of edge ``e`` with
coefficient ``W[e, j]`` and skips exact zeros, ``weight_optimizer`` (``None`` when the weights
are frozen: the weight step is then skipped), ``next_train_batch()``, ``next_val_batch()``,
``loss_fn(output, target)`` and optionally ``grad_clip``.

The methods differ only in the relaxation ``W(alpha)`` and in which loss moves alpha:

- ``darts``: softmax(alpha), every op runs; Adam on the validation loss, ``order=2`` adding
  the finite-difference Hessian term of the one-step unrolled weights.
- ``snas``: Gumbel-softmax sample, temperature 1.0 -> 0.03; alpha steps on the same
  training-loss backward as the weights (single level).
- ``gdas``: hard Gumbel one-hot with a straight-through gradient, only the sampled op runs,
  tau 10 -> 0.1; Adam on the validation loss.
- ``proxyless``: binary gates on two sampled ops per edge; gate gradients mapped to alpha,
  which is then rescaled so the unsampled ops keep their probability.

Weight learning-rate schedule: the environment owns its SGD optimiser and its lr (0.025,
momentum 0.9, weight decay 3e-4 in ``OneShotNAS-v0``, the DARTS values). When ``total_steps``
is given, the controller asks the env (``env.anneal_weight_lr``) for the papers' cosine over
its steps, ``lr_min + (lr_0 - lr_min) (1 + cos(pi t / total_steps)) / 2`` at step ``t``
(DARTS's per-epoch ``CosineAnnealingLR`` applied per step), ``lr_0`` the env's ``weight_lr``
and ``lr_min = weight_lr_min`` (1e-3). An env that runs its own cosine (a protocol's, over
warm-up and search) declines; an env without the method keeps its lr.
"""

from __future__ import annotations

import copy
import math
from typing import Any, Callable, ClassVar, Optional

import numpy as np
import torch
from torch import nn

from nasgen.interfaces import DIFFERENTIABLE_MEMBERS, missing_members

from .base import Controller, mean_entropy, register

def _temperature_range(start: float, end: float, start_name: str, end_name: str) -> tuple[float, float]:
    """``(start, end)`` of a Gumbel temperature schedule; ValueError unless ``start >= end > 0``."""
    if not 0 < end <= start < math.inf:
        raise ValueError(f"need finite {start_name} >= {end_name} > 0, got {start_name}={start}, {end_name}={end}")
    return float(start), float(end)


# Temperature schedules need a horizon; without ``total_steps`` they anneal over this many steps.
DEFAULT_HORIZON = 1000

# ProxylessNAS runs the sampled-but-inactive op too (detached, gate 0) to get its gate
# gradient. The supernet skips coefficients that are exactly 0, so that op gets this
# coefficient instead: it runs and d loss / d gate = <d loss / d y, op(x)> is exact, while its
# share of the output (1e-12 of an O(1) value) is below float32 resolution.
INACTIVE_GATE = 1e-12


class GradientController(Controller):
    """Shared alpha machinery of the gradient controllers.

    Subclasses implement ``_search_step(env) -> dict`` (returning at least ``train_loss`` and
    ``val_loss``) and may set ``temperature_range``.

    Args:
        space: the search space.
        seed: seeds the torch generator used for alpha's initialisation and all noise.
        arch_lr, arch_betas, arch_eps, arch_weight_decay: Adam for alpha.
        init_std: alpha starts as ``init_std * N(0, 1)``.
        arch_grad_clip: clip alpha's gradient to this norm (``None``: no clipping).
        total_steps: search length in steps: the temperature horizon and, when given, the
            horizon of the cosine weight-lr schedule.
        weight_lr_min: final lr of the cosine schedule; ``None`` leaves the weight lr alone.
    """

    kind: ClassVar[str] = "gradient"
    temperature_range: Optional[tuple[float, float]] = None  #: (start, end), set by snas and gdas

    def __init__(self, space, seed: int = 0, *, arch_lr: float, arch_betas: tuple[float, float],
                 arch_eps: float, arch_weight_decay: float, init_std: float,
                 arch_grad_clip: Optional[float], total_steps: Optional[int],
                 weight_lr_min: Optional[float]):
        super().__init__(space, seed)
        if total_steps is not None and total_steps < 1:
            raise ValueError(f"total_steps must be >= 1 or None, got {total_steps}")
        if arch_lr <= 0:
            raise ValueError(f"arch_lr must be > 0, got {arch_lr}")
        self.total_steps = total_steps
        self.weight_lr_min = weight_lr_min
        self.arch_grad_clip = arch_grad_clip
        self.generator = torch.Generator().manual_seed(int(seed))
        self.mask = torch.as_tensor(space.choice_mask())
        init = torch.randn(self.mask.shape, generator=self.generator) * init_std
        # alpha stays on the CPU; the relaxed weights are moved to the model's device.
        self.alpha = nn.Parameter(init.masked_fill(~self.mask, 0.0))
        self.arch_optimizer = torch.optim.Adam([self.alpha], lr=arch_lr, betas=tuple(arch_betas),
                                               eps=arch_eps, weight_decay=arch_weight_decay)
        self.steps = 0
        self._schedule_requested = False
        #: maps alpha's gradient before every Adam step (the data-parallel search averages it
        #: over processes); None: used as it is
        self.alpha_gradient_hook: Optional[Callable[[torch.Tensor], torch.Tensor]] = None

    # --- public interface ----------------------------------------------------------------------
    def step(self, env: Any) -> dict[str, float]:
        """One search step: a weight step (skipped when ``env.weight_optimizer`` is None) and
        an alpha step, in the order and on the data the method prescribes.

        Args:
            env: ``env.unwrapped`` of ``OneShotNAS-v0`` or ``TeacherArch-v0`` (a gymnasium
                wrapper is unwrapped here).

        Returns:
            Metrics: ``train_loss`` (nan when no training-batch loss was computed),
            ``val_loss``, ``reward`` (= -val_loss), ``entropy`` (mean over decisions of the
            entropy of softmax(alpha)), ``alpha_grad_norm``, ``evaluations`` (forward passes so
            far); on cell spaces ``param_free_share`` (share of parameter-free ops in the derived
            first cell: DARTS's normal cell, nb201's cell), ``param_free_share_reduce`` on DARTS
            spaces (the reduction cell) and ``zero_op_prob``
            (mean softmax weight of the zero op); ``temperature`` for snas and gdas;
            ``weight_lr`` when the weights train.
        """
        env = self._check_env(env)
        env.model.train()
        if env.weight_optimizer is not None and not self._schedule_requested:
            self._request_schedule(env)
        temperature = self.temperature()
        weight_lr = None if env.weight_optimizer is None else float(env.weight_optimizer.param_groups[0]["lr"])
        metrics = self._search_step(env)
        self.steps += 1
        val_loss = float(metrics["val_loss"])
        out = {"train_loss": float(metrics.get("train_loss", float("nan"))), "val_loss": val_loss,
               "reward": -val_loss, "evaluations": float(self.evaluations)}
        out.update({k: float(v) for k, v in metrics.items() if k not in out})
        probs = self.op_probabilities()
        out["entropy"] = mean_entropy(probs)
        if hasattr(self.space, "parameter_free_share"):
            shares = self.space.parameter_free_share(self.space.derive(probs))
            # The first cell type (DARTS's normal cell, nb201's only cell) is the headline.
            for k, (cell, share) in enumerate(shares.items()):
                out["param_free_share" if k == 0 else f"param_free_share_{cell}"] = share
        if self.space.zero_op:
            out["zero_op_prob"] = float(probs[:, 0].mean())
        if temperature is not None:
            out["temperature"] = temperature
        if weight_lr is not None:
            out["weight_lr"] = weight_lr  # the lr this step's weight update used
        return out

    def derive(self) -> np.ndarray:
        """``space.derive(softmax(alpha))``: the DARTS rule on DARTS cell spaces (argmax non-zero
        op, two strongest inputs per node), the argmax per decision elsewhere (nb201, flat).

        Returns:
            An int architecture of the space.
        """
        return self.space.derive(self.op_probabilities())

    def op_probabilities(self) -> np.ndarray:
        """``softmax(alpha)`` over each decision's existing choices, ``[n_decisions, max_choices]``."""
        with torch.no_grad():
            return self._probs().double().numpy()

    def temperature(self) -> Optional[float]:
        """The Gumbel temperature of the coming step (linear from ``temperature_range[0]`` to
        ``[1]`` over the horizon, then constant); ``None`` for methods without one."""
        if self.temperature_range is None:
            return None
        start, end = self.temperature_range
        horizon = self.total_steps or DEFAULT_HORIZON
        progress = min(self.steps, horizon - 1) / (horizon - 1) if horizon > 1 else 1.0
        return start - (start - end) * progress

    def state_dict(self) -> dict:
        """Everything a restored controller needs to continue identically: alpha, the Adam
        state, the generator and the step counter (the schedules' position)."""
        return {**super().state_dict(), "alpha": self.alpha.detach().clone(),
                "arch_optimizer": copy.deepcopy(self.arch_optimizer.state_dict()),
                "generator": self.generator.get_state(), "steps": self.steps}

    def load_state_dict(self, state: dict) -> None:
        """Restore ``state_dict()``; raises ValueError for another controller or space."""
        super().load_state_dict(state)
        with torch.no_grad():
            self.alpha.copy_(state["alpha"])
        self.arch_optimizer.load_state_dict(copy.deepcopy(state["arch_optimizer"]))
        self.generator.set_state(state["generator"])
        self.steps = int(state["steps"])
        self._schedule_requested = False  # ask the env again, with the steps taken

    # --- shared pieces for the methods ------------------------------------------------------
    def _search_step(self, env: Any) -> dict[str, float]:
        raise NotImplementedError

    def _check_env(self, env: Any) -> Any:
        env = getattr(env, "unwrapped", env)
        missing = missing_members(env)
        if missing:
            raise TypeError(f"{self.name} needs an environment exposing {', '.join(DIFFERENTIABLE_MEMBERS)} "
                            f"(env.unwrapped of nasgen/OneShotNAS-v0 or nasgen/TeacherArch-v0); "
                            f"{type(env).__name__} lacks {', '.join(missing)}")
        if env.model is None:
            raise RuntimeError("the environment has no model yet: call env.reset() first")
        space = getattr(env, "space", None)
        if space is not None and space.to_dict() != self.space.to_dict():
            raise ValueError(f"controller is for search space {self.space.name!r}, the environment "
                             f"searches {space.name!r}")
        return env

    def _logits(self) -> torch.Tensor:
        return self.alpha.masked_fill(~self.mask, float("-inf"))

    def _probs(self) -> torch.Tensor:
        return torch.softmax(self._logits(), dim=1)

    def _gumbel(self) -> torch.Tensor:
        """Gumbel(0, 1) noise of alpha's shape, from the controller's generator."""
        exponential = torch.empty(self.mask.shape).exponential_(generator=self.generator)
        return -exponential.clamp_min(torch.finfo(exponential.dtype).tiny).log()

    def _loss(self, env: Any, weights: torch.Tensor, batch) -> torch.Tensor:
        x, y = batch
        self.evaluations += 1
        return env.loss_fn(env.model(x, weights=weights.to(x.device)), y)

    def _request_schedule(self, env: Any) -> None:
        """Ask the env, which owns the weights' lr, for the papers' cosine over this search's
        steps (once per process: a resumed search asks again with the steps already taken)."""
        self._schedule_requested = True
        anneal = getattr(env, "anneal_weight_lr", None)
        if self.total_steps is not None and self.weight_lr_min is not None and anneal is not None:
            anneal(self.weight_lr_min, self.total_steps, done=self.steps)

    def _clip_weights(self, env: Any) -> None:
        hook = getattr(env, "gradient_hook", None)  # the env's own, between backward and clipping
        if hook is not None:
            hook()
        clip = getattr(env, "grad_clip", None)
        if clip:
            nn.utils.clip_grad_norm_(env.model.parameters(), clip)

    def _weight_step(self, env: Any, weights: torch.Tensor, batch) -> float:
        """One step of ``env.weight_optimizer`` on ``batch`` under the (detached) ``weights``."""
        loss = self._loss(env, weights.detach(), batch)
        env.weight_optimizer.zero_grad(set_to_none=True)
        if not torch.isfinite(loss):
            return float("nan")
        loss.backward()
        self._clip_weights(env)
        env.weight_optimizer.step()
        return loss.item()

    def _arch_step(self, grad: Optional[torch.Tensor]) -> float:
        """Adam step of alpha along ``grad`` (skipped when None or not finite); returns its norm."""
        if grad is not None and self.alpha_gradient_hook is not None:
            grad = self.alpha_gradient_hook(grad)
        if grad is None or not torch.isfinite(grad).all():
            return float("nan")
        self.arch_optimizer.zero_grad(set_to_none=True)
        self.alpha.grad = grad.masked_fill(~self.mask, 0.0)
        if self.arch_grad_clip:
            norm = nn.utils.clip_grad_norm_([self.alpha], self.arch_grad_clip).item()
        else:
            norm = self.alpha.grad.norm().item()
        self.arch_optimizer.step()
        self.alpha.grad = None
        return norm

    def _val_alpha_step(self, env: Any, weights: torch.Tensor, batch) -> tuple[float, float]:
        """Validation loss of ``weights(alpha)`` and an alpha step along its gradient."""
        loss = self._loss(env, weights, batch)
        if not torch.isfinite(loss):
            return float("nan"), float("nan")
        return loss.item(), self._arch_step(self._alpha_gradient(loss))

    def _alpha_gradient(self, loss: torch.Tensor) -> torch.Tensor:
        """d loss / d alpha; zero where the loss does not reach alpha: a hard GDAS sample of
        ``none`` on every edge into a cell's output cuts alpha out of the graph, and the
        gradient of what does not depend on alpha is 0, so the step still runs (Adam's
        momentum and weight decay move alpha). AutoDL's GDAS would still route a gradient to
        the unchosen ops there through their zero-valued weights, a term this supernet lacks
        (see ``GDAS``)."""
        (grad,) = torch.autograd.grad(loss, self.alpha, allow_unused=True)
        return torch.zeros_like(self.alpha) if grad is None else grad


@register("darts")
class DARTS(GradientController):
    """DARTS (Liu, Simonyan, Yang, ICLR 2019): softmax relaxation, bilevel.

    Per step, as ``quark0/darts``: alpha takes an Adam step on the validation loss of the
    softmax mixture, then the weights take an SGD step on a training batch. ``order=2`` uses
    the one-step unrolled validation loss: the virtual step
    ``w' = w - lr (momentum * buf + grad_w L_train + weight_decay * w)`` (the weight
    optimiser's next step, without clipping), then
    ``grad_alpha L_val(w') - lr * (grad_alpha L_train(w+) - grad_alpha L_train(w-)) / (2 eps)``
    with ``w+- = w +- eps v``, ``v = grad_w' L_val(w')``, ``eps = 0.01 / ||v||``; the same
    training batch serves the virtual and the real step. Without weights (TeacherArch-v0)
    there is no virtual step and order 2 is order 1. On a smooth model the term matches the
    exact unrolled gradient (see the tests); on the small CPU supernet the loss is not smooth
    at the scale of ``eps`` and the finite difference is far from the exact Hessian-vector
    product (measured: cosine about 0.4 at r = 0.1 and about 0 at r = 0.01 in float32).

    Args:
        space, seed: see ``GradientController``.
        order: 1 (first order) or 2 (finite-difference second order).
        arch_lr: 3e-4 (paper).
        arch_betas: (0.5, 0.999) (paper).
        arch_weight_decay: 1e-3 (paper).
        init_std: 1e-3 (paper: ``1e-3 * randn``).
        fd_radius: r in ``eps = r / ||v||``, 0.01 (paper).
        total_steps, weight_lr_min: cosine weight lr (see the module docstring).

    ``val_loss`` is the loss the alpha gradient was taken of (at ``w'`` for order 2).
    """

    def __init__(self, space, seed: int = 0, order: int = 1, arch_lr: float = 3e-4,
                 arch_betas: tuple[float, float] = (0.5, 0.999), arch_weight_decay: float = 1e-3,
                 init_std: float = 1e-3, fd_radius: float = 0.01, total_steps: Optional[int] = None,
                 weight_lr_min: Optional[float] = 1e-3):
        if order not in (1, 2):
            raise ValueError(f"darts order must be 1 or 2, got {order!r}")
        super().__init__(space, seed, arch_lr=arch_lr, arch_betas=arch_betas, arch_eps=1e-8,
                         arch_weight_decay=arch_weight_decay, init_std=init_std,
                         arch_grad_clip=None, total_steps=total_steps, weight_lr_min=weight_lr_min)
        if fd_radius <= 0:
            raise ValueError(f"fd_radius must be > 0, got {fd_radius}")
        self.order = order
        self.fd_radius = fd_radius

    def _search_step(self, env):
        trains = env.weight_optimizer is not None
        train_batch = env.next_train_batch() if trains else None
        val_batch = env.next_val_batch()
        if self.order == 2 and trains:
            val_loss, grad_norm = self._unrolled_alpha_step(env, train_batch, val_batch)
        else:
            val_loss, grad_norm = self._val_alpha_step(env, self._probs(), val_batch)
        train_loss = self._weight_step(env, self._probs(), train_batch) if trains else float("nan")
        return {"train_loss": train_loss, "val_loss": val_loss, "alpha_grad_norm": grad_norm}

    def _unrolled_alpha_step(self, env, train_batch, val_batch) -> tuple[float, float]:
        optimizer = env.weight_optimizer
        groups = [(p, g) for g in optimizer.param_groups for p in g["params"] if p.requires_grad]
        params = [p for p, _ in groups]

        def grads(loss, inputs):
            out = torch.autograd.grad(loss, inputs, allow_unused=True)
            return [torch.zeros_like(i) if g is None else g for i, g in zip(inputs, out)]

        train_loss = self._loss(env, self._probs().detach(), train_batch)
        if not torch.isfinite(train_loss):
            return float("nan"), float("nan")
        dw = grads(train_loss, params)
        original = [p.detach().clone() for p in params]
        try:
            with torch.no_grad():  # the virtual step w' (what the optimiser would do next)
                for (p, group), g in zip(groups, dw):
                    step = g + group.get("weight_decay", 0.0) * p
                    buf = optimizer.state.get(p, {}).get("momentum_buffer")
                    if buf is not None:
                        step = step + group.get("momentum", 0.0) * buf
                    p.sub_(group["lr"] * step)
            val_loss = self._loss(env, self._probs(), val_batch)
            if not torch.isfinite(val_loss):
                return float("nan"), float("nan")
            d_alpha, *v = grads(val_loss, [self.alpha] + params)
            eps = self.fd_radius / torch.cat([g.flatten() for g in v]).norm().clamp_min(1e-12)
            implicit = []
            for sign in (1.0, -1.0):
                with torch.no_grad():
                    for p, w, g in zip(params, original, v):
                        p.copy_(w + sign * eps * g)
                implicit.append(grads(self._loss(env, self._probs(), train_batch), [self.alpha])[0])
        finally:
            with torch.no_grad():
                for p, w in zip(params, original):
                    p.copy_(w)
        # Every parameter group shares DARTS's single lr; the first group's lr is eta.
        eta = optimizer.param_groups[0]["lr"]
        grad = d_alpha - eta * (implicit[0] - implicit[1]) / (2 * eps)
        return val_loss.item(), self._arch_step(grad)


@register("snas")
class SNAS(GradientController):
    """SNAS (Xie et al., ICLR 2019): Gumbel-softmax relaxation, single level.

    Per step, as ``SNAS-Series/SNAS``: one relaxed sample
    ``Z = softmax((log softmax(alpha) + G) / tau)``, one training-batch forward and backward,
    and both the weights (clipped to ``env.grad_clip``) and alpha (clipped to norm 10) step on
    that gradient. ``tau`` falls linearly from 1.0 to 0.03 over ``total_steps``. The
    ``val_loss`` metric is the same sample's loss on a validation batch (one extra forward,
    no gradient; SNAS itself does not use validation data). The resource constraint of the
    paper is not implemented.

    Args:
        space, seed: see ``GradientController``.
        arch_lr: 3e-4 (code default).
        arch_betas: (0.5, 0.999) (code).
        arch_weight_decay: 1e-3 (code).
        init_std: 0.01 (code: log-alpha ~ N(1, 0.01); the mean does not matter under softmax).
        arch_grad_clip: 10.0 (code).
        temperature: initial tau, 1.0 (code).
        temperature_min: final tau, 0.03 (code).
        total_steps, weight_lr_min: see the module docstring.
    """

    def __init__(self, space, seed: int = 0, arch_lr: float = 3e-4,
                 arch_betas: tuple[float, float] = (0.5, 0.999), arch_weight_decay: float = 1e-3,
                 init_std: float = 0.01, arch_grad_clip: Optional[float] = 10.0,
                 temperature: float = 1.0, temperature_min: float = 0.03,
                 total_steps: Optional[int] = None, weight_lr_min: Optional[float] = 1e-3):
        super().__init__(space, seed, arch_lr=arch_lr, arch_betas=arch_betas, arch_eps=1e-8,
                         arch_weight_decay=arch_weight_decay, init_std=init_std,
                         arch_grad_clip=arch_grad_clip, total_steps=total_steps,
                         weight_lr_min=weight_lr_min)
        self.temperature_range = _temperature_range(temperature, temperature_min, "temperature", "temperature_min")

    def _search_step(self, env):
        tau = self.temperature()
        weights = torch.softmax((torch.log_softmax(self._logits(), dim=1) + self._gumbel()) / tau, dim=1)
        loss = self._loss(env, weights, env.next_train_batch())
        trains = env.weight_optimizer is not None
        train_loss, grad_norm = float("nan"), float("nan")
        if torch.isfinite(loss):
            train_loss = loss.item()
            if trains:
                env.weight_optimizer.zero_grad(set_to_none=True)
                self.alpha.grad = None
                loss.backward()  # one backward for both levels
                grad = self.alpha.grad
                self.alpha.grad = None
                self._clip_weights(env)
                env.weight_optimizer.step()
            else:
                grad = self._alpha_gradient(loss)
            grad_norm = self._arch_step(grad)
        with torch.no_grad():
            val_loss = self._loss(env, weights.detach(), env.next_val_batch()).item()
        return {"train_loss": train_loss, "val_loss": val_loss, "alpha_grad_norm": grad_norm}


@register("gdas")
class GDAS(GradientController):
    """GDAS (Dong & Yang, CVPR 2019): hard Gumbel one-hot with a straight-through gradient.

    Per step, as ``D-X-Y/AutoDL-Projects``: the weights take an SGD step on a training batch
    under one hard sample, then alpha an Adam step on a validation batch under a fresh one.
    A sample is ``h = onehot(argmax p) - p.detach() + p`` with
    ``p = softmax((log softmax(alpha) + G) / tau)``: its unchosen entries are exactly 0, so
    only the sampled op runs, and the gradient reaches every alpha through ``p``. ``tau``
    falls linearly from 10 to 0.1 over ``total_steps``. (AutoDL also adds the unchosen
    zero-valued weights to each edge's output to route them a gradient; with the supernet's
    skip of exact zeros that term is absent, the softmax Jacobian still reaches them.)

    Args:
        space, seed: see ``GradientController``.
        arch_lr: 3e-4 (code).
        arch_betas: (0.5, 0.999) (code).
        arch_weight_decay: 1e-3 (code).
        init_std: 1e-3 (code).
        tau_max: 10 (code).
        tau_min: 0.1 (code).
        total_steps, weight_lr_min: see the module docstring.
    """

    def __init__(self, space, seed: int = 0, arch_lr: float = 3e-4,
                 arch_betas: tuple[float, float] = (0.5, 0.999), arch_weight_decay: float = 1e-3,
                 init_std: float = 1e-3, tau_max: float = 10.0, tau_min: float = 0.1,
                 total_steps: Optional[int] = None, weight_lr_min: Optional[float] = 1e-3):
        super().__init__(space, seed, arch_lr=arch_lr, arch_betas=arch_betas, arch_eps=1e-8,
                         arch_weight_decay=arch_weight_decay, init_std=init_std,
                         arch_grad_clip=None, total_steps=total_steps, weight_lr_min=weight_lr_min)
        self.temperature_range = _temperature_range(tau_max, tau_min, "tau_max", "tau_min")

    def hard_sample(self) -> torch.Tensor:
        """One straight-through hard Gumbel sample at the current temperature, ``[D, J]``."""
        probs = torch.softmax((torch.log_softmax(self._logits(), dim=1) + self._gumbel())
                              / self.temperature(), dim=1)
        one_hot = torch.zeros_like(probs).scatter_(1, probs.detach().argmax(1, keepdim=True), 1.0)
        # (one_hot - p) + p is exactly 0 off the chosen op, so the supernet skips those ops.
        return one_hot - probs.detach() + probs

    def _search_step(self, env):
        train_loss = float("nan")
        if env.weight_optimizer is not None:
            train_loss = self._weight_step(env, self.hard_sample(), env.next_train_batch())
        val_loss, grad_norm = self._val_alpha_step(env, self.hard_sample(), env.next_val_batch())
        return {"train_loss": train_loss, "val_loss": val_loss, "alpha_grad_norm": grad_norm}


@register("proxyless")
class ProxylessNAS(GradientController):
    """ProxylessNAS (Cai, Zhu, Han, ICLR 2019), gradient mode with two sampled paths.

    Per step, as ``mit-han-lab/proxylessnas`` (``grad_binary_mode="two"``): the weights take
    an SGD step on a training batch under one op per edge sampled from softmax(alpha); then on
    a validation batch two ops per edge are drawn without replacement, one of them made
    active by the softmax of their two alphas; binary gates ``g`` (1 on the active op; the
    inactive one runs with a negligible gate, see ``INACTIVE_GATE``) give ``dL/dg`` in one
    backward, and alpha of the pair gets
    ``dL/dalpha_i = sum_j dL/dg_j p_j (delta_ij - p_i)`` (``p``: softmax over the pair). After
    the Adam step the pair's alphas are shifted so their log-sum-exp is unchanged: every
    unsampled op keeps its probability. With beta1 = 0 and no weight decay (the paper's
    Adam), unsampled alphas do not move at all.

    Args:
        space, seed: see ``GradientController``.
        arch_lr: 1e-3 (code).
        arch_betas: (0, 0.999) (code).
        arch_eps: 1e-8 (code).
        arch_weight_decay: 0 (code).
        init_std: 1e-3 (code: normal init, ratio 1e-3).
        total_steps, weight_lr_min: see the module docstring.

    The paper's code updates alpha once every 5 weight steps; here every step has one of
    each, so the search loop is the same for every gradient controller.
    """

    def __init__(self, space, seed: int = 0, arch_lr: float = 1e-3,
                 arch_betas: tuple[float, float] = (0.0, 0.999), arch_eps: float = 1e-8,
                 arch_weight_decay: float = 0.0, init_std: float = 1e-3,
                 total_steps: Optional[int] = None, weight_lr_min: Optional[float] = 1e-3):
        super().__init__(space, seed, arch_lr=arch_lr, arch_betas=arch_betas, arch_eps=arch_eps,
                         arch_weight_decay=arch_weight_decay, init_std=init_std,
                         arch_grad_clip=None, total_steps=total_steps, weight_lr_min=weight_lr_min)

    def _search_step(self, env):
        train_loss = float("nan")
        with torch.no_grad():
            probs = self._probs()
        if env.weight_optimizer is not None:
            path = torch.multinomial(probs, 1, generator=self.generator)
            one_hot = torch.zeros_like(probs).scatter_(1, path, 1.0)
            train_loss = self._weight_step(env, one_hot, env.next_train_batch())
        # Two distinct ops per edge (one where a decision has a single choice).
        pairs = [torch.multinomial(p, min(2, int(n)), replacement=False, generator=self.generator)
                 for p, n in zip(probs, self.mask.sum(1))]
        gates = torch.zeros_like(probs)
        with torch.no_grad():
            for e, pair in enumerate(pairs):
                pair_probs = torch.softmax(self.alpha[e, pair], dim=0)
                active = int(torch.multinomial(pair_probs, 1, generator=self.generator))
                gates[e, pair] = INACTIVE_GATE
                gates[e, pair[active]] = 1.0
        gates.requires_grad_(True)
        loss = self._loss(env, gates, env.next_val_batch())
        if not torch.isfinite(loss):
            return {"train_loss": train_loss, "val_loss": float("nan"), "alpha_grad_norm": float("nan")}
        (gate_grad,) = torch.autograd.grad(loss, gates)
        grad = torch.zeros_like(self.alpha)
        for e, pair in enumerate(pairs):
            grad[e, pair] = gate_gradient_to_alpha(gate_grad[e, pair], self.alpha.detach()[e, pair])
        with torch.no_grad():
            before = [torch.logsumexp(self.alpha[e, pair], 0) for e, pair in enumerate(pairs)]
        grad_norm = self._arch_step(grad)
        with torch.no_grad():
            for e, pair in enumerate(pairs):
                self.alpha[e, pair] -= torch.logsumexp(self.alpha[e, pair], 0) - before[e]
        return {"train_loss": train_loss, "val_loss": loss.item(), "alpha_grad_norm": grad_norm}


def gate_gradient_to_alpha(gate_grad: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """ProxylessNAS's map from binary-gate gradients to architecture gradients.

    Args:
        gate_grad: ``dL/dg_j`` of the sampled ops, ``[k]``.
        alpha: their architecture parameters, ``[k]``.

    Returns:
        ``dL/dalpha_i = sum_j dL/dg_j p_j (delta_ij - p_i)`` with ``p = softmax(alpha)``, ``[k]``.
    """
    p = torch.softmax(alpha, dim=0)
    jacobian = torch.diag(p) - p[:, None] * p[None, :]  # [i, j] = p_j (delta_ij - p_i), symmetric
    return jacobian @ gate_grad
