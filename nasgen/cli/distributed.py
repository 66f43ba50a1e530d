"""``torchrun --nproc_per_node=N -m nasgen.distributed [nasgen search flags]``: the data-parallel
search (``nasgen.distributed``) as a command."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Optional, Sequence

import torch.distributed as dist

from nasgen import envs
from nasgen.checkpoint import CheckpointError, CheckpointWriteError
from nasgen.distributed import DistContext, DistributedSearch, broadcast_object, init_distributed
from nasgen.envs import OneShotNASEnv
from nasgen.runtime import apply_threads
from nasgen.search import seed_everything

from . import args as a
from . import run_command
from .args import Parser, UsageError
from .search import DEFAULT_LOGDIR, add_search_arguments, config_from_args, make_run_dir, print_result, resume_from_args


def build_parser() -> Parser:
    """The flags of ``nasgen search`` plus ``--backend`` and ``--check-every``.

    Returns:
        The parser (``nasgen search``'s flags and two of its own).
    """
    parser = add_search_arguments(Parser(
        prog="torchrun --nproc_per_node=N -m nasgen.distributed",
        description=("Data-parallel search over the processes torchrun starts: shared supernet "
                          "weights with averaged gradients, a data shard per process, the controller on "
                          "rank 0 (gradient controllers: alpha gradients averaged). Rank 0 writes the results.")))
    group = parser.add_argument_group("distributed")
    group.add_argument("--backend", choices=("gloo", "nccl"), help="default: nccl with --device cuda, else gloo")
    group.add_argument("--check-every", type=a.non_negative_int, default=0,
                       help="steps between checks that all ranks hold the same weights and architecture "
                            "parameters (default: 0 = at checkpoints and at the end)")
    return parser


def _leave(ctx: DistContext) -> None:
    """Leave the process group together: a rank tearing down its connections while another
    still uses them can abort the process at exit."""
    try:
        if ctx.world_size > 1 and sys.exc_info()[0] is None:
            dist.barrier()
    finally:
        dist.destroy_process_group()


def _is_rank_zero() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``torchrun --nproc_per_node=N -m nasgen.distributed [nasgen search flags]``.

    Returns:
        0, 2 on bad input (one line on stderr, from rank 0), 130 when interrupted.
    """
    args = build_parser().parse_args(argv)
    apply_threads(args.threads)
    return run_command(lambda: _search(args), "nasgen.distributed", speak=_is_rank_zero())


def _search(args: argparse.Namespace) -> int:
    from torch.utils.tensorboard import SummaryWriter  # tensorboard: imported only to write

    if args.resume:
        run_dir, config, state, note = resume_from_args(args)
        if _is_rank_zero():
            print(note, flush=True)
    else:
        config, state, run_dir = config_from_args(args), None, None
    if config.protocol is not None:
        raise UsageError("--protocol is not supported by the data-parallel search yet; use nasgen search")
    if not issubclass(envs.env_class(config.env), OneShotNASEnv):
        raise UsageError(f"data-parallel search needs a supernet environment; {config.env} has none "
                         f"(choose from: nasgen/OneShotNAS-v0)")
    try:  # the device itself passed the config's check
        ctx = init_distributed(args.backend, config.device)
    except ValueError as error:  # --backend nccl without --device cuda
        raise UsageError(str(error)) from None
    writer = None
    try:
        if run_dir is None:
            run_dir = broadcast_object(str(make_run_dir(args.logdir or DEFAULT_LOGDIR, config)) if ctx.is_main else None, ctx)
        seed_everything(config.seed)
        search = DistributedSearch(config, run_dir, ctx, progress=not args.no_progress,
                                   check_every=args.check_every)
        if ctx.is_main:
            writer = SummaryWriter(str(run_dir), purge_step=state["step"] + 1 if state else None)
            search.logger = writer
        try:
            result = search.run(resume_state=state)
        except CheckpointWriteError:
            raise
        except CheckpointError as error:
            raise UsageError(f"--resume: {error}; nothing was changed") from None
    finally:
        if writer is not None:
            writer.close()
        _leave(ctx)
    if ctx.is_main:
        print_result(result, run_dir, where=f" on {ctx.world_size} processes ({ctx.backend})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
