"""The shared-weight one-shot supernet over a cell search space (DARTS cells or the
NAS-Bench-201 cell, on images or natively on 1-D signals).

Every (cell, edge, op) has its own weights; all normal cells share the normal decisions
and all reduction cells the reduction decisions, so one architecture vector selects a path
through the whole network. ``forward`` takes the architecture as an argument, in one of
three forms (see ``Supernet.forward``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .cells import build_stack
from .ops import SPATIAL_DIMS
from .space import CellSpace


def use_batch_statistics(module: nn.Module) -> None:
    """Make every BatchNorm normalise with the statistics of the current batch, always.

    Running statistics in a single-path supernet mix many paths, so evaluating one path
    with them is biased; batch statistics keep a path's reward independent of which paths
    were trained before (and of train/eval mode).
    """
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.track_running_stats = False
            m.running_mean = None
            m.running_var = None
            m.num_batches_tracked = None


class Supernet(nn.Module):
    """Search network holding weights for every (edge, op) of a cell space.

    Args:
        space: the ``CellSpace`` (``CellSearchSpace`` or ``NB201SearchSpace``) whose decisions
            select the ops.
        C: channels of the first cells.
        n_cells: DARTS spaces: number of cells (reductions at 1/3 and 2/3 depth);
            ``nb201``: cells per stage, N (3N cells in all).
        in_channels: input channels (1 for digits, MNIST and MNIST-1D, 3 for CIFAR-10).
        n_classes: output classes.
        image_size: input height and width (8 for digits, 28 for MNIST, 32 for CIFAR-10), or
            the signal length when ``dims=1`` (40 for MNIST-1D).
        stem_multiplier: stem width as a multiple of C (DARTS spaces only).
        dims: 2 for images ``[N, C, H, W]``, 1 for signals ``[N, C, L]`` (every op in its
            1-D form); ``Dataset.dims`` gives it.
    """

    def __init__(self, space: CellSpace, C: int = 8, n_cells: int = 5, in_channels: int = 1,
                 n_classes: int = 10, image_size: int = 8, stem_multiplier: int = 3, dims: int = 2):
        super().__init__()
        if not isinstance(space, CellSpace):
            raise TypeError(f"Supernet needs a cell space (CellSearchSpace or NB201SearchSpace), "
                            f"got {type(space).__name__}")
        if image_size < 8:
            raise ValueError(f"image_size must be >= 8, got {image_size}")
        if dims not in SPATIAL_DIMS:
            raise ValueError(f"dims must be one of {SPATIAL_DIMS}, got {dims!r}")
        self.space = space
        self.config = dict(C=C, n_cells=n_cells, in_channels=in_channels, n_classes=n_classes,
                           image_size=image_size, stem_multiplier=stem_multiplier, dims=dims)
        self._input_tail = [in_channels] + [image_size] * dims
        # Decisions whose choice 0 is the zero op skip it; nb201-nozero's op 0 is a real op.
        self._first_op = 1 if space.zero_op else 0
        self.net = build_stack(space, lambda cell_type, edge: space.op_names, C, n_cells,
                               in_channels, n_classes, affine=False, search=True,
                               stem_multiplier=stem_multiplier, dims=dims)
        use_batch_statistics(self)
        self._op_params = self._count_op_parameters()
        # Counted once: walking every module per call cost the env ~25% of a reward forward.
        self._shared_params = sum(p.numel() for p in self.parameters()) - int(self._op_params.sum())

    # --- forward -------------------------------------------------------------------------
    def forward(self, x: torch.Tensor, arch: Any = None, *, weights: Optional[torch.Tensor] = None,
                gates: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Logits of ``x`` under one architecture.

        Args:
            x: images ``[N, in_channels, image_size, image_size]``, or signals
                ``[N, in_channels, image_size]`` when ``dims=1``.
            arch: int architecture; only the chosen op of each edge runs, and edges on the
                zero op are skipped (not multiplied by 0).
            weights: ``[n_decisions, n_ops]`` op weights instead of ``arch``: each edge
                outputs ``sum_j weights[e, j] * op_j(x)`` over its entries that are not
                exactly zero (soft for DARTS/SNAS, hard straight-through for GDAS, two-hot
                for ProxylessNAS); the zero op never runs.
            gates: with ``arch``, one scalar per decision multiplying that edge's output; a
                backward pass then gives ``dL/dgate`` for every edge at once (the Taylor
                credit). A gate of exactly 0 skips its edge.

        Returns:
            Logits ``[N, n_classes]``.
        """
        self._check_input(x)
        if (arch is None) == (weights is None):
            raise ValueError("pass exactly one of arch (int architecture) or weights ([E, J] matrix)")
        if weights is not None:
            if gates is not None:
                raise ValueError("gates go with an int arch; fold them into weights instead")
            return self.net.run(x, self._weight_terms(weights))
        return self.net.run(x, self._path_terms(self.space.validate(arch), gates))

    def _check_input(self, x: torch.Tensor) -> None:
        if list(x.shape[1:]) != self._input_tail:
            shape = ", ".join(str(n) for n in ["N"] + self._input_tail)
            raise ValueError(f"supernet input must be [{shape}], got {list(x.shape)}")

    def _path_terms(self, arch: np.ndarray, gates: Optional[torch.Tensor]):
        if gates is not None:
            if gates.shape != (self.space.n_decisions,):
                raise ValueError(f"gates must have shape ({self.space.n_decisions},), got {tuple(gates.shape)}")
            on = gates.detach().cpu().numpy() != 0
        else:
            on = np.ones(len(arch), dtype=bool)

        def terms_for(cell_type: str):
            base = self.space.cell_slice(cell_type).start
            return [[(int(arch[d]), None if gates is None else gates[d])]
                    if arch[d] >= self._first_op and on[d] else []
                    for d in range(base, base + self.space.n_edges)]
        return terms_for

    def _weight_terms(self, weights: torch.Tensor):
        shape = (self.space.n_decisions, len(self.space.op_names))
        if tuple(weights.shape) != shape:
            raise ValueError(f"weights must have shape {shape}, got {tuple(weights.shape)}")
        nonzero = weights.detach().cpu().numpy() != 0  # one device sync per forward

        def terms_for(cell_type: str):
            base = self.space.cell_slice(cell_type).start
            return [[(j, weights[d, j]) for j in range(self._first_op, shape[1]) if nonzero[d, j]]
                    for d in range(base, base + self.space.n_edges)]
        return terms_for

    # --- bookkeeping -----------------------------------------------------------------------
    def _count_op_parameters(self) -> np.ndarray:
        """``[n_decisions, n_ops]``: parameters of each op summed over the cells using it."""
        table = np.zeros((self.space.n_decisions, len(self.space.op_names)), dtype=np.int64)
        for cell, cell_type in zip(self.net.cells, self.net.cell_types):
            base = self.space.cell_slice(cell_type).start
            for e, ops in enumerate(cell.edge_ops):
                for j, op in enumerate(ops):
                    table[base + e, j] += sum(p.numel() for p in op.parameters())
        return table

    def parameter_count(self, arch: Any) -> int:
        """Parameters a stand-alone copy of the path ``arch`` would use."""
        arch = self.space.validate(arch)
        return self._shared_params + int(self._op_params[np.arange(len(arch)), arch].sum())


@dataclass(frozen=True)
class Evaluation:
    """The reward of one architecture on one batch."""

    reward: float  #: negative cross-entropy
    loss: float  #: cross-entropy
    accuracy: float  #: share of correct predictions


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, arch: Any) -> Evaluation:
    """R(a) = -cross-entropy of architecture ``arch`` on the batch ``(x, y)``, no gradient."""
    with torch.no_grad():
        logits = model(x, arch)
        loss = F.cross_entropy(logits, y).item()
        accuracy = (logits.argmax(1) == y).float().mean().item()
    return Evaluation(reward=-loss, loss=loss, accuracy=accuracy)
