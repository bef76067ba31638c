"""Several processes through torchrun: who this process is, and the few collectives coldkit needs.

``torchrun --nproc-per-node N -m coldkit run CONFIG`` starts N processes with ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK`` and the rendezvous address in their environment;
:func:`start_cluster` joins them into one process group (NCCL for CUDA tensors, gloo for CPU
tensors, so small control messages never wait on a GPU). Without torchrun there is one process
and every method here is a no-op, so the single-process path pays nothing.

The training recipe under several processes (see ``docs/distributed.md``): every rank draws the
same *global* batch from the same seeded generator and keeps its own share, so ``N`` processes
compute the same gradient as one process with the same global batch; DistributedDataParallel
averages the shares' gradients. Only rank 0 writes to the run folder.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

from coldkit.errors import ConfigError


@dataclass(frozen=True)
class Cluster:
    """This process's place among the processes of one run (one process: rank 0 of 1)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def enabled(self) -> bool:
        """Whether several processes train together."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the only process that writes to the run folder or the console."""
        return self.rank == 0

    def share(self, count: int) -> slice:
        """This rank's slice of a global batch of ``count`` items (``count`` divisible by N)."""
        size = count // self.world_size
        return slice(self.rank * size, (self.rank + 1) * size)

    def device(self, device: torch.device) -> torch.device:
        """The device of this rank: ``cuda:LOCAL_RANK`` when training on CUDA."""
        if self.enabled and device.type == "cuda":
            return torch.device("cuda", self.local_rank)
        return device

    def broadcast_value(self, value: float) -> float:
        """Rank 0's ``value`` on every rank (a CPU message: it never waits on a GPU)."""
        if not self.enabled:
            return value
        message = torch.tensor([value], dtype=torch.float64)
        dist.broadcast(message, src=0)
        return float(message.item())

    def mean(self, values: Tensor) -> Tensor:
        """The element-wise mean of ``values`` over the ranks."""
        if not self.enabled:
            return values
        values = values.clone()
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
        return values / self.world_size

    def gather(self, item: Any) -> list[Any] | None:
        """Every rank's ``item`` (picklable, e.g. CPU tensors) in rank order on rank 0; None on
        the others."""
        if not self.enabled:
            return [item]
        gathered: list[Any] | None = [None] * self.world_size if self.is_main else None
        dist.gather_object(item, gathered, dst=0)
        return gathered

    def agree(self, ok: bool) -> bool:
        """Whether rank 0 says ``ok``: how the other ranks learn that rank 0 stopped early."""
        return bool(self.broadcast_value(1.0 if ok else 0.0))


#: The one-process cluster: what every function uses when torchrun did not start this process.
SINGLE_PROCESS = Cluster()


def start_cluster(timeout_minutes: float = 30.0) -> Cluster:
    """Join the process group torchrun set up in the environment, or return ``SINGLE_PROCESS``.

    CUDA tensors go through NCCL when CUDA is available; CPU tensors always go through gloo.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return SINGLE_PROCESS
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    backend = "cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo"
    if not dist.is_available():
        raise ConfigError(
            "WORLD_SIZE is above 1 but this torch build has no torch.distributed. Run without "
            "torchrun, or install a torch build with distributed support."
        )
    if not dist.is_initialized():
        if torch.cuda.is_available():
            torch.cuda.set_device(local_rank % torch.cuda.device_count())
        dist.init_process_group(
            backend=backend,
            rank=rank,
            world_size=world_size,
            timeout=datetime.timedelta(minutes=timeout_minutes),
        )
    return Cluster(rank, world_size, local_rank, backend)


def stop_cluster(cluster: Cluster) -> None:
    """Leave the process group (a no-op for one process)."""
    if cluster.enabled and dist.is_initialized():
        dist.destroy_process_group()


def check_batch_split(batch_size: int, cluster: Cluster) -> None:
    """``train.batch_size`` is the global batch: it must split evenly over the processes."""
    if batch_size % cluster.world_size:
        raise ConfigError(
            f"train.batch_size = {batch_size} does not split evenly over {cluster.world_size} "
            f"processes (it is the global batch, shared by all of them). Set train.batch_size to "
            f"a multiple of {cluster.world_size}, or start another number of processes."
        )


__all__ = [
    "Cluster",
    "SINGLE_PROCESS",
    "check_batch_split",
    "start_cluster",
    "stop_cluster",
]
