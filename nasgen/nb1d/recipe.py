"""The fixed training recipe of a table, and one (architecture, seed) training under it."""

from __future__ import annotations

import contextlib
import functools
import json
import math
import time
import traceback
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from nasgen.runtime import check_device
from nasgen.searchspace import NB201SearchSpace, Network, Split, fit, from_dict, load_dataset

from .stacked import STACKED_OPS, StackedNB201, clip_per_architecture

#: The metrics recorded at each recorded epoch, in this order.
METRICS = ("train_accuracy", "train_loss", "val_accuracy", "val_loss", "test_accuracy", "test_loss")


@dataclass
class Recipe:
    """How every architecture of a table is trained (one recipe for the whole table)."""

    train_size: int = 4000
    """training examples kept (the loader's train split is cut to this many)"""
    val_size: int = 10000
    """validation examples kept (the reward split of ``Tabular-v0``)"""
    test_size: int = 10000
    """test examples kept (the judgement split)"""
    data_seed: int = 0
    """split/generator seed of the dataset: the same data for every architecture and seed"""
    data_options: dict = field(default_factory=dict)
    """dataset options (``load_dataset(options=...)``, e.g. mnist1d's generator ``seed``); for
    mnist1d the split sizes above are passed as ``n_train``/``n_val``/``n_test`` unless given here"""
    epochs: int = 10
    """passes over the training split"""
    record_epochs: tuple = ()
    """epochs after which all metrics are recorded; empty = half-way and the last epoch"""
    batch_size: int = 256
    """examples per SGD step"""
    lr: float = 0.1
    """initial learning rate, annealed to 0 by a cosine schedule over all steps"""
    momentum: float = 0.9
    """SGD momentum (Nesterov)"""
    weight_decay: float = 5e-4
    """L2 penalty"""
    grad_clip: float = 5.0
    """gradient-norm clip"""
    C: int = 8
    """channels of the first stage"""
    cells_per_stage: int = 1
    """cells per stage (NAS-Bench-201's N)"""
    eval_batch_size: int = 512
    """examples per forward when evaluating (memory only, no effect on the figures)"""

    def __post_init__(self) -> None:
        for name in ("train_size", "val_size", "test_size", "epochs", "batch_size", "C",
                     "cells_per_stage", "eval_batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"Recipe.{name} must be an int >= 1, got {value!r}")
        for name in ("lr", "momentum", "weight_decay", "grad_clip"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ValueError(f"Recipe.{name} must be a finite number >= 0, got {value!r}")
        if not isinstance(self.data_options, dict):
            raise ValueError(f"Recipe.data_options must be a dict, got {self.data_options!r}")
        record = tuple(int(e) for e in self.record_epochs) or tuple(sorted({max(1, self.epochs // 2), self.epochs}))
        if any(e < 1 or e > self.epochs for e in record) or list(record) != sorted(set(record)):
            raise ValueError(f"Recipe.record_epochs must be increasing epochs in 1..{self.epochs}, "
                             f"got {self.record_epochs!r}")
        self.record_epochs = record

    def to_dict(self) -> dict:
        """JSON-ready form (``record_epochs`` as a list)."""
        out = asdict(self)
        out["record_epochs"] = list(self.record_epochs)
        return out

    @classmethod
    def from_dict(cls, values: dict) -> "Recipe":
        """The recipe of ``to_dict`` output (or of ``--recipe`` pairs).

        Raises:
            ValueError: an unknown field, naming the known ones, or a bad value.
        """
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown recipe field {unknown[0]!r}; known: {', '.join(sorted(known))}")
        values = dict(values)
        if "record_epochs" in values:
            values["record_epochs"] = tuple(np.atleast_1d(values["record_epochs"]).tolist())
        return cls(**values)


#: Datasets whose generator is asked for the recipe's split sizes: name -> loader options.
_SIZED_OPTIONS = {
    # mnist1d holds validation out of its training part: train + val signals, val of them held out.
    "mnist1d": lambda r: {"n_train": r.train_size + r.val_size, "n_val": r.val_size, "n_test": r.test_size},
}


@functools.lru_cache(maxsize=2)
def _cached_data(dataset: str, data_seed: int, options_json: str, sizes: tuple[int, int, int]):
    options = json.loads(options_json)
    data = load_dataset(dataset, split_seed=data_seed, **({"options": options} if options else {}))
    for name, size in zip(("train", "val", "test"), sizes):
        split = getattr(data, name)
        setattr(data, name, Split(split.x[:size].contiguous(), split.y[:size].contiguous()))
    return data


def load_data(dataset: str, recipe: Recipe):
    """The dataset of ``recipe`` (loaded once per process): each split cut to its size.

    Args:
        dataset: a name of ``nasgen.searchspace.dataset_names()``.
        recipe: gives ``data_seed``, ``data_options`` and the split sizes.

    Returns:
        A ``nasgen.searchspace.Dataset``.
    """
    options = {**(_SIZED_OPTIONS[dataset](recipe) if dataset in _SIZED_OPTIONS else {}), **recipe.data_options}
    return _cached_data(dataset, recipe.data_seed, json.dumps(options, sort_keys=True),
                        (recipe.train_size, recipe.val_size, recipe.test_size))


def network_cells(space, cells_per_stage: int) -> int:
    """``n_cells`` of ``Network``/``Supernet`` for ``cells_per_stage`` cells in each of 3 stages."""
    # NAS-Bench-201's skeleton takes N per stage; the DARTS skeleton counts all 3N cells.
    return cells_per_stage if isinstance(space, NB201SearchSpace) else 3 * cells_per_stage


def make_network(space, arch: np.ndarray, recipe: Recipe, data) -> nn.Module:
    """The stand-alone network of ``arch`` under ``recipe``'s width and depth."""
    return Network(space, arch, C=recipe.C, n_cells=network_cells(space, recipe.cells_per_stage),
                   in_channels=data.in_channels, n_classes=data.n_classes, dims=data.dims)


def count_flops(model: nn.Module, example: torch.Tensor) -> int:
    """Floating-point operations of one forward of one example (multiply-adds count 2).

    Counted by ``torch.utils.flop_counter.FlopCounterMode`` (convolutions and matrix
    products; element-wise ops such as BatchNorm and pooling are not counted).
    """
    was_training = model.training
    model.eval()
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(example[:1])
    model.train(was_training)
    return int(counter.get_total_flops())


def _evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int,
              device: torch.device) -> tuple[float, float]:
    model.eval()
    correct, loss = 0, 0.0
    with torch.no_grad():
        for start in range(0, len(y), batch_size):
            logits = model(x[start:start + batch_size].to(device))
            target = y[start:start + batch_size].to(device)
            loss += F.cross_entropy(logits, target, reduction="sum").item()
            correct += (logits.argmax(1) == target).sum().item()
    return correct / len(y), loss / len(y)


def _row(arch: Any, seed: int, recipe: Recipe) -> dict[str, Any]:
    return {"arch": np.asarray(arch, dtype=np.int64).tolist(), "seed": int(seed),
            "epochs": list(recipe.record_epochs), **{m: [] for m in METRICS}, "params": None,
            "flops": None, "train_time_s": None, "cpu_time_s": None, "error": None}


def _error_text(error: BaseException) -> str:
    return traceback.format_exception_only(type(error), error)[-1].strip()


def training_device(device: torch.device | str) -> torch.device:
    """``device`` as a ``torch.device`` a table can be trained on (``runtime.check_device``).

    Raises:
        ValueError: not cpu, cuda or cuda:N, or a CUDA device that this machine does not have (one line).
    """
    return torch.device(check_device(str(device)))


@contextlib.contextmanager
def _full_float32(device: torch.device):
    """On CUDA: float32 matrix products and convolutions without TF32, and deterministic
    cuDNN algorithms, so a row trained there differs from a CPU row only by summation order
    (TF32 would round every convolution's inputs to 10 mantissa bits)."""
    if device.type != "cuda":
        yield
        return
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
             torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        yield
    finally:
        (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
         torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark) = saved


def stacks(space) -> bool:
    """Whether ``space``'s architectures train side by side (``stacked.StackedNB201``)."""
    return isinstance(space, NB201SearchSpace) and all(name in STACKED_OPS for name in space.op_names)


def train_group(space, archs: Sequence[Any], seed: int, dataset: str, recipe: Recipe,
                device: torch.device | str = "cpu") -> list[dict]:
    """Train several architectures from scratch with one seed, side by side; never raises.

    On a NAS-Bench-201 space the architectures train as one ``stacked.StackedNB201`` (each
    exactly as alone, with per-architecture losses, gradient clips and BatchNorm); on other
    spaces one after the other. The initial weights and the batch order come from ``seed``
    only, so a row never depends on the other architectures of the group.

    Args:
        space: the search space of ``archs``.
        archs: the architectures (representative encodings).
        seed: fixes the initial weights and the batch order.
        dataset: the dataset name.
        recipe: the training recipe.
        device: where the networks train (``training_device``); the initial weights and the
            batch order are drawn on the CPU, so only the summation order depends on it.

    Returns:
        One table row per architecture, in order: ``arch``, ``seed``, ``epochs`` (the
        recorded ones), each of ``METRICS`` as a list over those epochs, ``params``,
        ``flops``, ``train_time_s`` and ``cpu_time_s`` (the group's wall-clock and CPU time
        divided by its size) and ``error`` (None, or the error's last line; then the
        metrics are empty).
    """
    rows = [_row(arch, seed, recipe) for arch in archs]
    if not stacks(space):
        return [train_architecture(space, arch, seed, dataset, recipe, device) for arch in archs]
    try:
        device = training_device(device)
        data = load_data(dataset, recipe)
        for row in rows:  # the stand-alone network's size, counted on the ordinary model
            model = make_network(space, np.asarray(row["arch"]), recipe, data)
            row["params"] = int(sum(p.numel() for p in model.parameters()))
            row["flops"] = count_flops(model, data.test.x)
        results, wall, cpu = _train_stacked(space, [r["arch"] for r in rows], seed, data, recipe, device)
        for k, row in enumerate(rows):
            for name, values in results.items():
                row[name] = values[k]
            row["train_time_s"], row["cpu_time_s"] = wall / len(rows), cpu / len(rows)
    except Exception as error:  # a failed group is rows with the error, never dropped
        for row in rows:
            row.update({m: [] for m in METRICS}, error=_error_text(error))
    return rows


def _fit(model: nn.Module, params: list, data, recipe: Recipe, generator: torch.Generator, loss_of, clip,
         record, device: torch.device) -> None:
    """The recipe's training (``searchspace.fit``): SGD, Nesterov when it has momentum;
    ``record(split name, split)`` after each recorded epoch."""
    def after_epoch(epoch: int, *_: float) -> None:
        if epoch in recipe.record_epochs:
            for name in ("train", "val", "test"):
                record(name, getattr(data, name))

    fit(model, params, data.train, epochs=recipe.epochs, batch_size=recipe.batch_size, lr=recipe.lr,
        momentum=recipe.momentum, weight_decay=recipe.weight_decay, nesterov=recipe.momentum > 0,
        generator=generator, device=device, loss_of=loss_of, clip=clip, after_epoch=after_epoch)


def _train_stacked(space, archs: list, seed: int, data, recipe: Recipe,
                   device: torch.device) -> tuple[dict, float, float]:
    K = len(archs)
    model = StackedNB201(np.asarray(archs), space.op_names, space.edges, space.n_nodes, recipe.C,
                         recipe.cells_per_stage, data.in_channels, data.n_classes, data.dims, seed).to(device)
    results: dict[str, list[list[float]]] = {m: [[] for _ in range(K)] for m in METRICS}
    params = list(model.parameters())

    def loss_of(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        # The sum of the K mean losses: each architecture gets its own gradient.
        return F.cross_entropy(logits.transpose(1, 2), y[:, None].expand(-1, K), reduction="none").mean(0).sum()

    def record(name: str, split) -> None:
        accuracy, mean_loss = _evaluate_stacked(model, split.x, split.y, recipe.eval_batch_size, device)
        for k in range(K):
            results[f"{name}_accuracy"][k].append(float(accuracy[k]))
            results[f"{name}_loss"][k].append(float(mean_loss[k]))

    start, cpu_start = time.perf_counter(), time.process_time()
    with _full_float32(device):
        _fit(model, params, data, recipe, torch.Generator().manual_seed(seed), loss_of,
             lambda: clip_per_architecture(params, K, recipe.grad_clip), record, device)
    return results, time.perf_counter() - start, time.process_time() - cpu_start


def _evaluate_stacked(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int,
                      device: torch.device):
    model.eval()
    correct = torch.zeros(model.K, dtype=torch.float64, device=device)
    loss = torch.zeros(model.K, dtype=torch.float64, device=device)
    with torch.no_grad():
        for start in range(0, len(y), batch_size):
            logits = model(x[start:start + batch_size].to(device))
            target = y[start:start + batch_size, None].to(device).expand(-1, model.K)
            loss += F.cross_entropy(logits.transpose(1, 2), target, reduction="none").sum(0).double()
            correct += (logits.argmax(2) == target).sum(0).double()
    return (correct / len(y)).cpu().numpy(), (loss / len(y)).cpu().numpy()


def train_architecture(space, arch: Any, seed: int, dataset: str, recipe: Recipe,
                       device: torch.device | str = "cpu") -> dict:
    """Train one architecture from scratch with one seed; never raises.

    On a NAS-Bench-201 space this is ``train_group`` with one architecture (the same row
    as in any group); on other spaces the ordinary ``Network``.

    Args:
        space: the search space of ``arch``.
        arch: the architecture (a representative encoding).
        seed: fixes the initial weights and the batch order.
        dataset: the dataset name.
        recipe: the training recipe.
        device: where the network trains (see ``train_group``).

    Returns:
        One table row (see ``train_group``).
    """
    if stacks(space):
        return train_group(space, [arch], seed, dataset, recipe, device)[0]
    row = _row(arch, seed, recipe)
    try:
        device = training_device(device)
        data = load_data(dataset, recipe)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)  # the initial weights come from the global generator
            model = make_network(space, np.asarray(arch, dtype=np.int64), recipe, data)
        generator = torch.Generator().manual_seed(seed)
        row["params"] = int(sum(p.numel() for p in model.parameters()))
        row["flops"] = count_flops(model, data.test.x)
        model.to(device)
        params = list(model.parameters())

        def record(name: str, split) -> None:
            accuracy, mean_loss = _evaluate(model, split.x, split.y, recipe.eval_batch_size, device)
            row[f"{name}_accuracy"].append(accuracy)
            row[f"{name}_loss"].append(mean_loss)

        start, cpu_start = time.perf_counter(), time.process_time()
        with _full_float32(device):
            _fit(model, params, data, recipe, generator, F.cross_entropy,
                 lambda: nn.utils.clip_grad_norm_(params, recipe.grad_clip), record, device)
        row["train_time_s"] = time.perf_counter() - start
        row["cpu_time_s"] = time.process_time() - cpu_start
    except Exception as error:  # a failed architecture is a row with its error, never dropped
        row.update({m: [] for m in METRICS})
        row["error"] = _error_text(error)
    return row


def train_items(space_dict: dict, dataset: str, recipe_dict: dict, items: list, threads: int = 1,
                device: str = "cpu") -> list[dict]:
    """Train a batch of ``(arch, seed)`` items: the body of one Ray task.

    Args:
        space_dict: ``SearchSpace.to_dict()`` of the space.
        dataset: the dataset name.
        recipe_dict: ``Recipe.to_dict()``.
        items: ``[(arch list, seed), ...]``.
        threads: torch threads inside the task.
        device: where the networks train (``training_device``).

    Returns:
        One row per item, in order.
    """
    torch.set_num_threads(threads)
    space = from_dict(space_dict)
    recipe = Recipe.from_dict(recipe_dict)
    rows: list[dict] = []
    for seed in dict.fromkeys(int(s) for _, s in items):  # one group per seed, in item order
        rows += train_group(space, [a for a, s in items if int(s) == seed], seed, dataset, recipe, device)
    order = {(tuple(r["arch"]), r["seed"]): r for r in rows}
    return [order[(tuple(np.asarray(a).tolist()), int(s))] for a, s in items]


def recipe_from_pairs(pairs: Optional[dict]) -> Recipe:
    """A recipe with ``pairs`` (``--recipe key=value``) over the defaults."""
    return Recipe.from_dict(dict(pairs or {}))
