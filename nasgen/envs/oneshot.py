"""``nasgen/OneShotNAS-v0``: the shared-weight supernet as a reward source."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field, fields
from typing import Any, Callable, Optional

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from nasgen import checks
from nasgen.nb1d.judge import supernet_cells_for
from nasgen.runtime import DEFAULT_THREADS, apply_threads
from nasgen.searchspace import (BatchStream, CellSpace, Credit, Supernet, check_dataset_name, check_space_name,
                                dataset_names, exact_credit, hybrid_credit, load_dataset)
from nasgen.searchspace.cells import check_stack_size

from .base import CREDIT_CHECK_EVERY, ArchitectureEnv, torch_seed

#: Upper bound of the epochs entry of the observation (it is clipped there).
EPOCHS_OBS_LIMIT = 1e6

#: Schedules of the shared weights' learning rate (``weight_lr_schedule``).
WEIGHT_LR_SCHEDULES = ("constant", "cosine")

#: Where the reward and the credit come from (``credit_batch``).
CREDIT_BATCHES = ("val", "train")


def cosine_lr(base: float, minimum: float, progress: float) -> float:
    """``minimum + (base - minimum) (1 + cos(pi * progress)) / 2``, ``progress`` clipped to [0, 1]."""
    progress = min(max(progress, 0.0), 1.0)
    return minimum + (base - minimum) * 0.5 * (1.0 + math.cos(math.pi * progress))


#: Supernet cells where no shipped table judges the search (``n_cells=None``).
DEFAULT_SUPERNET_CELLS = 5


def supernet_cells(space: str, dataset: str, n_cells: Optional[int]) -> int:
    """``n_cells`` as given, or its default for ``space`` on ``dataset`` (see ``OneShotConfig``)."""
    if n_cells is not None:
        return n_cells
    return supernet_cells_for(space, dataset) or DEFAULT_SUPERNET_CELLS


@dataclass
class OneShotConfig:
    """The keyword arguments of ``OneShotNAS-v0`` (``gym.make(id, **fields)``), with their
    defaults and checks; the config checks itself on creation, building nothing."""

    dataset: str = "mnist1d"
    """a name of ``searchspace.dataset_names()``: MNIST-1D by default, where a shipped table judges
    the ``nb201`` cell (``digits`` is scikit-learn's 8x8 digits)"""
    data_dir: Optional[str] = None
    """folder of the torchvision datasets"""
    download: bool = False
    """let torchvision download a missing dataset"""
    limit: Optional[int] = field(default=None, metadata=checks.field(checks.positive_int))
    """keep at most this many examples per split"""
    dataset_options: Optional[dict] = None
    """settings of a dataset that has them (``mnist1d``: ``n_train``, ``n_test``, ``val_fraction``,
    ``n_val``, ``seed`` and the generator's difficulty; see ``MNIST1DOptions``)"""
    space: str = "nb201"
    """a search-space name (a cell space): the NAS-Bench-201 cell by default; ``small`` and
    ``darts`` are DARTS cell spaces"""
    C: int = 8
    """supernet channels of the first cells"""
    n_cells: Optional[int] = None
    """supernet cells (``nb201``: cells per stage, N). None: the depth of the networks of the table
    that judges this space and dataset, so the supernet's sub-networks are the networks the table
    trained (``nb201`` on ``mnist1d``: N=1); otherwise ``DEFAULT_SUPERNET_CELLS`` (5)"""
    batch_size: int = field(default=64, metadata=checks.field(checks.positive_int))
    """examples per reward and per weight step"""
    warmup_epochs: float = field(default=10.0, metadata=checks.field(checks.non_negative_float))
    """epochs of weight training on uniform paths before the first reward"""
    train_weights: bool = True
    """train the shared weights one step after every reward"""
    weight_lr: float = field(default=0.025, metadata=checks.field(checks.positive_float))
    """SGD learning rate of the shared weights"""
    weight_momentum: float = 0.9
    """SGD momentum of the shared weights, in [0, 1)"""
    weight_decay: float = field(default=3e-4, metadata=checks.field(checks.non_negative_float))
    """L2 penalty of the shared weights"""
    grad_clip: float = field(default=5.0, metadata=checks.field(checks.positive_float))
    """gradient-norm clip of the shared weights"""
    weight_lr_schedule: str = "constant"
    """``constant``, or ``cosine`` from ``weight_lr`` to ``weight_lr_min`` over ``schedule_epochs``"""
    weight_lr_min: float = field(default=1e-3, metadata=checks.field(checks.non_negative_float))
    """final lr of the cosine schedule"""
    schedule_epochs: Optional[float] = None
    """epochs of weight training the cosine spans (warm-up + search); required with ``cosine``"""
    progress: bool = False
    """show a progress bar during warm-up (never part of a run's settings)"""
    credit: Optional[str] = None
    """per-edge credit in ``info``: None, ``taylor``, ``exact`` or ``hybrid`` (``ArchitectureEnv``)"""
    credit_subset: int = 1
    """edges checked exactly per step by the hybrid estimator"""
    credit_batch: str = "val"
    """``val`` (the paper: reward and credit on a validation batch, then a separate training pass)
    or ``train`` (from the training pass itself, see ``OneShotNASEnv``)"""
    nonfinite_reward: float = -100.0
    """the reward given when the loss is not finite"""
    device: str = "cpu"
    """torch device of the supernet"""
    seed: Optional[int] = None
    """used by the first reset when it passes no seed"""
    credit_check_every: int = CREDIT_CHECK_EVERY
    """steps between credit-quality checks against exact credit (0: off)"""
    threads: Optional[int] = field(default=DEFAULT_THREADS, metadata=checks.field(checks.positive_int))
    """torch CPU threads of the process, set when the env is built: the supernets here are small,
    so more threads mostly add synchronisation (4-20x slower on a busy 2-core machine). None
    leaves torch's setting (the commands set ``--threads`` themselves)"""

    def __post_init__(self) -> None:
        checks.check_fields(self)
        self.search_space()

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> "OneShotConfig":
        """The config of these keyword arguments (TypeError naming an unknown one and listing the rest)."""
        names = [f.name for f in fields(cls)]
        unknown = [key for key in kwargs if key not in names]
        if unknown:
            raise TypeError(f"OneShotNASEnv takes no {unknown[0]!r}; it accepts: {', '.join(names)}")
        return cls(**kwargs)

    def search_space(self) -> CellSpace:
        """The cell space of this config, after the checks no single field can make alone."""
        check_dataset_name(self.dataset)
        search_space = check_space_name(self.space)
        if not isinstance(search_space, CellSpace):
            raise ValueError(f"space {self.space!r} is not a cell search space")
        check_stack_size(self.C, supernet_cells(self.space, self.dataset, self.n_cells))
        if not 0 <= self.weight_momentum < 1:
            raise ValueError(f"weight_momentum must lie in [0, 1), got {self.weight_momentum}")
        if self.weight_lr_schedule not in WEIGHT_LR_SCHEDULES:
            raise ValueError(f"weight_lr_schedule={self.weight_lr_schedule!r}; expected one of "
                             f"{', '.join(WEIGHT_LR_SCHEDULES)}")
        if self.weight_lr_schedule == "cosine" and not (self.schedule_epochs is not None
                                                        and 0 < self.schedule_epochs < math.inf):
            raise ValueError(f"weight_lr_schedule='cosine' needs schedule_epochs > 0 (warm-up + search "
                             f"epochs of weight training), got {self.schedule_epochs}")
        if self.credit_batch not in CREDIT_BATCHES:
            raise ValueError(f"credit_batch={self.credit_batch!r}; expected one of {', '.join(CREDIT_BATCHES)}")
        ArchitectureEnv._check_common_arguments(self.credit, self.credit_subset, self.nonfinite_reward,
                                                self.device, self.seed, self.credit_check_every)
        return search_space


class OneShotNASEnv(ArchitectureEnv):
    """One step = one whole architecture of a cell space (DARTS cells or the NAS-Bench-201
    cell), rewarded by the supernet.

    Reward: ``R(a) = -cross-entropy`` of the sampled path on one validation batch.
    Then, when ``train_weights``, the shared weights take one SGD step on a training batch
    with the same path (ENAS-style alternation). Before the first reward, a seeded
    ``reset`` builds the supernet and trains it ``warmup_epochs`` epochs on uniformly
    sampled paths, as the report does (``reset(seed=s, options={"warmup": False})`` skips
    it, for a caller about to load a checkpointed state).

    Observation (float32): ``[epochs of weight training so far, last reward]``, clipped to
    ``[0, EPOCHS_OBS_LIMIT]`` and ``reward_obs_bounds`` so the Box is finite.

    info: ``loss``/``val_loss``, ``val_accuracy``, ``params`` (parameters of the path),
    ``evaluations`` (reward passes spent: 1, plus credit's ablations), ``forward_passes``
    (every supernet forward of the step, the weight-training pass included), ``nonfinite``,
    ``train_loss`` when weights trained, and with ``credit`` the per-edge ``credit``
    (``credit_corr`` for hybrid).

    ``credit_batch="train"`` (beyond the paper) takes the reward and the credit from the
    weight-training pass itself: one forward and one backward on a training batch give the
    weights' gradient and, through the gates, ``dL/dg`` for the Taylor credit; then the weights
    step. One forward pass per step instead of two. The reward is then ``-`` the
    training-batch loss *before* the weight step (``loss``/``train_loss``, and
    ``train_accuracy`` instead of ``val_accuracy``; no ``val_loss``). ``exact`` and ``hybrid``
    credit ablate on the same training batch, before the weight step (the ablations are extra
    forwards, without gradient). Without ``train_weights`` there is no training pass to share:
    the reward is simply taken on a training batch.

    The shared weights' lr: constant, or with ``weight_lr_schedule="cosine"`` DARTS's cosine
    from ``weight_lr`` to ``weight_lr_min`` over ``schedule_epochs`` epochs of weight training
    (warm-up included), set after every weight step from the epochs trained so far, so every
    optimiser step (the env's own and a gradient controller's) follows it.

    For gradient controllers ``env.unwrapped`` exposes ``model`` (the ``Supernet``),
    ``weight_optimizer``, ``next_train_batch()``, ``next_val_batch()``, ``loss_fn``,
    ``train_step(arch=..., weights=...)`` and ``score(arch)``.

    Args:
        config: the settings (``OneShotConfig``); or give its fields as keyword arguments,
            as ``gym.make("nasgen/OneShotNAS-v0", dataset=..., space=...)`` does.
    """

    has_validation_split = True

    config_class = OneShotConfig

    def __init__(self, config: Optional[OneShotConfig] = None, **kwargs: Any):
        if config is None:
            config = OneShotConfig.from_kwargs(**kwargs)
        elif kwargs:
            raise TypeError("give OneShotNASEnv a config or keyword arguments, not both")
        self.config = config
        if config.threads is not None:
            apply_threads(config.threads)
        super().__init__(config.search_space(), config.credit, config.credit_subset, config.nonfinite_reward,
                         config.device, config.seed, credit_check_every=config.credit_check_every)
        self.data = load_dataset(config.dataset, config.data_dir, download=config.download, limit=config.limit,
                                 options=config.dataset_options)
        self.supernet_config = dict(C=config.C, n_cells=supernet_cells(config.space, config.dataset, config.n_cells),
                                    in_channels=self.data.in_channels, n_classes=self.data.n_classes,
                                    image_size=self.data.image_size, dims=self.data.dims)
        self.batch_size = config.batch_size
        self.warmup_epochs = config.warmup_epochs
        self.train_weights = config.train_weights
        self.weight_hparams = dict(lr=config.weight_lr, momentum=config.weight_momentum,
                                   weight_decay=config.weight_decay)
        self.grad_clip = config.grad_clip
        self.weight_lr_schedule = config.weight_lr_schedule
        self.weight_lr_min = config.weight_lr_min
        self.schedule_epochs = config.schedule_epochs
        self.credit_batch = config.credit_batch
        self.progress = config.progress
        self._fused_train_loss: Optional[float] = None
        low, high = self.reward_obs_bounds
        self.observation_space = gym.spaces.Box(np.array([0.0, low], dtype=np.float32),
                                                np.array([EPOCHS_OBS_LIMIT, high], dtype=np.float32))
        self.model: Optional[Supernet] = None
        self.weight_optimizer: Optional[torch.optim.Optimizer] = None
        #: a gradient controller's cosine over its search steps (``anneal_weight_lr``)
        self._anneal: Optional[dict] = None
        #: called between backward and clipping in ``train_step`` (data-parallel gradient averaging)
        self.gradient_hook: Optional[Callable[[], None]] = None
        self._train_data = self.data.train.to(self.device)
        self._val_data = self.data.val.to(self.device)

    @classmethod
    def check_arguments(cls, **kwargs: Any) -> CellSpace:
        """The checks of ``OneShotConfig(**kwargs)`` (building nothing); returns its space.

        Raises:
            TypeError: a keyword the config does not have. ValueError: a bad value.
        """
        return OneShotConfig.from_kwargs(**kwargs).search_space()

    @staticmethod
    def dataset_names() -> list[str]:
        """The names ``dataset=`` accepts."""
        return dataset_names()

    # --- what gradient controllers use --------------------------------------------------------
    def loss_fn(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, y)

    def next_train_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.train_stream.next()

    def next_val_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.val_stream.next()

    @property
    def weight_epochs(self) -> float:
        """Epochs of shared-weight training so far (warm-up included)."""
        return self.train_stream.epochs

    @property
    def train_batches_per_epoch(self) -> int:
        """Weight steps in one epoch over the training split (known before ``reset``)."""
        return len(self._train_data) // self.batch_size

    @property
    def val_batches_per_epoch(self) -> int:
        """Reward batches in one epoch over the validation split (known before ``reset``)."""
        return len(self._val_data) // self.batch_size

    def anneal_weight_lr(self, minimum: float, steps: int, done: int = 0) -> bool:
        """A gradient controller's request: anneal the weights' lr by a cosine from its base
        (``weight_lr``) to ``minimum`` over ``steps`` weight steps, ``done`` of them taken
        already (a resumed search). The env owns the schedule: with its own cosine
        (``weight_lr_schedule="cosine"``, a protocol's schedule over warm-up and search) the
        request is declined.

        Returns:
            Whether the env follows the request (until its next seeded reset).
        """
        if self.weight_lr_schedule == "cosine" or self.weight_optimizer is None:
            return False
        self._anneal = {"minimum": float(minimum), "steps": int(steps), "done": int(done)}
        self._set_annealed_lr()
        return True

    def _set_annealed_lr(self) -> None:
        anneal = self._anneal
        t = min(anneal["done"], anneal["steps"] - 1)
        cosine = 0.5 * (1.0 + math.cos(math.pi * t / anneal["steps"]))
        lr = anneal["minimum"] + (self.weight_hparams["lr"] - anneal["minimum"]) * cosine
        for group in self.weight_optimizer.param_groups:
            group["lr"] = lr

    def _schedule_weight_lr(self, *_: Any) -> None:
        """Set the lr of the coming weight step (a step post-hook of the weight optimiser)."""
        if self._anneal is not None:
            if _:  # called by the optimiser after a step
                self._anneal["done"] += 1
            self._set_annealed_lr()
            return
        if self.weight_lr_schedule != "cosine":
            return
        lr = cosine_lr(self.weight_hparams["lr"], self.weight_lr_min, self.weight_epochs / self.schedule_epochs)
        for group in self.weight_optimizer.param_groups:
            group["lr"] = lr

    def train_step(self, arch: Any = None, weights: Optional[torch.Tensor] = None) -> float:
        """One SGD step of the shared weights on a training batch; returns the loss.

        Pass an int ``arch`` (single path) or a ``weights`` matrix (a relaxed mixture whose
        gradient does not flow back into ``weights``: pass it detached).
        """
        x, y = self.next_train_batch()
        self.model.train()
        loss = self.loss_fn(self.model(x, arch, weights=weights), y)
        self.weight_optimizer.zero_grad(set_to_none=True)
        if not torch.isfinite(loss):
            return float("nan")
        loss.backward()
        if self.gradient_hook is not None:
            self.gradient_hook()
        nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        self.weight_optimizer.step()
        return loss.item()

    def score(self, arch: Any, max_batch: int = 512) -> float:
        """Reward of ``arch`` on the whole validation split (in chunks): the same yardstick for
        every controller, without touching the weights or the batch streams."""
        arch = self.space.validate(arch)
        total = 0.0
        with torch.no_grad():
            for start in range(0, len(self._val_data), max_batch):
                x = self._val_data.x[start:start + max_batch]
                y = self._val_data.y[start:start + max_batch]
                total += F.cross_entropy(self.model(x, arch), y, reduction="sum").item()
        return -total / len(self._val_data)

    # --- hooks ------------------------------------------------------------------------------------
    def _build(self) -> None:
        with torch.random.fork_rng(devices=[]):  # supernet init without touching global state
            torch.manual_seed(torch_seed(self.np_random))
            self.model = Supernet(self.space, **self.supernet_config).to(self.device)
        self.weight_optimizer = torch.optim.SGD(self.model.parameters(), **self.weight_hparams)
        self._anneal: Optional[dict] = None
        self.train_stream = BatchStream(self._train_data, self.batch_size,
                                        torch.Generator().manual_seed(torch_seed(self.np_random)), self.device)
        self.weight_optimizer.register_step_post_hook(self._schedule_weight_lr)
        self._schedule_weight_lr()
        self.val_stream = BatchStream(self._val_data, self.batch_size,
                                      torch.Generator().manual_seed(torch_seed(self.np_random)), self.device)
        if self._reset_options.get("warmup", True):  # a resume loads trained weights instead
            self._warm_up()

    def _warm_up(self) -> None:
        steps = int(round(self.warmup_epochs * self.train_stream.batches_per_epoch))
        iterator = range(steps)
        if self.progress and steps:
            iterator = tqdm(iterator, desc="warm-up", unit="step", leave=False)
        for _ in iterator:
            self.train_step(self.space.sample(self.np_random))

    @property
    def _fused(self) -> bool:
        """Reward, credit and weight step share one training pass."""
        return self.credit_batch == "train" and self.train_weights

    def _reward_batch(self):
        return self.next_train_batch() if self.credit_batch == "train" else self.next_val_batch()

    def _loss(self, arch, batch, gates):
        x, y = batch
        logits = self.model(x, arch, gates=gates)
        loss = self.loss_fn(logits, y)
        return loss, {"val_accuracy": (logits.argmax(1) == y).float().mean().item()}

    def _evaluate(self, loss_of_gates, active):
        if not self._fused:
            return super()._evaluate(loss_of_gates, active)
        self.model.train()
        gates = None
        if self.credit_mode is not None:
            gates = torch.ones(len(active), device=self.device, requires_grad=True)
        loss = loss_of_gates(gates)
        self.weight_optimizer.zero_grad(set_to_none=True)
        if not torch.isfinite(loss):  # the base class floors the reward; the weights stay
            self._fused_train_loss = float("nan")
            return float("nan"), 1, None if gates is None else Credit(np.zeros(len(active)), float("nan"), 1)
        loss.backward()  # the weights' gradient and dL/dgates in one backward
        value = loss.item()
        result = None
        if gates is not None:
            grad = gates.grad if gates.grad is not None else torch.zeros_like(gates)
            taylor = -grad.detach().cpu().double().numpy()
            taylor[~active] = 0.0
            result = Credit(credit=taylor, loss=value, evaluations=1, backward_passes=1)
            with torch.no_grad():  # ablations on the same batch, before the weights move
                if self.credit_mode == "exact":
                    result = exact_credit(loss_of_gates, active, self.device, base_loss=value)
                    result.evaluations += 1
                elif self.credit_mode == "hybrid":
                    result = hybrid_credit(loss_of_gates, active, self.np_random, self.device,
                                           self.credit_subset, taylor=result)
        if self.gradient_hook is not None:
            self.gradient_hook()
        nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        self.weight_optimizer.step()
        self._fused_train_loss = value
        return value, 1 if result is None else result.evaluations, result

    def _train(self, arch: np.ndarray) -> dict:
        info = {"params": self.model.parameter_count(arch)}
        if self._fused:
            info["train_loss"] = self._fused_train_loss
        elif self.train_weights:
            info["train_loss"] = self.train_step(arch)
        return info

    def step(self, action: Any):
        self._fused_train_loss = None
        observation, reward, terminated, truncated, info = super().step(action)
        separate_pass = "train_loss" in info and not self._fused
        info["forward_passes"] = info["evaluations"] + int(separate_pass)
        if self.credit_batch == "train":
            if "val_accuracy" in info:
                info["train_accuracy"] = info.pop("val_accuracy")
        else:
            info["val_loss"] = info["loss"]
        if "params" not in info:  # the non-finite path skips _train
            info["params"] = self.model.parameter_count(action)
        return observation, reward, terminated, truncated, info

    def _observation(self) -> np.ndarray:
        epochs = min(self.train_stream.epochs, EPOCHS_OBS_LIMIT) if self._built else 0.0
        return np.array([epochs, self._clipped_reward()], dtype=np.float32)

    def state_dict(self) -> dict:
        return {**self._base_state(), "model": self.model.state_dict(),
                "weight_optimizer": self.weight_optimizer.state_dict(),
                "train_stream": self.train_stream.state_dict(), "val_stream": self.val_stream.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        # torch.optim's load_state_dict keeps the given tensors as its buffers and steps them in
        # place: one warm-up state loaded into several searches would carry each search's
        # momentum into the next. A deep copy keeps the caller's state as it was.
        state = copy.deepcopy(state)
        self._load_base_state(state)
        self.model.load_state_dict(state["model"])
        self.weight_optimizer.load_state_dict(state["weight_optimizer"])
        self.train_stream.load_state_dict(state["train_stream"])
        self.val_stream.load_state_dict(state["val_stream"])
        self._schedule_weight_lr()
