"""Candidate operations: one registry, the single source of truth for op names.

Every factory has the DARTS signature ``(C, stride, affine) -> nn.Module``; an op
maps ``[N, C, H, W]`` to ``[N, C, H/stride, W/stride]``. ``OPS`` keeps its
insertion order, and ``DARTS_OPS`` (the eight ops of the DARTS CIFAR-10 space, zero
op first) is a slice of it, not a second list.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn


class Zero(nn.Module):
    """The zero op: no connection. Kept for completeness; the supernet skips it."""

    def __init__(self, stride: int):
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            return x.mul(0.0)
        return x[:, :, :: self.stride, :: self.stride].mul(0.0)


class Identity(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class ReLUConvBN(nn.Module):
    def __init__(self, C_in: int, C_out: int, kernel: int | tuple[int, int], stride: int,
                 padding: int | tuple[int, int], affine: bool = True):
        super().__init__()
        self.body = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(C_in, C_out, kernel, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(C_out, affine=affine),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class Conv7x1x1x7(nn.Module):
    """ReLU, a 1x7 then a 7x1 convolution, BN (the factorised 7x7 of NASNet)."""

    def __init__(self, C: int, stride: int, affine: bool = True):
        super().__init__()
        self.body = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(C, C, (1, 7), stride=(1, stride), padding=(0, 3), bias=False),
            nn.Conv2d(C, C, (7, 1), stride=(stride, 1), padding=(3, 0), bias=False),
            nn.BatchNorm2d(C, affine=affine),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class DilConv(nn.Module):
    """ReLU, depthwise (dilated) conv, pointwise conv, BN."""

    def __init__(self, C_in: int, C_out: int, kernel: int, stride: int, padding: int,
                 dilation: int, affine: bool = True):
        super().__init__()
        self.body = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(C_in, C_in, kernel, stride=stride, padding=padding, dilation=dilation,
                      groups=C_in, bias=False),
            nn.Conv2d(C_in, C_out, 1, bias=False),
            nn.BatchNorm2d(C_out, affine=affine),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class SepConv(nn.Module):
    """Two stacked depthwise-separable convolutions (only the first one strides)."""

    def __init__(self, C_in: int, C_out: int, kernel: int, stride: int, padding: int,
                 affine: bool = True):
        super().__init__()
        self.body = nn.Sequential(
            DilConv(C_in, C_in, kernel, stride, padding, dilation=1, affine=affine),
            DilConv(C_in, C_out, kernel, 1, padding, dilation=1, affine=affine),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class FactorizedReduce(nn.Module):
    """Halve the resolution with two offset 1x1 stride-2 convs, concatenated.

    The offset branch pads by one first, so odd sizes (MNIST's 7x7) work too.
    """

    def __init__(self, C_in: int, C_out: int, affine: bool = True):
        super().__init__()
        if C_out % 2:
            raise ValueError(f"FactorizedReduce needs an even C_out, got {C_out}")
        self.relu = nn.ReLU(inplace=False)
        self.conv_a = nn.Conv2d(C_in, C_out // 2, 1, stride=2, bias=False)
        self.conv_b = nn.Conv2d(C_in, C_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(C_out, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        shifted = F.pad(x, (0, 1, 0, 1))[:, :, 1:, 1:]
        return self.bn(torch.cat([self.conv_a(x), self.conv_b(shifted)], dim=1))


def _skip(C: int, stride: int, affine: bool) -> nn.Module:
    return Identity() if stride == 1 else FactorizedReduce(C, C, affine=affine)


def _avg_pool(kernel: int) -> Callable[[int, int, bool], nn.Module]:
    return lambda C, stride, affine: nn.AvgPool2d(kernel, stride=stride, padding=kernel // 2,
                                                  count_include_pad=False)


def _max_pool(kernel: int) -> Callable[[int, int, bool], nn.Module]:
    return lambda C, stride, affine: nn.MaxPool2d(kernel, stride=stride, padding=kernel // 2)


@dataclass(frozen=True)
class OpSpec:
    """One candidate operation.

    Attributes:
        build: factory ``(C, stride, affine) -> nn.Module``.
        parameter_free: True for ops without weights (the DARTS-collapse signal counts them).
        normalize_in_search: the supernet appends an affine-free BatchNorm, as DARTS does for
            pooling, so that weight-free outputs are on the same scale as convolutions.
    """

    build: Callable[[int, int, bool], nn.Module]
    parameter_free: bool = False
    normalize_in_search: bool = False


OPS: dict[str, OpSpec] = {
    # The DARTS CIFAR-10 candidate set, zero op first (op index 0 everywhere).
    "none": OpSpec(lambda C, stride, affine: Zero(stride), parameter_free=True),
    "skip_connect": OpSpec(_skip, parameter_free=True),
    "max_pool_3x3": OpSpec(_max_pool(3), parameter_free=True, normalize_in_search=True),
    "avg_pool_3x3": OpSpec(_avg_pool(3), parameter_free=True, normalize_in_search=True),
    "sep_conv_3x3": OpSpec(lambda C, stride, affine: SepConv(C, C, 3, stride, 1, affine)),
    "sep_conv_5x5": OpSpec(lambda C, stride, affine: SepConv(C, C, 5, stride, 2, affine)),
    "dil_conv_3x3": OpSpec(lambda C, stride, affine: DilConv(C, C, 3, stride, 2, 2, affine)),
    "dil_conv_5x5": OpSpec(lambda C, stride, affine: DilConv(C, C, 5, stride, 4, 2, affine)),
    # Further ops (NASNet/ENAS candidates), used to grow the candidate set in benchmarks.
    "conv_1x1": OpSpec(lambda C, stride, affine: ReLUConvBN(C, C, 1, stride, 0, affine)),
    "conv_3x3": OpSpec(lambda C, stride, affine: ReLUConvBN(C, C, 3, stride, 1, affine)),
    "conv_5x5": OpSpec(lambda C, stride, affine: ReLUConvBN(C, C, 5, stride, 2, affine)),
    "conv_7x1_1x7": OpSpec(lambda C, stride, affine: Conv7x1x1x7(C, stride, affine)),
    "sep_conv_7x7": OpSpec(lambda C, stride, affine: SepConv(C, C, 7, stride, 3, affine)),
    "dil_conv_7x7": OpSpec(lambda C, stride, affine: DilConv(C, C, 7, stride, 6, 2, affine)),
    "max_pool_5x5": OpSpec(_max_pool(5), parameter_free=True, normalize_in_search=True),
    "avg_pool_5x5": OpSpec(_avg_pool(5), parameter_free=True, normalize_in_search=True),
}

ZERO_OP = "none"
DARTS_OPS: tuple[str, ...] = tuple(OPS)[:8]


def make_op(name: str, C: int, stride: int, affine: bool, *, search: bool = False) -> nn.Module:
    """Build op ``name``.

    Args:
        name: a key of ``OPS``.
        C: channels in and out.
        stride: 1, or 2 on the input edges of a reduction cell.
        affine: learnable BatchNorm scale and shift (False in the search supernet, as DARTS).
        search: add the search-time normalisation of ``OpSpec.normalize_in_search``.

    Returns:
        The module.
    """
    try:
        spec = OPS[name]
    except KeyError:
        raise KeyError(f"unknown op {name!r}; known ops: {', '.join(OPS)}") from None
    op = spec.build(C, stride, affine)
    if search and spec.normalize_in_search:
        op = nn.Sequential(op, nn.BatchNorm2d(C, affine=False))
    return op
