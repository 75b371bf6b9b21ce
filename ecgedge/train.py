"""Training: CAE pretraining and the transfer rhythm classifier. Importable; the CLI only calls it.

One fit loop (:func:`ecgedge.fit_loop.fit`, in its own module) trains both models; what differs
between them is handed to it as a :class:`~ecgedge.fit_loop.Recipe`, a ``validate`` function, what
``best`` means and how a checkpoint is made.

:func:`pretrain` and :func:`fit_classifier` wrap the loop with what comes before (cached windows,
record-level split) and after (held-out evaluation, metrics, plots) in the run folder::

    runs/NAME/
      config.json        the full config (re-runnable: ``--config`` takes the TOML form, config.toml)
      split.json         record ids of train / val / test (and the training subsample)
      data_summary.json  records found / used / skipped with reasons
      history.csv        one row per epoch
      metrics.json       held-out metrics
      best.pt, last.pt   self-describing checkpoints (torch.load(weights_only=True))
      train_state.pt     model, optimizer, schedule and shuffling state after the last completed epoch (--resume)
      plots/*.png

Ctrl-C stops after writing ``last.pt`` and the metrics so far; ``--resume`` goes on after the last
completed epoch and ends with the weights an uninterrupted run would have had.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Collection

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ecgedge.config import ClassifyConfig, ClassWeighting, DataConfig, Device, PretrainConfig, config_to_dict
from ecgedge.data.preprocess import normalise_windows
from ecgedge.data.provenance import data_record_hashes
from ecgedge.data.splits import Split, split_records, subsample
from ecgedge.data.store import WindowStore, is_store
from ecgedge.data.windows import WindowSet, build_windows
from ecgedge.distributed import (SINGLE, DistContext, all_sum, barrier, built_once, distributed_context,
                                 rank_part, torch_device)
from ecgedge.errors import ArtefactError, BackendUnavailable, ConfigError, DataNotFound
from ecgedge.evaluate.metrics import bootstrap_intervals, classification_report, record_decisions
from ecgedge.runtime.softmax import softmax
from ecgedge.fit_loop import Best, Recipe, Scored, batches, fit
from ecgedge.evaluate.plots import plot_confusion, plot_curves, plot_reconstruction
from ecgedge.models.autoencoder import ConvAutoencoder
from ecgedge.models.checkpoint import Checkpoint, load_checkpoint, unfinished_reason
from ecgedge.models.classifier import RhythmClassifier
from ecgedge.models.flops import count_macs, count_params


@dataclass
class TrainResult:
    run_dir: Path
    checkpoint: Path
    metrics: dict[str, Any]
    interrupted: bool = False


def _device(device: Device) -> torch.device:
    if device == Device.cuda and not torch.cuda.is_available():
        raise BackendUnavailable("--device cuda asked for, but this torch build sees no CUDA GPU (use --device cpu)")
    return torch.device(device.value)


def _seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)


def _prepare_run_dir(run_dir: str, cfg) -> Path:
    path = Path(run_dir)
    (path / "plots").mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps(config_to_dict(cfg), indent=2))
    (path / "config.toml").write_text(_to_toml(config_to_dict(cfg)))
    return path


def _to_toml(d: dict, prefix: str = "") -> str:
    scalars, tables = [], []
    for k, v in d.items():
        if isinstance(v, dict):
            tables.append(_to_toml(v, f"{prefix}{k}."))
        elif v is not None:
            scalars.append(f"{k} = {json.dumps(v)}")
    head = f"[{prefix[:-1]}]\n" if prefix and scalars else ""
    return head + "\n".join(scalars) + ("\n\n" if scalars else "") + "".join(tables)


def _normalised(ws: WindowSet, idx: np.ndarray, preprocess) -> tuple[np.ndarray, np.ndarray]:
    return normalise_windows(ws.windows[idx], preprocess)




# ----------------------------------------------------------------------------------- pretraining


def pretrain(cfg: PretrainConfig, *, progress: bool = True, resume: bool = False, exclude_records: Collection[str] = ()) -> TrainResult:
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

    ``exclude_records`` (record ids) take no part at all, neither in training nor in the held-out
    windows: the transfer experiment keeps its test records out of pretraining this way. When
    given, ``split.json`` lists the excluded ids and the ids of the training records too.
    """
    with distributed_context(cfg.device) as ctx:
        return _pretrain(cfg, ctx, progress=progress and ctx.is_main, resume=resume, exclude=frozenset(exclude_records))


def _pretrain(cfg: PretrainConfig, ctx: DistContext, *, progress: bool, resume: bool, exclude: frozenset[str] = frozenset()) -> TrainResult:
    _seed_everything(cfg.seed)
    device = _device(cfg.device)
    if ctx.is_distributed:
        device = torch_device(cfg.device, ctx)
    store = _window_store(cfg.data)
    if store is not None:
        if progress and (store.preprocess != cfg.preprocess or store.window != cfg.window):
            tqdm.write(f"note: using the preprocessing and windows the store was built with ({config_to_dict(store.window)})")
        cfg = replace(cfg, preprocess=store.preprocess, window=store.window)
    run = _prepare_run_dir(cfg.run_dir, cfg) if ctx.is_main else Path(cfg.run_dir)
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
        x, _ = _normalised(ws, idx, cfg.preprocess)
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
        x, _ = _normalised(ws, val_idx[:1], cfg.preprocess)
        with torch.no_grad():
            y = best_model.cpu().eval()(torch.from_numpy(x)).numpy()
        plot_reconstruction(x[0, 0], y[0, 0], cfg.preprocess.fs_hz, run / "plots" / "reconstruction.png",
                            f"held-out window {ws.record_ids[ws.window_record[val_idx[0]]]} (lead {cfg.lead})")
    if not fitted.interrupted:
        barrier(ctx)
    return TrainResult(run, ckpt_path, metrics, fitted.interrupted)


def _window_store(data: DataConfig) -> WindowStore | None:
    """The window store ``data.paths`` names, or ``None`` when they are records."""
    stores = [p for p in data.paths if is_store(p)]
    if not stores:
        return None
    if len(data.paths) > 1:
        raise ConfigError(f"a window store ({stores[0]}) must be the only --data path; got {len(data.paths)} paths")
    return WindowStore.open(stores[0])


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
        x, std = _normalised(ws, b, cfg.preprocess)
        y = model(torch.from_numpy(x).to(device)).cpu().numpy()
        err = y - x
        se_norm += float((err.astype(np.float64) ** 2).sum())
        se_uv += float(((err * std * 1000.0).astype(np.float64) ** 2).sum())
        count += err.size
    if ctx.is_distributed:
        se_norm, se_uv, count = map(float, all_sum([se_norm, se_uv, count], ctx))
    return {"mse_normalised": se_norm / count, "mse_uv2": se_uv / count, "rmse_uv": math.sqrt(se_uv / count), "windows": int(len(idx))}



# ----------------------------------------------------------------------------------- classifier


def load_cae(path: str, flag: str = "--init", *, allow_unfinished: bool = False, override: str = "") -> Checkpoint:
    """The CAE checkpoint at ``path`` (a file or a run folder); another kind raises :class:`ConfigError` naming ``flag``.

    A checkpoint of a pretraining run that did not finish (:func:`~ecgedge.models.checkpoint.unfinished_reason`)
    raises :class:`ArtefactError` unless ``allow_unfinished``; ``override`` names the flag that allows it.
    """
    cae = load_checkpoint(path)
    if cae.kind != "cae":
        raise ConfigError(f"{flag} {path} is a {cae.kind} checkpoint; a CAE checkpoint (ecgedge train pretrain) is needed")
    why = unfinished_reason(cae)
    if why and not allow_unfinished:
        raise ArtefactError(f"{flag}: {why}; finish the pretraining (ecgedge train pretrain --resume --run-dir RUN)"
                            + (f" or pass {override} to transfer it anyway" if override else ""))
    return cae


def interrupted_note(metrics: dict) -> str:
    """The line every output mode prints for a run stopped before its last epoch; ``""`` for a finished run."""
    if not metrics.get("interrupted"):
        return ""
    return f"interrupted after epoch {metrics.get('epochs_run', 0)}: these figures are from an incomplete run"


def adopt_cae(cfg: ClassifyConfig, cae: Checkpoint) -> ClassifyConfig:
    """``cfg`` with the architecture, preprocessing and window length the transferred encoder fixes."""
    return replace(cfg, model=replace(cae.model_config, head_channels=cfg.model.head_channels,
                                      head_dilations=cfg.model.head_dilations, dropout=cfg.model.dropout),
                   preprocess=cae.preprocess, window=replace(cfg.window, samples=cae.window.samples))


def classifier_from_init(cfg: ClassifyConfig, n_classes: int, cae: Checkpoint | None = None) -> RhythmClassifier:
    """The classifier for ``cfg``: encoder weights copied from ``cae`` (or random when ``None``),
    frozen when ``cfg.freeze_encoder``. Seed torch first for a reproducible head."""
    model = RhythmClassifier(cfg.model, len(cfg.leads), n_classes)
    if cae is not None:
        enc = {k.removeprefix("encoder."): v for k, v in cae.state_dict.items() if k.startswith("encoder.")}
        model.encoder.load_state_dict(enc)
    if cfg.freeze_encoder:
        model.set_encoder_trainable(False)
    return model


def selection_score(records: dict) -> tuple[str, float]:
    """The figure that picks the best epoch: the challenge score (mean F1 of N, A, O) where the
    label set has those classes (CinC-2017), else macro F1."""
    if "challenge_score" in records:
        return "challenge_score", float(records["challenge_score"])
    return "macro_f1", float(records["macro_f1"])


def holdout_records(split: Split, record_ids: list[str], paths) -> Split:
    """``split`` with every record found under ``paths`` (matched by record id) moved to its test part."""
    from ecgedge.data.records import find_records

    wanted = {r.record_id for r in find_records(list(paths))}
    if not wanted:
        raise DataNotFound(f"--holdout {', '.join(map(str, paths))}: no records found there")
    held = np.array([i for i, rid in enumerate(record_ids) if rid in wanted], dtype=np.int64)
    note = f"{len(held)} records of {', '.join(map(str, paths))} held out in the test split"
    return replace(split, train=np.setdiff1d(split.train, held), val=np.setdiff1d(split.val, held),
                   test=np.union1d(split.test, held), notes=[*split.notes, note])



def classifier_recipe(model: nn.Module, ws: WindowSet, train_idx: np.ndarray, cfg: ClassifyConfig, device) -> Recipe:
    """How the classifier trains on the windows ``train_idx`` (which may repeat windows).

    Loss: cross-entropy with class weights from the training windows' class counts
    (``cfg.class_weighting``: inverse frequency, its square root, or none); AdamW on the trainable
    parameters (``cfg.lr``, ``cfg.weight_decay``) under a one-cycle schedule stepped every batch;
    batches of ``cfg.batch_size`` shuffled by a generator seeded with ``cfg.seed``. The experiment
    grid trains its cells with the same recipe (through :func:`train_epochs`, without validation).
    """
    n_classes = len(ws.class_names)
    counts = np.bincount(ws.labels[train_idx], minlength=n_classes).astype(float)
    weights = np.where(counts > 0, counts.sum() / (n_classes * np.maximum(counts, 1)), 0.0)
    if cfg.class_weighting == ClassWeighting.sqrt:
        weights = np.sqrt(weights)
    elif cfg.class_weighting == ClassWeighting.none:
        weights = (counts > 0).astype(float)
    loss_fn = nn.CrossEntropyLoss(weight=torch.tensor(weights, dtype=torch.float32, device=device))

    def loss(net: nn.Module, idx: np.ndarray) -> torch.Tensor:
        x, _ = _normalised(ws, idx, cfg.preprocess)
        y = torch.from_numpy(ws.labels[idx]).to(device)
        return loss_fn(net(torch.from_numpy(x).to(device)), y)

    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps = math.ceil(len(train_idx) / cfg.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.epochs * steps)
    return Recipe(model, loss, opt, sched, schedule_per_batch=True, train_idx=train_idx, batch_size=cfg.batch_size,
                  epochs=cfg.epochs, rng=np.random.default_rng(cfg.seed), device=torch.device(device))


def fit_classifier(cfg: ClassifyConfig, *, progress: bool = True, resume: bool = False) -> TrainResult:
    """Train the rhythm classifier (CAE-initialised or random) and evaluate it on held-out records.

    Records are split by record (stratified, seeded), ``cfg.holdout`` records forced into the test
    part and the training part subsampled to ``cfg.train_fraction``; training follows
    :func:`classifier_recipe`. ``best.pt`` is the epoch of the highest :func:`selection_score` on
    the validation records (the training windows when there are none); the test records are scored
    with ``best.pt``, with bootstrap intervals. ``resume`` continues from ``run_dir/train_state.pt``
    and ends with the weights an uninterrupted run would have had (see :func:`fit`).
    """
    _seed_everything(cfg.seed)
    device = _device(cfg.device)
    cae = None
    if cfg.init != "random":
        cae = load_cae(cfg.init, allow_unfinished=cfg.allow_incomplete_init, override="--allow-incomplete-init")
        cfg = adopt_cae(cfg, cae)
    elif cfg.freeze_encoder:
        raise ConfigError("--freeze-encoder needs --init CAE_CKPT (a frozen random encoder learns nothing)")
    run = _prepare_run_dir(cfg.run_dir, cfg)
    ws = build_windows(cfg.data, cfg.leads, cfg.preprocess, cfg.window, cfg.labels, progress=progress)
    (run / "data_summary.json").write_text(json.dumps(ws.summary.to_dict(), indent=2))
    if progress:
        tqdm.write(ws.summary.describe())
    classes = ws.class_names
    if len(classes) < 2:
        raise DataNotFound(f"need at least two classes to train a classifier; found {list(classes)}")

    rec_labels = ws.record_labels()
    split = split_records(rec_labels, cfg.test_fraction, cfg.val_fraction, cfg.seed)
    if cfg.holdout:
        split = holdout_records(split, ws.record_ids, cfg.holdout)
    train_records = subsample(split.train, rec_labels, cfg.train_fraction, cfg.seed)
    (run / "split.json").write_text(json.dumps(split.to_dict(ws.record_ids) | {
        "train_used": [ws.record_ids[i] for i in train_records], "train_fraction": cfg.train_fraction,
        "seed": cfg.seed, "cache_key": ws.key,
        "train_sha256": data_record_hashes(cfg.data, [ws.record_ids[i] for i in train_records])}, indent=2))
    train_idx = ws.windows_of_records(train_records)
    train_idx = train_idx[ws.labels[train_idx] >= 0]
    val_idx, test_idx = ws.windows_of_records(split.val), ws.windows_of_records(split.test)
    if not len(test_idx):
        raise DataNotFound("no held-out test records: add records (each class needs at least two)")

    model = classifier_from_init(cfg, len(classes), cae).to(device)
    init_name = "random" if cae is None else str(cae.path)
    init_unfinished = unfinished_reason(cae) if cae is not None else ""  # allowed by --allow-incomplete-init; recorded
    sel_idx, part = (val_idx, "val") if len(val_idx) else (train_idx, "train")

    def validate(row: dict) -> Scored:
        sel = evaluate_classifier(model, ws, sel_idx, cfg, device)
        row = row | {f"{part}_macro_f1": sel["records"]["macro_f1"], "val_loss" if part == "val" else "train_eval_loss": sel["loss"]}
        score_name, score = selection_score(sel["records"])
        if score_name != "macro_f1":
            row[f"{part}_{score_name}"] = score
        line = (f"epoch {row['epoch']}/{cfg.epochs}  loss {row['train_loss']:.3f}  {part} macro F1 {sel['records']['macro_f1']:.3f}"
                + (f"  {part} {score_name.replace('_', ' ')} {score:.3f}" if score_name != "macro_f1" else "")
                + f"  ({row['windows_per_s']:.0f} windows/s)")
        return Scored(row, score, row, line)

    def checkpoint(epoch: int, metrics: dict, complete: bool) -> Checkpoint:
        return Checkpoint("classifier", cfg.model, cfg.preprocess, cfg.window, model.state_dict(), leads=cfg.leads,
                          labels=classes, epoch=epoch, complete=complete, metrics=metrics,
                          train_config=config_to_dict(cfg) | {"init_checkpoint": init_name, "run_dir": str(run),
                                                              **({"init_unfinished": init_unfinished} if init_unfinished else {})})

    fitted = fit(classifier_recipe(model, ws, train_idx, cfg, device), run, validate=validate, best=Best.highest,
                 checkpoint=checkpoint, model_config=config_to_dict(cfg.model), resume=resume, progress=progress, desc="classify")

    best_ckpt = load_checkpoint(fitted.checkpoint)
    best_model = best_ckpt.build_model().to(device)
    test = evaluate_classifier(best_model, ws, test_idx, cfg, device, intervals=True)
    metrics = {
        "kind": "classifier",
        "labels": cfg.labels.value,
        "class_names": list(classes),
        "init": init_name,
        **({"init_unfinished": init_unfinished} if init_unfinished else {}),
        "freeze_encoder": cfg.freeze_encoder,
        "train_fraction": cfg.train_fraction,
        "best_epoch": best_ckpt.epoch,
        "epochs_run": len(fitted.history),
        "interrupted": fitted.interrupted,
        "records": {"train": int(len(train_records)), "val": int(len(split.val)), "test": int(len(split.test))},
        "windows": {"train": int(len(train_idx)), "val": int(len(val_idx)), "test": int(len(test_idx))},
        "test": test,
        "split_notes": split.notes,
        "params": count_params(best_model),
        "macs_per_window": count_macs(best_model.cpu(), (len(cfg.leads), cfg.window.samples)),
    }
    (run / "metrics.json").write_text(json.dumps(metrics, indent=2))
    if fitted.history:
        keys = [k for k in fitted.history[0] if k != "epoch"]
        plot_curves(fitted.history, keys, run / "plots" / "curves.png", "classifier training")
    plot_confusion(np.array(test["records"]["confusion"]), classes, run / "plots" / "confusion.png",
                   f"held-out records: macro F1 {test['records']['macro_f1']:.3f}")
    return TrainResult(run, fitted.checkpoint, metrics, fitted.interrupted)


classify = fit_classifier  # the name the CLI command, quickstart, retrain and the tests' fixtures use


@torch.no_grad()
def predict_logits(model: nn.Module, ws: WindowSet, idx: np.ndarray, preprocess, device, batch_size: int = 128) -> np.ndarray:
    """FP32 PyTorch logits of windows ``idx`` (the reference the accuracy gate compares against)."""
    model.eval()
    out = []
    for b in batches(idx, batch_size, None):
        x, _ = _normalised(ws, b, preprocess)
        out.append(model(torch.from_numpy(x).to(device)).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def evaluate_classifier(model: nn.Module, ws: WindowSet, idx: np.ndarray, cfg: ClassifyConfig, device, *, intervals: bool = False) -> dict:
    """Window-level and record-level (window probabilities averaged) metrics and mean loss."""
    idx = np.sort(idx)
    idx = idx[ws.labels[idx] >= 0]
    logits = predict_logits(model, ws, idx, cfg.preprocess, device)
    y = ws.labels[idx]
    loss = float(nn.functional.cross_entropy(torch.from_numpy(logits), torch.from_numpy(y)).item()) if len(y) else float("nan")
    return scores_from_logits(logits, y, ws.window_record[idx], ws.class_names, intervals=intervals) | {"loss": loss}


def scores_from_logits(logits: np.ndarray, window_labels: np.ndarray, window_record: np.ndarray, class_names, *,
                       intervals: bool = False) -> dict:
    """Window-level and record-level classification reports from logits (shared with the gate).

    A record's prediction is the argmax of its windows' mean softmax probabilities. ``intervals``
    adds percentile-bootstrap 95 % intervals of the record-level figures (1000 resamples of the
    records, seeded) as ``records["intervals_95"]``."""
    probs = softmax(logits.astype(np.float64))
    windows = classification_report(window_labels, probs.argmax(1), class_names)
    _, rec_truth, rprobs = record_decisions(probs, window_labels, window_record)
    records = classification_report(rec_truth, rprobs.argmax(1), class_names).to_dict()
    if intervals:
        records["intervals_95"] = bootstrap_intervals(rec_truth, rprobs.argmax(1), class_names)
    return {"windows": windows.to_dict(), "records": records}
