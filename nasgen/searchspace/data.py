"""Datasets as in-memory tensors, and a seeded, checkpointable mini-batch stream.

``digits`` (scikit-learn's 1,797 8x8 handwritten digits, bundled, no download) is the
default. ``cifar10``, ``mnist`` and ``fashion_mnist`` load from a local folder and download
(through torchvision) only when asked. CIFAR-10's pickled batches are checked against their
MD5s and read with a restricted unpickler (``cifar_files``), never with a bare ``pickle.load``.
``mnist1d`` (1-D signals of length 40) comes from the ``mnist1d`` package's procedural
generator, offline.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch

from nasgen.checks import short

from .cifar_files import read_cifar10
from .errors import DataError, DataNotFoundError
from .registry import Registry




@dataclass
class Split:
    """Images ``x`` (float ``[N, C, H, W]``, normalised) or signals ``x`` (``[N, C, L]``) and
    labels ``y`` (long ``[N]``)."""

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
        """Height (= width) of the images, or the length of 1-D signals."""
        return int(self.train.x.shape[2])

    @property
    def dims(self) -> int:
        """Spatial dimensionality: 2 for images ``[N, C, H, W]``, 1 for signals ``[N, C, L]``."""
        return self.train.x.dim() - 2


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


MNIST1D_CLASSES = 10
#: MNIST1DOptions fields handed to the generator as they are (its difficulty settings).
GENERATOR_SETTINGS = ("iid_noise_scale", "corr_noise_scale", "max_translation", "shear_scale", "scale_coeff")


@dataclass(frozen=True)
class MNIST1DOptions:
    """What the ``mnist1d`` generator is asked for; the defaults give the published dataset
    (4,000 training and 1,000 test signals of length 40, generator seed 42).

    The generator draws ``n_train + n_test`` signals in one pass: the first ``n_train`` are
    its training part, the rest the test set. Validation is held out of the training part
    (the hold-out drawn with ``load_dataset``'s ``split_seed``).
    """

    n_train: int = 4000
    """signals of the generator's training part, validation included (published: 4,000)"""
    n_test: int = 1000
    """test signals (published: 1,000)"""
    val_fraction: float = 0.2
    """share of the training part held out as validation, in (0, 1)"""
    n_val: Optional[int] = None
    """validation signals held out of the training part, instead of ``val_fraction``'s share
    (e.g. ``n_train=14000, n_val=10000`` keeps 4,000 to train on)"""
    seed: int = 42
    """seed of the generator (published: 42); another seed gives other signals"""
    iid_noise_scale: float = 0.02
    """scale of the independent per-sample noise the generator adds (published: 0.02)"""
    corr_noise_scale: float = 0.25
    """scale of the correlated (smoothed) noise the generator adds (published: 0.25)"""
    max_translation: int = 48
    """largest random shift of a template before cropping to 40 samples (published: 48)"""
    shear_scale: float = 0.75
    """scale of the random shear applied to each signal (published: 0.75)"""
    scale_coeff: float = 0.4
    """scale of the random stretch applied to each template (published: 0.4)"""

    def __post_init__(self) -> None:
        for name in ("n_train", "n_test", "seed", "max_translation") + (("n_val",) if self.n_val is not None else ()):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"mnist1d option {name} must be an int, got {value!r}")
        for name in GENERATOR_SETTINGS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or value < 0:
                raise ValueError(f"mnist1d option {name} must be a finite number >= 0, got {value!r}")
        if isinstance(self.val_fraction, bool) or not isinstance(self.val_fraction, (int, float)) \
                or not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"mnist1d option val_fraction must be in (0, 1), got {self.val_fraction!r}")
        for name, size in (("test", self.n_test), ("validation", self.n_val_signals),
                           ("training", self.n_train - self.n_val_signals)):
            if size < MNIST1D_CLASSES:
                raise ValueError(f"mnist1d {name} split would hold {size} signals (n_train={self.n_train}, "
                                 f"n_test={self.n_test}, val_fraction={self.val_fraction}, n_val={self.n_val}); "
                                 f"each split needs at least {MNIST1D_CLASSES}, one per class")

    @property
    def n_val_signals(self) -> int:
        """Validation signals held out of the training part."""
        return self.n_val if self.n_val is not None else int(round(self.val_fraction * self.n_train))


@functools.lru_cache(maxsize=4)
def _generate_mnist1d(total: int, seed: int, settings: tuple = ()) -> tuple[np.ndarray, np.ndarray]:
    """``total`` signals ``[total, 40]`` and labels from the generator (cached: the same call
    gives the same arrays, and a process that loads the data often pays for it once);
    ``settings`` are ``(name, value)`` pairs of ``GENERATOR_SETTINGS`` overriding its defaults."""
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    # The generator draws num_samples // 10 signals per class; one pass with the test part
    # after the training part gives the published arrays for the published sizes.
    args.num_samples = MNIST1D_CLASSES * math.ceil(total / MNIST1D_CLASSES)
    args.train_split = 1.0
    args.seed = seed
    for name, value in settings:
        setattr(args, name, value)
    # make_dataset seeds and draws from the global generators: leave them as they were.
    python_state, numpy_state = random.getstate(), np.random.get_state()
    try:
        generated = make_dataset(args)
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)
    x, y = generated["x"][:total].astype(np.float32), generated["y"][:total].astype(np.int64)
    x.flags.writeable = y.flags.writeable = False
    return x, y


def _mnist1d(data_dir: Optional[str], download: bool, split_seed: int, limit: Optional[int],
             options: MNIST1DOptions) -> Dataset:
    total = options.n_train + options.n_test
    signals, labels = _generate_mnist1d(total, options.seed,
                                        tuple((name, getattr(options, name)) for name in GENERATOR_SETTINGS))
    # The generator standardises the signals over all of them already.
    x = torch.tensor(signals).unsqueeze(1)
    y = torch.tensor(labels)
    n_val = options.n_val_signals
    order = np.random.default_rng(split_seed).permutation(options.n_train)
    parts = [order[:options.n_train - n_val], order[options.n_train - n_val:],
             np.arange(options.n_train, total)]
    parts = [_limit(p, limit) for p in parts]
    return Dataset("mnist1d", *(Split(x[p], y[p]) for p in parts), n_classes=MNIST1D_CLASSES)


def dataset_from(result: Any, name: str, limit: Optional[int] = None) -> Dataset:
    """The ``Dataset`` a plug-in's function returned: a ``Dataset``, or ``(train, val, test)``
    with each split an ``(x, y)`` pair of tensors or arrays (x ``[N, C, L]`` signals or
    ``[N, C, H, W]`` images, y ``[N]`` class indices), used as given (no normalisation).

    Raises:
        ValueError: one line naming the split and what is wrong (shapes, labels, values).
    """
    what = f"dataset plug-in {name!r}"
    if isinstance(result, Dataset):
        splits = [(s.x, s.y) for s in (result.train, result.val, result.test)]
    elif isinstance(result, (tuple, list)) and len(result) == 3:
        splits = list(result)
    else:
        raise ValueError(f"{what} returned {type(result).__name__}, not a Dataset or (train, val, test) "
                         f"with each split an (x, y) pair")
    out = []
    for split, pair in zip(("train", "val", "test"), splits):
        if not isinstance(pair, (tuple, list, Split)) or (not isinstance(pair, Split) and len(pair) != 2):
            raise ValueError(f"{what}: the {split} split is not an (x, y) pair")
        x, y = (pair.x, pair.y) if isinstance(pair, Split) else pair
        try:
            x = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x, dtype=torch.float32)
            y = torch.as_tensor(np.asarray(y) if not isinstance(y, torch.Tensor) else y)
        except (TypeError, ValueError, RuntimeError) as error:
            raise ValueError(f"{what}: the {split} split does not convert to tensors ({error})") from None
        if x.dim() not in (3, 4) or len(x) == 0:
            raise ValueError(f"{what}: {split} x has shape {tuple(x.shape)}; expected a non-empty [N, C, L] or "
                             f"[N, C, H, W]")
        if y.dim() != 1 or len(y) != len(x) or y.is_floating_point() or y.dtype == torch.bool:
            raise ValueError(f"{what}: {split} y has shape {tuple(y.shape)} and dtype {y.dtype}; expected "
                             f"{len(x)} integer labels")
        if (y < 0).any():
            raise ValueError(f"{what}: {split} y holds a negative label")
        if not torch.isfinite(x).all():
            raise ValueError(f"{what}: {split} x holds a value that is not finite")
        out.append(Split(x[:limit] if limit else x, y.long()[:limit] if limit else y.long()))
    shapes = {tuple(s.x.shape[1:]) for s in out}
    if len(shapes) != 1:
        raise ValueError(f"{what}: the splits' examples differ in shape: train {tuple(out[0].x.shape[1:])}, "
                         f"val {tuple(out[1].x.shape[1:])}, test {tuple(out[2].x.shape[1:])}")
    n_classes = int(max(int(s.y.max()) for s in out)) + 1
    if n_classes < 2:
        raise ValueError(f"{what}: the labels hold {n_classes} class; a classifier needs at least 2")
    return Dataset(name, *out, n_classes=n_classes)


def _as_loader(loaded: object, name: str) -> Callable[..., Dataset]:
    """A plug-in dataset, checked: a function of no arguments returning the splits
    (``dataset_from``); it is called only when the dataset is loaded."""
    if not callable(loaded):
        raise TypeError(f"{type(loaded).__name__} is not a function returning the train, val and test splits")

    def load(data_dir: Optional[str], download: bool, split_seed: int, limit: Optional[int]) -> Dataset:
        return dataset_from(loaded(), name, limit)
    return load


#: Entry-point group of dataset plug-ins (``[project.entry-points."nasgen.datasets"]``).
DATASETS_GROUP = "nasgen.datasets"
DATASETS: Registry[Callable[..., Dataset]] = Registry("dataset", group=DATASETS_GROUP, check=_as_loader)
for _name, _loader in (("digits", _digits), ("cifar10", _cifar10), ("mnist", _mnist_like("mnist", "MNIST", "MNIST")),
                       ("fashion_mnist", _mnist_like("fashion_mnist", "FashionMNIST", "FashionMNIST")),
                       ("mnist1d", _mnist1d)):
    DATASETS.register(_name)(_loader)
# Datasets that take options (``load_dataset(..., options=...)``): name -> options dataclass.
_OPTIONS: dict[str, type] = {"mnist1d": MNIST1DOptions}


def dataset_names() -> list[str]:
    """Names ``load_dataset`` accepts: the built-ins, then the plug-ins installed (a
    ``module:function`` reference is accepted too)."""
    return DATASETS.list()


def check_dataset_name(name: str) -> str:
    """``name`` when ``load_dataset`` can load it; ValueError (one line, the known names) if not."""
    try:
        DATASETS.get(name)
    except KeyError:
        raise ValueError(f"unknown dataset {short(name)}; choose from: {', '.join(dataset_names())}") from None
    return name


def dataset_options(name: str, options: Optional[dict[str, Any]] = None) -> Any:
    """The checked options of dataset ``name`` (``None`` for a dataset without options).

    Args:
        name: one of ``dataset_names()``.
        options: keyword values of the dataset's options dataclass (``MNIST1DOptions`` for
            ``mnist1d``); ``None`` or empty for the defaults.

    Raises:
        KeyError: unknown dataset, listing the known ones.
        ValueError: one line naming an unknown option or a bad value.
    """
    DATASETS.get(name)  # KeyError / PluginError for a name it cannot load
    options = dict(options or {})
    if name not in _OPTIONS:
        if options:
            raise ValueError(f"dataset {name!r} takes no options, got {', '.join(options)}; "
                             f"datasets with options: {', '.join(_OPTIONS)}")
        return None
    cls = _OPTIONS[name]
    known = [f.name for f in dataclasses.fields(cls)]
    unknown = [key for key in options if key not in known]
    if unknown:
        raise ValueError(f"unknown {name} option {unknown[0]!r}; known: {', '.join(known)}")
    return cls(**options)


def load_dataset(name: str = "digits", data_dir: Optional[str] = None, *, download: bool = False,
                 split_seed: int = 0, limit: Optional[int] = None,
                 options: Optional[dict[str, Any]] = None) -> Dataset:
    """Load a dataset into memory, normalised, split into train/val/test.

    Args:
        name: one of ``dataset_names()``.
        data_dir: local folder for the torchvision datasets (ignored for digits and mnist1d).
        download: let torchvision fetch missing files.
        split_seed: fixes the train/val(/test) split; the same seed gives the same split.
        limit: keep at most this many examples per split (CPU-sized runs).
        options: dataset-specific settings, checked by ``dataset_options`` (``mnist1d``:
            ``n_train``, ``n_test``, ``val_fraction``, ``n_val``, ``seed``; see ``MNIST1DOptions``).

    Raises:
        KeyError: unknown name, listing the known ones.
        ValueError: a bad limit or option, in one line.
        DataNotFoundError: files missing; the message says what to put where.
        DataError: files damaged, foreign or unsafe; the message names the file.
    """
    checked = dataset_options(name, options)
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be a positive number of examples, got {limit}")
    loader = DATASETS.get(name)
    if checked is None:
        return loader(data_dir, download, split_seed, limit)
    return loader(data_dir, download, split_seed, limit, checked)


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
