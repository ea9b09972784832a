"""Cross-process BatchNorm and means on CPU (gloo, 2 processes) equal their single-process versions."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from enlightengan.training.distributed import (
    DistEnv,
    GlobalBatchNorm2d,
    ResumableSampler,
    convert_batchnorm,
    global_mean,
    shard_batch_size,
    shutdown_distributed,
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _worker(rank: int, port: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    torch.manual_seed(0)
    x = torch.randn(4, 3, 5, 5) * 3 + 1  # the same global batch on every rank
    bn = GlobalBatchNorm2d(3)
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([1.0, 2.0, 0.5]))
        bn.bias.copy_(torch.tensor([0.0, -1.0, 0.3]))
    mine = x[2 * rank : 2 * rank + 2].clone().requires_grad_(True)
    y = bn(mine)
    m = global_mean(y[:, 0])
    loss = (y.square() * torch.arange(1.0, 4.0).view(1, 3, 1, 1)).mean() + m * 5
    loss.backward()
    assert mine.grad is not None
    torch.save(
        {
            "y": y.detach(),
            "grad_x": mine.grad,
            "grad_w": bn.weight.grad,
            "running_mean": bn.running_mean,
            "running_var": bn.running_var,
        },
        Path(out_dir) / f"rank{rank}.pt",
    )
    shutdown_distributed()


@pytest.mark.slow
def test_global_batchnorm_and_mean_match_one_process(tmp_path: Path) -> None:
    mp.spawn(_worker, args=(_free_port(), str(tmp_path)), nprocs=2, join=True)
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)

    torch.manual_seed(0)
    x = (torch.randn(4, 3, 5, 5) * 3 + 1).requires_grad_(True)
    bn = nn.BatchNorm2d(3)
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([1.0, 2.0, 0.5]))
        bn.bias.copy_(torch.tensor([0.0, -1.0, 0.3]))
    y = bn(x)
    # the single-process loss is the mean of the two ranks' losses (equal halves of the batch)
    loss = (y.square() * torch.arange(1.0, 4.0).view(1, 3, 1, 1)).mean() + y[:, 0].mean() * 5
    loss.backward()
    assert x.grad is not None and bn.weight.grad is not None

    torch.testing.assert_close(torch.cat([r0["y"], r1["y"]]), y.detach(), atol=1e-5, rtol=1e-5)
    # DDP averages parameter gradients over ranks; input gradients are per rank, scaled by 1/world
    torch.testing.assert_close((r0["grad_w"] + r1["grad_w"]) / 2, bn.weight.grad, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(torch.cat([r0["grad_x"], r1["grad_x"]]) / 2, x.grad, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(r0["running_mean"], bn.running_mean, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(r0["running_var"], bn.running_var, atol=1e-6, rtol=1e-5)


def test_single_process_fallbacks() -> None:
    x = torch.randn(4, 3, 6, 6)
    bn = GlobalBatchNorm2d(3).train()
    reference = nn.BatchNorm2d(3).train()
    torch.testing.assert_close(bn(x), reference(x))
    assert global_mean(x).item() == pytest.approx(x.mean().item())


def test_convert_batchnorm_keeps_names_and_values() -> None:
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Sequential(nn.BatchNorm2d(4)))
    with torch.no_grad():
        net[1].running_mean.fill_(0.25)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    convert_batchnorm(net, "cpu")
    assert isinstance(net[1], GlobalBatchNorm2d) and isinstance(net[2][0], GlobalBatchNorm2d)
    after = net.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_resumable_sampler_splits_and_resumes() -> None:
    data = list(range(20))
    s0 = ResumableSampler(data, DistEnv(rank=0, world_size=2), batch_size=3, seed=5)  # type: ignore[arg-type]
    s1 = ResumableSampler(data, DistEnv(rank=1, world_size=2), batch_size=3, seed=5)  # type: ignore[arg-type]
    s0.set_epoch(2)
    s1.set_epoch(2)
    a, b = list(s0), list(s1)
    assert len(a) == len(b) == 9  # 10 samples per rank -> 3 whole batches of 3
    assert not set(a) & set(b)
    s0.set_epoch(2, start_step=2)
    assert list(s0) == a[6:]
    s0.set_epoch(3)
    assert list(s0) != a  # a new order every epoch
    with pytest.raises(ValueError, match="too few images"):
        ResumableSampler(list(range(3)), DistEnv(), batch_size=4, seed=0)  # type: ignore[arg-type]


def test_shard_batch_size() -> None:
    assert shard_batch_size(32, DistEnv(rank=0, world_size=4)) == 8
    with pytest.raises(ValueError, match="does not split evenly"):
        shard_batch_size(6, DistEnv(rank=0, world_size=4))
