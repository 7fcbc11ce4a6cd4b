"""One run trained data-parallel over the processes `torchrun` starts (gloo on the CPU, nccl on CUDA).

Every process builds the same members from the run's seed and draws the same shuffle order from
the run's own generator; each step it trains on its contiguous shard of the global batch
(`torch.tensor_split`, so the last partial batch is split too), and ONE all_reduce of the flat
(K, P) gradient buffer gives every process the global batch's mean gradient. That is what
DistributedDataParallel does with its gradient buckets; the members already keep every gradient
in one contiguous buffer, so a single all_reduce is the whole bucket. Each process's mean loss is
weighted by its share of the rows, so the averaged gradient equals the global-batch gradient
(with train.class_weights = balanced each shard's loss is a class-weighted mean, so the
combination is then close to, not equal to, the global batch's).
Weights, optimizer state, clipping and schedules then stay identical on every process.

What differs from one process: dropout and augmentation draw each shard's randomness from a
per-process stream derived each step from the run's own generator (shared by all processes, so
a checkpoint written by rank 0 resumes every rank exactly); BatchNorm normalises by each shard's
own batch statistics (not synchronised, as DDP without SyncBatchNorm), and before every
validation every process takes rank 0's running statistics, so all processes evaluate identical
weights (the default recalibration then re-estimates them from the training inputs anyway).
Every process evaluates the full validation set, so the metrics equal the single-process figures
on the same weights, and stopping decisions agree without a reduction. Only rank 0 writes files;
the others wait at a barrier while it does.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from .config import AUTO, RunConfig
from .errors import CheckpointError, ConfigError, TrainwellError

if TYPE_CHECKING:
    import torch

    from .stack import ParamStack

# torch is imported inside the functions that use it: the command line reads the environment
# (launch) before it knows whether a command needs torch at all

STREAM_STRIDE = 1_000_003  # separates the processes' derived random streams (a prime)


@dataclass(frozen=True)
class Launch:
    """The torchrun environment of this process."""

    rank: int
    world_size: int
    local_rank: int


def launch() -> Launch | None:
    """This process's place in a torchrun group, or None when it runs alone (the one place the
    environment is read)."""
    if "WORLD_SIZE" not in os.environ and "RANK" not in os.environ:
        return None
    try:
        rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
        local = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError:
        raise TrainwellError(
            "RANK, WORLD_SIZE and LOCAL_RANK must be integers; start several processes with torchrun --nproc_per_node N"
        ) from None
    if world < 1 or not 0 <= rank < world:
        raise TrainwellError(
            f"RANK = {rank} and WORLD_SIZE = {world} do not fit: RANK must be from 0 to WORLD_SIZE - 1"
        )
    return Launch(rank, world, local) if world > 1 else None


def is_follower() -> bool:
    """A process other than rank 0 of a torchrun group: it writes nothing and prints nothing."""
    where = launch()
    return where is not None and where.rank != 0


def world_size() -> int:
    where = launch()
    return where.world_size if where is not None else 1


def check_resume(saved_world: int, last_pt: Any) -> None:
    """last.pt resumes exactly only with the process count that wrote it."""
    if saved_world != world_size():
        raise CheckpointError(
            f"{str(last_pt)!r} was written by {saved_world} process(es) and this resume runs {world_size()}; "
            f"resume with the same count (torchrun --nproc_per_node {saved_world}, or no torchrun for 1)"
        )


def check(cfg: RunConfig) -> None:
    """What a run under torchrun cannot be, in one line each (before anything is read or written)."""
    where = launch()
    if where is None:
        return
    B, n = cfg.train.batch_size, where.world_size
    import torch

    if B != AUTO and B % n:  # an auto batch is a power of two >= 64
        raise ConfigError(
            f"train.batch_size = {B} is not divisible by the {n} torchrun processes; use a multiple of {n} "
            f"(the global batch is split evenly)"
        )
    if cfg.train.members > 1:
        raise ConfigError(
            f"train.members = {cfg.train.members} is not supported under torchrun; use 1 (train ensembles in "
            f"one process)"
        )
    if "auto" in (cfg.optim.lr, cfg.schedule.max_lr):
        raise ConfigError(
            "optim.lr / schedule.max_lr = auto is not supported under torchrun; run 'trainwell lr-find' first "
            "and give the number"
        )
    if cfg.train.backend == "nccl" and not torch.cuda.is_available():
        raise ConfigError("train.backend = 'nccl' needs CUDA and none is available here; use auto or gloo")
    if "MASTER_ADDR" not in os.environ or "MASTER_PORT" not in os.environ:
        raise TrainwellError(
            "RANK and WORLD_SIZE are set but the rendezvous is missing (MASTER_ADDR and MASTER_PORT); start "
            "the processes with torchrun"
        )


@dataclass
class DataParallel:
    """This process's part in training one run over `world` processes."""

    rank: int
    world: int
    device: torch.device
    local_stop: Callable[[], bool] = lambda: False  # this process's own SIGINT/SIGTERM flag
    stopping: bool = False  # agreed by all processes at the last step

    @property
    def leader(self) -> bool:
        return self.rank == 0

    def shard(self, idx: torch.Tensor) -> torch.Tensor:
        """This process's contiguous part of every member's batch (sizes differ by at most one)."""
        return idx.tensor_split(self.world, dim=1)[self.rank]

    def average(self, grad: torch.Tensor, losses: torch.Tensor, share: float) -> torch.Tensor:
        """The global batch's mean gradient (in place) and mean loss per member, from this
        process's shard means weighted by its share of the rows; also agrees on stopping."""
        import torch
        import torch.distributed as dist

        grad.mul_(share)
        dist.all_reduce(grad)  # one collective over the whole flat buffer: DDP's buckets in one
        small = torch.cat([losses.float() * share, torch.tensor([float(self.local_stop())], device=losses.device)])
        dist.all_reduce(small)  # losses and the stop flag: K + 1 numbers
        self.stopping = bool(small[-1] > 0)
        return small[:-1]

    def stop_requested(self) -> bool:
        return self.stopping

    def streams(self, generators: list[torch.Generator], seed_global: bool = False) -> list[torch.Generator]:
        """Per-process random streams for this step's shard, derived from the members' own
        generators (which every process advances alike, so rank 0's checkpoint holds every
        process's state). seed_global: the module path draws dropout from torch's global generator."""
        import torch

        seeds = [int(torch.randint(0, 2**62, (1,), generator=g)) + STREAM_STRIDE * self.rank for g in generators]
        if seed_global:
            torch.manual_seed(seeds[0])
        return [torch.Generator(device=g.device).manual_seed(seed) for g, seed in zip(generators, seeds)]

    def same_statistics(self, stack: ParamStack) -> None:
        """Rank 0's BatchNorm running statistics (live and averaged) on every process."""
        import torch.distributed as dist

        for average in (False, True) if stack.has_average else (False,):
            for k in range(stack.K):
                packed = stack.pack(k, average)
                floats = packed["floats"].to(self.device)
                dist.broadcast(floats, 0)
                packed["floats"] = floats.cpu()
                stack.unpack(k, packed, average)

    def same_start(self, stack: ParamStack) -> None:
        """Rank 0's weights everywhere, as DDP broadcasts at construction (seeding already agrees)."""
        import torch.distributed as dist

        for flat in (stack.flat, stack.avg_flat):
            if flat is not None:
                dist.broadcast(flat, 0)

    def needs_drop_last(self, n: int, batch: int, batchnorm: bool) -> bool:
        """Drop the last partial batch when it leaves a shard empty (or of one row with BatchNorm)."""
        last = n % batch
        return 0 < last < self.world * (2 if batchnorm else 1)

    def barrier(self) -> None:
        import torch.distributed as dist

        dist.barrier()


def start(cfg: RunConfig, device: torch.device) -> DataParallel | None:
    """Join the torchrun group (gloo on the CPU, nccl on CUDA unless train.backend says), or None alone."""
    import torch
    import torch.distributed as dist

    where = launch()
    if where is None:
        return None
    check(cfg)
    if device.type == "cuda":
        if where.local_rank >= torch.cuda.device_count():
            raise ConfigError(
                f"torchrun started process {where.local_rank + 1} on this host, which has "
                f"{torch.cuda.device_count()} CUDA device(s); "
                "use one process per GPU (--nproc_per_node) or train.device = cpu"
            )
        torch.cuda.set_device(where.local_rank)
        device = torch.device("cuda", where.local_rank)
    backend = cfg.train.backend if cfg.train.backend != "auto" else ("nccl" if device.type == "cuda" else "gloo")
    if backend == "nccl" and device.type != "cuda":
        raise ConfigError("train.backend = 'nccl' needs the run on CUDA (train.device is cpu); use auto or gloo")
    if not dist.is_initialized():
        try:
            dist.init_process_group(
                backend
            )  # torch's default timeout: rank 0 may write large checkpoints while the rest wait
        except (RuntimeError, ValueError, OSError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise TrainwellError(
                f"could not join the torchrun group at "
                f"{os.environ.get('MASTER_ADDR')}:{os.environ.get('MASTER_PORT')}: {first[:200]}"
            ) from None
    return DataParallel(where.rank, where.world_size, device)


def stop() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


class ParallelBook:
    """The run book of a torchrun group: rank 0 writes, every process waits while it does."""

    def __init__(self, inner: Any, parallel: DataParallel) -> None:
        self.inner, self.parallel, self.runs = inner, parallel, inner.runs

    def improved(self, member: Any) -> None:
        if self.parallel.leader:
            self.inner.improved(member)

    def checkpoint(self, t: Any, s: Any) -> None:
        if self.inner.checkpoint_due(t, s):
            if self.parallel.leader:
                self.inner.checkpoint(t, s)
            self.parallel.barrier()

    def step(self, t: Any, s: Any) -> None:  # live progress: rank 0 shows it, nobody waits
        if self.parallel.leader:
            self.inner.step(t, s)

    def epoch_end(self, t: Any, s: Any) -> None:
        if self.parallel.leader:
            self.inner.epoch_end(t, s)
        self.parallel.barrier()
