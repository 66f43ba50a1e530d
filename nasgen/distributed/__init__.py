"""Data-parallel supernet search with ``torch.distributed`` (``nasgen.distributed.dataparallel``).

``torchrun --nproc_per_node=N -m nasgen.distributed [nasgen search flags]`` runs it; the
command itself is ``nasgen.cli.distributed``.
"""

from .dataparallel import (DataParallelSupernet, DistContext, DistributedSearch, all_reduce_mean, broadcast_object,
                           broadcast_tensor, init_distributed)

__all__ = ["DataParallelSupernet", "DistContext", "DistributedSearch", "all_reduce_mean", "broadcast_object",
           "broadcast_tensor", "init_distributed"]
