"""Data-parallel supernet search with ``torch.distributed``.

Run it with torchrun (the command is ``nasgen.cli.distributed``); it takes every flag of ``nasgen search``::

    torchrun --nproc_per_node=4 -m nasgen.distributed --device cuda --controller credit \\
        --dataset cifar10 --data-dir data/ --space darts --env-kwargs C=16 n_cells=8

What runs where (N processes, "ranks"; the environment must be ``nasgen/OneShotNAS-v0``):

- **Shared weights, data-parallel.** Every rank holds the whole supernet (rank 0's weights are
  broadcast at the start) and its own SGD optimiser. A weight step averages the gradients
  of all ranks with one all-reduce *before* gradient clipping, so every rank applies the same
  update (what DDP does; DDP itself is not used because single-path steps leave most of
  the supernet without gradients and gradient controllers differentiate with
  ``torch.autograd.grad``, which DDP's hooks do not see).
- **Own data shard per rank.** The training and validation splits are cut into N disjoint,
  equal shards (a permutation seeded by ``--seed``); each rank streams batches of
  ``batch_size`` from its shard with its own generator, so one step sees ``N * batch_size``
  examples. One epoch (``--epochs``, ``warmup_epochs``) is still one pass over the data.
- **Losses are global.** Every loss the environment or a controller computes goes through
  the environment's ``loss_fn``, which is wrapped here: its value is the mean over ranks
  (one all-reduce), its gradient the rank's own. So rewards, exact credit and every
  "is the loss finite" decision agree on all ranks, and no rank can take a branch the
  others do not. Per-edge Taylor credit and ``val_accuracy`` are averaged after each step.
- **Black-box controllers live on rank 0 only.** Rank 0 asks for the architectures and
  broadcasts them (with the environment's generator state, the only other random state a
  step draws from, e.g. the hybrid credit's subset); all ranks evaluate and train that same
  path on their shard; rank 0 tells its controller the global reward.
- **Gradient controllers (darts, snas, gdas, proxyless) keep a replica on every rank**,
  because each rank must run the relaxed supernet on its shard. The replicas start equal
  (same seed); before each step rank 0's controller generator state is broadcast, so the
  Gumbel noise and sampled paths agree; and **the alpha gradient is all-reduced (averaged)
  before every Adam step** (alpha is never stepped on rank 0 alone and broadcast). Weight
  gradients are averaged before clipping as above. DARTS order 2 averages the per-rank
  unrolled estimates (each rank's virtual step uses its own training batch).
- **Divergence is checked, not masked.** At every checkpoint, every ``--check-every`` steps
  and at the end, every rank compares its supernet weights and (gradient controllers) alpha
  with rank 0's, bit for bit; a difference raises ``RuntimeError``.
- **Rank 0 alone writes**: TensorBoard events, checkpoints, ``result.json`` (with a
  ``distributed`` entry) and the diagrams. A checkpoint holds every rank's stream
  position, so ``--resume RUN_DIR`` continues exactly with the same number of processes
  (the run directory must be readable by every rank).

Backends: gloo on CPU (used by the tests), NCCL on CUDA (``--device cuda``: rank r uses GPU
``LOCAL_RANK``). Started without torchrun it runs as a single process group of one rank.
"""

from __future__ import annotations

import os
from collections import deque
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import torch
import torch.distributed as dist

from tqdm.auto import tqdm

from nasgen import controllers
from nasgen.checkpoint import CheckpointError, save_checkpoint
from nasgen.envs import OneShotNASEnv
from nasgen.search import CHECKPOINT_NAME, Search, SearchConfig
from nasgen.searchspace import BatchStream, Split

# --- the process group -----------------------------------------------------------------------------


@dataclass
class DistContext:
    """Where this process sits in the process group.

    Attributes:
        rank: global rank.
        world_size: number of processes.
        local_rank: rank on this machine (its GPU index under NCCL).
        backend: ``"gloo"`` or ``"nccl"``.
        comm_device: where tensors must be for collectives (``cuda:LOCAL_RANK`` for NCCL).
    """

    rank: int
    world_size: int
    local_rank: int
    backend: str
    comm_device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(backend: Optional[str] = None, device: str = "cpu") -> DistContext:
    """Join (or create) the default process group.

    Under torchrun (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``/``MASTER_PORT`` set) this joins
    the group with ``env://``; without them it creates a group of one process. On CUDA the
    process's GPU becomes ``cuda:LOCAL_RANK``.

    Args:
        backend: ``"gloo"`` or ``"nccl"``; default NCCL for a CUDA ``device``, else gloo.
        device: the search's device, ``cpu`` or ``cuda``.

    Returns:
        This process's ``DistContext``.
    """
    if not dist.is_available():
        raise RuntimeError("this torch build has no torch.distributed")
    cuda = str(device).startswith("cuda")
    backend = backend or ("nccl" if cuda else "gloo")
    if backend == "nccl" and not cuda:
        raise ValueError("the nccl backend needs --device cuda; use gloo on the CPU")
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if cuda:
        if not torch.cuda.is_available():
            raise ValueError(f"device={device!r} but CUDA is not available")
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        if "RANK" in os.environ and "WORLD_SIZE" in os.environ:
            dist.init_process_group(backend, init_method="env://")
        else:
            dist.init_process_group(backend, store=dist.HashStore(), rank=0, world_size=1)
    comm = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
    return DistContext(dist.get_rank(), dist.get_world_size(), local_rank, dist.get_backend(), comm)


def broadcast_object(obj: Any, ctx: DistContext) -> Any:
    """Rank 0's ``obj`` on every rank (pickled)."""
    box = [obj if ctx.is_main else None]
    dist.broadcast_object_list(box, src=0, device=ctx.comm_device if ctx.backend == "nccl" else None)
    return box[0]


def all_reduce_mean(tensor: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """The mean over ranks of ``tensor`` (a new tensor on ``tensor``'s device and dtype)."""
    buffer = tensor.detach().to(ctx.comm_device, copy=True)
    dist.all_reduce(buffer)
    return buffer.div_(ctx.world_size).to(tensor.device, tensor.dtype)


def broadcast_tensor(tensor: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """Rank 0's ``tensor`` (same shape and dtype on every rank), as a new tensor."""
    buffer = tensor.detach().to(ctx.comm_device, copy=True)
    dist.broadcast(buffer, src=0)
    return buffer.to(tensor.device)


def _seed_of(*words: int) -> int:
    return int(np.random.SeedSequence([int(w) % 2**32 for w in words]).generate_state(1, np.uint64)[0] >> 1)


class _GlobalValue(torch.autograd.Function):
    """Forward: the all-ranks value; backward: the gradient of the rank's own loss."""

    @staticmethod
    def forward(ctx, local: torch.Tensor, global_value: torch.Tensor) -> torch.Tensor:
        return global_value.clone()

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad, None


# --- the data-parallel supernet ----------------------------------------------------------------------
class DataParallelSupernet:
    """Makes the supernet of a ``OneShotNAS-v0`` instance data-parallel over the process group.

    Built right after the environment's seeded ``reset`` (with ``{"warmup": False}``), it
    broadcasts rank 0's weights, replaces the batch streams with per-rank shards, and wraps
    ``loss_fn`` of ``env.unwrapped`` (an instance attribute; the class is untouched) and sets
    its ``gradient_hook`` to average gradients. See the module docstring for the semantics.

    Args:
        env: the environment (``env.unwrapped`` must be a ``OneShotNASEnv``).
        ctx: the process group.
        seed: the search seed (fixes the shards and the per-rank stream generators).
    """

    def __init__(self, env, ctx: DistContext, seed: int):
        self.env = env.unwrapped
        self.ctx = ctx
        self.seed = int(seed)
        self._grads_synced = False
        self._loss_fn = self.env.loss_fn
        self._broadcast_model()
        self._shard_streams()
        self.env.loss_fn = self.loss_fn
        self.env.gradient_hook = self.sync_gradients
        if self.env.weight_optimizer is not None:
            self.env.weight_optimizer.register_step_pre_hook(self._before_weight_step)

    # --- setup ------------------------------------------------------------------------------
    def _broadcast_model(self) -> None:
        with torch.no_grad():
            for tensor in list(self.env.model.parameters()) + list(self.env.model.buffers()):
                tensor.copy_(broadcast_tensor(tensor, self.ctx))

    def _shard(self, split, salt: int):
        per_rank = len(split) // self.ctx.world_size
        if per_rank < 1:
            raise ValueError(f"a split of {len(split)} examples cannot be shared by {self.ctx.world_size} ranks")
        order = torch.randperm(len(split), generator=torch.Generator().manual_seed(_seed_of(self.seed, salt)))
        index = order[self.ctx.rank * per_rank:(self.ctx.rank + 1) * per_rank].to(split.x.device)
        return Split(split.x[index], split.y[index]), index

    def _shard_streams(self) -> None:
        env = self.env
        self.shard_index = {}
        for name, split, salt in (("train_stream", env._train_data, 1), ("val_stream", env._val_data, 2)):
            shard, index = self._shard(split, salt)
            self.shard_index[name] = index.cpu()
            generator = torch.Generator().manual_seed(_seed_of(self.seed, salt, self.ctx.rank, 7))
            setattr(env, name, BatchStream(shard, env.batch_size, generator, env.device))

    # --- the wrapped members of the environment -----------------------------------------------------
    def loss_fn(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The environment's loss with the all-ranks mean as value and the local gradient."""
        local = self._loss_fn(output, target)
        mean = all_reduce_mean(local.detach().double().reshape(1), self.ctx)
        return _GlobalValue.apply(local, mean.to(local.dtype).reshape(local.shape))

    def sync_gradients(self) -> None:
        """Average the supernet's gradients over ranks (one all-reduce of the flattened grads)."""
        params = [p for p in self.env.model.parameters() if p.grad is not None]
        sizes = torch.tensor([sum(p.numel() for p in params), -len(params)], dtype=torch.int64)
        largest = sizes.to(self.ctx.comm_device)
        dist.all_reduce(largest, op=dist.ReduceOp.MAX)
        if not torch.equal(largest.cpu(), sizes):
            raise RuntimeError("ranks computed gradients for different parts of the supernet; "
                               "the sampled paths disagree")
        if params:
            flat = all_reduce_mean(torch.cat([p.grad.reshape(-1) for p in params]), self.ctx)
            offset = 0
            for p in params:
                p.grad.copy_(flat[offset:offset + p.numel()].view_as(p.grad))
                offset += p.numel()
        self._grads_synced = True

    def _before_weight_step(self, optimizer, args, kwargs) -> None:
        if not self._grads_synced:  # a controller stepped the weights without clipping first
            self.sync_gradients()
        self._grads_synced = False

    # --- gradient controllers -------------------------------------------------------------------------
    def attach_controller(self, controller) -> None:
        """Average a gradient controller's alpha gradient over ranks before its every Adam step
        (its weight gradients are averaged through the env's ``gradient_hook`` already)."""
        if not hasattr(controller, "alpha_gradient_hook"):
            raise TypeError(f"{type(controller).__name__} is not a GradientController (no alpha_gradient_hook); "
                            f"it cannot run data-parallel")
        controller.alpha_gradient_hook = lambda grad: all_reduce_mean(grad, self.ctx)

    def agree_generator(self, generator: torch.Generator) -> None:
        """Give ``generator`` rank 0's state on every rank."""
        generator.set_state(broadcast_tensor(generator.get_state(), self.ctx).cpu())

    # --- black-box steps -------------------------------------------------------------------------------
    def agree_step(self, archs: Optional[list]) -> list[np.ndarray]:
        """Rank 0's architectures (and the environment's generator state) on every rank."""
        payload = broadcast_object(None if archs is None else
                                   ([np.asarray(a, dtype=np.int64) for a in archs],
                                    self.env.np_random.bit_generator.state), self.ctx)
        archs, state = payload
        self.env.np_random.bit_generator.state = state
        return archs

    def average_info(self, info: dict) -> dict:
        """``info`` with the per-edge ``credit`` and ``val_accuracy`` averaged over ranks."""
        keys = [k for k in ("credit", "val_accuracy") if k in info]
        if not keys:
            return info
        parts = [np.atleast_1d(np.asarray(info[k], dtype=np.float64)) for k in keys]
        mean = all_reduce_mean(torch.from_numpy(np.concatenate(parts)), self.ctx).numpy()
        out, offset = dict(info), 0
        for key, part in zip(keys, parts):
            value = mean[offset:offset + part.size]
            out[key] = value.copy() if key == "credit" else float(value[0])
            offset += part.size
        return out

    def warm_up(self, progress: bool = False) -> int:
        """``warmup_epochs`` epochs of data-parallel weight training on uniform random paths
        (rank 0's path each step). Returns the number of steps."""
        env = self.env
        steps = int(round(env.warmup_epochs * env.train_stream.batches_per_epoch))
        iterator = range(steps)
        if progress and steps:
            iterator = tqdm(iterator, desc="warm-up", unit="step", leave=False)
        for _ in iterator:
            arch = torch.from_numpy(np.asarray(env.space.sample(env.np_random), dtype=np.int64))
            self.env.train_step(broadcast_tensor(arch, self.ctx).numpy())
        return steps

    # --- checks ------------------------------------------------------------------------------------------
    def assert_in_sync(self, extra: Sequence[torch.Tensor] = (), where: str = "") -> None:
        """Raise ``RuntimeError`` unless every rank holds rank 0's supernet weights and ``extra``
        tensors (alpha) bit for bit."""
        groups = {"supernet weights": [t.detach() for t in self.env.model.state_dict().values()],
                  "architecture parameters": [t.detach() for t in extra]}
        for what, tensors in groups.items():
            if not tensors:
                continue
            mine = torch.cat([t.reshape(-1).double().cpu() for t in tensors])
            reference = broadcast_tensor(mine, self.ctx)
            differ = torch.tensor([float((mine != reference).any())], device=self.ctx.comm_device)
            dist.all_reduce(differ, op=dist.ReduceOp.MAX)
            if differ.item():
                gap = (mine - reference).abs().max().item()
                raise RuntimeError(f"{what} differ between ranks{where} (rank {self.ctx.rank}: max |difference| "
                                   f"{gap:.3g} from rank 0)")


# --- the search ------------------------------------------------------------------------------------
class DistributedSearch(Search):
    """``Search`` over a process group: same config, same results files (rank 0 only).

    Args:
        config: what to run (``env`` must be ``nasgen/OneShotNAS-v0`` or a subclass env).
        run_dir: the run directory (written by rank 0 only).
        ctx: from ``init_distributed``.
        logger: rank 0's ``SummaryWriter``; ignored on other ranks.
        progress: show tqdm bars on rank 0.
        check_every: steps between bit-for-bit checks that all ranks agree (0: only at
            checkpoints and at the end).
    """

    #: the env's loss is a collective here: a check on rank 0 alone (in ``finish``) would hang
    final_credit_check = False

    def __init__(self, config: SearchConfig, run_dir: str | Path, ctx: DistContext, logger: Any = None,
                 progress: bool = False, check_every: int = 0):
        super().__init__(config, run_dir, logger if ctx.is_main else None, progress and ctx.is_main)
        if not isinstance(self.env.unwrapped, OneShotNASEnv):
            raise ValueError(f"data-parallel search shards a supernet's data; env {config.env} has none "
                             f"(use nasgen/OneShotNAS-v0)")
        self.ctx = ctx
        self.check_every = int(check_every)
        self.replica: Optional[DataParallelSupernet] = None
        #: black-box controllers: the last 10,000 architectures every rank evaluated and trained
        self.trained_paths: deque[tuple[int, ...]] = deque(maxlen=10_000)

    @property
    def gradient(self) -> bool:
        return self.controller_class.kind == "gradient"

    @property
    def is_main(self) -> bool:
        return self.ctx.is_main

    def _start(self, resume_state: Optional[dict], env_state: Optional[dict] = None) -> None:
        self.env.reset(seed=self.config.seed, options={"warmup": False})
        self.space = self.env.unwrapped.space
        self.replica = DataParallelSupernet(self.env, self.ctx, self.config.seed)
        self.controller = None
        if self.ctx.is_main or self.gradient:
            kwargs = dict(self.config.controller_kwargs)
            if "total_steps" in controllers.hyperparameters(self.config.controller):
                kwargs.setdefault("total_steps", self._resolve_steps(samples_per_step=1))
            self.controller = controllers.make(self.config.controller, self.space, seed=self.config.seed, **kwargs)
            if self.gradient:
                self.replica.attach_controller(self.controller)
        self.total_steps = broadcast_object(
            self._resolve_steps(self.controller.samples_per_step) if self.ctx.is_main else None, self.ctx)
        if resume_state:
            self.load_state_dict(resume_state)
        else:
            self.replica.warm_up(progress=self.progress)

    def _one_step(self) -> dict[str, float]:
        if self.gradient:
            self.replica.agree_generator(self.controller.generator)
            return super()._one_step()
        archs = self.replica.agree_step(self.controller.ask(self.controller.samples_per_step)
                                        if self.ctx.is_main else None)
        played = [self._play(a) for a in archs]
        rewards = [r for r, _ in played]
        infos = [self.replica.average_info(i) for _, i in played]
        self.trained_paths.extend(tuple(int(v) for v in a) for a in archs)
        self._record(archs, rewards, infos)
        if not self.ctx.is_main:
            return {}
        return self._with_info_metrics(self.controller.tell(archs, rewards, infos), infos)

    # --- state -------------------------------------------------------------------------------------------
    def _alpha(self) -> list[torch.Tensor]:
        return [self.controller.alpha] if self.gradient else []

    def check_in_sync(self) -> None:
        """Bit-for-bit agreement of weights (and alpha) across ranks; ``RuntimeError`` if not."""
        self.replica.assert_in_sync(self._alpha(), where=f" at step {self.step}")

    def checkpoint(self) -> Optional[Path]:
        """Collective: checks that the ranks agree, then every rank's stream positions go into
        rank 0's checkpoint."""
        self.check_in_sync()
        env = self.env.unwrapped
        streams = [None] * self.ctx.world_size
        dist.all_gather_object(streams, {"train_stream": env.train_stream.state_dict(),
                                         "val_stream": env.val_stream.state_dict()})
        if not self.ctx.is_main:
            return None
        state = self.state_dict()
        state["distributed"] = {"world_size": self.ctx.world_size, "streams": streams}
        return save_checkpoint(state, self.run_dir / CHECKPOINT_NAME)

    def load_state_dict(self, state: dict) -> None:
        """Restore a checkpoint written by a distributed run with as many ranks.

        Raises:
            CheckpointError: written by ``nasgen search`` or by another number of ranks.
        """
        info = state.get("distributed")
        if info is None:
            raise CheckpointError("the checkpoint was written by a single-process search; continue it with "
                                  "nasgen search --resume")
        if info["world_size"] != self.ctx.world_size:
            raise CheckpointError(f"the checkpoint was written by {info['world_size']} processes, this run has "
                                  f"{self.ctx.world_size}; resume with --nproc_per_node={info['world_size']}")
        if self.controller is not None:
            self.controller.load_state_dict(state["controller"])
        env = self.env.unwrapped
        env.load_state_dict(state["env"])
        env.train_stream.load_state_dict(info["streams"][self.ctx.rank]["train_stream"])
        env.val_stream.load_state_dict(info["streams"][self.ctx.rank]["val_stream"])
        self._load_loop_state(state)

    # --- the run -----------------------------------------------------------------------------------------
    def _after_step(self) -> None:
        checkpointed = self.step % self.config.checkpoint_every == 0 or self.step == self.total_steps
        if self.check_every and self.step % self.check_every == 0 and not checkpointed:
            self.check_in_sync()

    def finish(self) -> dict:
        """Collective: rank 0 writes the results; every rank returns them."""
        self.check_in_sync()
        return broadcast_object(super().finish() if self.ctx.is_main else None, self.ctx)

    def _result_extras(self) -> dict:
        env = self.env.unwrapped
        return {"distributed": {"world_size": self.ctx.world_size, "backend": self.ctx.backend,
                                "global_batch_size": env.train_stream.batch_size * self.ctx.world_size}}

    def _config_rows(self) -> dict:
        return {**asdict(self.config), "world_size": self.ctx.world_size, "backend": self.ctx.backend}
