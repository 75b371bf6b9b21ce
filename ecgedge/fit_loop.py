"""The one fit loop that trains both models (the CAE and the rhythm classifier); :mod:`ecgedge.train` wraps it.

It reads top to bottom: resume from the training state if asked -> for each epoch, shuffled batches
through one optimizer step each (:func:`train_epochs`, :func:`train_step`) -> validation -> ``last.pt``
every epoch and ``best.pt`` on improvement -> the training state (``train_state.pt``) -> ``history.csv``;
Ctrl-C writes ``last.pt`` (marked ``complete: false``) and ends the loop. What differs between the
models comes in as small pieces: a :class:`Recipe` (model, batch loss, optimizer, learning-rate
schedule, training windows, shuffling generator), a ``validate`` function (one epoch's history row,
score and checkpoint metrics), what ``best`` means (:class:`Best`) and how a checkpoint is made.
"""

from __future__ import annotations

import csv
import enum
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ecgedge.distributed import (SINGLE, DistContext, all_sum, data_parallel, from_main)
from ecgedge.errors import ArtefactError, ConfigError
from ecgedge.models.checkpoint import Checkpoint, save_checkpoint, save_torch_file


def batches(indices: np.ndarray, batch_size: int, rng: np.random.Generator | None):
    """Window indices in batches of ``batch_size``, shuffled by ``rng`` (None: in order), each sorted for the memory map."""
    order = indices[rng.permutation(len(indices))] if rng is not None else indices
    for i in range(0, len(order), batch_size):
        yield np.sort(order[i:i + batch_size])  # sorted reads are kind to the memory map


def _write_history(path: Path, history: list[dict]) -> None:
    keys = sorted({k for h in history for k in h}, key=lambda k: (k != "epoch", k))
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(history)


TRAIN_STATE = "train_state.pt"
TRAIN_STATE_FORMAT = "ecgedge.train-state/1"


class Best(str, enum.Enum):
    """Which way the validation score improves, i.e. which epoch's weights become ``best.pt``."""

    lowest = "lowest"  # a loss: the CAE's held-out reconstruction MSE
    highest = "highest"  # a score: the classifier's challenge score or macro F1

    @property
    def worst(self) -> float:
        """The score before the first epoch: any real score improves on it (NaN never does)."""
        return math.inf if self is Best.lowest else -math.inf

    def improves(self, score: float, best: float) -> bool:
        return score < best if self is Best.lowest else score > best


@dataclass
class Recipe:
    """What one model brings to the shared loop: everything an epoch of training uses.

    ``loss(net, idx)`` is the loss of the batch of window indices ``idx`` through ``net`` (``model``,
    or its DistributedDataParallel wrapper); under torchrun ``idx`` is the global batch and the
    loss takes this rank's share (:func:`~ecgedge.distributed.rank_part`). ``batch_size`` counts
    windows per step on all ranks together. The learning-rate ``scheduler`` steps after every
    batch when ``schedule_per_batch``, else after every epoch. ``rng`` shuffles ``train_idx`` at
    the start of each epoch; the loop saves and restores its state, so the caller may have drawn
    from it before (the CAE's training subsample does).
    """

    model: nn.Module
    loss: Callable[[nn.Module, np.ndarray], torch.Tensor]
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    schedule_per_batch: bool
    train_idx: np.ndarray
    batch_size: int
    epochs: int
    rng: np.random.Generator
    device: torch.device
    ctx: DistContext = SINGLE
    sync_batchnorm: bool = True


@dataclass
class Scored:
    """One validated epoch: its ``history.csv`` row, the ``score`` that :class:`Best` compares,
    the ``metrics`` its checkpoints carry and its progress ``line``."""

    row: dict
    score: float
    metrics: dict
    line: str


@dataclass
class Fitted:
    """What :func:`fit` leaves: the history (resumed epochs included), training windows/s of each
    epoch trained in this call, whether Ctrl-C ended it, and ``best.pt`` (``last.pt`` when no
    epoch scored)."""

    history: list[dict]
    rates: list[float]
    interrupted: bool
    checkpoint: Path


def train_step(recipe: Recipe, net: nn.Module, idx: np.ndarray) -> float:
    """One optimizer step on the windows ``idx``; returns the batch loss."""
    loss = recipe.loss(net, idx)
    recipe.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    recipe.optimizer.step()
    if recipe.schedule_per_batch:
        recipe.scheduler.step()
    return loss.item()


def train_epochs(recipe: Recipe, net: nn.Module | None = None, *, start: int = 1, progress: bool = True,
                 desc: str = "train") -> Iterator[dict]:
    """Train epochs ``start``..``recipe.epochs``, yielding ``{"epoch", "train_loss", "windows_per_s"}`` after each.

    Each epoch shuffles ``recipe.train_idx`` (which may repeat windows: a bootstrap sample counts a
    record as often as it was drawn) with ``recipe.rng`` into batches of ``recipe.batch_size`` and
    takes one :func:`train_step` per batch through ``net`` (default: the model). Between yields the
    caller may evaluate or checkpoint the model; the next epoch puts it back in train mode.
    ``train_loss`` is the mean batch loss (under torchrun, averaged over ranks).
    """
    net = recipe.model if net is None else net
    ctx = recipe.ctx
    steps = math.ceil(len(recipe.train_idx) / recipe.batch_size)
    for epoch in range(start, recipe.epochs + 1):
        recipe.model.train()
        losses = []
        started = time.perf_counter()
        bar = tqdm(batches(recipe.train_idx, recipe.batch_size, recipe.rng), total=steps, desc=f"{desc} {epoch}/{recipe.epochs}",
                   unit="batch", disable=not progress, leave=False)
        for idx in bar:
            losses.append(train_step(recipe, net, idx))
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}")
        if not recipe.schedule_per_batch:
            recipe.scheduler.step()
        rate = len(recipe.train_idx) / (time.perf_counter() - started)  # training windows/s, all ranks together
        # Each rank's loss is its share of the global batch's loss, times world size.
        batch_losses = all_sum(losses, ctx) / ctx.world_size if ctx.is_distributed else np.asarray(losses)
        yield {"epoch": epoch, "train_loss": float(np.mean(batch_losses)), "windows_per_s": rate}


def fit(recipe: Recipe, run: Path, *, validate: Callable[[dict], Scored], best: Best,
        checkpoint: Callable[[int, dict, bool], Checkpoint], model_config: dict, resume: bool = False,
        progress: bool = True, desc: str = "train") -> Fitted:
    """Train ``recipe`` for its epochs, validating, checkpointing and keeping the training state in ``run``.

    After each epoch of :func:`train_epochs`: ``validate(row)`` scores the model; ``last.pt`` is
    written (``complete`` after the last epoch), ``best.pt`` when ``best`` says the score improved,
    then ``train_state.pt`` (model, optimizer, schedule, shuffling and torch RNG state, history,
    best score). ``checkpoint(epoch, metrics, complete)`` makes a checkpoint of the model;
    ``model_config`` (the model's config as a dict) guards ``resume`` against a different model.

    ``resume`` restores ``run/train_state.pt`` and goes on after its epoch, so with the same data
    and (under torchrun) world size the run ends with the weights an uninterrupted one would have.
    Ctrl-C writes ``last.pt`` with the last completed epoch, marked incomplete; the epoch in
    progress is redone by ``resume``. Under torchrun every rank trains and validates; rank 0 alone
    writes. ``history.csv`` is written last.
    """
    ctx = recipe.ctx
    history: list[dict] = []
    best_score = best.worst
    start = 1
    if resume:
        state = from_main(ctx, lambda: _read_train_state(run, model_config))
        _restore_train_state(recipe, state)
        history, best_score, start = state["history"], state["best"], state["epoch"] + 1
        if progress:
            tqdm.write(f"resuming {run} after epoch {state['epoch']}")
            if state["global_batch"] != recipe.batch_size:
                tqdm.write(f"note: the global batch changes from {state['global_batch']} to {recipe.batch_size} windows "
                           f"({state['world_size']} -> {ctx.world_size} processes)")
    net = data_parallel(recipe.model, ctx, recipe.device, sync_bn=recipe.sync_batchnorm)

    done, rates, interrupted = start - 1, [], False
    try:
        for row in train_epochs(recipe, net, start=start, progress=progress, desc=desc):
            epoch = row["epoch"]
            rates.append(row["windows_per_s"])
            scored = validate(row)
            history.append(scored.row)
            improved = best.improves(scored.score, best_score)
            if improved:
                best_score = scored.score
            if progress:
                tqdm.write(scored.line)
            if ctx.is_main:
                save_checkpoint(run / "last.pt", checkpoint(epoch, scored.metrics, epoch == recipe.epochs))
                if improved:
                    save_checkpoint(run / "best.pt", checkpoint(epoch, scored.metrics, True))
                # Written last: a crash before this line redoes the epoch on --resume.
                _write_train_state(run, recipe, epoch=epoch, history=history, best=best_score, model_config=model_config)
            done = epoch
    except KeyboardInterrupt:
        interrupted = True
        if ctx.is_main:
            save_checkpoint(run / "last.pt", checkpoint(done, history[done - 1] if done else {}, False))
        if progress:
            tqdm.write(f"interrupted in epoch {done + 1}: wrote {run / 'last.pt'} (--resume redoes this epoch)")

    if not ctx.is_main:
        return Fitted(history, rates, interrupted, run / "best.pt")
    _write_history(run / "history.csv", history)
    return Fitted(history, rates, interrupted, run / "best.pt" if (run / "best.pt").exists() else run / "last.pt")


def _write_train_state(run: Path, recipe: Recipe, *, epoch: int, history: list[dict], best: float, model_config: dict) -> None:
    state = {
        "format": TRAIN_STATE_FORMAT,
        "epoch": epoch,
        "model": {k: v.detach().cpu() for k, v in recipe.model.state_dict().items()},
        "optimizer": recipe.optimizer.state_dict(),
        "scheduler": recipe.scheduler.state_dict(),
        "rng": recipe.rng.bit_generator.state,
        "torch_rng": torch.get_rng_state(),  # dropout draws: the classifier's resume equals an uninterrupted run
        **({"cuda_rng": torch.cuda.get_rng_state(recipe.device)} if recipe.device.type == "cuda" else {}),
        "history": history,
        "best": best,
        "world_size": recipe.ctx.world_size,
        "global_batch": recipe.batch_size,
        "model_config": model_config,
    }
    save_torch_file(run / TRAIN_STATE, state, "training state")


def _read_train_state(run: Path, model_config: dict) -> dict:
    path = run / TRAIN_STATE
    if not path.is_file():
        raise ConfigError(f"--resume: {path} not found (written after each completed epoch); run without --resume to start afresh")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt files
        raise ArtefactError(f"{path} is not a loadable training state: {exc}") from None
    if not isinstance(state, dict) or state.get("format") != TRAIN_STATE_FORMAT:
        raise ArtefactError(f"{path} is not an ecgedge training state")
    if state["model_config"] != model_config:
        raise ConfigError(f"--resume: {path} was trained with model {state['model_config']}, not {model_config}")
    return state


def _restore_train_state(recipe: Recipe, state: dict) -> None:
    recipe.model.load_state_dict(state["model"])
    recipe.optimizer.load_state_dict(state["optimizer"])
    recipe.scheduler.load_state_dict(state["scheduler"])
    recipe.rng.bit_generator.state = state["rng"]
    if "torch_rng" in state:  # absent from states written before the classifier could resume
        torch.set_rng_state(state["torch_rng"])
    if "cuda_rng" in state and recipe.device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda_rng"], recipe.device)
