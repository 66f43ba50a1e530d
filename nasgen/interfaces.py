"""What environments and controllers promise each other, as types.

Both sides import this module and neither imports the other: an environment that has the
members of ``DifferentiableEnv`` can be searched by the gradient controllers, and the keys of
``StepInfo`` are the ones controllers read from ``info``.
"""

from __future__ import annotations

from typing import Any, Optional, Protocol, TypedDict, runtime_checkable

import numpy as np
import torch


@runtime_checkable
class DifferentiableEnv(Protocol):
    """``env.unwrapped`` as a gradient controller drives it (``controller.step(env)``)."""

    model: Any
    """the supernet: ``model(x, arch=None, weights=W, gates=None)`` mixes the ops of every edge"""
    weight_optimizer: Optional[torch.optim.Optimizer]
    """the shared weights' optimiser (None: the weights are frozen and only alpha steps)"""

    def next_train_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The next training batch ``(x, y)``."""

    def next_val_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The next validation batch ``(x, y)``."""

    def loss_fn(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The loss every method minimises (a data-parallel env averages it over processes)."""


#: The members of ``DifferentiableEnv``, in the order a missing one is reported.
DIFFERENTIABLE_MEMBERS: tuple[str, ...] = ("model", "weight_optimizer", "next_train_batch", "next_val_batch",
                                           "loss_fn")
#: The members an env's class must define as methods (the others are set on the instance).
DIFFERENTIABLE_METHODS: tuple[str, ...] = ("next_train_batch", "next_val_batch", "loss_fn")


def missing_members(env: Any) -> list[str]:
    """The members of ``DifferentiableEnv`` that ``env`` lacks (empty: it can be driven)."""
    return [name for name in DIFFERENTIABLE_MEMBERS if not hasattr(env, name)]


def class_is_differentiable(cls: type) -> bool:
    """Whether instances of ``cls`` have the methods of ``DifferentiableEnv`` (asked before one
    is built; ``model`` and ``weight_optimizer`` exist only on a built env)."""
    return all(callable(getattr(cls, name, None)) for name in DIFFERENTIABLE_METHODS)


class StepInfo(TypedDict, total=False):
    """The keys of an environment's ``info`` that controllers and the search loop read."""

    evaluations: int
    """reward evaluations this step spent (default 1)"""
    nonfinite: bool
    """the loss was not finite and the reward is a finite stand-in: do not learn from it"""
    credit: np.ndarray
    """per-decision advantage of the sampled architecture (credit-assignment envs)"""
    credit_corr: float
    """correlation of Taylor and exact credit on the checked edges (hybrid credit)"""
    credit_check: dict[str, float]
    """a periodic credit-quality check's figures"""
    train_loss: float
    val_loss: float
    val_accuracy: float
    failed: bool
    """a table env's training of this architecture failed"""

