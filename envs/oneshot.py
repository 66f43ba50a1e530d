"""``nasgen/OneShotNAS-v0``: the shared-weight supernet as a reward source."""

from __future__ import annotations

import math
from typing import Any, Callable, Optional

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nasgen.searchspace import BatchStream, CellSearchSpace, Supernet, dataset_names, load_dataset
from nasgen.searchspace import get as get_space
from nasgen.searchspace import names as space_names
from nasgen.searchspace.cells import check_stack_size

from .base import ArchitectureEnv, torch_seed

#: Upper bound of the epochs entry of the observation (it is clipped there).
EPOCHS_OBS_LIMIT = 1e6


class OneShotNASEnv(ArchitectureEnv):
    """One step = one whole architecture of a DARTS cell space, rewarded by the supernet.

    Reward: ``R(a) = -cross-entropy`` of the sampled path on one validation batch.
    Then, when ``train_weights``, the shared weights take one SGD step on a training batch
    with the same path (ENAS-style alternation). Before the first reward, a seeded
    ``reset`` builds the supernet and trains it ``warmup_epochs`` epochs on uniformly
    sampled paths, as the report does (``reset(seed=s, options={"warmup": False})`` skips
    it, for a caller about to load a checkpointed state).

    Observation (float32): ``[epochs of weight training so far, last reward]``, clipped to
    ``[0, EPOCHS_OBS_LIMIT]`` and ``reward_obs_bounds`` so the Box is finite.

    info: ``loss``/``val_loss``, ``val_accuracy``, ``params`` (parameters of the path),
    ``evaluations`` (forward passes spent), ``nonfinite``, ``train_loss`` when weights
    trained, and with ``credit`` the per-edge ``credit`` (``credit_corr`` for hybrid).

    For gradient controllers ``env.unwrapped`` exposes ``model`` (the ``Supernet``),
    ``weight_optimizer``, ``next_train_batch()``, ``next_val_batch()``, ``loss_fn``,
    ``train_step(arch=..., weights=...)`` and ``score(arch)``.

    Args:
        dataset: a name of ``searchspace.dataset_names()``.
        data_dir: folder of the torchvision datasets.
        download: let torchvision download a missing dataset.
        limit: keep at most this many examples per split.
        space: a search-space preset name (a cell space).
        C: supernet channels of the first cells.
        n_cells: supernet cells.
        batch_size: examples per reward and per weight step.
        warmup_epochs: epochs of weight training on uniform paths before the first reward.
        train_weights: train the shared weights one step after every reward.
        weight_lr, weight_momentum, weight_decay, grad_clip: the SGD of the shared weights.
        progress: show a progress bar during warm-up.
        credit, credit_subset, nonfinite_reward, device, seed: see ``ArchitectureEnv``.
    """

    has_validation_split = True

    def __init__(self, dataset: str = "digits", data_dir: Optional[str] = None, download: bool = False,
                 limit: Optional[int] = None, space: str = "small", C: int = 8, n_cells: int = 5,
                 batch_size: int = 64, warmup_epochs: float = 10.0, train_weights: bool = True,
                 weight_lr: float = 0.025, weight_momentum: float = 0.9, weight_decay: float = 3e-4,
                 grad_clip: float = 5.0, progress: bool = False, credit: Optional[str] = None,
                 credit_subset: int = 1, nonfinite_reward: float = -100.0, device: str = "cpu",
                 seed: Optional[int] = None):
        search_space = self.check_arguments(
            dataset=dataset, limit=limit, space=space, C=C, n_cells=n_cells, batch_size=batch_size,
            warmup_epochs=warmup_epochs, weight_lr=weight_lr, weight_momentum=weight_momentum,
            weight_decay=weight_decay, grad_clip=grad_clip, credit=credit, credit_subset=credit_subset,
            nonfinite_reward=nonfinite_reward, device=device, seed=seed)
        super().__init__(search_space, credit, credit_subset, nonfinite_reward, device, seed)
        self.data = load_dataset(dataset, data_dir, download=download, limit=limit)
        self.supernet_config = dict(C=C, n_cells=n_cells, in_channels=self.data.in_channels,
                                    n_classes=self.data.n_classes, image_size=self.data.image_size)
        self.batch_size = batch_size
        self.warmup_epochs = warmup_epochs
        self.train_weights = train_weights
        self.weight_hparams = dict(lr=weight_lr, momentum=weight_momentum, weight_decay=weight_decay)
        self.grad_clip = grad_clip
        self.progress = progress
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
    def _checked_space(cls, args: dict[str, Any]) -> CellSearchSpace:
        if args["dataset"] not in dataset_names():
            raise ValueError(f"unknown dataset {args['dataset']!r}; choose from: {', '.join(dataset_names())}")
        if args["space"] not in space_names():
            raise ValueError(f"unknown search space {args['space']!r}; choose from: {', '.join(space_names())}")
        search_space = get_space(args["space"])
        if not isinstance(search_space, CellSearchSpace):
            raise ValueError(f"space {args['space']!r} is not a cell search space")
        check_stack_size(args["C"], args["n_cells"])
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
        return search_space

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

    def _reward_batch(self):
        return self.next_val_batch()

    def _loss(self, arch, batch, gates):
        x, y = batch
        logits = self.model(x, arch, gates=gates)
        loss = self.loss_fn(logits, y)
        return loss, {"val_accuracy": (logits.argmax(1) == y).float().mean().item()}

    def _train(self, arch: np.ndarray) -> dict:
        info = {"params": self.model.parameter_count(arch)}
        if self.train_weights:
            info["train_loss"] = self.train_step(arch)
        return info

    def step(self, action: Any):
        observation, reward, terminated, truncated, info = super().step(action)
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
        self._load_base_state(state)
        self.model.load_state_dict(state["model"])
        self.weight_optimizer.load_state_dict(state["weight_optimizer"])
        self.train_stream.load_state_dict(state["train_stream"])
        self.val_stream.load_state_dict(state["val_stream"])
