"""Data-parallel training across processes: what ``torchrun`` sets up, and the few pieces the loop needs.

``torchrun --nproc_per_node=N`` (add ``--nnodes``/``--rdzv-endpoint`` for several machines) starts
N copies of a command with ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` (and ``MASTER_ADDR``/``PORT``)
in the environment. :func:`distributed_context` reads them and joins the process group: NCCL for
``--device cuda`` (process ``LOCAL_RANK`` drives ``cuda:LOCAL_RANK``), gloo for ``--device cpu``.
Without those variables (or with ``WORLD_SIZE=1``) nothing is initialised and the caller runs its
plain single-process code.

Sampling (:func:`rank_part`): every rank draws the same seeded permutation of the training windows
each epoch, cuts it into *global* batches of ``batch_size x world_size`` windows and keeps its
contiguous share of each. The shares are disjoint, and the union of the ranks' batches at one step
is exactly the batch a single process with ``batch_size x world_size`` would see at that step.

BatchNorm (:func:`sync_batchnorm`): under plain DDP each rank normalises with the statistics of its
own share, so the gradient is not that of the global batch. ``torch.nn.SyncBatchNorm`` fixes that on
GPUs only (in training it raises "SyncBatchNorm expected input tensor to be on GPU" for CPU
tensors), so ecgedge uses its own :class:`AllReduceBatchNorm1d`: two differentiable all-reduces
(sum, then centred sum of squares) give every rank the global batch's mean and variance, on gloo
and NCCL alike. With it a W-process step equals a single-process step on the global batch, up to
float rounding (``tests/test_distributed.py`` checks it).
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Callable, Iterator, Mapping, Sequence, TypeVar

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from ecgedge.config import Device
from ecgedge.errors import BackendUnavailable, ConfigError, EcgEdgeError

T = TypeVar("T")

# Collectives wait this long for a slow rank. Generous because rank 0 may be building the window
# cache (reading every record) while the others wait at a barrier; torchrun still tears the group
# down at once when a worker dies, so a long timeout does not hide crashes.
COLLECTIVE_TIMEOUT = timedelta(hours=2)


@dataclass(frozen=True)
class DistContext:
    """Where this process sits in the job: global ``rank`` of ``world_size``, ``local_rank`` on its node."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that logs and writes the run folder."""
        return self.rank == 0


SINGLE = DistContext()


def context_from_env(env: Mapping[str, str] | None = None) -> DistContext:
    """The :class:`DistContext` that ``torchrun``'s ``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` describe (none: single process)."""
    env = os.environ if env is None else env
    if "WORLD_SIZE" not in env:
        return SINGLE
    try:
        world, rank, local = int(env["WORLD_SIZE"]), int(env.get("RANK", "0")), int(env.get("LOCAL_RANK", "0"))
    except ValueError:
        raise ConfigError(f"torchrun variables must be integers: WORLD_SIZE={env.get('WORLD_SIZE')!r} "
                          f"RANK={env.get('RANK')!r} LOCAL_RANK={env.get('LOCAL_RANK')!r}") from None
    if not 0 <= rank < world or local < 0:
        raise ConfigError(f"RANK={rank} must lie in [0, WORLD_SIZE={world}) and LOCAL_RANK={local} must be >= 0")
    return DistContext(rank=rank, world_size=world, local_rank=local)


def backend_for(device: Device) -> str:
    """NCCL between GPUs, gloo between CPU processes."""
    return "nccl" if Device(device) == Device.cuda else "gloo"


@contextmanager
def distributed_context(device: Device) -> Iterator[DistContext]:
    """Join the process group ``torchrun`` describes for the duration of the block (no-op when single).

    A group that already exists (initialised by the caller) is used and left alone.
    """
    ctx = context_from_env()
    if not ctx.is_distributed:
        yield ctx
        return
    backend = backend_for(device)
    if backend == "nccl":
        if not torch.cuda.is_available():
            raise BackendUnavailable("--device cuda under torchrun, but this torch build sees no CUDA GPU (use --device cpu)")
        if ctx.local_rank >= torch.cuda.device_count():
            raise BackendUnavailable(f"LOCAL_RANK {ctx.local_rank} has no GPU: this node has {torch.cuda.device_count()} "
                                     "(--nproc_per_node must not exceed the GPUs per node)")
        torch.cuda.set_device(ctx.local_rank)
    started = not dist.is_initialized()
    if started:
        dist.init_process_group(backend, timeout=COLLECTIVE_TIMEOUT)
    try:
        yield DistContext(ctx.rank, ctx.world_size, ctx.local_rank, dist.get_backend())
    finally:
        if started:
            dist.destroy_process_group()


def torch_device(device: Device, ctx: DistContext) -> torch.device:
    """The device this process computes on: ``cuda:LOCAL_RANK`` under torchrun with GPUs."""
    if Device(device) == Device.cuda and ctx.is_distributed:
        return torch.device("cuda", ctx.local_rank)
    return torch.device(Device(device).value)


def barrier(ctx: DistContext) -> None:
    """Wait for every rank (no-op when single)."""
    if not ctx.is_distributed:
        return
    if ctx.backend == "nccl":
        dist.barrier(device_ids=[ctx.local_rank])
    else:
        dist.barrier()


def rank_part(batch: np.ndarray, ctx: DistContext) -> np.ndarray:
    """This rank's contiguous share of a global batch (shares differ in size by at most one window)."""
    return np.array_split(batch, ctx.world_size)[ctx.rank]


def all_sum(values: Sequence[float] | np.ndarray, ctx: DistContext) -> np.ndarray:
    """Element-wise sum over ranks, in float64 (the values themselves when single)."""
    arr = np.asarray(values, dtype=np.float64)
    if not ctx.is_distributed:
        return arr
    t = torch.from_numpy(arr.copy())
    if ctx.backend == "nccl":
        t = t.cuda()
    dist.all_reduce(t)
    return t.cpu().numpy()


def _gather_failures(ctx: DistContext, failure: str | None) -> list[str | None]:
    out: list[str | None] = [None] * ctx.world_size
    dist.all_gather_object(out, failure)
    return out


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def from_main(ctx: DistContext, fn: Callable[[], T]) -> T:
    """``fn()`` on rank 0 only, its result sent to every rank; if it raises, every rank raises.

    For what must come from one place (the run folder on rank 0's file system) without assuming
    the other ranks can see it.
    """
    if not ctx.is_distributed:
        return fn()
    box: list = [None, None]
    error = None
    if ctx.is_main:
        try:
            box = [fn(), None]
        except Exception as exc:  # re-raised below, after the others have heard of it
            error, box = exc, [None, _describe(exc)]
    dist.broadcast_object_list(box, src=0)
    if error is not None:
        raise error
    if box[1] is not None:
        raise EcgEdgeError(f"rank 0 failed: {box[1]}")
    return box[0]


def built_once(ctx: DistContext, build: Callable[[], T]) -> T:
    """``build()`` on every rank, but rank 0 first, then each node's local rank 0, then the rest.

    For a cache that ``build`` creates when missing and opens when present: on a shared file
    system it is built once (by rank 0) and opened by everyone else; on node-local disks it is
    built once per node. Ranks wait at a barrier between the turns; a failure on any rank is
    raised on every rank instead of leaving the others waiting.
    """
    if not ctx.is_distributed:
        return build()
    turns = (ctx.is_main, ctx.local_rank == 0 and not ctx.is_main, ctx.local_rank != 0)
    result = None
    for mine in turns:
        error = None
        if mine:
            try:
                result = build()
            except Exception as exc:
                error = exc
        failures = _gather_failures(ctx, None if error is None else _describe(error))
        if error is not None:
            raise error
        failed = [(r, f) for r, f in enumerate(failures) if f is not None]
        if failed:
            r, f = failed[0]
            raise EcgEdgeError(f"rank {r} could not build the windows: {f}")
    return result  # type: ignore[return-value]


class AllReduceBatchNorm1d(nn.BatchNorm1d):
    """BatchNorm1d whose training statistics are those of the global batch across all ranks.

    Same parameters, buffers and state-dict keys as :class:`torch.nn.BatchNorm1d` (checkpoints
    load into the plain model). In eval mode, or outside a process group, it *is* BatchNorm1d.
    Running statistics are updated as BatchNorm1d does (momentum, unbiased variance), from the
    global statistics, so they are identical on every rank.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        dims = [0] if x.dim() == 2 else [0, 2]
        shape = (1, -1) if x.dim() == 2 else (1, -1, 1)
        local = torch.tensor([x.numel() // x.shape[1]], dtype=x.dtype, device=x.device)
        total = _AllReduceSum.apply(torch.cat([x.sum(dims), local]))
        n = total[-1].detach()
        mean = total[:-1] / n
        centred = x - mean.reshape(shape)
        var = _AllReduceSum.apply((centred * centred).sum(dims)) / n  # two passes: no cancellation in E[x²] - E[x]²
        y = centred * torch.rsqrt(var + self.eps).reshape(shape)
        if self.affine:
            y = y * self.weight.reshape(shape) + self.bias.reshape(shape)
        if self.track_running_stats:
            tracked, running_mean, running_var = self.num_batches_tracked, self.running_mean, self.running_var
            assert tracked is not None and running_mean is not None and running_var is not None  # buffers of a tracking norm
            with torch.no_grad():
                tracked.add_(1)
                m = self.momentum if self.momentum is not None else 1.0 / float(tracked)
                running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                running_var.mul_(1 - m).add_(var.detach() * (n / (n - 1).clamp(min=1)), alpha=m)
        return y


class _AllReduceSum(torch.autograd.Function):
    """Sum over ranks whose gradient is the sum over ranks of the gradients (each rank's loss
    depends on every rank's input through the shared statistics)."""

    @staticmethod
    def forward(ctx, t: torch.Tensor) -> torch.Tensor:
        t = t.clone()
        dist.all_reduce(t)
        return t

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


def sync_batchnorm(model: nn.Module) -> nn.Module:
    """Make every BatchNorm1d of ``model`` an :class:`AllReduceBatchNorm1d`, in place (same tensors)."""
    for m in model.modules():
        if type(m) is nn.BatchNorm1d:
            m.__class__ = AllReduceBatchNorm1d
    return model


def data_parallel(model: nn.Module, ctx: DistContext, device: torch.device, *, sync_bn: bool = True) -> nn.Module:
    """``model`` wrapped for training across ranks (returned unchanged when single).

    ``sync_bn`` gives BatchNorm the global batch's statistics (see module doc); without it each rank
    normalises by its own share and rank 0's running statistics are broadcast (plain DDP).
    """
    if not ctx.is_distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel

    if sync_bn:
        sync_batchnorm(model)
    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
