"""Multi-process training helpers, driven by ``torchrun``'s environment (``RANK``, ``WORLD_SIZE``, ...).

A distributed run must compute the same gradients as one process with the same global batch. Two
parts of EnlightenGAN mix samples of a batch and so need more than DistributedDataParallel's gradient
averaging:

* BatchNorm in the generator normalises over the batch: :class:`GlobalBatchNorm2d` uses statistics of
  the global batch (torch's SyncBatchNorm does the same but only on GPUs; on CUDA we use it);
* the relativistic discriminator loss subtracts the batch mean of the other side's scores:
  :func:`global_mean` averages across processes with a differentiable all-reduce.

Both reduce to their single-process versions when no process group is initialised.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.utils.data import Dataset
from torch.utils.data.distributed import DistributedSampler

from ..models.batchnorm import replace_batchnorm

__all__ = [
    "DistEnv",
    "GlobalBatchNorm2d",
    "ResumableSampler",
    "all_reduce_sum",
    "convert_batchnorm",
    "global_mean",
    "init_distributed",
    "is_distributed",
    "per_rank_seed",
    "shard_batch_size",
    "shutdown_distributed",
]


@dataclass(frozen=True)
class DistEnv:
    """Where this process stands in the run."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        """Only the main process logs and saves."""
        return self.rank == 0


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def init_distributed(device_type: str) -> DistEnv:
    """Join the process group that ``torchrun`` describes in the environment; a no-op without it.

    Uses NCCL for CUDA and gloo otherwise. Works across nodes exactly as torchrun's rendezvous does.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistEnv()
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_type == "cuda" else "gloo")
    return DistEnv(rank=rank, local_rank=local_rank, world_size=world_size)


def shutdown_distributed() -> None:
    """Leave the process group in order: wait for every process, then destroy it; a no-op without one.

    Without the barrier a fast process can close its connections while a slower one is still tearing
    down, and gloo's transport threads then abort the slower process at exit.
    """
    if dist.is_available() and dist.is_initialized():
        if dist.get_world_size() > 1:
            dist.barrier()
        dist.destroy_process_group()


def global_mean(x: Tensor) -> Tensor:
    """Mean of ``x`` over all its elements on all processes, differentiable.

    Assumes every process holds the same number of elements (equal per-rank batches), so the mean of
    per-process means is the global mean.
    """
    local = x.mean()
    if not is_distributed():
        return local
    return all_reduce_sum(local) / dist.get_world_size()


class _AllReduceSum(torch.autograd.Function):
    """Sum over processes; the gradient of a sum of per-process copies is the sum of their gradients."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, x: Tensor) -> Tensor:
        out = x.clone()
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        return out

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: Tensor) -> Tensor:
        out = grad.contiguous().clone()
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        return out


def all_reduce_sum(x: Tensor) -> Tensor:
    """Differentiable, synchronous all-reduce (sum) of ``x`` over the default process group."""
    out: Tensor = _AllReduceSum.apply(x)
    return out


class GlobalBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics span the batches of all processes.

    Same parameters and buffers (and so state-dict keys) as :class:`torch.nn.BatchNorm2d`; identical to it
    in eval mode or without a process group. Statistics are gathered with a differentiable all-reduce of
    per-channel sums, so gradients equal those of one process holding the global batch.
    """

    def forward(self, x: Tensor) -> Tensor:
        if not (self.training and is_distributed()):
            return super().forward(x)
        count = torch.tensor(float(x.shape[0] * x.shape[2] * x.shape[3]), device=x.device)
        sums = torch.cat([x.sum(dim=(0, 2, 3)), x.square().sum(dim=(0, 2, 3)), count.view(1)])
        sums = all_reduce_sum(sums)
        c = self.num_features
        n = sums[-1]
        mean = sums[:c] / n
        var = sums[c : 2 * c] / n - mean.square()
        if self.track_running_stats and self.running_mean is not None and self.running_var is not None:
            with torch.no_grad():
                momentum = self.momentum if self.momentum is not None else 0.1
                unbiased = var * n / (n - 1).clamp(min=1)
                self.running_mean.mul_(1 - momentum).add_(momentum * mean)
                self.running_var.mul_(1 - momentum).add_(momentum * unbiased)
                if self.num_batches_tracked is not None:
                    self.num_batches_tracked.add_(1)
        x_hat = (x - mean.view(1, c, 1, 1)) * torch.rsqrt(var.view(1, c, 1, 1) + self.eps)
        if self.affine:
            x_hat = x_hat * self.weight.view(1, c, 1, 1) + self.bias.view(1, c, 1, 1)
        return x_hat


def convert_batchnorm(module: nn.Module, device_type: str) -> nn.Module:
    """Swap every BatchNorm2d for a cross-process one (SyncBatchNorm on CUDA, GlobalBatchNorm2d elsewhere).

    Parameters, buffers and their names are kept, so checkpoints stay interchangeable.
    """
    if device_type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    return replace_batchnorm(module, GlobalBatchNorm2d)


class ResumableSampler(DistributedSampler[int]):
    """DistributedSampler that can start an epoch part-way, so a resumed run sees the same batches.

    The order of epoch ``e`` is a permutation seeded with ``seed + e`` (as DistributedSampler), split
    over ranks; :meth:`set_epoch` takes the number of samples of this rank already consumed in the epoch.
    Incomplete batches are dropped (``drop_last``) so every rank has the same number of steps.
    """

    def __init__(self, dataset: Dataset[object], env: DistEnv, batch_size: int, seed: int) -> None:
        super().__init__(
            dataset, num_replicas=env.world_size, rank=env.rank, shuffle=True, seed=seed, drop_last=True
        )
        self.batch_size = batch_size
        self.start = 0
        # whole batches only: the number of samples this rank yields per epoch
        self.steps_per_epoch = self.num_samples // batch_size
        if self.steps_per_epoch == 0:
            raise ValueError(
                f"the data has too few images ({len(dataset)}) for a per-process batch of {batch_size} "  # type: ignore[arg-type]
                f"on {env.world_size} process(es)"
            )

    def set_epoch(self, epoch: int, start_step: int = 0) -> None:
        super().set_epoch(epoch)
        self.start = start_step * self.batch_size

    def __iter__(self) -> Iterator[int]:
        indices = list(super().__iter__())[: self.steps_per_epoch * self.batch_size]
        return iter(indices[self.start :])

    def __len__(self) -> int:
        return self.steps_per_epoch * self.batch_size - self.start


def per_rank_seed(seed: int, env: DistEnv) -> int:
    """Seed for randomness that must differ between processes (none in the default recipe)."""
    return seed + 1000003 * env.rank


def shard_batch_size(global_batch: int, env: DistEnv) -> int:
    """Per-process batch for a global batch; must divide evenly."""
    if global_batch % env.world_size:
        raise ValueError(
            f"the batch size {global_batch} does not split evenly over {env.world_size} processes"
        )
    return global_batch // env.world_size
