"""Datasets as in-memory tensors, and a seeded, checkpointable mini-batch stream.

``digits`` (scikit-learn's 1,797 8x8 handwritten digits, bundled, no download) is the
default. ``cifar10``, ``mnist`` and ``fashion_mnist`` load from a local folder and download
(through torchvision) only when asked. CIFAR-10's pickled batches are checked against their
MD5s and read with a restricted unpickler (``cifar_files``), never with a bare ``pickle.load``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch


class DataNotFoundError(FileNotFoundError):
    """A dataset's files are not where they should be; the message says what to put where."""


class DataError(ValueError):
    """A dataset's files are there but damaged, foreign or unsafe; the message names the file."""


@dataclass
class Split:
    """Images ``x`` (float ``[N, C, H, W]``, normalised) and labels ``y`` (long ``[N]``)."""

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return len(self.y)

    def to(self, device: torch.device | str) -> "Split":
        return Split(self.x.to(device), self.y.to(device))


@dataclass
class Dataset:
    """Train (weights), validation (rewards) and test (final judgement) splits."""

    name: str
    train: Split
    val: Split
    test: Split
    n_classes: int

    @property
    def in_channels(self) -> int:
        return int(self.train.x.shape[1])

    @property
    def image_size(self) -> int:
        return int(self.train.x.shape[2])


def _normalise(splits: list[torch.Tensor]) -> list[torch.Tensor]:
    """Standardise every split per channel with the statistics of the first (train)."""
    mean = splits[0].mean(dim=(0, 2, 3), keepdim=True)
    std = splits[0].std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6)
    return [(s - mean) / std for s in splits]


def _split_indices(n: int, fractions: tuple[float, ...], seed: int) -> list[np.ndarray]:
    order = np.random.default_rng(seed).permutation(n)
    bounds = np.cumsum([int(round(f * n)) for f in fractions[:-1]])
    return np.split(order, bounds)


def _limit(indices: np.ndarray, limit: Optional[int]) -> np.ndarray:
    return indices if limit is None else indices[:limit]


def _digits(data_dir: Optional[str], download: bool, split_seed: int, limit: Optional[int]) -> Dataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0
    labels = torch.tensor(bunch.target, dtype=torch.long)
    parts = [_limit(p, limit) for p in _split_indices(len(labels), (0.6, 0.2, 0.2), split_seed)]
    xs = _normalise([images[p] for p in parts])
    return Dataset("digits", *(Split(x, labels[p]) for x, p in zip(xs, parts)), n_classes=10)


def _from_train_test(name: str, train_images: np.ndarray, train_labels: np.ndarray,
                     test_images: np.ndarray, test_labels: np.ndarray, split_seed: int,
                     limit: Optional[int], val_fraction: float = 0.1) -> Dataset:
    """Hold out ``val_fraction`` of the official training set for rewards."""
    def as_tensor(images: np.ndarray) -> torch.Tensor:
        t = torch.as_tensor(np.ascontiguousarray(images)).float() / 255.0
        return t.unsqueeze(1) if t.dim() == 3 else t.permute(0, 3, 1, 2)

    train_part, val_part = _split_indices(len(train_labels), (1 - val_fraction, val_fraction), split_seed)
    train_part, val_part = _limit(train_part, limit), _limit(val_part, limit)
    test_part = _limit(np.arange(len(test_labels)), limit)
    train_x, test_x = as_tensor(train_images), as_tensor(test_images)
    xs = _normalise([train_x[train_part], train_x[val_part], test_x[test_part]])
    train_y = torch.as_tensor(np.asarray(train_labels), dtype=torch.long)
    test_y = torch.as_tensor(np.asarray(test_labels), dtype=torch.long)
    ys = [train_y[train_part], train_y[val_part], test_y[test_part]]
    return Dataset(name, *(Split(x, y) for x, y in zip(xs, ys)), n_classes=10)


def _require_dir(data_dir: Optional[str], name: str, what: str) -> str:
    if data_dir is None:
        raise DataNotFoundError(f"dataset {name!r} needs a data folder: pass data_dir (--data-dir) "
                                f"holding {what}, or download=True (--download)")
    return os.fspath(data_dir)


def _cifar10(data_dir: Optional[str], download: bool, split_seed: int, limit: Optional[int]) -> Dataset:
    from .cifar_files import read_cifar10

    root = _require_dir(data_dir, "cifar10", "cifar-10-batches-py/ (data_batch_1..5, test_batch, batches.meta)")
    train_x, train_y, test_x, test_y = read_cifar10(root, download)
    return _from_train_test("cifar10", train_x, train_y, test_x, test_y, split_seed, limit)


def _mnist_like(name: str, dataset_class: str, folder: str):
    def load(data_dir: Optional[str], download: bool, split_seed: int, limit: Optional[int]) -> Dataset:
        import torchvision.datasets

        cls = getattr(torchvision.datasets, dataset_class)
        files = "train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte"
        root = _require_dir(data_dir, name, f"{folder}/raw/ ({files})")
        try:
            train = cls(root, train=True, download=download)
            test = cls(root, train=False, download=download)
        except RuntimeError as error:
            if not str(error).startswith("Dataset not found"):
                raise DataError(f"{dataset_class} files in {Path(root) / folder / 'raw'} are not valid idx files "
                                f"({str(error)[:80]})") from None
            raise DataNotFoundError(f"{dataset_class} not found in {root}: put {files} in "
                                    f"{Path(root) / folder / 'raw'}, or download=True (--download)") from None
        except Exception as error:  # torchvision's idx reader asserts, or raises Type/ValueError
            raise DataError(f"{dataset_class} files in {Path(root) / folder / 'raw'} are not valid idx files "
                            f"({type(error).__name__}{': ' + str(error)[:80] if str(error) else ''})") from None
        for part, split in (("train", train), ("t10k", test)):
            if (split.data.dim() != 3 or len(split.data) != len(split.targets)
                    or (len(split.targets) and not 0 <= int(split.targets.min()) <= int(split.targets.max()) < 10)):
                raise DataError(f"{dataset_class} {part} files in {Path(root) / folder / 'raw'} do not hold "
                                f"[N, H, W] images with N labels in 0..9")
        return _from_train_test(name, train.data.numpy(), train.targets.numpy(), test.data.numpy(),
                                test.targets.numpy(), split_seed, limit)
    return load


_LOADERS: dict[str, Callable[[Optional[str], bool, int, Optional[int]], Dataset]] = {
    "digits": _digits,
    "cifar10": _cifar10,
    "mnist": _mnist_like("mnist", "MNIST", "MNIST"),
    "fashion_mnist": _mnist_like("fashion_mnist", "FashionMNIST", "FashionMNIST"),
}


def dataset_names() -> list[str]:
    """Names ``load_dataset`` accepts."""
    return list(_LOADERS)


def load_dataset(name: str = "digits", data_dir: Optional[str] = None, *, download: bool = False,
                 split_seed: int = 0, limit: Optional[int] = None) -> Dataset:
    """Load a dataset into memory, normalised, split into train/val/test.

    Args:
        name: one of ``dataset_names()``.
        data_dir: local folder for the torchvision datasets (ignored for digits).
        download: let torchvision fetch missing files.
        split_seed: fixes the train/val(/test) split; the same seed gives the same split.
        limit: keep at most this many examples per split (CPU-sized runs).

    Raises:
        KeyError: unknown name, listing the known ones.
        DataNotFoundError: files missing; the message says what to put where.
        DataError: files damaged, foreign or unsafe; the message names the file.
    """
    try:
        loader = _LOADERS[name]
    except KeyError:
        raise KeyError(f"unknown dataset {name!r}; known: {', '.join(_LOADERS)}") from None
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be a positive number of examples, got {limit}")
    return loader(data_dir, download, split_seed, limit)


class BatchStream:
    """Endless shuffled mini-batches of a split, drawn from an explicit generator.

    Every pass over the split is a fresh permutation; the last incomplete batch of a pass is
    dropped so all batches have the same size. ``state_dict`` captures the generator and the
    position, so a resumed stream yields exactly the batches the original would have.

    Args:
        split: the data.
        batch_size: examples per batch (capped at the split size).
        generator: the torch generator that shuffles.
        device: where batches are put.
    """

    def __init__(self, split: Split, batch_size: int, generator: torch.Generator,
                 device: torch.device | str = "cpu"):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.split = split
        self.batch_size = min(batch_size, len(split))
        self.generator = generator
        self.device = torch.device(device)
        self._order: Optional[torch.Tensor] = None
        self._position = 0
        self.batches_drawn = 0

    @property
    def batches_per_epoch(self) -> int:
        return len(self.split) // self.batch_size

    @property
    def epochs(self) -> float:
        """Passes over the split so far."""
        return self.batches_drawn / self.batches_per_epoch

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._order is None or self._position + self.batch_size > len(self.split):
            self._order = torch.randperm(len(self.split), generator=self.generator)
            self._position = 0
        index = self._order[self._position:self._position + self.batch_size]
        self._position += self.batch_size
        self.batches_drawn += 1
        return self.split.x[index].to(self.device), self.split.y[index].to(self.device)

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state(), "order": self._order,
                "position": self._position, "batches_drawn": self.batches_drawn}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
        self._order = state["order"]
        self._position = state["position"]
        self.batches_drawn = state["batches_drawn"]
