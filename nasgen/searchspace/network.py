"""Stand-alone networks: how a found architecture is retrained from scratch and judged."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Optional, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .cells import build_stack, single_op_candidates
from .data import BatchStream, Dataset, Split
from .ops import ZERO_OP
from .space import CellSpace, Genotype


class ScalarLogger(Protocol):
    """What library code logs to (``torch.utils.tensorboard.SummaryWriter`` is one)."""

    def add_scalar(self, tag: str, scalar_value: float, global_step: int) -> Any: ...


class Network(nn.Module):
    """A network with only the chosen op on each edge, fresh weights.

    Args:
        space: the cell space ``arch`` belongs to (``CellSearchSpace`` or ``NB201SearchSpace``).
        arch: int architecture (any number of active inputs per node).
        C: channels of the first cells.
        n_cells: DARTS spaces: number of cells (reductions at 1/3 and 2/3 depth);
            ``nb201``: cells per stage, N (3N cells in all).
        in_channels: input channels.
        n_classes: output classes.
        stem_multiplier: stem width as a multiple of C (DARTS spaces only).
        dims: 2 for images ``[N, C, H, W]``, 1 for signals ``[N, C, L]`` (``Dataset.dims``);
            an architecture found on either retrains on either.
    """

    def __init__(self, space: CellSpace, arch: Any, C: int = 16, n_cells: int = 8,
                 in_channels: int = 3, n_classes: int = 10, stem_multiplier: int = 3, dims: int = 2):
        super().__init__()
        self.space = space
        self.arch = space.validate(arch)
        self.net = build_stack(space, single_op_candidates(space, self.arch), C, n_cells, in_channels,
                               n_classes, affine=True, search=False, stem_multiplier=stem_multiplier,
                               dims=dims)
        # Each edge holds at most one op: candidate index 0, summed without a coefficient.
        on = [space.op_names[a] != ZERO_OP for a in self.arch]
        self._terms = {cell_type: [[(0, None)] if on[space.decision_index(cell_type, e)] else []
                                   for e in range(space.n_edges)]
                       for cell_type in space.cell_types}

    @classmethod
    def from_genotype(cls, space: CellSpace, genotype: Genotype | str, **kwargs) -> "Network":
        return cls(space, space.from_genotype(genotype), **kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.run(x, self._terms.__getitem__)


@dataclass
class TrainConfig:
    """Recipe for training a stand-alone network (DARTS's, scaled to the CPU)."""

    epochs: int = 20
    """passes over the training split"""
    batch_size: int = 64
    """examples per SGD step"""
    lr: float = 0.025
    """initial SGD learning rate, annealed to 0 by a cosine schedule"""
    momentum: float = 0.9
    """SGD momentum"""
    weight_decay: float = 3e-4
    """L2 penalty"""
    grad_clip: float = 5.0
    """gradient-norm clip"""
    crop_padding: int = 0
    """random crop of each training image after zero padding by this many pixels (DARTS on
    CIFAR-10: 4); 0 = off"""
    flip: bool = False
    """random horizontal flip of training images (natural images; not digits or MNIST)"""
    cutout: int = 0
    """side of a square zeroed at a random centre of each training image (DARTS on CIFAR-10:
    16); 0 = off"""

    def __post_init__(self) -> None:
        for name in ("crop_padding", "cutout"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"TrainConfig.{name} must be an int >= 0, got {value!r}")


def augment_batch(x: torch.Tensor, config: TrainConfig, generator: torch.Generator) -> torch.Tensor:
    """The training-time augmentation of ``config`` applied to a batch, each image on its own.

    Args:
        x: images ``[n, channels, height, width]``.
        config: which augmentations (``crop_padding``, ``flip``, ``cutout``); none on is a no-op.
        generator: CPU generator for the random offsets, flips and centres (drawn only for the
            augmentations that are on, so a recipe without augmentation draws nothing).

    Returns:
        The augmented batch (``x`` itself when no augmentation is on).

    Raises:
        ValueError: an augmentation is on for data that are not images (1-D signals).
    """
    if not (config.crop_padding or config.flip or config.cutout):
        return x
    if x.dim() != 4:
        raise ValueError(f"crop_padding, flip and cutout augment images [n, channels, height, width]; "
                         f"got a batch of shape {list(x.shape)}")
    n, channels, height, width = x.shape
    device = x.device
    if config.crop_padding:
        pad = config.crop_padding
        padded = F.pad(x, (pad, pad, pad, pad))
        offsets = torch.randint(0, 2 * pad + 1, (n, 2), generator=generator).to(device)
        rows = (offsets[:, :1] + torch.arange(height, device=device))[:, None, :, None]
        cols = (offsets[:, 1:] + torch.arange(width, device=device))[:, None, None, :]
        x = padded[torch.arange(n, device=device)[:, None, None, None],
                   torch.arange(channels, device=device)[None, :, None, None], rows, cols]
    if config.flip:
        flipped = (torch.rand(n, generator=generator) < 0.5).to(device)
        x = torch.where(flipped[:, None, None, None], x.flip(3), x)
    if config.cutout:
        # As in DARTS: the square is clipped at the border, so a centre near it cuts less.
        centres = torch.stack([torch.randint(0, height, (n,), generator=generator),
                               torch.randint(0, width, (n,), generator=generator)], 1).to(device)
        low, high = centres - config.cutout // 2, centres + config.cutout // 2
        rows, cols = torch.arange(height, device=device), torch.arange(width, device=device)
        in_rows = (rows >= low[:, :1]) & (rows < high[:, :1])
        in_cols = (cols >= low[:, 1:]) & (cols < high[:, 1:])
        keep = ~(in_rows[:, :, None] & in_cols[:, None, :])
        x = x * keep[:, None].to(x.dtype)
    return x


@dataclass
class TrainResult:
    """What training a stand-alone network produced."""

    test_accuracy: float
    test_loss: float
    val_accuracy: float
    train_loss: float
    parameters: int
    epochs: int
    history: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def evaluate_split(model: nn.Module, split: Split, batch_size: int = 256,
                   device: torch.device | str = "cpu") -> tuple[float, float]:
    """(accuracy, mean cross-entropy) of ``model`` on ``split`` in eval mode."""
    model.eval()
    correct, total_loss = 0, 0.0
    with torch.no_grad():
        for start in range(0, len(split), batch_size):
            x = split.x[start:start + batch_size].to(device)
            y = split.y[start:start + batch_size].to(device)
            logits = model(x)
            total_loss += F.cross_entropy(logits, y, reduction="sum").item()
            correct += (logits.argmax(1) == y).sum().item()
    return correct / len(split), total_loss / len(split)


def recalibrate_batchnorm(model: nn.Module, split: Split, batch_size: int = 256,
                          device: torch.device | str = "cpu") -> None:
    """Recompute every BatchNorm's running statistics from ``split`` with the current weights
    (their plain average over one pass in train mode, no gradient).

    The running statistics are an exponential average over the training steps, taken while
    the weights moved: after a short training (tens of steps) they describe early weights,
    and evaluation mode then scores a network that learned as chance. One pass over the data
    with the final weights makes evaluation match them.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    if not norms:
        return
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over the pass
    model.train()
    with torch.no_grad():
        for start in range(0, len(split), batch_size):
            model(split.x[start:start + batch_size].to(device))
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum


def fit(model: nn.Module, params: list, train: Split, *, epochs: int, batch_size: int, lr: float,
        momentum: float, weight_decay: float, nesterov: bool, generator: torch.Generator,
        device: torch.device | str, loss_of: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        clip: Callable[[], Any], augment: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,
        after_epoch: Optional[Callable[[int, float, float], None]] = None, track_loss: bool = False,
        epoch_iterator: Any = None) -> float:
    """The one stand-alone training loop (``train_network`` and the NAS-Bench-1D recipe).

    SGD with a cosine schedule over every step; batches in ``generator``'s order (a CPU
    generator: the same order on every device) put on ``device``; per step ``loss_of(logits,
    y)``, backward, ``clip()``, the SGD step, the schedule's step.

    Args:
        model: trained in train mode.
        params: the parameters SGD steps.
        train: the training split.
        epochs, batch_size, lr, momentum, weight_decay, nesterov: the recipe.
        generator: the batch order, and the augmentation's draws.
        device: where the batches go.
        loss_of: the loss of a batch's output.
        clip: called after each backward (gradient clipping).
        augment: applied to each training batch (None: as it is).
        after_epoch: called as ``after_epoch(epoch, mean training loss, lr)`` after each epoch
            (1-based); it may evaluate (the next epoch puts the model back in train mode).
        track_loss: keep each step's loss for the epoch's mean (a device sync per step; the
            mean is nan without it).
        epoch_iterator: iterates the epoch indices instead of ``range(epochs)`` (a progress bar).

    Returns:
        The mean training loss of the last epoch (nan without epochs or ``track_loss``).
    """
    stream = BatchStream(train, batch_size, generator, device)
    optimizer = torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, epochs) * stream.batches_per_epoch)
    train_loss = math.nan
    for epoch in (range(epochs) if epoch_iterator is None else epoch_iterator):
        model.train()
        losses = []
        for _ in range(stream.batches_per_epoch):
            x, y = stream.next()
            loss = loss_of(model(x if augment is None else augment(x)), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            clip()
            optimizer.step()
            scheduler.step()
            if track_loss:
                losses.append(loss.item())
        train_loss = float(np.mean(losses)) if losses else math.nan
        if after_epoch is not None:
            after_epoch(epoch + 1, train_loss, scheduler.get_last_lr()[0])
    return train_loss


def train_network(model: nn.Module, dataset: Dataset, config: TrainConfig, generator: torch.Generator,
                  device: torch.device | str = "cpu", logger: Optional[ScalarLogger] = None,
                  progress: bool = False) -> TrainResult:
    """Train ``model`` on the train split, then report validation and test accuracy.

    Before every evaluation the BatchNorm statistics are recomputed from the training split
    with the current weights (``recalibrate_batchnorm``): a short retraining otherwise
    evaluates with statistics of its first weights and scores as chance.

    Args:
        model: the network (moved to ``device``).
        dataset: the data.
        config: the recipe.
        generator: shuffles the batches.
        device: where to train.
        logger: receives ``retrain/train_loss``, ``retrain/val_loss``, ``retrain/val_accuracy`` and
            ``retrain/lr`` per epoch and ``retrain/test_accuracy`` at the end: a family of
            their own, apart from the search's ``charts/`` and ``losses/``.
        progress: show a tqdm bar.

    Returns:
        The final metrics and a per-epoch history.
    """
    model.to(device)
    params = list(model.parameters())
    history = []
    epochs = tqdm(range(config.epochs), desc="retrain", unit="epoch") if progress else None

    def after_epoch(epoch: int, train_loss: float, lr: float) -> None:
        recalibrate_batchnorm(model, dataset.train, device=device)
        val_accuracy, val_loss = evaluate_split(model, dataset.val, device=device)
        history.append({"epoch": epoch, "train_loss": train_loss, "val_accuracy": val_accuracy, "val_loss": val_loss})
        if logger is not None:
            logger.add_scalar("retrain/train_loss", train_loss, epoch)
            logger.add_scalar("retrain/val_loss", val_loss, epoch)
            logger.add_scalar("retrain/val_accuracy", val_accuracy, epoch)
            logger.add_scalar("retrain/lr", lr, epoch)
        if epochs is not None:
            epochs.set_postfix(loss=f"{train_loss:.3f}", val_acc=f"{val_accuracy:.3f}")

    train_loss = fit(model, params, dataset.train, epochs=config.epochs, batch_size=config.batch_size, lr=config.lr,
                     momentum=config.momentum, weight_decay=config.weight_decay, nesterov=False, generator=generator,
                     device=device, loss_of=F.cross_entropy,
                     clip=lambda: nn.utils.clip_grad_norm_(params, config.grad_clip),
                     augment=lambda x: augment_batch(x, config, generator), after_epoch=after_epoch,
                     track_loss=True, epoch_iterator=epochs)
    val_accuracy, _ = evaluate_split(model, dataset.val, device=device)
    test_accuracy, test_loss = evaluate_split(model, dataset.test, device=device)
    if logger is not None:
        logger.add_scalar("retrain/test_accuracy", test_accuracy, config.epochs)
    return TrainResult(test_accuracy=test_accuracy, test_loss=test_loss, val_accuracy=val_accuracy,
                       train_loss=train_loss, parameters=sum(p.numel() for p in model.parameters()),
                       epochs=config.epochs, history=history)
