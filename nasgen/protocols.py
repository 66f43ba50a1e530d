"""Search protocols as data: how each method spends the run's supernet training.

``nasgen search --protocol paper|shared`` (``SearchConfig.protocol``). A protocol takes the
run's *budget* of supernet training,

    budget = warm-up weight steps (``warmup_epochs`` x training batches per epoch)
           + search-phase weight steps (``steps``, or ``epochs`` x validation batches per epoch),

counted in weight steps: one per architecture a black-box controller evaluates (the env
trains the shared weights once after every reward), one per step of a gradient controller.
It gives each method ``warmup_share`` of the budget as uniform single-path warm-up and the
rest as its search phase (the configured split where ``warmup_share`` is ``None``), and one
cosine weight-lr schedule (``weight_lr`` -> ``weight_lr_min`` of the env, DARTS's 0.025 ->
0.001 by default) over the whole budget, warm-up included. So under one protocol every method
gets the same total epochs of supernet training; only where it puts them differs.

- ``paper``: each method as its paper (public code) ran it, scaled to the budget.
- ``shared``: every method the same schedule (the configured warm-up, then search).

Without a protocol (the default) the env and controller run as configured: a constant
weight lr in the env, the gradient controllers' own cosine over their search steps only.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Optional

from nasgen.searchspace.registry import Registry


@dataclass(frozen=True)
class MethodProtocol:
    """One method's schedule under a protocol."""

    warmup_share: Optional[float]
    """share of the budget spent in uniform single-path warm-up; ``None`` keeps the configured split"""
    schedule: str
    """the search phase, in words"""
    paper: str
    """what the paper (its public code) ran"""
    differs: str = ""
    """what differs here from the paper, and why"""


@dataclass(frozen=True)
class Protocol:
    """A named preset: one ``MethodProtocol`` per controller name, ``default`` for the rest."""

    name: str
    """registry name (``--protocol``)"""
    description: str
    """one line for ``--help`` and the README"""
    default: MethodProtocol
    """the schedule of controllers not in ``methods``"""
    methods: dict[str, MethodProtocol] = field(default_factory=dict)
    """per-controller schedules"""

    def method(self, controller: str) -> MethodProtocol:
        """The schedule of ``controller`` under this protocol."""
        return self.methods.get(controller, self.default)


PROTOCOLS: Registry[Protocol] = Registry("protocol")


def names() -> list[str]:
    """Registered protocol names."""
    return PROTOCOLS.list()


def get(name: str) -> Protocol:
    """The protocol ``name``; KeyError listing the known ones otherwise."""
    return PROTOCOLS.get(name)


_ALTERNATE = "alternate: one architecture's reward (and credit), then one weight step on its path"
_UNIFORM_WARMUP = "uniform single-path warm-up"
_ADVANTAGENAS_SHARE = 50 / 90  # the authors' NAS-Bench-201 script: weights only for 50 of 90 epochs
_BLACK_BOX = MethodProtocol(
    _ADVANTAGENAS_SHARE, _ALTERNATE,
    "ENAS / ASNG-NAS / regularised evolution / random search, each with its own weight schedule",
    "the same warm-up-then-alternate schedule as credit, so the black-box controllers differ "
    "from credit only in the update")

PROTOCOLS.register("paper")(Protocol(
    name="paper",
    description="each method as its paper ran it, scaled to the same total epochs of supernet training",
    default=_BLACK_BOX,
    methods={
        "credit": MethodProtocol(
            _ADVANTAGENAS_SHARE, _ALTERNATE,
            "AdvantageNAS, NAS-Bench-201 script: 90 epochs, weights only (uniform paths) for the "
            "first 50, then alternating weight and theta steps; SGD cosine lr",
            "weight SGD lr/momentum/decay are DARTS's (0.025, 0.9, 3e-4; NAS-Bench-201 uses "
            "weight decay 5e-4): one weight optimiser for every method"),
        "darts": MethodProtocol(
            0.0, "bilevel on the softmax mixture from the first step (alpha on a validation "
                 "batch, then w on a training batch)",
            "quark0/darts: 50 epochs, no warm-up; w SGD 0.025 cosine to 0.001, momentum 0.9, "
            "wd 3e-4; alpha Adam 3e-4 (0.5, 0.999) wd 1e-3",
            "none beyond the budget: the cosine runs per step over the budget instead of per epoch"),
        "snas": MethodProtocol(
            0.0, "single level: w and alpha on one training-batch backward of a Gumbel-softmax sample",
            "SNAS: 150 epochs, no warm-up; w SGD 0.025 cosine; temperature annealed",
            "the temperature falls linearly 1.0 -> 0.03 over the search steps; no resource constraint"),
        "gdas": MethodProtocol(
            0.0, "w on a training batch, then alpha on a validation batch, each under a hard "
                 "Gumbel sample",
            "D-X-Y/AutoDL-Projects GDAS: 240-250 epochs, no warm-up; w SGD 0.025 cosine to "
            "0.001; tau 10 -> 0.1",
            "weight decay 3e-4 (AutoDL: 5e-4), the one weight optimiser of every method"),
        "proxyless": MethodProtocol(
            40 / 160, "w on one sampled path, then alpha on two sampled ops per edge (binary gates)",
            "mit-han-lab/proxylessnas: 40 warm-up epochs of single-path training (uniform "
            "binary gates) before 120 search epochs, alpha updated every 5 weight steps",
            "one cosine over warm-up and search (the paper restarts it after the warm-up); "
            "alpha steps after every weight step, as the other gradient controllers"),
    },
))

PROTOCOLS.register("shared")(Protocol(
    name="shared",
    description="every method the same schedule: the configured uniform single-path warm-up, then search",
    default=MethodProtocol(
        None, "the method's own search step after the configured warm-up",
        "(each paper's own schedule: see --protocol paper)",
        "the same warm-up and the same cosine weight lr for every method, so only the search "
        "step differs (DARTS and GDAS/SNAS get a single-path warm-up they did not have)"),
))


@dataclass(frozen=True)
class Plan:
    """One run's schedule: where its budget of weight steps goes."""

    protocol: str
    """the protocol's name"""
    controller: str
    """the controller it is for"""
    warmup_steps: int
    """weight steps of uniform single-path warm-up"""
    search_weight_steps: int
    """weight steps of the search phase"""
    train_batches_per_epoch: int
    """weight steps in one epoch over the training split"""
    weight_lr_schedule: str = "cosine"
    """the env's weight-lr schedule over the whole budget"""

    @property
    def warmup_epochs(self) -> float:
        return self.warmup_steps / self.train_batches_per_epoch

    @property
    def total_epochs(self) -> float:
        """Epochs of supernet training of the whole run (warm-up + search)."""
        return (self.warmup_steps + self.search_weight_steps) / self.train_batches_per_epoch

    def steps(self, samples_per_step: int) -> int:
        """Search-loop steps that spend the search phase (``samples_per_step`` weight steps each)."""
        return max(1, math.ceil(self.search_weight_steps / samples_per_step))

    def env_settings(self) -> dict[str, Any]:
        """The env attributes this plan sets before the seeded ``reset`` (which warms up)."""
        return {"warmup_epochs": self.warmup_epochs, "weight_lr_schedule": self.weight_lr_schedule,
                "schedule_epochs": self.total_epochs}

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "warmup_epochs": self.warmup_epochs, "total_epochs": self.total_epochs}


def make_plan(protocol: str, controller: str, warmup_epochs: float, search_weight_steps: int,
              train_batches_per_epoch: int) -> Plan:
    """Split the budget of ``protocol`` for ``controller``.

    Args:
        protocol: a registered protocol name.
        controller: a controller name.
        warmup_epochs: the configured warm-up, epochs over the training split.
        search_weight_steps: the configured search phase, in weight steps.
        train_batches_per_epoch: weight steps per epoch over the training split.

    Returns:
        The plan: the same budget for every controller, split as the protocol says.
    """
    if train_batches_per_epoch < 1:
        raise ValueError(f"the training split holds no full batch (train_batches_per_epoch={train_batches_per_epoch})")
    if search_weight_steps < 1:
        raise ValueError(f"the search phase needs >= 1 weight step, got {search_weight_steps}")
    share = get(protocol).method(controller).warmup_share
    warmup = int(round(warmup_epochs * train_batches_per_epoch))
    budget = warmup + search_weight_steps
    if share is not None:
        warmup = min(int(round(share * budget)), budget - 1)  # at least one search step
    return Plan(protocol, controller, warmup, budget - warmup, train_batches_per_epoch)


def plan_search(config: Any, env: Any) -> Plan:
    """The plan of a ``SearchConfig`` on ``env`` (``env.unwrapped`` of ``OneShotNAS-v0``), its
    budget read from ``config.steps`` / ``config.epochs`` and the env's ``warmup_epochs``.

    Raises:
        ValueError: an env without a warm-up and a weight-lr schedule, or a bad budget.
    """
    missing = [a for a in ("warmup_epochs", "schedule_epochs", "train_batches_per_epoch", "val_batches_per_epoch")
               if not hasattr(env, a)]
    if missing:
        raise ValueError(f"protocol {config.protocol!r} needs an env that trains shared weights with a "
                         f"warm-up and a weight-lr schedule (nasgen/OneShotNAS-v0); {type(env).__name__} "
                         f"lacks {', '.join(missing)}")
    if config.steps is not None and config.epochs is not None:
        raise ValueError("give steps or epochs, not both")
    if config.epochs is not None:
        search = math.ceil(config.epochs * env.val_batches_per_epoch)
    else:
        search = config.budget_steps
    return make_plan(config.protocol, config.controller, env.warmup_epochs, search, env.train_batches_per_epoch)


def apply_plan(env: Any, plan: Plan) -> None:
    """Set ``plan``'s warm-up and weight-lr schedule on ``env`` (before its seeded ``reset``)."""
    for key, value in plan.env_settings().items():
        setattr(env, key, value)
