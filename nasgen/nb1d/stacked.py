"""Many stand-alone NAS-Bench-201 networks trained side by side as one vectorised model.

At a table's sizes (C=8, signals of 40 samples) one training is mostly per-call overhead:
each convolution touches a few thousand numbers. ``StackedNB201`` holds ``K`` networks of
the NB201 skeleton, one per architecture, with their channels side by side
(``[batch, K * width, *spatial]``): the fixed parts are grouped convolutions
(``groups=K``), and on each cell edge the architectures that chose a convolution are
gathered and run as one grouped convolution. Every parameter has the architecture as its
first dimension, so the loss is the sum of the per-architecture losses, the gradient clip
is per architecture, and SGD is element-wise: each network trains exactly as it would alone
(up to floating-point summation order; a test checks it against ``K = 1``). Over a whole
training that order is not nothing: chaotic SGD grows it into a different run, as a seed
does, only smaller (the README measures a CPU row against a GPU row). The model moves to a
device with ``.to``, its index tensors included.

The initial weights of a seed are one template per parameter position, drawn from a
generator seeded with the seed and repeated for every architecture: the stem, the
reductions and the classifier of all architectures start equal, and an op on an edge starts
the same in every architecture that uses it. So a row depends on (architecture, seed) only,
never on which architectures shared its group.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

#: The ops the stacked model knows (NAS-Bench-201's five).
STACKED_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
_CONV_KERNEL = {"nor_conv_1x1": 1, "nor_conv_3x3": 3}
_CONV_FN = {1: F.conv1d, 2: F.conv2d}
_AVG_POOL_FN = {1: F.avg_pool1d, 2: F.avg_pool2d}


def avg_pool_3(x: torch.Tensor) -> torch.Tensor:
    """3-wide average pooling, stride 1, padding 1, padded positions not counted (as
    ``avg_pool_3x3`` with ``count_include_pad=False``) over every spatial dimension of
    ``[B, C, *spatial]``, as shifted sums: several times faster on a CPU than the pooling
    kernel at these sizes (a step spent a fifth of its time there)."""
    divisor = x.new_ones(())
    for dim in range(2, x.dim()):
        n = x.shape[dim]
        padded = F.pad(x.movedim(dim, -1), (1, 1))
        x = (padded[..., :n] + padded[..., 1:n + 1] + padded[..., 2:]).movedim(-1, dim)
        count = x.new_full((n,), 3.0)
        count[0] -= 1
        count[-1] -= 1
        divisor = divisor * count.view(n, *([1] * (x.dim() - 1 - dim))).clamp(min=1.0)
    return x / divisor


class _StackedBN(nn.Module):
    """BatchNorm with per-architecture parameters ``[K, C]`` and running statistics;
    ``forward`` may run on a subset ``index`` of the architectures."""

    def __init__(self, K: int, C: int, momentum: float = 0.1, eps: float = 1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(K, C))
        self.bias = nn.Parameter(torch.zeros(K, C))
        self.register_buffer("running_mean", torch.zeros(K, C))
        self.register_buffer("running_var", torch.ones(K, C))
        self.momentum, self.eps = momentum, eps

    def forward(self, x: torch.Tensor, index: torch.Tensor | None = None) -> torch.Tensor:
        if index is None:
            weight, bias = self.weight.reshape(-1), self.bias.reshape(-1)
            mean, var = self.running_mean.view(-1), self.running_var.view(-1)  # views: updated in place
            return F.batch_norm(x, mean, var, weight, bias, self.training, self.momentum, self.eps)
        weight, bias = self.weight[index].reshape(-1), self.bias[index].reshape(-1)
        mean, var = self.running_mean[index].reshape(-1), self.running_var[index].reshape(-1)  # copies
        out = F.batch_norm(x, mean, var, weight, bias, self.training, self.momentum, self.eps)
        if self.training:  # write the subset's updated statistics back
            self.running_mean[index] = mean.view(len(index), -1)
            self.running_var[index] = var.view(len(index), -1)
        return out


class _StackedConv(nn.Module):
    """A convolution per architecture, weight ``[K, C_out, C_in, *kernel]``, run grouped."""

    def __init__(self, K: int, C_in: int, C_out: int, kernel: int, dims: int, stride: int = 1,
                 padding: int = 0, shared_input: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(K, C_out, C_in, *([kernel] * dims)))
        self.stride, self.padding, self.dims = stride, padding, dims
        # A shared input (the stem's): every architecture reads the same C_in channels.
        self.shared_input = shared_input

    def forward(self, x: torch.Tensor, index: torch.Tensor | None = None) -> torch.Tensor:
        weight = self.weight if index is None else self.weight[index]
        groups = 1 if self.shared_input else weight.shape[0]
        return _CONV_FN[self.dims](x, weight.flatten(0, 1), stride=self.stride, padding=self.padding,
                                   groups=groups)


class _StackedReLUConvBN(nn.Module):
    def __init__(self, K: int, C_in: int, C_out: int, kernel: int, dims: int, stride: int = 1):
        super().__init__()
        self.conv = _StackedConv(K, C_in, C_out, kernel, dims, stride, kernel // 2)
        self.bn = _StackedBN(K, C_out)

    def forward(self, x: torch.Tensor, index: torch.Tensor | None = None) -> torch.Tensor:
        return self.bn(self.conv(F.relu(x), index), index)


class _StackedReduction(nn.Module):
    """NAS-Bench-201's ResNet basic block between stages (as ``cells.ResNetBasicBlock``)."""

    def __init__(self, K: int, C_in: int, C_out: int, dims: int):
        super().__init__()
        self.conv_a = _StackedReLUConvBN(K, C_in, C_out, 3, dims, stride=2)
        self.conv_b = _StackedReLUConvBN(K, C_out, C_out, 3, dims)
        self.shortcut = _StackedConv(K, C_in, C_out, 1, dims)
        self.dims = dims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = _AVG_POOL_FN[self.dims](x, 2, stride=2, ceil_mode=True)
        return self.shortcut(pooled) + self.conv_b(self.conv_a(x))


class _StackedCell(nn.Module):
    """One NB201 cell position for all K architectures, each with its own op per edge."""

    def __init__(self, archs: torch.Tensor, op_names: Sequence[str], edges: Sequence[tuple[int, int]],
                 n_nodes: int, C: int, dims: int):
        super().__init__()
        K = archs.shape[0]
        self.C, self.dims, self.n_nodes, self.edges = C, dims, n_nodes, tuple(edges)
        self.convs = nn.ModuleDict()
        # Per edge: op -> the name of a buffer holding the indices of the architectures that
        # use it (buffers, so that ``.to(device)`` moves them with the weights).
        self.plan: list[dict[str, str]] = []
        for e in range(len(self.edges)):
            uses = {}
            for o, name in enumerate(op_names):
                chosen = torch.nonzero(archs[:, e] == o).flatten()
                if name in _CONV_KERNEL:
                    # Every architecture gets the weights (so initial values never depend on the
                    # group); only those that chose the op use them.
                    self.convs[f"{e}_{name}"] = _StackedReLUConvBN(K, C, C, _CONV_KERNEL[name], dims)
                if len(chosen) and name != "none":
                    uses[name] = f"uses_{e}_{name}"
                    self.register_buffer(uses[name], chosen, persistent=False)
            self.plan.append(uses)
        self.K = K

    def _mask(self, index: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        mask = torch.zeros(self.K, dtype=like.dtype, device=like.device)
        mask[index] = 1.0
        return mask.view(1, self.K, *([1] * (like.dim() - 2)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, spatial = x.shape[0], x.shape[2:]
        per_arch = (batch, self.K, self.C, *spatial)  # the architecture as its own dimension
        states = [x]
        for node in range(1, self.n_nodes + 1):
            total = x.new_zeros(per_arch)
            for e, (to, src) in enumerate(self.edges):
                if to != node:
                    continue
                h = states[src]
                h_arch = h.view(per_arch)
                for name, buffer in self.plan[e].items():
                    index = getattr(self, buffer)
                    if len(index) == self.K:  # every architecture chose this op: no gather
                        if name == "skip_connect":
                            total = total + h_arch
                        elif name == "avg_pool_3x3":
                            total = total + avg_pool_3(h).view(per_arch)
                        else:
                            total = total + self.convs[f"{e}_{name}"](h).view(per_arch)
                    elif name == "skip_connect":
                        total = total + h_arch * self._mask(index, h_arch)
                    elif name == "avg_pool_3x3":
                        total = total + avg_pool_3(h).view(per_arch) * self._mask(index, h_arch)
                    else:
                        picked = h_arch.index_select(1, index).flatten(1, 2)
                        out = self.convs[f"{e}_{name}"](picked, index)
                        total = total.index_add(1, index, out.view(batch, len(index), self.C, *spatial))
            states.append(total.flatten(1, 2))
        return states[-1]


class StackedNB201(nn.Module):
    """K stand-alone NAS-Bench-201 networks (``cells.NB201Stack`` without search ops) as one.

    Args:
        archs: ``[K, 6]`` op indices into ``op_names``.
        op_names: the space's ops, a subset of ``STACKED_OPS``.
        edges: ``(to_node, from_node)`` per edge.
        n_nodes: nodes after the input node.
        C: channels of the first stage.
        N: cells per stage.
        in_channels: input channels.
        n_classes: classes.
        dims: 1 for signals ``[B, C, L]``, 2 for images.
        seed: seeds the initial weights (one template per parameter, see the module docstring).

    ``forward(x)`` returns logits ``[batch, K, n_classes]``.
    """

    def __init__(self, archs: np.ndarray, op_names: Sequence[str], edges: Sequence[tuple[int, int]],
                 n_nodes: int, C: int, N: int, in_channels: int, n_classes: int, dims: int, seed: int):
        super().__init__()
        unknown = [name for name in op_names if name not in STACKED_OPS]
        if unknown:
            raise ValueError(f"the stacked trainer knows the ops {', '.join(STACKED_OPS)}; got {unknown[0]!r}")
        archs_t = torch.as_tensor(np.array(archs, dtype=np.int64))
        K = archs_t.shape[0]
        self.K, self.dims = K, dims
        self.stem_conv = _StackedConv(K, in_channels, C, 3, dims, padding=1, shared_input=True)
        self.stem_bn = _StackedBN(K, C)
        self.stages = nn.ModuleList()
        self.reductions = nn.ModuleList()
        for stage in range(3):
            width = C * 2 ** stage
            if stage:
                self.reductions.append(_StackedReduction(K, width // 2, width, dims))
            self.stages.append(nn.ModuleList(_StackedCell(archs_t, op_names, edges, n_nodes, width, dims)
                                             for _ in range(N)))
        self.head_bn = _StackedBN(K, 4 * C)
        self.classifier_weight = nn.Parameter(torch.empty(K, n_classes, 4 * C))
        self.classifier_bias = nn.Parameter(torch.empty(K, n_classes))
        self._initialise(seed)

    @torch.no_grad()
    def _initialise(self, seed: int) -> None:
        # PyTorch's default bounds (kaiming-uniform with a=sqrt(5): 1/sqrt(fan_in)), one draw
        # per parameter position, repeated over the K architectures.
        generator = torch.Generator().manual_seed(int(seed))

        def draw(param: torch.Tensor, fan_in: int) -> None:
            bound = 1.0 / math.sqrt(fan_in)
            template = (torch.rand(param.shape[1:], generator=generator) * 2 - 1) * bound
            param.copy_(template.expand_as(param))

        for module in self.modules():
            if isinstance(module, _StackedConv):
                draw(module.weight, int(np.prod(module.weight.shape[2:])))
        draw(self.classifier_weight, self.classifier_weight.shape[2])
        draw(self.classifier_bias, self.classifier_weight.shape[2])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem_bn(self.stem_conv(x))
        for stage, cells in enumerate(self.stages):
            if stage:
                x = self.reductions[stage - 1](x)
            for cell in cells:
                x = cell(x)
        x = F.relu(self.head_bn(x))
        features = x.flatten(2).mean(2).view(x.shape[0], self.K, -1)  # global average pool
        return torch.einsum("bkc,knc->bkn", features, self.classifier_weight) + self.classifier_bias


def clip_per_architecture(params: Sequence[torch.Tensor], K: int, max_norm: float) -> torch.Tensor:
    """Clip each architecture's gradient to ``max_norm`` (as ``clip_grad_norm_`` would alone).

    Args:
        params: parameters whose first dimension is the architecture.
        K: architectures.
        max_norm: the largest gradient norm kept.

    Returns:
        The per-architecture gradient norms before clipping, ``[K]``.
    """
    grads = [p.grad for p in params if p.grad is not None]
    norms = torch.zeros(K, device=grads[0].device if grads else None)
    for grad in grads:
        norms += grad.reshape(K, -1).pow(2).sum(1)
    norms = norms.sqrt()
    scale = (max_norm / (norms + 1e-6)).clamp(max=1.0)
    for grad in grads:
        grad.mul_(scale.view(K, *([1] * (grad.dim() - 1))))
    return norms
