"""``nasgen/TeacherArch-v0``: the AdvantageNAS toy task, whose optimum is known.

Edge k convolves the input with frozen random filters (1 -> n_ops channels); candidate op
j of edge k takes channel j, squashes it with tanh, and a frozen per-edge filter reduces
it to a scalar; the output is the mean of the edge scalars. A random one-hot *teacher*
architecture defines the target, so the reward ``-MSE(student, teacher)`` is 0 exactly at
the teacher and the search can be scored by whether it recovers it.
"""

from __future__ import annotations

from typing import Any, Optional

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nasgen.runtime import memory_bytes
from nasgen.searchspace import SearchSpace

from .base import CREDIT_CHECK_EVERY, ArchitectureEnv, torch_seed


#: side of the first, frozen filters of ``TeacherModel``
KERNEL = 7


def teacher_bytes(n_edges: int, n_ops: int, batch_size: int, input_size: int, kernel: int = KERNEL,
                  stride: int = 2) -> int:
    """Bytes every search of the toy needs: the frozen filters ``[n_edges, n_ops, k, k]``, a
    batch, and a single-path forward's maps ``[batch, n_edges, feature, feature]`` a few
    times over (a relaxed forward of a gradient controller needs ``n_ops`` times the maps)."""
    feature = max(1, (input_size - kernel) // stride + 1)
    maps = batch_size * n_edges * feature * feature
    return 4 * (n_edges * n_ops * kernel * kernel + 4 * maps + batch_size * input_size * input_size)


class TeacherModel(nn.Module):
    """The frozen random network of the toy; the architecture picks a channel per edge.

    Args:
        n_edges: decisions.
        n_ops: candidate ops (channels) per edge.
        input_size: side of the square input (13 gives a 4x4 map with kernel 7, stride 2).
        kernel: first filter size.
        stride: first filter stride.
        generator: draws the frozen weights.
    """

    def __init__(self, n_edges: int, n_ops: int, input_size: int = 13, kernel: int = KERNEL,
                 stride: int = 2, generator: Optional[torch.Generator] = None):
        super().__init__()
        if input_size < kernel:
            raise ValueError(f"input_size {input_size} is smaller than the kernel {kernel}")
        self.n_edges, self.n_ops, self.input_size, self.stride = n_edges, n_ops, input_size, stride
        feature = (input_size - kernel) // stride + 1
        scale_in = 1.0 / kernel
        self.register_buffer("filters", torch.randn(n_edges, n_ops, 1, kernel, kernel, generator=generator) * scale_in * 2)
        self.register_buffer("readout", torch.randn(n_edges, 1, feature, feature, generator=generator) / feature)

    def forward(self, x: torch.Tensor, arch: Any = None, *, weights: Optional[torch.Tensor] = None,
                gates: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Outputs ``[N]`` of ``x [N, 1, S, S]`` under an int ``arch`` (optionally gated) or
        an ``[n_edges, n_ops]`` ``weights`` mixture (ops with weight exactly 0 are skipped)."""
        if (arch is None) == (weights is None):
            raise ValueError("pass exactly one of arch or weights")
        if weights is not None:
            if tuple(weights.shape) != (self.n_edges, self.n_ops):
                raise ValueError(f"weights must have shape {(self.n_edges, self.n_ops)}, got {tuple(weights.shape)}")
            # Every channel that carries weight runs; one grouped conv does all edges.
            maps = torch.tanh(F.conv2d(x, self.filters.flatten(0, 1), stride=self.stride))
            maps = maps.unflatten(1, (self.n_edges, self.n_ops))
            edge_maps = (maps * weights[None, :, :, None, None]).sum(dim=2)
        else:
            chosen = self.filters[torch.arange(self.n_edges), torch.as_tensor(arch, device=x.device)]
            edge_maps = torch.tanh(F.conv2d(x, chosen, stride=self.stride))  # only the chosen ops
        scalars = (edge_maps * self.readout[:, 0][None]).sum(dim=(2, 3))  # [N, n_edges]
        if gates is not None:
            scalars = scalars * gates
        return scalars.mean(dim=1)


class TeacherSpace(SearchSpace):
    """The toy's space: edge k picks one of ``n_ops`` frozen random filters, named
    ``conv0 .. conv{n_ops-1}`` (channel j of the edge's first convolution).

    Args:
        n_edges: decisions.
        n_ops: candidate ops per edge.
    """

    def __init__(self, n_edges: int, n_ops: int):
        super().__init__(f"teacher-{n_edges}x{n_ops}", [n_ops] * n_edges,
                         decision_names=[f"edge {k}" for k in range(n_edges)])
        self.op_names = tuple(f"conv{j}" for j in range(n_ops))

    def describe(self, arch: Any) -> str:
        """``edge 0: conv3, edge 1: conv7, ...``: the op chosen on each edge."""
        arch = self.validate(arch)
        return ", ".join(f"{self.decision_name(k)}: {self.op_names[a]}" for k, a in enumerate(arch))


class TeacherArchEnv(ArchitectureEnv):
    """One step scores one architecture against the hidden teacher.

    Observation: ``[last reward]`` (float32, clipped to ``reward_obs_bounds``); the task has no
    weights to train.
    Reward: ``-MSE(student(x), teacher(x))`` on a fresh batch (0 at the teacher).
    info: ``loss`` (the MSE), ``evaluations``, ``nonfinite`` and, with ``credit``, the
    per-edge ``credit``. ``env.unwrapped`` exposes ``model`` (a differentiable
    ``TeacherModel``), ``teacher`` (the optimum), ``next_train_batch()`` and
    ``next_val_batch()`` (fresh ``(x, target)`` batches), ``loss_fn`` and ``score(arch)``.

    Args:
        n_edges: decisions (10 in the paper).
        n_ops: candidate ops per edge (10 in the paper).
        batch_size: inputs per reward (100 in the paper).
        input_size: side of the uniform [-1, 1] input image.
        credit, credit_subset, nonfinite_reward, device, seed, credit_check_every: see
            ``ArchitectureEnv``.
    """

    def __init__(self, n_edges: int = 10, n_ops: int = 10, batch_size: int = 100, input_size: int = 13,
                 credit: Optional[str] = None, credit_subset: int = 1, nonfinite_reward: float = -100.0,
                 device: str = "cpu", seed: Optional[int] = None, credit_check_every: int = CREDIT_CHECK_EVERY):
        space = self.check_arguments(n_edges=n_edges, n_ops=n_ops, batch_size=batch_size, input_size=input_size,
                                     credit=credit, credit_subset=credit_subset,
                                     nonfinite_reward=nonfinite_reward, device=device, seed=seed,
                                     credit_check_every=credit_check_every)
        super().__init__(space, credit, credit_subset, nonfinite_reward, device, seed,
                         credit_check_every=credit_check_every)
        self.n_edges, self.n_ops, self.batch_size, self.input_size = n_edges, n_ops, batch_size, input_size
        low, high = self.reward_obs_bounds
        self.observation_space = gym.spaces.Box(np.float32(low), np.float32(high), shape=(1,), dtype=np.float32)
        self.model: Optional[TeacherModel] = None
        self.teacher: Optional[np.ndarray] = None
        self.weight_optimizer = None  # the toy's weights are frozen

    @classmethod
    def _checked_space(cls, args: dict[str, Any]) -> SearchSpace:
        n_edges, n_ops, batch_size = args["n_edges"], args["n_ops"], args["batch_size"]
        if n_edges < 1 or n_ops < 1 or batch_size < 1:
            raise ValueError(f"n_edges, n_ops and batch_size must be >= 1, got {n_edges}, {n_ops}, {batch_size}")
        if args["input_size"] < KERNEL:
            raise ValueError(f"input_size must be >= {KERNEL} (the first filter), got {args['input_size']}")
        need, have = teacher_bytes(n_edges, n_ops, batch_size, args["input_size"]), memory_bytes()
        if have is not None and need > have:
            raise ValueError(f"n_edges={n_edges} x n_ops={n_ops} at batch_size={batch_size} needs about "
                             f"{need / 2**30:,.1f} GiB, more than this machine's {have / 2**30:,.1f} GiB")
        return TeacherSpace(n_edges, n_ops)

    # --- what gradient controllers and scorers use ------------------------------------------
    def loss_fn(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(output, target)

    def _fresh_batch(self, n: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.as_tensor(rng.uniform(-1.0, 1.0, (n, 1, self.input_size, self.input_size)),
                            dtype=torch.float32, device=self.device)
        with torch.no_grad():
            target = self.model(x, self.teacher)
        return x, target

    def next_train_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self._fresh_batch(self.batch_size, self.np_random)

    def next_val_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self._fresh_batch(self.batch_size, self.np_random)

    def score(self, arch: Any) -> float:
        """``-MSE`` of ``arch`` on a fixed held-out batch of 1,000: the same yardstick for
        every controller, and 0 exactly at the teacher."""
        arch = self.space.validate(arch)
        with torch.no_grad():
            return -self.loss_fn(self.model(self._score_x, arch), self._score_target).item()

    # --- hooks ------------------------------------------------------------------------------------
    def _build(self) -> None:
        generator = torch.Generator().manual_seed(torch_seed(self.np_random))
        self.model = TeacherModel(self.n_edges, self.n_ops, self.input_size, generator=generator).to(self.device)
        self.teacher = self.space.sample(self.np_random)
        self._score_x, self._score_target = self._fresh_batch(1000, np.random.default_rng(torch_seed(self.np_random)))

    def _reward_batch(self):
        return self.next_val_batch()

    def _loss(self, arch, batch, gates):
        x, target = batch
        return self.loss_fn(self.model(x, arch, gates=gates), target), {}

    def _observation(self) -> np.ndarray:
        return np.array([self._clipped_reward()], dtype=np.float32)

    def state_dict(self) -> dict:
        return {**self._base_state(), "teacher": self.teacher, "model": self.model.state_dict(),
                "score_x": self._score_x, "score_target": self._score_target}

    def load_state_dict(self, state: dict) -> None:
        self._load_base_state(state)
        self.teacher = np.asarray(state["teacher"])
        self.model.load_state_dict(state["model"])
        self._score_x, self._score_target = state["score_x"], state["score_target"]
