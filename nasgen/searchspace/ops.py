"""Candidate operations: one registry, the single source of truth for op names.

Every factory has the DARTS signature plus the data's dimensionality,
``(C, stride, affine, dims) -> nn.Module``; an op maps ``[N, C, H, W]`` to
``[N, C, H/stride, W/stride]`` (``dims=2``) and a signal ``[N, C, L]`` to ``[N, C, L/stride]``
(``dims=1``: Conv1d, 1-D pools, BatchNorm1d, so a 3-tap kernel costs 3 taps). ``OPS`` keeps its
insertion order, and ``DARTS_OPS`` (the eight ops of the DARTS CIFAR-10 space, zero
op first) is a slice of it, not a second list.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn


# The module classes of each spatial dimensionality: 1 for signals ``[N, C, L]``, 2 for images.
_CONV = {1: nn.Conv1d, 2: nn.Conv2d}
_BN = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d}
_AVG_POOL = {1: nn.AvgPool1d, 2: nn.AvgPool2d}
_MAX_POOL = {1: nn.MaxPool1d, 2: nn.MaxPool2d}
_ADAPTIVE_AVG_POOL = {1: nn.AdaptiveAvgPool1d, 2: nn.AdaptiveAvgPool2d}
SPATIAL_DIMS = tuple(_CONV)


def _check_dims(dims: int) -> int:
    if dims not in _CONV:
        raise ValueError(f"dims must be one of {SPATIAL_DIMS} (1-D signals or 2-D images), got {dims!r}")
    return dims


def conv(dims: int, *args, **kwargs) -> nn.Module:
    """``nn.Conv1d`` or ``nn.Conv2d`` with the given arguments."""
    return _CONV[_check_dims(dims)](*args, **kwargs)


def batch_norm(dims: int, *args, **kwargs) -> nn.Module:
    """``nn.BatchNorm1d`` or ``nn.BatchNorm2d`` with the given arguments."""
    return _BN[_check_dims(dims)](*args, **kwargs)


def avg_pool(dims: int, *args, **kwargs) -> nn.Module:
    """``nn.AvgPool1d`` or ``nn.AvgPool2d`` with the given arguments."""
    return _AVG_POOL[_check_dims(dims)](*args, **kwargs)


def global_avg_pool(dims: int) -> nn.Module:
    """Average over every spatial position: ``[N, C, *spatial] -> [N, C, 1...]``."""
    return _ADAPTIVE_AVG_POOL[_check_dims(dims)](1)


class Zero(nn.Module):
    """The zero op: no connection. Kept for completeness; the supernet skips it."""

    def __init__(self, stride: int):
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            return x.mul(0.0)
        return x[(slice(None), slice(None)) + (slice(None, None, self.stride),) * (x.dim() - 2)].mul(0.0)


class Identity(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class ReLUConvBN(nn.Module):
    def __init__(self, C_in: int, C_out: int, kernel: int | tuple[int, int], stride: int,
                 padding: int | tuple[int, int], affine: bool = True, dims: int = 2):
        super().__init__()
        self.body = nn.Sequential(
            nn.ReLU(inplace=False),
            conv(dims, C_in, C_out, kernel, stride=stride, padding=padding, bias=False),
            batch_norm(dims, C_out, affine=affine),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class Conv7x1x1x7(nn.Module):
    """ReLU, a 1x7 then a 7x1 convolution, BN (the factorised 7x7 of NASNet).

    In 1-D the 7x1 convolution has no second axis to run along; as on a height-1 image,
    where its padded 7x1 kernel meets one row, it is a 1-tap (pointwise) convolution.
    """

    def __init__(self, C: int, stride: int, affine: bool = True, dims: int = 2):
        super().__init__()
        if dims == 1:
            first = conv(1, C, C, 7, stride=stride, padding=3, bias=False)
            second = conv(1, C, C, 1, bias=False)
        else:
            first = conv(dims, C, C, (1, 7), stride=(1, stride), padding=(0, 3), bias=False)
            second = conv(dims, C, C, (7, 1), stride=(stride, 1), padding=(3, 0), bias=False)
        self.body = nn.Sequential(nn.ReLU(inplace=False), first, second, batch_norm(dims, C, affine=affine))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class DilConv(nn.Module):
    """ReLU, depthwise (dilated) conv, pointwise conv, BN."""

    def __init__(self, C_in: int, C_out: int, kernel: int, stride: int, padding: int,
                 dilation: int, affine: bool = True, dims: int = 2):
        super().__init__()
        self.body = nn.Sequential(
            nn.ReLU(inplace=False),
            conv(dims, C_in, C_in, kernel, stride=stride, padding=padding, dilation=dilation,
                 groups=C_in, bias=False),
            conv(dims, C_in, C_out, 1, bias=False),
            batch_norm(dims, C_out, affine=affine),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class SepConv(nn.Module):
    """Two stacked depthwise-separable convolutions (only the first one strides)."""

    def __init__(self, C_in: int, C_out: int, kernel: int, stride: int, padding: int,
                 affine: bool = True, dims: int = 2):
        super().__init__()
        self.body = nn.Sequential(
            DilConv(C_in, C_in, kernel, stride, padding, dilation=1, affine=affine, dims=dims),
            DilConv(C_in, C_out, kernel, 1, padding, dilation=1, affine=affine, dims=dims),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class FactorizedReduce(nn.Module):
    """Halve the resolution with two offset 1x1 stride-2 convs, concatenated.

    The offset branch pads by one first, so odd sizes (MNIST's 7x7) work too.
    """

    def __init__(self, C_in: int, C_out: int, affine: bool = True, dims: int = 2):
        super().__init__()
        if C_out % 2:
            raise ValueError(f"FactorizedReduce needs an even C_out, got {C_out}")
        self.relu = nn.ReLU(inplace=False)
        self.conv_a = conv(dims, C_in, C_out // 2, 1, stride=2, bias=False)
        self.conv_b = conv(dims, C_in, C_out // 2, 1, stride=2, bias=False)
        self.bn = batch_norm(dims, C_out, affine=affine)
        self._pad = (0, 1) * dims
        self._shift = (slice(None), slice(None)) + (slice(1, None),) * dims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        shifted = F.pad(x, self._pad)[self._shift]
        return self.bn(torch.cat([self.conv_a(x), self.conv_b(shifted)], dim=1))


def _skip(C: int, stride: int, affine: bool, dims: int) -> nn.Module:
    return Identity() if stride == 1 else FactorizedReduce(C, C, affine=affine, dims=dims)


def _avg_pool(kernel: int) -> Callable[[int, int, bool, int], nn.Module]:
    return lambda C, stride, affine, dims: avg_pool(dims, kernel, stride=stride, padding=kernel // 2,
                                                    count_include_pad=False)


def _max_pool(kernel: int) -> Callable[[int, int, bool, int], nn.Module]:
    return lambda C, stride, affine, dims: _MAX_POOL[dims](kernel, stride=stride, padding=kernel // 2)


def _relu_conv_bn(kernel: int) -> Callable[[int, int, bool, int], nn.Module]:
    return lambda C, stride, affine, dims: ReLUConvBN(C, C, kernel, stride, kernel // 2, affine, dims)


@dataclass(frozen=True)
class OpSpec:
    """One candidate operation.

    Attributes:
        build: factory ``(C, stride, affine, dims) -> nn.Module``; ``dims`` is 1 for signals
            ``[N, C, L]`` (Conv1d, 1-D pools, BatchNorm1d) and 2 for images.
        parameter_free: True for ops without weights (the DARTS-collapse signal counts them).
        normalize_in_search: the supernet appends an affine-free BatchNorm, as DARTS does for
            pooling, so that weight-free outputs are on the same scale as convolutions.
    """

    build: Callable[[int, int, bool, int], nn.Module]
    parameter_free: bool = False
    normalize_in_search: bool = False


OPS: dict[str, OpSpec] = {
    # The DARTS CIFAR-10 candidate set, zero op first (op index 0 everywhere).
    "none": OpSpec(lambda C, stride, affine, dims: Zero(stride), parameter_free=True),
    "skip_connect": OpSpec(_skip, parameter_free=True),
    "max_pool_3x3": OpSpec(_max_pool(3), parameter_free=True, normalize_in_search=True),
    "avg_pool_3x3": OpSpec(_avg_pool(3), parameter_free=True, normalize_in_search=True),
    "sep_conv_3x3": OpSpec(lambda C, stride, affine, dims: SepConv(C, C, 3, stride, 1, affine, dims)),
    "sep_conv_5x5": OpSpec(lambda C, stride, affine, dims: SepConv(C, C, 5, stride, 2, affine, dims)),
    "dil_conv_3x3": OpSpec(lambda C, stride, affine, dims: DilConv(C, C, 3, stride, 2, 2, affine, dims)),
    "dil_conv_5x5": OpSpec(lambda C, stride, affine, dims: DilConv(C, C, 5, stride, 4, 2, affine, dims)),
    # Further ops (NASNet/ENAS candidates), used to grow the candidate set in benchmarks.
    "conv_1x1": OpSpec(_relu_conv_bn(1)),
    "conv_3x3": OpSpec(_relu_conv_bn(3)),
    "conv_5x5": OpSpec(_relu_conv_bn(5)),
    "conv_7x1_1x7": OpSpec(lambda C, stride, affine, dims: Conv7x1x1x7(C, stride, affine, dims)),
    "sep_conv_7x7": OpSpec(lambda C, stride, affine, dims: SepConv(C, C, 7, stride, 3, affine, dims)),
    "dil_conv_7x7": OpSpec(lambda C, stride, affine, dims: DilConv(C, C, 7, stride, 6, 2, affine, dims)),
    "max_pool_5x5": OpSpec(_max_pool(5), parameter_free=True, normalize_in_search=True),
    "avg_pool_5x5": OpSpec(_avg_pool(5), parameter_free=True, normalize_in_search=True),
    # NAS-Bench-201's convolutions (ReLU-Conv-BN; its none, skip_connect and avg_pool_3x3
    # are the entries above). Same modules as conv_1x1/conv_3x3, under the benchmark's names.
    "nor_conv_1x1": OpSpec(_relu_conv_bn(1)),
    "nor_conv_3x3": OpSpec(_relu_conv_bn(3)),
}

ZERO_OP = "none"
DARTS_OPS: tuple[str, ...] = tuple(OPS)[:8]


def make_op(name: str, C: int, stride: int, affine: bool, *, search: bool = False,
            dims: int = 2) -> nn.Module:
    """Build op ``name`` in its 1-D or 2-D form.

    Args:
        name: a key of ``OPS``.
        C: channels in and out.
        stride: 1, or 2 on the input edges of a reduction cell.
        affine: learnable BatchNorm scale and shift (False in the search supernet, as DARTS).
        search: add the search-time normalisation of ``OpSpec.normalize_in_search``.
        dims: spatial dimensionality of the data: 1 for signals ``[N, C, L]``, 2 for images.

    Returns:
        The module.
    """
    try:
        spec = OPS[name]
    except KeyError:
        raise KeyError(f"unknown op {name!r}; known ops: {', '.join(OPS)}") from None
    op = spec.build(C, stride, affine, _check_dims(dims))
    if search and spec.normalize_in_search:
        op = nn.Sequential(op, batch_norm(dims, C, affine=False))
    return op
