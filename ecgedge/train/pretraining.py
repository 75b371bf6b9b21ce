"""CAE pretraining: the convolutional autoencoder on single-lead windows, scored by held-out
reconstruction MSE (normalised units and µV²); DistributedDataParallel under ``torchrun``."""

from __future__ import annotations

import json
import math
from collections.abc import Collection
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ecgedge.config import PretrainConfig, config_to_dict
from ecgedge.data.preprocess import normalise_windows
from ecgedge.data.splits import split_records
from ecgedge.data.windows import WindowSet, build_windows
from ecgedge.distributed import SINGLE, DistContext, all_sum, barrier, built_once, distributed_context, rank_part, torch_device
from ecgedge.errors import ConfigError, DataNotFound
from ecgedge.evaluate.plots import plot_curves, plot_reconstruction
from ecgedge.fit_loop import Best, Recipe, Scored, batches, fit
from ecgedge.models.autoencoder import ConvAutoencoder
from ecgedge.models.checkpoint import Checkpoint, load_checkpoint
from ecgedge.models.flops import count_macs, count_params
from ecgedge.train.run_folder import TrainResult, checked_device, own_run_files, prepare_run_dir, seed_everything, window_store


def pretrain(cfg: PretrainConfig, *, progress: bool = True, resume: bool = False, exclude_records: Collection[str] = (),
             overwrite: bool = False) -> TrainResult:
    """Train the CAE on single-lead windows (``cfg.lead``) and report held-out reconstruction MSE.

    MSE is reported in normalised units (what the loss sees) and in µV² (the reconstruction
    scaled back by each window's standard deviation: the unit of the paper's 626.6, whose data
    are in µV). Adam under a cosine schedule stepped once per epoch; ``best.pt`` is the epoch of
    lowest held-out MSE.

    ``cfg.data.paths`` may be one window store (``ecgedge data build``) instead of records; the
    store fixes the preprocessing and the windows, so its ``preprocess`` and ``window`` replace
    the config's.

    Under ``torchrun`` (``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` in the environment) every process
    runs this with the same config: DistributedDataParallel over NCCL (``--device cuda``, one GPU
    per process) or gloo (``cpu``). ``cfg.batch_size`` is per process, so a step sees a global
    batch of ``batch_size x world size`` windows, each rank a disjoint share of the same seeded
    shuffle; BatchNorm uses the global batch's statistics unless ``cfg.sync_batchnorm`` is off
    (see :mod:`ecgedge.distributed`). The window cache is built by rank 0 before the others open
    it, validation is split across ranks, and only rank 0 prints and writes the run folder; the
    other ranks return a result with empty ``metrics``.

    ``resume`` continues from ``run_dir/train_state.pt`` (see :func:`fit`): with the same world
    size the run ends with the weights an uninterrupted run would have had.

    ``cfg.run_dir`` must be new, empty or a CAE run (:func:`~ecgedge.train.run_folder.prepare_run_dir`):
    an existing one is continued only with ``resume`` and started again only with ``overwrite``.

    ``exclude_records`` (record ids) take no part at all, neither in training nor in the held-out
    windows: the transfer experiment keeps its test records out of pretraining this way. When
    given, ``split.json`` lists the excluded ids and the ids of the training records too.
    """
    with distributed_context(cfg.device) as ctx:
        return _pretrain(cfg, ctx, progress=progress and ctx.is_main, resume=resume, exclude=frozenset(exclude_records),
                         overwrite=overwrite)


def _pretrain(cfg: PretrainConfig, ctx: DistContext, *, progress: bool, resume: bool, exclude: frozenset[str] = frozenset(),
              overwrite: bool = False) -> TrainResult:
    seed_everything(cfg.seed)
    device = checked_device(cfg.device)
    if ctx.is_distributed:
        device = torch_device(cfg.device, ctx)
    store = window_store(cfg.data)
    if store is not None:
        if progress and (store.preprocess != cfg.preprocess or store.window != cfg.window):
            tqdm.write(f"note: using the preprocessing and windows the store was built with ({config_to_dict(store.window)})")
        cfg = replace(cfg, preprocess=store.preprocess, window=store.window)
    run = prepare_run_dir(cfg.run_dir, cfg, task="pretrain", resume=resume, overwrite=overwrite) if ctx.is_main else Path(cfg.run_dir)
    if store is not None:
        ws = store.window_set((cfg.lead,))
    else:
        ws = built_once(ctx, lambda: build_windows(cfg.data, (cfg.lead,), cfg.preprocess, cfg.window, None, progress=progress))
    if ctx.is_main:
        (run / "data_summary.json").write_text(json.dumps(ws.summary.to_dict(), indent=2))
    if progress:
        tqdm.write(ws.summary.describe())
    if cfg.window.samples % cfg.model.downsampling:
        raise ConfigError(f"window of {cfg.window.samples} samples is not a multiple of the encoder's downsampling {cfg.model.downsampling}")

    rng = np.random.default_rng(cfg.seed)  # draws the training subsample, then shuffles every epoch
    held_out_records: list[str] = []
    # Without exclusions `keep` is every record, so the split (and every draw after it) is unchanged.
    keep = np.array([i for i, rid in enumerate(ws.record_ids) if rid not in exclude], dtype=np.int64)
    if exclude and not len(keep):
        raise DataNotFound(f"every pretraining record is excluded ({len(exclude)} record ids)")
    if len(keep) > 1:
        split = split_records(np.zeros(len(keep), dtype=np.int64), test_fraction=cfg.val_fraction, val_fraction=0.0, seed=cfg.seed)
        train_idx, val_idx = ws.windows_of_records(keep[split.train]), ws.windows_of_records(keep[split.test])
        held_out_records = [ws.record_ids[i] for i in keep[split.test]]
        split_note = "record-level"
    else:  # one long record: hold out its last windows, with a gap so none overlaps a training window
        n = len(ws)
        cut = int(n * (1 - cfg.val_fraction))
        gap = math.ceil(cfg.window.samples / cfg.window.hop)
        train_idx, val_idx = np.arange(max(cut - gap, 1)), np.arange(cut, n)
        split_note = "time-ordered within one record"
    if cfg.max_windows and len(train_idx) > cfg.max_windows:
        train_idx = np.sort(rng.choice(train_idx, cfg.max_windows, replace=False))
        val_idx = np.sort(rng.choice(val_idx, min(len(val_idx), max(cfg.max_windows // 5, 1)), replace=False))
    if not len(val_idx):
        raise DataNotFound("too few windows to hold any out for validation; add records or lower --hop")
    global_batch = cfg.batch_size * ctx.world_size
    if ctx.is_main:
        excluded = {"excluded_records": sorted(exclude & set(ws.record_ids)),
                    "train_records": [ws.record_ids[i] for i in np.unique(ws.window_record[train_idx])]} if exclude else {}
        (run / "split.json").write_text(json.dumps({"kind": split_note, "val_records": held_out_records,
                                                    "train_windows": int(len(train_idx)), "val_windows": int(len(val_idx)), **excluded}, indent=2))

    model = ConvAutoencoder(cfg.model).to(device)

    def loss(net: nn.Module, idx: np.ndarray) -> torch.Tensor:
        batch_windows = len(idx)
        if ctx.is_distributed:
            idx = rank_part(idx, ctx)
        x, _ = normalise_windows(ws.windows[idx], cfg.preprocess)
        xt = torch.from_numpy(x).to(device)
        return _reconstruction_loss(net(xt), xt, batch_windows, ctx)

    def validate(row: dict) -> Scored:
        val = evaluate_cae(model, ws, val_idx, cfg, device, ctx)
        line = (f"epoch {row['epoch']}/{cfg.epochs}  train mse {row['train_loss']:.4f}  val mse {val['mse_normalised']:.4f} (normalised), "
                f"{val['mse_uv2']:.1f} µV²  ({row['windows_per_s']:.0f} windows/s)")
        return Scored({"epoch": row["epoch"], "train_mse": row["train_loss"], "val_mse": val["mse_normalised"], "val_mse_uv2": val["mse_uv2"]},
                      val["mse_normalised"], val, line)

    def checkpoint(epoch: int, metrics: dict, complete: bool) -> Checkpoint:
        return Checkpoint("cae", cfg.model, cfg.preprocess, cfg.window, model.state_dict(), leads=(cfg.lead,),
                          epoch=epoch, complete=complete, metrics=metrics, train_config=config_to_dict(cfg))

    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    recipe = Recipe(model, loss, opt, torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs), schedule_per_batch=False,
                    train_idx=train_idx, batch_size=global_batch, epochs=cfg.epochs, rng=rng, device=device, ctx=ctx,
                    sync_batchnorm=cfg.sync_batchnorm)
    fitted = fit(recipe, run, validate=validate, best=Best.lowest, checkpoint=checkpoint, model_config=config_to_dict(cfg.model),
                 resume=resume, progress=progress, desc="pretrain")

    if not ctx.is_main:
        if not fitted.interrupted:
            barrier(ctx)  # return once rank 0 has written the run folder
        return TrainResult(run, fitted.checkpoint, {}, fitted.interrupted)
    ckpt_path = fitted.checkpoint
    best_model = load_checkpoint(ckpt_path).build_model().to(device) if ckpt_path.exists() else model
    final = evaluate_cae(best_model, ws, val_idx, cfg, device) if fitted.history else {}
    metrics = {
        "kind": "cae",
        "held_out": final,
        "best_epoch": load_checkpoint(ckpt_path).epoch if ckpt_path.exists() else 0,
        "epochs_run": len(fitted.history),
        "interrupted": fitted.interrupted,
        "train_windows": int(len(train_idx)),
        "val_windows": int(len(val_idx)),
        "train_windows_per_s": float(np.median(fitted.rates)) if fitted.rates else None,
        "world_size": ctx.world_size,
        "global_batch": global_batch,
        "params": count_params(model),
        "macs_per_window": count_macs(model.cpu(), (1, cfg.window.samples)),
        "paper_mse": 626.583,
    }
    (run / "metrics.json").write_text(json.dumps(metrics, indent=2))
    if fitted.history:
        plot_curves(fitted.history, ["train_mse", "val_mse"], run / "plots" / "loss.png", "CAE reconstruction MSE (normalised)")
        x, _ = normalise_windows(ws.windows[val_idx[:1]], cfg.preprocess)
        with torch.no_grad():
            y = best_model.cpu().eval()(torch.from_numpy(x)).numpy()
        plot_reconstruction(x[0, 0], y[0, 0], cfg.preprocess.fs_hz, run / "plots" / "reconstruction.png",
                            f"held-out window {ws.record_ids[ws.window_record[val_idx[0]]]} (lead {cfg.lead})")
    if not fitted.interrupted:
        barrier(ctx)
    own_run_files(run)
    return TrainResult(run, ckpt_path, metrics, fitted.interrupted)


def _reconstruction_loss(y: torch.Tensor, x: torch.Tensor, batch_windows: int, ctx: DistContext) -> torch.Tensor:
    """MSE of the batch; under DDP this rank's share of the global batch's MSE times the world size,
    so DDP's mean of the ranks' gradients is the global batch's gradient even when the shares
    differ in size (the last batch of an epoch) or one is empty."""
    if not ctx.is_distributed:
        return nn.functional.mse_loss(y, x)
    return (y - x).pow(2).sum() * (ctx.world_size / (batch_windows * x.shape[1] * x.shape[2]))



@torch.no_grad()
def evaluate_cae(model: nn.Module, ws: WindowSet, idx: np.ndarray, cfg: PretrainConfig, device, ctx: DistContext = SINGLE) -> dict:
    """Reconstruction MSE of windows ``idx`` (normalised units and µV²); under DDP each rank scores
    its share and the sums are added up, so every rank gets the same result."""
    model.eval()
    se_norm = se_uv = count = 0.0
    for b in batches(rank_part(idx, ctx) if ctx.is_distributed else idx, 256, None):
        x, std = normalise_windows(ws.windows[b], cfg.preprocess)
        y = model(torch.from_numpy(x).to(device)).cpu().numpy()
        err = y - x
        se_norm += float((err.astype(np.float64) ** 2).sum())
        se_uv += float(((err * std * 1000.0).astype(np.float64) ** 2).sum())
        count += err.size
    if ctx.is_distributed:
        se_norm, se_uv, count = map(float, all_sum([se_norm, se_uv, count], ctx))
    return {"mse_normalised": se_norm / count, "mse_uv2": se_uv / count, "rmse_uv": math.sqrt(se_uv / count), "windows": int(len(idx))}
