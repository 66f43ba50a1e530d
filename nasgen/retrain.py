"""Train a found architecture from scratch (``nasgen retrain``) and report its test accuracy.

The architecture comes from a search's run directory (its ``result.json``), a genotype JSON
file, or a text file holding a NAS-Bench-201 string. ``RetrainConfig`` is the recipe;
``retrain`` trains with ``searchspace.train_network`` and writes ``retrain.json`` and the
TensorBoard curves of the ``retrain/`` family.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch

from nasgen import checks, jsonfile, runtime, searchspace
from nasgen.runtime import seed_everything
from nasgen.checks import short
from nasgen.searchspace import Genotype, Network, TrainConfig, train_network
from nasgen.tblog import hyperparameter_table, write_hparams

#: Float32 bytes a parameter costs while it trains: the weight, its gradient, SGD momentum.
BYTES_PER_PARAMETER = 4 * 3


@dataclass
class RetrainConfig:
    """How ``nasgen retrain`` trains an architecture."""

    dataset: Optional[str] = field(default=None, metadata=checks.field(checks.non_empty))
    """dataset (default: the search's, else digits)"""
    data_dir: Optional[str] = field(default=None, metadata=checks.field(checks.non_empty))
    """local folder of CIFAR-10/MNIST/Fashion-MNIST"""
    download: bool = False
    """let torchvision download the dataset"""
    limit: Optional[int] = field(default=None, metadata=checks.field(checks.positive_int))
    """at most this many examples per split"""
    epochs: int = field(default=20, metadata=checks.field(checks.positive_int))
    """training epochs"""
    channels: int = field(default=16, metadata=checks.field(checks.positive_int))
    """channels of the first cells (even)"""
    cells: Optional[int] = field(default=None, metadata=checks.field(checks.positive_int))
    """number of cells (default 8); nb201 spaces: cells per stage, N (default 5, NAS-Bench-201's)"""
    batch_size: int = field(default=64, metadata=checks.field(checks.positive_int))
    """batch size"""
    lr: float = field(default=0.025, metadata=checks.field(checks.positive_float))
    """initial SGD learning rate"""
    crop_padding: int = field(default=0, metadata=checks.field(checks.non_negative_int))
    """random crop after zero padding by N pixels (DARTS on CIFAR-10: 4); 0 = off"""
    flip: bool = False
    """random horizontal flip (natural images only)"""
    cutout: int = field(default=0, metadata=checks.field(checks.non_negative_int))
    """zero a random N x N square of each training image (DARTS on CIFAR-10: 16); 0 = off"""
    seed: int = field(default=0, metadata=checks.field(checks.seed))
    """seed of the initialisation, the batches and the augmentation"""
    device: str = field(default="cpu", metadata=checks.field(checks.non_empty))
    """cpu or cuda"""

    def __post_init__(self) -> None:
        checks.check_fields(self)
        if self.channels % 2:
            raise ValueError(f"--channels must be even, got {self.channels}")

    def recipe(self) -> TrainConfig:
        return TrainConfig(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr,
                           crop_padding=self.crop_padding, flip=self.flip, cutout=self.cutout)


@dataclass
class Architecture:
    """What ``load_architecture`` reads: the space, the encoding, and the search's dataset."""

    space: Any
    arch: Any
    dataset: Optional[str] = None
    dataset_options: Optional[dict] = None


def load_architecture(source: str | Path) -> Architecture:
    """The architecture of a run directory, a genotype JSON file, or a text file holding a
    NAS-Bench-201 string, read as plain text/JSON.

    Raises:
        ValueError: a missing, unreadable or malformed source, in one line.
    """
    path = Path(source)
    if path.is_dir():
        path = path / "result.json"
        if not path.is_file():
            raise ValueError(f"{source} holds no result.json; pass a finished run directory or a genotype JSON file")
    elif not path.is_file():
        raise ValueError(f"no run directory or genotype file {short(str(source))}")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"cannot read {path}: {error}") from None
    if text.lstrip().startswith("|"):  # a NAS-Bench-201 string (genotype.txt of an nb201 search)
        data = {"space": "nb201", "genotype": text.strip().splitlines()[0]}
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path} is not valid JSON ({error.msg} at line {error.lineno})") from None
        except RecursionError:
            raise ValueError(f"{path} nests its JSON too deeply to be a result or a genotype") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a JSON object (a result.json or a genotype)")
    config = data.get("config")
    env_kwargs = config.get("env_kwargs") if isinstance(config, dict) else None
    env_kwargs = env_kwargs if isinstance(env_kwargs, dict) else {}
    dataset, options = env_kwargs.get("dataset"), env_kwargs.get("dataset_options")
    dataset = dataset if isinstance(dataset, str) else None
    options = options if isinstance(options, dict) else None
    try:
        space, arch = _architecture_of(data, path)
    except (TypeError, ValueError, RecursionError) as error:
        raise ValueError(f"{path}: {error}") from None
    return Architecture(space, arch, dataset, options)


def _architecture_of(data: dict, path: Path):
    if "derived_arch" in data:
        space = searchspace.from_dict(data.get("space"))
        if not isinstance(space, searchspace.CellSpace):
            raise ValueError(f"a search in space {space.name!r}, which has no network to retrain")
        return space, space.validate(data["derived_arch"])
    genotype = data.get("genotype", data)
    space_spec = data.get("space", "nb201" if isinstance(genotype, str) else "darts")
    if isinstance(space_spec, dict):
        space = searchspace.from_dict(space_spec)
    elif isinstance(space_spec, str):
        space = searchspace.check_space_name(space_spec)
    else:
        raise ValueError(f"'space' must be a preset name or a space object, got {short(space_spec)}")
    if not isinstance(space, searchspace.CellSpace):
        raise ValueError(f"space {space.name!r} has no network to retrain")
    if isinstance(space, searchspace.NB201SearchSpace):
        if not isinstance(genotype, str):
            raise ValueError(f"an nb201 genotype is a string like |op~0|+|op~0|op~1|+..., got {short(genotype)}")
        return space, space.from_genotype(genotype)
    return space, space.from_genotype(genotype_from_json(genotype))


def genotype_from_json(genotype: Any) -> Genotype:
    """A ``Genotype`` from its JSON form; ValueError naming the first malformed field."""
    if not isinstance(genotype, dict):
        raise ValueError(f"'genotype' must be an object with {', '.join(Genotype._fields)}, got {short(genotype)}")
    missing = [f for f in Genotype._fields if f not in genotype]
    if missing:
        raise ValueError(f"neither a result.json nor a genotype: missing {', '.join(missing)}")
    fields = {}
    for key in Genotype._fields:
        value = genotype[key]
        if key in ("normal", "reduce"):
            if not (isinstance(value, list) and all(isinstance(p, list) and len(p) == 2 and isinstance(p[0], str)
                                                    and type(p[1]) is int for p in value)):
                raise ValueError(f"genotype {key!r} must be a list of [op name, input index] pairs, got {short(value)}")
            fields[key] = [tuple(p) for p in value]
        else:
            if not (isinstance(value, list) and all(type(v) is int for v in value)):
                raise ValueError(f"genotype {key!r} must be a list of node indices, got {short(value)}")
            fields[key] = list(value)
    return Genotype(**fields)


def default_out(source: str | Path) -> Path:
    """``RUN_DIR/retrain`` for a run directory, ``NAME-retrain/`` beside a genotype file."""
    source = Path(source)
    return source / "retrain" if source.is_dir() else source.with_suffix("").with_name(source.stem + "-retrain")


def check_memory(space, arch, config: RetrainConfig, in_channels: int, n_classes: int, dims: int) -> int:
    """Parameters of the network ``config`` would train, counted on the meta device (nothing
    allocated); ValueError when they alone would not fit in this machine's memory."""
    cells = config.cells if config.cells is not None else default_cells(space)
    with torch.device("meta"):
        model = Network(space, arch, C=config.channels, n_cells=cells, in_channels=in_channels,
                        n_classes=n_classes, dims=dims)
    parameters = sum(p.numel() for p in model.parameters())
    need = parameters * BYTES_PER_PARAMETER
    have = runtime.memory_bytes()
    if have is not None and need > have:
        raise ValueError(f"--channels {config.channels} x --cells {cells} makes a network of {parameters:,} "
                         f"parameters, {need / 2**30:,.1f} GiB to train, more than this machine's "
                         f"{have / 2**30:,.1f} GiB; lower --channels or --cells")
    return parameters


def default_cells(space) -> int:
    return 5 if isinstance(space, searchspace.NB201SearchSpace) else 8


@dataclass
class RetrainJob:
    """A checked retraining, ready to run: everything ``prepare`` could refuse is behind it."""

    source: str
    config: RetrainConfig
    found: Architecture
    dataset: str
    data: Any
    cells: int
    out: Path

    def run(self, progress: bool = False) -> dict:
        """Train; returns the record written to ``OUT/retrain.json`` (and ``out``)."""
        from torch.utils.tensorboard import SummaryWriter  # tensorboard: imported only to write

        config, found, data = self.config, self.found, self.data
        model = Network(found.space, found.arch, C=config.channels, n_cells=self.cells,
                        in_channels=data.in_channels, n_classes=data.n_classes, dims=data.dims)
        settings = {"source": self.source, **asdict(config), "cells": self.cells, "dataset": self.dataset,
                    "out": str(self.out)}
        writer = SummaryWriter(str(self.out))
        writer.add_text("retrain/hyperparameters", hyperparameter_table(settings), 0)
        try:
            result = train_network(model, data, config.recipe(), torch.Generator().manual_seed(config.seed),
                                   config.device, logger=writer, progress=progress)
            write_hparams(writer, settings, {"hparams/test_accuracy": result.test_accuracy,
                                             "hparams/val_accuracy": result.val_accuracy,
                                             "hparams/parameters": result.parameters}, config.epochs,
                          experiment=not (Path(self.source).is_dir() and self.out.parent == Path(self.source)))
        finally:
            writer.close()
        record = {"source": self.source, "dataset": self.dataset, "architecture": found.space.describe(found.arch),
                  "derived_arch": [int(a) for a in found.arch], "channels": config.channels, "cells": self.cells,
                  "seed": config.seed, "crop_padding": config.crop_padding, "flip": config.flip,
                  "cutout": config.cutout, **result.to_dict()}
        self.out.mkdir(parents=True, exist_ok=True)
        jsonfile.write(self.out / "retrain.json", record)
        return {**record, "out": str(self.out)}


def prepare(source: str | Path, config: RetrainConfig, out: Optional[str | Path] = None) -> RetrainJob:
    """Check everything a retraining of ``source`` under ``config`` needs and load its data,
    writing nothing (OUT: ``out`` or ``default_out(source)``).

    Raises:
        ValueError: a bad source, dataset, device, output folder or size, in one line
            (``searchspace.DataError`` for damaged data files).
    """
    found = load_architecture(source)
    dataset = config.dataset or found.dataset or "digits"
    searchspace.check_dataset_name(dataset)
    # The search's dataset settings (mnist1d sizes and seed) hold when retraining on its dataset.
    options = found.dataset_options if dataset == found.dataset else None
    out_dir = Path(out) if out else default_out(source)
    runtime.check_device(config.device)
    runtime.check_creatable_dir(out_dir, "--out")
    seed_everything(config.seed)  # before the data and the model, as every retraining of this seed
    data = searchspace.load_dataset(dataset, config.data_dir, download=config.download, limit=config.limit,
                                    options=options)
    if data.dims != 2 and (config.crop_padding or config.flip or config.cutout):
        raise ValueError(f"--crop-padding, --flip and --cutout augment images; {dataset} holds 1-D signals")
    check_memory(found.space, found.arch, config, data.in_channels, data.n_classes, data.dims)
    cells = config.cells if config.cells is not None else default_cells(found.space)
    return RetrainJob(str(source), config, found, dataset, data, cells, out_dir)
