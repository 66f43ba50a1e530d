"""One cell module serves the search supernet and the stand-alone network.

A cell is built with a tuple of candidate op names per edge: every op of the space in
the supernet, only the chosen op (or nothing) in a stand-alone network. ``forward``
then takes, per edge, the terms to run: ``(candidate index, coefficient)`` pairs, where
the coefficient is ``None`` (plain sum), a scalar gate, or a mixing weight.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import nn

from .ops import ZERO_OP, FactorizedReduce, ReLUConvBN, avg_pool, batch_norm, conv, global_avg_pool, make_op
from .space import CellSearchSpace, NB201SearchSpace

# Per edge: the list of (candidate index, coefficient or None) terms to evaluate.
EdgeTerms = Sequence[Sequence[tuple[int, Optional[torch.Tensor]]]]


def sum_edges(states: Sequence[torch.Tensor], edge_ids: Sequence[int], sources: Sequence[int],
              edge_ops: nn.ModuleList, terms: EdgeTerms) -> Optional[torch.Tensor]:
    """One node: the sum over its edges ``e`` of the terms of ``terms[e]`` applied to
    ``states[sources[e]]``; ``None`` when every term is off."""
    total = None
    for e in edge_ids:
        source = states[sources[e]]
        for index, coefficient in terms[e]:
            out = edge_ops[e][index](source)
            if coefficient is not None:
                out = out * coefficient
            total = out if total is None else total + out
    return total


class Cell(nn.Module):
    """A DARTS cell: two preprocessed inputs, ``n_nodes`` summing nodes, concat output.

    Args:
        edges: ``(node, input state)`` per edge, as ``CellSearchSpace.edges``.
        n_nodes: intermediate nodes.
        candidates: op names available on each edge (an empty tuple for an unused edge).
        C_prev_prev, C_prev, C: channels of the two inputs and of every node.
        reduction: halve the resolution (stride 2 on the edges from the cell inputs).
        reduction_prev: the previous cell reduced, so input 0 must be reduced too.
        affine: learnable BatchNorm parameters.
        search: search-time op variants (``ops.make_op(search=True)``).
        dims: 1 for signals ``[N, C, L]``, 2 for images.
    """

    def __init__(self, edges: Sequence[tuple[int, int]], n_nodes: int,
                 candidates: Sequence[Sequence[str]], C_prev_prev: int, C_prev: int, C: int,
                 reduction: bool, reduction_prev: bool, affine: bool, search: bool, dims: int = 2):
        super().__init__()
        self.edges = tuple(edges)
        self.n_nodes = n_nodes
        self.reduction = reduction
        self.C = C
        self.preprocess0 = (FactorizedReduce(C_prev_prev, C, affine=affine, dims=dims) if reduction_prev
                            else ReLUConvBN(C_prev_prev, C, 1, 1, 0, affine=affine, dims=dims))
        self.preprocess1 = ReLUConvBN(C_prev, C, 1, 1, 0, affine=affine, dims=dims)
        self.edge_ops = nn.ModuleList()
        for (_, src), names in zip(self.edges, candidates):
            stride = 2 if reduction and src < 2 else 1
            self.edge_ops.append(nn.ModuleList(
                make_op(name, C, stride, affine, search=search, dims=dims) for name in names))
        self.node_edges = [[e for e, (n, _) in enumerate(self.edges) if n == node]
                           for node in range(n_nodes)]
        self.sources = [src for _, src in self.edges]
        self.out_channels = n_nodes * C

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, terms: EdgeTerms) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for node in range(self.n_nodes):
            total = sum_edges(states, self.node_edges[node], self.sources, self.edge_ops, terms)
            if total is None:  # every input of this node is off
                spatial = states[1].shape[2:]
                if self.reduction:
                    spatial = [(size + 1) // 2 for size in spatial]
                total = states[1].new_zeros(states[1].shape[0], self.C, *spatial)
            states.append(total)
        return torch.cat(states[2:], dim=1)


def check_stack_size(C: int, n_cells: int) -> None:
    """ValueError unless ``n_cells >= 1`` and ``C`` is even and >= 2 (what ``CellStack`` can build)."""
    if n_cells < 1 or C < 2 or C % 2:
        raise ValueError(f"need n_cells >= 1 and an even C >= 2, got n_cells={n_cells}, C={C}")


class CellStack(nn.Module):
    """Stem, ``n_cells`` cells with reductions at 1/3 and 2/3 depth, pooling and classifier.

    Args:
        space: a ``CellSearchSpace``.
        candidates_for: ``(cell type, edge) -> op names`` built on that edge.
        C: channels of the first cells (doubled at every reduction).
        n_cells: number of cells.
        in_channels: image channels (1 or 3).
        n_classes: output classes.
        affine: learnable BatchNorm parameters in the cells.
        search: search-time op variants.
        stem_multiplier: stem width as a multiple of C (3, as DARTS).
        dims: 1 for signals ``[N, C, L]``, 2 for images.
    """

    def __init__(self, space, candidates_for, C: int, n_cells: int, in_channels: int,
                 n_classes: int, affine: bool, search: bool, stem_multiplier: int = 3, dims: int = 2):
        super().__init__()
        check_stack_size(C, n_cells)
        self.space = space
        C_curr = stem_multiplier * C
        self.stem = nn.Sequential(conv(dims, in_channels, C_curr, 3, padding=1, bias=False),
                                  batch_norm(dims, C_curr))
        reductions = {n_cells // 3, 2 * n_cells // 3} if n_cells >= 3 else set()
        C_prev_prev, C_prev, C_curr = C_curr, C_curr, C
        self.cells = nn.ModuleList()
        self.cell_types: list[str] = []
        reduction_prev = False
        for k in range(n_cells):
            reduction = k in reductions
            if reduction:
                C_curr *= 2
            cell_type = "reduce" if reduction else "normal"
            candidates = [candidates_for(cell_type, e) for e in range(space.n_edges)]
            cell = Cell(space.edges, space.n_nodes, candidates, C_prev_prev, C_prev, C_curr,
                        reduction, reduction_prev, affine, search, dims)
            self.cells.append(cell)
            self.cell_types.append(cell_type)
            reduction_prev = reduction
            C_prev_prev, C_prev = C_prev, cell.out_channels
        self.pool = global_avg_pool(dims)
        self.classifier = nn.Linear(C_prev, n_classes)

    def run(self, x: torch.Tensor, terms_for) -> torch.Tensor:
        """Logits, with ``terms_for(cell type)`` giving that cell type's ``EdgeTerms``."""
        s0 = s1 = self.stem(x)
        terms = {cell_type: terms_for(cell_type) for cell_type in set(self.cell_types)}
        for cell, cell_type in zip(self.cells, self.cell_types):
            s0, s1 = s1, cell(s0, s1, terms[cell_type])
        return self.classifier(self.pool(s1).flatten(1))


class NB201Cell(nn.Module):
    """The NAS-Bench-201 cell: node ``k`` sums its edges from nodes ``0..k-1``; the last node
    is the output. Channels and resolution stay as they are (every op has stride 1).

    Args:
        edges: ``(to_node, from_node)`` per edge, as ``NB201SearchSpace.edges``.
        n_nodes: nodes after the input node.
        candidates: op names built on each edge.
        C: channels.
        affine: learnable BatchNorm parameters.
        search: search-time op variants.
        dims: 1 for signals ``[N, C, L]``, 2 for images.
    """

    def __init__(self, edges: Sequence[tuple[int, int]], n_nodes: int,
                 candidates: Sequence[Sequence[str]], C: int, affine: bool, search: bool, dims: int = 2):
        super().__init__()
        self.edges = tuple(edges)
        self.n_nodes = n_nodes
        self.edge_ops = nn.ModuleList(
            nn.ModuleList(make_op(name, C, 1, affine, search=search, dims=dims) for name in names)
            for names in candidates)
        self.node_edges = [[e for e, (to, _) in enumerate(self.edges) if to == node]
                           for node in range(1, n_nodes + 1)]
        self.sources = [src for _, src in self.edges]

    def forward(self, x: torch.Tensor, terms: EdgeTerms) -> torch.Tensor:
        states = [x]
        for edge_ids in self.node_edges:
            total = sum_edges(states, edge_ids, self.sources, self.edge_ops, terms)
            states.append(torch.zeros_like(x) if total is None else total)
        return states[-1]


class ResNetBasicBlock(nn.Module):
    """NAS-Bench-201's reduction between stages: two ReLU-Conv-BN 3x3 (the first strides by 2)
    plus a shortcut of 2x2 average pooling and a 1x1 convolution.

    The pooling rounds up (``ceil_mode``) so odd sizes match the strided convolution; on even
    sizes it is NAS-Bench-201's.
    """

    def __init__(self, C_in: int, C_out: int, dims: int = 2):
        super().__init__()
        self.conv_a = ReLUConvBN(C_in, C_out, 3, 2, 1, affine=True, dims=dims)
        self.conv_b = ReLUConvBN(C_out, C_out, 3, 1, 1, affine=True, dims=dims)
        self.shortcut = nn.Sequential(avg_pool(dims, 2, stride=2, ceil_mode=True),
                                      conv(dims, C_in, C_out, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.conv_b(self.conv_a(x))


class NB201Stack(nn.Module):
    """NAS-Bench-201's macro skeleton: stem (3-tap/3x3 conv + BN), three stages of ``N`` cells
    with C, 2C and 4C channels joined by ``ResNetBasicBlock`` reductions, BN + ReLU, global
    average pooling and a linear classifier.

    Args:
        space: an ``NB201SearchSpace``.
        candidates_for: ``(cell type, edge) -> op names`` built on that edge.
        C: channels of the first stage.
        N: cells per stage (NAS-Bench-201: 5).
        in_channels: input channels.
        n_classes: output classes.
        affine: learnable BatchNorm parameters in the cells.
        search: search-time op variants.
        dims: 1 for signals ``[N, C, L]``, 2 for images.
    """

    def __init__(self, space, candidates_for, C: int, N: int, in_channels: int, n_classes: int,
                 affine: bool, search: bool, dims: int = 2):
        super().__init__()
        if N < 1 or C < 1:
            raise ValueError(f"need N >= 1 cells per stage and C >= 1, got N={N}, C={C}")
        self.space = space
        self.stem = nn.Sequential(conv(dims, in_channels, C, 3, padding=1, bias=False), batch_norm(dims, C))
        (cell_type,) = space.cell_types
        candidates = [candidates_for(cell_type, e) for e in range(space.n_edges)]
        self.stages = nn.ModuleList()
        self.reductions = nn.ModuleList()
        for stage in range(3):
            width = C * 2 ** stage
            if stage:
                self.reductions.append(ResNetBasicBlock(width // 2, width, dims))
            self.stages.append(nn.ModuleList(
                NB201Cell(space.edges, space.n_nodes, candidates, width, affine, search, dims)
                for _ in range(N)))
        self.cells = [cell for stage in self.stages for cell in stage]
        self.cell_types = [cell_type] * len(self.cells)
        self.head = nn.Sequential(batch_norm(dims, 4 * C), nn.ReLU(inplace=False), global_avg_pool(dims))
        self.classifier = nn.Linear(4 * C, n_classes)

    def run(self, x: torch.Tensor, terms_for) -> torch.Tensor:
        """Logits, with ``terms_for(cell type)`` giving the cells' ``EdgeTerms``."""
        terms = terms_for(self.cell_types[0])
        x = self.stem(x)
        for stage, cells in enumerate(self.stages):
            if stage:
                x = self.reductions[stage - 1](x)
            for cell in cells:
                x = cell(x, terms)
        return self.classifier(self.head(x).flatten(1))


def build_stack(space, candidates_for, C: int, n_cells: int, in_channels: int, n_classes: int,
                affine: bool, search: bool, stem_multiplier: int = 3, dims: int = 2) -> nn.Module:
    """The network skeleton of ``space``: a ``CellStack`` for a DARTS ``CellSearchSpace``, an
    ``NB201Stack`` for an ``NB201SearchSpace`` (where ``n_cells`` is the cells per stage, N,
    and ``stem_multiplier`` does not apply). Arguments as ``CellStack``.

    Raises:
        TypeError: ``space`` is not a cell space.
    """
    if isinstance(space, NB201SearchSpace):
        return NB201Stack(space, candidates_for, C, n_cells, in_channels, n_classes, affine, search, dims)
    if isinstance(space, CellSearchSpace):
        return CellStack(space, candidates_for, C, n_cells, in_channels, n_classes, affine, search,
                         stem_multiplier, dims)
    raise TypeError(f"a network needs a cell space (CellSearchSpace or NB201SearchSpace), "
                    f"got {type(space).__name__}")


def single_op_candidates(space, arch):
    """``candidates_for`` of a stand-alone network: the chosen op per edge, none when off."""
    def candidates_for(cell_type: str, edge: int) -> tuple[str, ...]:
        op = space.op_names[int(arch[space.decision_index(cell_type, edge)])]
        return () if op == ZERO_OP else (op,)
    return candidates_for
