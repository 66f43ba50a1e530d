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

from .ops import ZERO_OP, FactorizedReduce, ReLUConvBN, make_op

# Per edge: the list of (candidate index, coefficient or None) terms to evaluate.
EdgeTerms = Sequence[Sequence[tuple[int, Optional[torch.Tensor]]]]


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
    """

    def __init__(self, edges: Sequence[tuple[int, int]], n_nodes: int,
                 candidates: Sequence[Sequence[str]], C_prev_prev: int, C_prev: int, C: int,
                 reduction: bool, reduction_prev: bool, affine: bool, search: bool):
        super().__init__()
        self.edges = tuple(edges)
        self.n_nodes = n_nodes
        self.reduction = reduction
        self.C = C
        self.preprocess0 = (FactorizedReduce(C_prev_prev, C, affine=affine) if reduction_prev
                            else ReLUConvBN(C_prev_prev, C, 1, 1, 0, affine=affine))
        self.preprocess1 = ReLUConvBN(C_prev, C, 1, 1, 0, affine=affine)
        self.edge_ops = nn.ModuleList()
        for (_, src), names in zip(self.edges, candidates):
            stride = 2 if reduction and src < 2 else 1
            self.edge_ops.append(nn.ModuleList(
                make_op(name, C, stride, affine, search=search) for name in names))
        self.node_edges = [[e for e, (n, _) in enumerate(self.edges) if n == node]
                           for node in range(n_nodes)]
        self.out_channels = n_nodes * C

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, terms: EdgeTerms) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for node in range(self.n_nodes):
            total = None
            for e in self.node_edges[node]:
                source = states[self.edges[e][1]]
                for index, coefficient in terms[e]:
                    out = self.edge_ops[e][index](source)
                    if coefficient is not None:
                        out = out * coefficient
                    total = out if total is None else total + out
            if total is None:  # every input of this node is off
                n, _, h, w = states[1].shape
                if self.reduction:
                    h, w = (h + 1) // 2, (w + 1) // 2
                total = states[1].new_zeros(n, self.C, h, w)
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
    """

    def __init__(self, space, candidates_for, C: int, n_cells: int, in_channels: int,
                 n_classes: int, affine: bool, search: bool, stem_multiplier: int = 3):
        super().__init__()
        check_stack_size(C, n_cells)
        self.space = space
        C_curr = stem_multiplier * C
        self.stem = nn.Sequential(nn.Conv2d(in_channels, C_curr, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(C_curr))
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
                        reduction, reduction_prev, affine, search)
            self.cells.append(cell)
            self.cell_types.append(cell_type)
            reduction_prev = reduction
            C_prev_prev, C_prev = C_prev, cell.out_channels
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(C_prev, n_classes)

    def run(self, x: torch.Tensor, terms_for) -> torch.Tensor:
        """Logits, with ``terms_for(cell type)`` giving that cell type's ``EdgeTerms``."""
        s0 = s1 = self.stem(x)
        terms = {cell_type: terms_for(cell_type) for cell_type in set(self.cell_types)}
        for cell, cell_type in zip(self.cells, self.cell_types):
            s0, s1 = s1, cell(s0, s1, terms[cell_type])
        return self.classifier(self.pool(s1).flatten(1))


def single_op_candidates(space, arch):
    """``candidates_for`` of a stand-alone network: the chosen op per edge, none when off."""
    def candidates_for(cell_type: str, edge: int) -> tuple[str, ...]:
        op = space.op_names[int(arch[space.decision_index(cell_type, edge)])]
        return () if op == ZERO_OP else (op,)
    return candidates_for
