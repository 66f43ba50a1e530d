"""``nasgen/OneShotNAS-v0``: the shared-weight supernet as a reward source."""

from __future__ import annotations

import copy
import math
from typing import Any, Callable, Optional

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nasgen.searchspace import (BatchStream, CellSpace, Credit, Supernet, dataset_names, exact_credit,
                                hybrid_credit, load_dataset)
from nasgen.searchspace import get as get_space
from nasgen.searchspace import names as space_names
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
    """``n_cells`` as given, or its default for ``space`` on ``dataset`` (see ``OneShotNASEnv``)."""
    if n_cells is not None:
        return n_cells
    from nasgen.nb1d.judge import supernet_cells_for

    return supernet_cells_for(space, dataset) or DEFAULT_SUPERNET_CELLS


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
        dataset: a name of ``searchspace.dataset_names()``.
        data_dir: folder of the torchvision datasets.
        download: let torchvision download a missing dataset.
        limit: keep at most this many examples per split.
        dataset_options: settings of a dataset that has them (``mnist1d``: ``n_train``,
            ``n_test``, ``val_fraction``, ``n_val``, ``seed``; see ``MNIST1DOptions``).
        space: a search-space preset name (a cell space).
        C: supernet channels of the first cells.
        n_cells: supernet cells (``nb201``: cells per stage, N). None: the depth of the networks
            of the shipped table that judges this space and dataset, so the supernet's
            sub-networks are the networks the table trained (``nb201`` on ``mnist1d``: N=1);
            otherwise ``DEFAULT_SUPERNET_CELLS`` (5).
        batch_size: examples per reward and per weight step.
        warmup_epochs: epochs of weight training on uniform paths before the first reward.
        train_weights: train the shared weights one step after every reward.
        weight_lr, weight_momentum, weight_decay, grad_clip: the SGD of the shared weights.
        weight_lr_schedule: ``"constant"`` or ``"cosine"`` (see above).
        weight_lr_min: final lr of the cosine schedule.
        schedule_epochs: epochs of weight training the cosine spans (warm-up + search);
            required with ``"cosine"``.
        credit_batch: ``"val"`` (the paper: reward and credit on a validation batch, then a
            separate training pass) or ``"train"`` (from the training pass, see above).
        progress: show a progress bar during warm-up.
        credit, credit_subset, nonfinite_reward, device, seed, credit_check_every: see
            ``ArchitectureEnv``.
    """

    has_validation_split = True

    def __init__(self, dataset: str = "digits", data_dir: Optional[str] = None, download: bool = False,
                 limit: Optional[int] = None, dataset_options: Optional[dict] = None,
                 space: str = "small", C: int = 8, n_cells: Optional[int] = None,
                 batch_size: int = 64, warmup_epochs: float = 10.0, train_weights: bool = True,
                 weight_lr: float = 0.025, weight_momentum: float = 0.9, weight_decay: float = 3e-4,
                 grad_clip: float = 5.0, weight_lr_schedule: str = "constant", weight_lr_min: float = 1e-3,
                 schedule_epochs: Optional[float] = None, progress: bool = False,
                 credit: Optional[str] = None, credit_subset: int = 1, credit_batch: str = "val",
                 nonfinite_reward: float = -100.0, device: str = "cpu", seed: Optional[int] = None,
                 credit_check_every: int = CREDIT_CHECK_EVERY):
        search_space = self.check_arguments(
            dataset=dataset, limit=limit, space=space, C=C, n_cells=n_cells, batch_size=batch_size,
            warmup_epochs=warmup_epochs, weight_lr=weight_lr, weight_momentum=weight_momentum,
            weight_decay=weight_decay, grad_clip=grad_clip, weight_lr_schedule=weight_lr_schedule,
            weight_lr_min=weight_lr_min, schedule_epochs=schedule_epochs, credit=credit,
            credit_subset=credit_subset, credit_batch=credit_batch, nonfinite_reward=nonfinite_reward,
            device=device, seed=seed, credit_check_every=credit_check_every)
        super().__init__(search_space, credit, credit_subset, nonfinite_reward, device, seed,
                         credit_check_every=credit_check_every)
        self.data = load_dataset(dataset, data_dir, download=download, limit=limit, options=dataset_options)
        self.supernet_config = dict(C=C, n_cells=supernet_cells(space, dataset, n_cells),
                                    in_channels=self.data.in_channels, n_classes=self.data.n_classes,
                                    image_size=self.data.image_size, dims=self.data.dims)
        self.batch_size = batch_size
        self.warmup_epochs = warmup_epochs
        self.train_weights = train_weights
        self.weight_hparams = dict(lr=weight_lr, momentum=weight_momentum, weight_decay=weight_decay)
        self.grad_clip = grad_clip
        self.weight_lr_schedule = weight_lr_schedule
        self.weight_lr_min = weight_lr_min
        self.schedule_epochs = schedule_epochs
        self.credit_batch = credit_batch
        self.progress = progress
        self._fused_train_loss: Optional[float] = None
        low, high = self.reward_obs_bounds
        self.observation_space = gym.spaces.Box(np.array([0.0, low], dtype=np.float32),
                                                np.array([EPOCHS_OBS_LIMIT, high], dtype=np.float32))
        self.model: Optional[Supernet] = None
        self.weight_optimizer: Optional[torch.optim.Optimizer] = None
        #: called between backward and clipping in ``train_step`` (data-parallel gradient averaging)
        self.gradient_hook: Optional[Callable[[], None]] = None
        self._train_data = self.data.train.to(self.device)
        self._val_data = self.data.val.to(self.device)

    @classmethod
    def _checked_space(cls, args: dict[str, Any]) -> CellSpace:
        if args["dataset"] not in dataset_names():
            raise ValueError(f"unknown dataset {args['dataset']!r}; choose from: {', '.join(dataset_names())}")
        if args["space"] not in space_names():
            raise ValueError(f"unknown search space {args['space']!r}; choose from: {', '.join(space_names())}")
        search_space = get_space(args["space"])
        if not isinstance(search_space, CellSpace):
            raise ValueError(f"space {args['space']!r} is not a cell search space")
        check_stack_size(args["C"], supernet_cells(args["space"], args["dataset"], args["n_cells"]))
        for key in ("batch_size",) + (("limit",) if args["limit"] is not None else ()):
            if args[key] < 1:
                raise ValueError(f"{key} must be >= 1, got {args[key]}")
        if not 0 <= args["weight_momentum"] < 1:
            raise ValueError(f"weight_momentum must lie in [0, 1), got {args['weight_momentum']}")
        for key in ("warmup_epochs", "weight_decay"):
            if not 0 <= args[key] < math.inf:
                raise ValueError(f"{key} must be a finite number >= 0, got {args[key]}")
        for key in ("weight_lr", "grad_clip"):
            if not 0 < args[key] < math.inf:
                raise ValueError(f"{key} must be a finite number > 0, got {args[key]}")
        if args["weight_lr_schedule"] not in WEIGHT_LR_SCHEDULES:
            raise ValueError(f"weight_lr_schedule={args['weight_lr_schedule']!r}; expected one of "
                             f"{', '.join(WEIGHT_LR_SCHEDULES)}")
        schedule_epochs = args["schedule_epochs"]
        if args["weight_lr_schedule"] == "cosine" and not (schedule_epochs is not None and 0 < schedule_epochs < math.inf):
            raise ValueError(f"weight_lr_schedule='cosine' needs schedule_epochs > 0 (warm-up + search "
                             f"epochs of weight training), got {schedule_epochs}")
        if not 0 <= args["weight_lr_min"] < math.inf:
            raise ValueError(f"weight_lr_min must be a finite number >= 0, got {args['weight_lr_min']}")
        if args["credit_batch"] not in CREDIT_BATCHES:
            raise ValueError(f"credit_batch={args['credit_batch']!r}; expected one of {', '.join(CREDIT_BATCHES)}")
        return search_space

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

    def _schedule_weight_lr(self, *_: Any) -> None:
        """Set the lr of the coming weight step (a step post-hook of the weight optimiser)."""
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
            from tqdm.auto import tqdm
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
